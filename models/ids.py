"""The id of a stored row.

SQLModel declares an autoincrement key `Optional[int]` because it is None until the INSERT; once a row
is flushed or read back it always has one. `stored_id` says so to the type checker, and fails loudly
for a row that was never flushed instead of letting None reach a query.
"""

from typing import Optional, Protocol


class _Keyed(Protocol):
    @property
    def id(self) -> Optional[int]: ...


def stored_id(row: _Keyed) -> int:
    """`row.id`, which must be set: call it after `session.flush()` or on a row read from the database."""
    if row.id is None:
        raise ValueError(f"{type(row).__name__} has no id yet: flush the session first")
    return row.id
