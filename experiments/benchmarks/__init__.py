"""Benchmarks of ``parrots bench NAME``: each module here defines ``add_arguments(parser)``
and ``run(args) -> dict`` (the JSON it prints). Speed claims are ratios measured in one run."""
