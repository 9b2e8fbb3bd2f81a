"""Errors the command line reports as one line, without a traceback (``--debug`` shows it)."""


class ReportedError(Exception):
    """A failure whose message names what is wrong and what to do."""

    exit_code = 1


class UsageError(ReportedError):
    """Bad input from the user: a flag, a config, a dataset."""

    exit_code = 2


class RunError(ReportedError):
    """A run that cannot go on: a loss that stays non-finite, weights that became non-finite."""


class Interrupted(ReportedError):
    """SIGINT or SIGTERM during training, after the resumable state was saved."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum
