"""User-facing errors: the CLI prints these as one line and exits with code 2."""


class HwnasError(Exception):
    """Bad input or usage that the user can fix; the message names the problem and the fix."""


class ArchError(HwnasError, ValueError):
    """An architecture that does not fit its search space."""


class SpaceError(HwnasError, ValueError):
    """An unknown or malformed search space."""


class HwnasWarning(UserWarning):
    """Something the user should know that does not stop the command; the CLI prints it as one line."""


class HwnasNotice(HwnasWarning):
    """The outcome of a check the user should see once (it held, or what was reused); the CLI prints
    it as one line without the word 'warning'."""
