"""Errors a user can fix: the command line prints them as one line, without a traceback."""


class UserError(ValueError):
    """Bad input from the user: a file, a shape, an option. The message names what and what was expected."""


class DataError(UserError):
    """A data file or folder is missing, unreadable, or not in the expected format."""
