"""Subcommands of ``parrots``: every module here with ``register(subparsers)`` is one command.

A command module defines ``register(subparsers)``, which adds its parser and sets
``func=run`` where ``run(args) -> int`` returns the exit status. The CLI discovers the modules
of this package, so adding a command means adding a file.
"""
