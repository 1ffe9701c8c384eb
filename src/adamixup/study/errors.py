"""The study's one error class and its warning."""


class StudyError(ValueError):
    """A bad plan, ledger or request: one sentence that names the file, the key or the value."""


class StudyWarning(UserWarning):
    """Something in a ledger that was skipped (a corrupt record) or not reused (a stale one)."""


class NotSupportedYet(StudyError, NotImplementedError):
    """A plan asks for something the trainer cannot do yet (say, a validation split); the sentence says
    what is missing."""
