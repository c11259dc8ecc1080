"""Photos whose files could not be written (a full disk) are fetched again and written once space returns.

The report itself was kept, with the photo marked missing (models.ledger.store_photo). The message's
stored route says how to download its photos again (WeCom: URL and AES key; DingTalk: download codes),
as recovery does. The platforms' links do not last (WeCom's media URLs: 5 minutes), so the sooner
the better: the recovery loop of bot/app.py calls this every few seconds, and it does nothing while
the data dir still refuses writes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import anyio
from sqlmodel import Session

from bot.engine import Engine
from bot.health import DataDirProbe
from bot.platforms.base import Runtime
from handlers.messages import Attachment
from models.ids import stored_id
from models.ledger import (
    mark_photo_still_missing,
    mark_photo_written,
    photo_path,
    photos_to_fetch_again,
    write_photo_file,
)
from models.tables import AttachmentFile

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Due:
    """A missing photo due for another attempt, and where its message came from."""

    photo_id: int
    sha256: str
    message_id: int | None
    platform: str | None
    route: dict[str, Any]
    on_disk: bool  # the same photo came again in another message and was written meanwhile


async def fetch_missing_photos(runtime: Runtime, probe: DataDirProbe, *, limit: int = 100) -> int:
    """Fetch again and write the missing photos that are due; returns how many were written."""
    if await anyio.to_thread.run_sync(probe.problem) is not None:
        return 0  # the disk is still full: downloading now would be wasted
    engine = runtime.engine
    due = await anyio.to_thread.run_sync(_due, engine, limit)
    by_message: dict[int | None, list[_Due]] = defaultdict(list)
    for item in due:
        by_message[item.message_id].append(item)
    written = 0
    for items in by_message.values():
        fetched = {} if all(item.on_disk for item in items) else await _fetch(runtime, items[0])
        written += await anyio.to_thread.run_sync(_write_and_mark, engine, items, fetched)
    return written


def _due(engine: Engine, limit: int) -> list[_Due]:
    with Session(engine.db) as session:
        return [
            _Due(
                photo_id=stored_id(row),
                sha256=row.sha256,
                message_id=message.id if message else None,
                platform=message.platform if message else None,
                route=json.loads(message.route or "{}") if message else {},
                on_disk=photo_path(engine.data_dir, row.sha256).exists(),
            )
            for row, message in photos_to_fetch_again(session, now=engine.now(), limit=limit)
        ]


async def _fetch(runtime: Runtime, item: _Due) -> dict[str, bytes] | None:
    """The message's photos by SHA-256, or None when its platform cannot download them again."""
    fetch = runtime.fetchers.get(item.platform or "")
    if fetch is None:
        return None
    try:
        attachments: tuple[Attachment, ...] = await fetch(item.route)
    except Exception:
        log.warning("could not download the photos of inbound message %s again", item.message_id, exc_info=True)
        attachments = ()
    return {hashlib.sha256(attachment.data).hexdigest(): attachment.data for attachment in attachments}


def _write_and_mark(engine: Engine, items: list[_Due], fetched: dict[str, bytes] | None) -> int:
    """Write what was fetched, then record each photo's outcome in one short transaction."""
    outcomes: dict[int, str] = {}  # photo id -> "" when written, else why not
    for item in items:
        data = (fetched or {}).get(item.sha256)
        if data is None:
            if item.on_disk:
                outcomes[item.photo_id] = ""
            else:
                outcomes[item.photo_id] = "no download" if fetched is not None else "cannot download"
            continue
        try:
            write_photo_file(engine.data_dir, item.sha256, data)
            outcomes[item.photo_id] = ""
        except OSError as exc:
            outcomes[item.photo_id] = errno.errorcode.get(exc.errno or 0, "OSError")
    now = engine.now()
    with engine.write_gate(), Session(engine.db) as session:
        for photo_id, reason in outcomes.items():
            row = session.get(AttachmentFile, photo_id)
            if row is None:
                continue
            if reason:  # no platform can download it (fetched is None): stop trying
                mark_photo_still_missing(session, row, now=now, reason=reason, give_up=fetched is None)
            else:
                mark_photo_written(session, row)
        session.commit()
    written = sum(1 for reason in outcomes.values() if not reason)
    if written:
        log.info("wrote %d photo(s) that were missing", written)
    return written
