"""Photos that come with a report, a fix or a progress note: stored with the hazard, and what the reply says."""

from __future__ import annotations

from collections.abc import Sequence

from handlers.context import Context
from models.ledger import store_photo
from models.tables import AttachmentFile

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
