"""Proactive pushes to a group (reminders, digests, alerts) as outbox rows with caller-chosen keys.

`Pushes` is given, at construction, how a group push becomes platform messages on each platform
(bot/services.py builds it); the scheduler calls its `enqueue_push` with a dedupe key that names the push
(e.g. `report_reminder:c1:staff:2026-11-30`), so a push is stored once however often it is attempted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from bot.outbox import Draft
from handlers.messages import Reply
from models import outbox as outbox_store
from models.tables import GroupRow

PushRenderer = Callable[[Session, GroupRow, Sequence[Reply]], list[Draft]]


@dataclass(frozen=True, slots=True)
class Pushes:
    """How pushes to each platform's groups become outbox rows (the scheduler's `enqueue_push`)."""

    renderers: Mapping[str, PushRenderer]

    def enqueue_push(
        self,
        session: Session,
        *,
        group: GroupRow,
        dedupe_key: str,
        replies: Sequence[Reply],
        now: datetime,
        give_up_after: timedelta,
        priority: int = outbox_store.PRIORITY_NORMAL,
    ) -> int:
        """Store the push's messages in the outbox (inside the caller's transaction); returns rows added.

        `priority` PRIORITY_URGENT puts the rows first in their robot's turn (重大 alerts)."""
        renderer = self.renderers.get(group.platform)
        if renderer is None:
            raise LookupError(f"no push renderer for platform {group.platform!r} (group {group.id})")
        return _enqueue_drafts(
            session, group, renderer(session, group, replies), dedupe_key=dedupe_key, now=now,
            give_up_after=give_up_after, priority=priority,
        )


def _enqueue_drafts(
    session: Session, group: GroupRow, drafts: Sequence[Draft], *, dedupe_key: str, now: datetime,
    give_up_after: timedelta, priority: int,
) -> int:
    added = 0
    for index, draft in enumerate(drafts):
        row_id = outbox_store.enqueue(
            session,
            dedupe_key=f"{dedupe_key}:{index}",
            platform=group.platform,
            channel=draft.channel or "",
            robot=draft.robot or f"{group.platform}:{group.id}",
            group_id=group.id,
            kind=draft.kind,
            payload=dict(draft.payload),
            blob=draft.blob,
            now=now,
            give_up_after=give_up_after,
            priority=priority,
        )
        added += row_id is not None
    return added
