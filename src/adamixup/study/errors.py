"""The study's one error class and its warning."""


class StudyError(ValueError):
    """A bad plan, ledger or request: one sentence that names the file, the key or the value."""


class StudyWarning(UserWarning):
    """Something in a ledger that was skipped (a corrupt record) or not reused (a stale one)."""

