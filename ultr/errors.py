"""The one exception type every stage raises for bad input, so entry points can report it cleanly."""


class DataError(ValueError):
    """Bad input: the message names the file, the row/line or column, and the fix."""
