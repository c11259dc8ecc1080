"""The id of a stored row.

SQLModel declares an autoincrement key `Optional[int]` because it is None until the INSERT; once a row
is flushed or read back it always has one. `stored_id` says so to the type checker, and fails loudly
for a row that was never flushed instead of letting None reach a query.
"""

from collections.abc import Iterable
from typing import Optional, Protocol


class _Keyed(Protocol):
    @property
    def id(self) -> Optional[int]: ...


def stored_id(row: _Keyed) -> int:
    """`row.id`, which must be set: call it after `session.flush()` or on a row read from the database."""
    if row.id is None:
        raise ValueError(f"{type(row).__name__} has no id yet: flush the session first")
    return row.id


def stored_ids(ids: Iterable[Optional[int]]) -> list[int]:
    """Ids selected from the database (a primary key column is never NULL there), as a list of int."""
    found: list[int] = []
    for row_id in ids:
        if row_id is None:
            raise ValueError("a stored row without an id")
        found.append(row_id)
    return found
