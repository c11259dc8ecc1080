"""The id of a stored row, and ids made to fit their column.

SQLModel declares an autoincrement key `Optional[int]` because it is None until the INSERT; once a row
is flushed or read back it always has one. `stored_id` says so to the type checker, and fails loudly
for a row that was never flushed instead of letting None reach a query.
"""

import hashlib
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


ID_MAX_CHARS = 128  # inbound_message.platform_msg_id / chat_id / sender_id, outbox.robot


def storable_text(value: str) -> str:
    """Text every database stores: no NUL characters (PostgreSQL), no lone surrogates (UTF-8)."""
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def storable_id(value: str) -> str:
    """An id that fits its column; a longer one keeps a prefix and a digest, so a retry still matches it."""
    value = storable_text(value)
    if len(value) <= ID_MAX_CHARS:
        return value
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]
    return f"{value[:ID_MAX_CHARS - len(digest) - 1]}~{digest}"
