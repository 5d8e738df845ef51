"""The one error the ``pamkrb`` subcommands raise for the operator to fix."""


class UsageError(Exception):
    """A bad option value: a path that does not exist, a malformed name.

    ``pamkrb`` prints the message (which names the option and the value) to
    stderr and exits with status 2, like argparse does for its own errors.
    """
