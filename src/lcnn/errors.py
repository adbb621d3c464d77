"""Errors a user can fix: the command line prints them as one line, without a traceback."""

import signal


class UserError(ValueError):
    """Bad input from the user: a file, a shape, an option. The message names what and what was expected."""


class DataError(UserError):
    """A data file or folder is missing, unreadable, or not in the expected format."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: the command stops, keeping what is done, and exits ``128 + signal``.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` swallows it; not a KeyboardInterrupt,
    which Lightning's Trainer turns into ``sys.exit(1)``.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(self.name)
