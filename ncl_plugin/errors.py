"""Errors the command line reports as one line, without a traceback."""


class UsageError(Exception):
    """Bad input from the user: a flag, a config, a dataset. The message names it and says what to do."""
