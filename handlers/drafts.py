"""确认 / 是, 取消, 新的, 同 #N and plain answers: the sender settles their draft reports (see `handlers.intake`).

A draft belongs to its sender in the chat it came from and waits `policy.draft_minutes`. Its sender settles it
with 确认 (accepting the suggested name, or that plain words are a hazard), by answering the question (just the
部位, the name, the date, or `责任人：王建国`), with 新的 (a possible duplicate is a new hazard) or 同 #N (it is #N:
the sender and the photos are added to #N's history), or drops it with 取消.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from handlers import permissions
from handlers.command import Command, CommandSpec
from handlers.context import Context
from handlers.dates import resolve_deadline
from handlers.intake import (
    Doubt,
    Item,
    Ready,
    Refusal,
    Registered,
    alerts,
    assess,
    doubt_reply,
    register,
    registered_list_reply,
    registered_reply,
)
from handlers.messages import Outcome, Reply
from handlers.normalize import normalize_text
from handlers.numbers import hazard_label, names_school
from handlers.photos import attach_pending_photos, pending_note, store_attachments
from models.drafts import draft_photos, drop_drafts, has_live_draft, keep_draft_photo, sender_drafts, update_draft
from models.ledger import hazards_by_number, record_event, store_photo
from models.tables import AttachmentFile, ReportDraft

NO_DRAFT = "现在没有等您确认的隐患。要上报请发：隐患 部位：…，问题：…"
# The kinds of question a plain answer can settle (a duplicate needs 新的 or 同 #N, plain words 确认).
_ANSWERABLE = ("location", "problem", "person", "date")
_EDGES = " \t\n，,；;。.！!？?、：:"
_KEY_PREFIX_RE = re.compile(r"^(?:部位|位置|地点|问题|责任人|负责人|整改人|期限|时限|截止)[ ]*[:：]?[ ]*")
_NAME_WRAPPER_RE = re.compile(r"^(?:是|改成|改为|应该是|换成|由|请)|(?:老师|负责|来负责|吧|的)$")
_NOBODY = frozenset(("不写", "无", "没有", "不知道", "不清楚", "不确定", "暂无", "待定"))
_NAME_RE = re.compile(r"^[\u4e00-\u9fff·]{2,6}$")


@dataclass(slots=True)
class _Drafts:
    """The sender's drafts in this chat: those still waiting and whether any expired."""

    live: list[ReportDraft]
    expired: bool


def _owner(context: Context) -> dict[str, str]:
    return {"platform": context.platform, "sender_id": context.person.id, "chat_id": context.chat_id}


def _load(context: Context) -> _Drafts:
    rows = sender_drafts(context.session, **_owner(context))
    live = [row for row in rows if row.expires_at > context.now]
    return _Drafts(live, expired=len(live) < len(rows))


def _expired_text(context: Context) -> str:
    return f"刚才的隐患超过{context.policy.draft_minutes}分钟没有确认，已作废、没有登记，请重新发送。"


def _nothing_waiting(context: Context, drafts: _Drafts) -> list[Reply]:
    if drafts.expired:
        drop_drafts(context.session, sender_drafts(context.session, **_owner(context)))
        return [Reply(_expired_text(context))]
    return [Reply(NO_DRAFT)]


def settle(context: Context, rows: list[ReportDraft], items: list[Item], *, before: Sequence[str] = ()) -> Outcome:
    """Assess every draft again: register the ready ones in order, drop the refused, keep the rest and ask."""
    done: list[Registered] = []
    plain: list[bool] = []
    lines = list(before)
    waiting: list[tuple[ReportDraft, Item, Doubt]] = []
    finished: list[ReportDraft] = []
    for row, item in zip(rows, items):
        assessment = assess(item, context)
        if isinstance(assessment, Ready):
            assert row.id is not None
            done.append(register(  # photos sent with the answer go with the first hazard registered
                item, assessment, context, draft_ids=[row.id], with_message_photos=not done,
                source_msg_id=row.source_msg_id,
            ))
            plain.append(item.plain)
            finished.append(row)
        elif isinstance(assessment, Refusal):
            lines.append(assessment.reply.text)
            finished.append(row)
        else:
            update_draft(context.session, row, payload=item.to_json())
            waiting.append((row, item, assessment))
    if waiting and not done:  # photos sent with an answer that settled nothing wait with the draft
        _keep_message_photos(context, waiting[0][0])
    drop_drafts(context.session, finished)
    replies: list[Reply] = []
    if len(done) == 1:
        replies.append(registered_reply(done[0], context, plain=plain[0]))
    elif done:
        replies.append(registered_list_reply(done, context))
    if lines:
        replies.append(Reply("\n".join(lines)))
    if waiting:
        _, item, doubt = waiting[0]
        ask = doubt_reply(item, doubt, context)
        if len(waiting) > 1:
            ask = Reply(f"{ask.text}\n（还有{len(waiting) - 1}条等您确认）")
        replies.append(ask)
    return Outcome(replies, effects=alerts(done))


def _keep_message_photos(context: Context, row: ReportDraft) -> None:
    assert row.id is not None
    for attachment in context.attachments:
        keep_draft_photo(
            context.session, draft_id=row.id, filename=attachment.filename, content_type=attachment.content_type,
            data=attachment.data, source_msg_id=context.inbound_id,
        )


def _items(rows: list[ReportDraft]) -> list[Item]:
    return [Item.from_json(row.payload) for row in rows]


# ---------------------------------------------------------------------------------------------------------
# 确认 / 是, 取消, 新的, 同 #N


def handle_confirm(command: Command, context: Context) -> list[Reply] | Outcome:
    """确认 / 是: accept what the bot suggested (the closest name, that plain words are a hazard) and register."""
    drafts = _load(context)
    if not drafts.live:
        return _nothing_waiting(context, drafts)
    items = _items(drafts.live)
    for item in items:
        doubt = assess(item, context)
        if isinstance(doubt, Doubt) and doubt.kind == "person" and doubt.suggestion:
            item.fields.responsible = doubt.suggestion
        elif isinstance(doubt, Doubt) and doubt.kind == "keys":
            item.ask_keys = False
            doubt = assess(item, context)
            if isinstance(doubt, Doubt) and doubt.kind == "person" and doubt.suggestion:
                item.fields.responsible = doubt.suggestion
    return settle(context, drafts.live, items)


def handle_cancel(command: Command, context: Context) -> list[Reply]:
    """取消: drop the sender's drafts here; nothing is registered."""
    drafts = _load(context)
    if not drafts.live:
        return _nothing_waiting(context, drafts)
    count = len(drafts.live)
    drop_drafts(context.session, sender_drafts(context.session, **_owner(context)))
    what = f"这{count}条隐患" if count > 1 else "这条隐患"
    return [Reply(f"好的，已取消，{what}没有登记。")]


def handle_new(command: Command, context: Context) -> list[Reply] | Outcome:
    """新的: a report that looked like an open hazard is a new one after all."""
    drafts = _load(context)
    if not drafts.live:
        return _nothing_waiting(context, drafts)
    items = _items(drafts.live)
    for item in items:
        item.new_anyway = True
    return settle(context, drafts.live, items)


def handle_same(command: Command, context: Context) -> list[Reply] | Outcome:
    """同 #N: the draft is hazard #N reported again: the sender and the photos join #N's history, no new number."""
    drafts = _load(context)
    if not drafts.live:
        return _nothing_waiting(context, drafts)
    items = _items(drafts.live)
    at = next(
        (i for i, item in enumerate(items) if _doubt_kind(item, context) == "duplicate"), 0
    )
    row, item = drafts.live[at], items[at]
    # Numbers are per school: 同 #12 is this chat's school's 12; a county chat names it (同 城南小学#12).
    candidates = [h for h in hazards_by_number(context.session, context.campaign.id, command.hazard_no or 0)
                  if not command.hazard_school or names_school(context, h, command.hazard_school)]
    scope = permissions.chat_scope(context)
    visible = [h for h in candidates if scope is None or h.unit_id in scope]
    if len(visible) != 1:
        typed = f"{command.hazard_school or ''}#{command.hazard_no}"
        suggested = _suggested(item, context)
        if len(visible) > 1:
            labels = [hazard_label(context, h) for h in visible]
            return [Reply(f"这里有{len(visible)}所学校的 #{command.hazard_no}：{'、'.join(labels)}。"
                          f"请写明学校，例如：同 {labels[0]}")]
        return [Reply(f"没有找到隐患 {typed}。请核对编号，例如：同 #{suggested or 12}")]
    hazard = visible[0]
    label = hazard_label(context, hazard)  # 城南小学#12 in a chat serving several schools
    if not permissions.is_open(hazard):
        return [Reply(f"隐患 {label} {hazard.status_label}，不能再补充；如是新的隐患请回复「新的」。")]
    fields = item.fields
    event = record_event(
        context.session, hazard=hazard, actor_id=context.person.id, action="same", at=context.now,
        detail=f"{fields.location or ''} {fields.problem or ''}".strip(),
    )
    assert hazard.id is not None and event.id is not None and row.id is not None
    photos = _move_photos(context, row.id, hazard.id, event.id)
    drop_drafts(context.session, [row])
    lines = [f"已补充到隐患 {label}（{hazard.location} {hazard.problem}）：记下您也上报了，没有新编号。"]
    if photos:
        lines.append(pending_note(photos).replace("已附上刚才的", "已附上"))
    rest_rows, rest_items = drafts.live[:at] + drafts.live[at + 1:], items[:at] + items[at + 1:]
    if not rest_rows:
        return [Reply("\n".join(lines))]
    return settle(context, rest_rows, rest_items, before=lines)


def _doubt_kind(item: Item, context: Context) -> str | None:
    doubt = assess(item, context)
    return doubt.kind if isinstance(doubt, Doubt) else None


def _suggested(item: Item, context: Context) -> int | None:
    doubt = assess(item, context)
    return doubt.duplicate_of if isinstance(doubt, Doubt) else None


def _move_photos(context: Context, draft_id: int, hazard_id: int, event_id: int) -> list[AttachmentFile]:
    """The draft's photos, this message's and those sent just before, stored with #N's event."""
    stored = [
        store_photo(
            context.session, data_dir=context.data_dir, hazard_id=hazard_id, event_id=event_id,
            filename=row.filename, content_type=row.content_type, data=row.data, at=context.now,
            source_msg_id=row.source_msg_id,
        )
        for row in draft_photos(context.session, [draft_id])
    ]
    stored += store_attachments(context, hazard_id, event_id)
    stored += attach_pending_photos(context, hazard_id, event_id)
    return stored


# ---------------------------------------------------------------------------------------------------------
# Plain answers: 王建国, 12月20日, 食堂后门, 责任人：王建国


def follow_up(text: str, command: Command, context: Context) -> Outcome | None:
    """The sender's answer to their draft's question, or None when the message is not one (then it is routed).

    A message is taken as an answer only while a draft waits, and only when it is no usable command by itself
    (王建国, 12月20日, a lone key such as 责任人：王建国) or plain words the bot is unsure of (食堂后门).
    """
    if command.command in _DRAFT_COMMANDS:
        return None
    unusable = not command.ok or (command.command == "report" and command.plain and bool(command.doubts))
    if not unusable or not has_live_draft(context.session, **_owner(context), now=context.now):
        return None
    drafts = _load(context)
    items = _items(drafts.live)
    for item in items:
        doubt = assess(item, context)
        if isinstance(doubt, Doubt) and doubt.kind in _ANSWERABLE:
            break
    else:
        return None
    problem = _apply_answer(item, doubt, text, command, today=context.today)
    if problem is not None:
        return Outcome([Reply(f"{problem}\n{doubt.question}\n{doubt.answer}")])
    return settle(context, drafts.live, items)


def _apply_answer(item: Item, doubt: Doubt, text: str, command: Command, *, today: date) -> str | None:
    """Put the answer into the draft; a sentence saying what was not understood, or None."""
    fields = item.fields
    if command.command == "report" and not command.plain:  # 责任人：王建国, 部位：食堂后门 …
        given = {
            name: getattr(command.fields, name)
            for name in ("location", "problem", "responsible", "unit", "deadline", "level", "measure")
            if getattr(command.fields, name) is not None
        }
        for name, value in given.items():
            setattr(fields, name, value)
        if given:
            return None
    value = _KEY_PREFIX_RE.sub("", normalize_text(text).strip(_EDGES)).strip(_EDGES)
    if not value:
        return "没收到内容。"
    if doubt.kind == "location":
        fields.location = value[:200]
    elif doubt.kind == "problem":
        fields.problem = value
    elif doubt.kind == "person" and value in _NOBODY:
        fields.responsible = None  # the hazard goes to the unit (单位, else the reporter's)
    elif doubt.kind == "person":
        name = _NAME_WRAPPER_RE.sub("", value).strip(_EDGES).removeprefix("@")
        if not _NAME_RE.match(name):
            return f"没看懂「{value[:20]}」是谁。"
        fields.responsible = name
    elif doubt.kind == "date":
        resolved = resolve_deadline(value, today=today)
        if resolved is None:
            return f"没看懂期限「{value[:20]}」。"
        fields.deadline = resolved
    return None



CONFIRM_HELP = "确认：回复「确认」或「是」，按机器人的理解登记刚才等您确认的隐患（接受它建议的姓名）；也可直接回复更正，例如：责任人：王建国"
CANCEL_HELP = "取消：回复「取消」，放弃刚才等您确认的隐患，不登记。"
NEW_HELP = "新的：机器人说「可能与 #12 重复」时，回复「新的」仍作为新隐患登记。"
SAME_HELP = "同 #12：机器人说「可能与 #12 重复」时，回复「同 #12」把您的上报和照片补充到 #12，不新编号。"

CONFIRM = CommandSpec(
    "confirm", ("确认", "是", "是的", "确定", "对", "对的", "没错", "确认登记"), handle_confirm,
    usage="确认", summary="登记刚才等您确认的隐患", help=CONFIRM_HELP, everyday=False, alone=True,
)
CANCEL = CommandSpec(
    "cancel", ("取消", "不用了", "算了", "取消登记"), handle_cancel,
    usage="取消", summary="放弃刚才等您确认的隐患", help=CANCEL_HELP, everyday=False, alone=True,
)
NEW = CommandSpec(
    "new", ("新的", "是新的", "新隐患登记"), handle_new,
    usage="新的", summary="可能重复的隐患仍作为新隐患登记", help=NEW_HELP, everyday=False, alone=True,
)
SAME = CommandSpec(
    "same", ("同", "同一个", "就是"), handle_same,
    usage="同 #编号", summary="可能重复的隐患补充到已有的隐患", help=SAME_HELP, example_tail=" #23",
    takes_number=True, everyday=False, alone=True,
)
_DRAFT_COMMANDS = frozenset({"confirm", "cancel", "new", "same"})
