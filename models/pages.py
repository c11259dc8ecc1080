"""Queries behind the web pages (issue 15): a hazard's photos by stage, a group by id, the chat a hazard was
reported in, and the answer a page's button got."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from models.queries_directory import group_for_chat
from models.tables import AttachmentFile, GroupRow, Hazard, HazardEvent, InboundMessage

BEFORE_ACTIONS = frozenset({"report", "same", "import"})  # photos of the hazard as found
AFTER_ACTIONS = frozenset({"rectify", "close", "recheck"})  # photos of the fix


@dataclass(frozen=True, slots=True)
class PagePhoto:
    id: int
    action: str | None  # the event it came with (report, rectify, progress, …); None: not tied to one
    at: datetime
    missing: bool  # not on disk (yet)

    @property
    def stage(self) -> str:
        """"before", "after" or "other" (a progress note's photo)."""
        if self.action is None or self.action in BEFORE_ACTIONS:
            return "before"
        return "after" if self.action in AFTER_ACTIONS else "other"


def hazard_page_photos(session: Session, hazard_id: int) -> list[PagePhoto]:
    """The hazard's photos in id order, each with the action of the event it came with."""
    statement = (
        select(AttachmentFile, HazardEvent.action)
        .join(HazardEvent, col(AttachmentFile.event_id) == col(HazardEvent.id), isouter=True)
        .where(col(AttachmentFile.hazard_id) == hazard_id)
        .order_by(col(AttachmentFile.id))
    )
    return [
        PagePhoto(id=int(row.id or 0), action=action, at=row.created_at, missing=row.missing_since is not None)
        for row, action in session.exec(statement).all()
    ]


def group_by_id(session: Session, group_id: str) -> GroupRow | None:
    return session.get(GroupRow, group_id)


def hazard_group(session: Session, hazard: Hazard) -> GroupRow | None:
    """The configured group the hazard was reported in (its buttons act there); None for imported rows or a
    chat no longer configured."""
    if hazard.source_msg_id is None:
        return None
    source = session.get(InboundMessage, hazard.source_msg_id)
    if source is None:
        return None
    return group_for_chat(session, source.platform, source.chat_id)


def answer_of(session: Session, platform: str, msg_id: str) -> tuple[str, str] | None:
    """(state, reply text) of a recorded message, by its platform id; None when it was never recorded."""
    row = session.exec(
        select(InboundMessage).where(col(InboundMessage.platform) == platform,
                                     col(InboundMessage.platform_msg_id) == msg_id)
    ).first()
    return (row.state, row.reply_text or "") if row is not None else None
