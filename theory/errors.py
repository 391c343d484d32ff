"""The one error type a user can cause.

Anything a user can get wrong (a malformed graph, a bad config, a corrupt file) raises
:class:`InputError`, a ``ValueError`` carrying the offending value in its message. The CLI
turns it into one line on stderr and exit status 2.
"""


class InputError(ValueError):
    """Bad input from a user: the message names the offending field, value or line."""
