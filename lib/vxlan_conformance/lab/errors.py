"""The one exception the lab raises: a one-line message that says what to do."""


class LabError(Exception):
    """Bad input or a failed lab operation; str(err) is a single line for the user."""
