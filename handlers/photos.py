"""Photos that come with a report, a fix or a progress note: stored with the hazard, and what the reply says."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from handlers.context import Context
from handlers.messages import Reply
from models.ledger import (
    count_pending_photos,
    drop_expired_pending_photos,
    keep_pending_photo,
    store_photo,
    take_pending_photos_dropping_expired,
)
from models.tables import AttachmentFile, DraftPhoto, PendingPhoto

# Why a photo's file could not be written, in words for the chat (by the OS error's name).
_NO_SPACE = frozenset({"ENOSPC", "EDQUOT"})


def store_attachments(context: Context, hazard_id: int, event_id: int | None) -> list[AttachmentFile]:
    """Store the message's photos with the hazard; one that cannot be written is kept as missing."""
    return [
        store_photo(
            context.session, data_dir=context.data_dir, hazard_id=hazard_id, event_id=event_id,
            filename=attachment.filename, content_type=attachment.content_type, data=attachment.data,
            at=context.now, source_msg_id=context.inbound_id,
        )
        for attachment in context.attachments
    ]


def photo_note(rows: Sequence[AttachmentFile]) -> str:
    """「照片：2张已保存」, or what happens to the photos that could not be saved yet ("" without photos)."""
    missing = [row for row in rows if row.missing]
    stored = len(rows) - len(missing)
    if not missing:
        return f"照片：{stored}张已保存" if stored else ""
    reasons = {row.missing_reason for row in missing}
    why = "服务器存储空间不足" if reasons <= _NO_SPACE else "服务器存储暂时不可用"
    if stored:
        return f"照片：{stored}张已保存，{len(missing)}张暂未保存（{why}），稍后自动重试"
    if len(missing) == 1:
        return f"照片暂未保存（{why}），稍后自动重试"
    return f"照片：{len(missing)}张暂未保存（{why}），稍后自动重试"


def _pending_since(context: Context) -> datetime:
    """Photos received before this have waited too long to be attached."""
    return context.now - timedelta(minutes=context.policy.pending_photo_minutes)


def _pending_owner(context: Context) -> dict[str, str]:
    return {"platform": context.platform, "sender_id": context.person.id, "chat_id": context.chat_id}


def keep_lone_photos(context: Context) -> list[Reply]:
    """Photos without words: keep them for the sender's next report or 整改 here, and say so in one line."""
    drop_expired_pending_photos(context.session, before=_pending_since(context))
    for attachment in context.attachments:
        keep_pending_photo(
            context.session, **_pending_owner(context), at=context.now, filename=attachment.filename,
            content_type=attachment.content_type, data=attachment.data, source_msg_id=context.inbound_id,
        )
    waiting = count_pending_photos(context.session, **_pending_owner(context), since=_pending_since(context))
    minutes = context.policy.pending_photo_minutes
    return [Reply(f"收到{waiting}张照片，请接着发隐患内容或「整改 #N 说明」，{minutes}分钟内有效。")]


def has_pending_photos(context: Context) -> bool:
    """Whether the sender sent photos without words here recently (they come with this message)."""
    return count_pending_photos(context.session, **_pending_owner(context), since=_pending_since(context)) > 0


def attach_pending_photos(context: Context, hazard_id: int, event_id: int | None) -> list[AttachmentFile]:
    """Store the sender's recent photos without words with this hazard's event; expired ones are dropped."""
    return store_taken_photos(context, take_pending(context), hazard_id, event_id)


def take_pending(context: Context) -> list[PendingPhoto]:
    """The sender's recent photos without words here, taken off the pending table (expired ones are dropped);
    `store_taken_photos` stores them once their hazard is filed."""
    if not context.pending_photos:  # none at all when the message was claimed: nothing to take or drop
        return []
    since = _pending_since(context)
    return take_pending_photos_dropping_expired(context.session, **_pending_owner(context), since=since)


def store_taken_photos(
    context: Context, rows: Sequence[PendingPhoto | DraftPhoto], hazard_id: int, event_id: int | None
) -> list[AttachmentFile]:
    """Store photos taken from the pending table or a draft with this hazard's event."""
    return [
        store_photo(
            context.session, data_dir=context.data_dir, hazard_id=hazard_id, event_id=event_id,
            filename=row.filename, content_type=row.content_type, data=row.data, at=context.now,
            source_msg_id=row.source_msg_id,
        )
        for row in rows
    ]


def pending_note(rows: Sequence[AttachmentFile]) -> str:
    """「已附上刚才的2张照片」, plus what happens to any that could not be saved yet ("" without any)."""
    if not rows:
        return ""
    note = f"已附上刚才的{len(rows)}张照片"
    if any(row.missing for row in rows):
        note += f"（{photo_note(rows)}）"
    return note
