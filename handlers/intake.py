"""Taking a report in: store what is certain, keep what is doubtful as a draft until its sender settles it.

A report goes through named steps (`assess`): its unit, its 部位 and 问题, its 责任人, its 期限, whether the
plain words say anything is wrong, and whether an open hazard at the same place already says the same. Each step
either passes, refuses the report (a unit or person this chat may not use: nothing can be settled), or raises the
one `Doubt` to ask about. A report without doubts is registered at once (`register`); a doubtful one is kept as a
draft (`models.drafts`) for its sender in that chat for `policy.draft_minutes`, and `handlers.drafts` settles it
(确认 / 是, the corrected field, 新的, 同 #N, 取消). Several hazards in one message are always drafts, registered
together on 确认.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any


from handlers import permissions
from handlers.command import Command, HazardFields
from handlers.context import Context
from handlers.buttons import hazard_buttons
from handlers.dates import beyond_campaign_error
from handlers.directory import (
    closest_people,
    example_unit,
    find_building,
    find_people,
    find_unit,
    pick_person,
    school_units,
    scope_words,
    unit_names,
    unknown_person_text,
)
from handlers.format import fmt_date
from handlers.messages import AlertLeaders, Effect, Reply
from handlers.numbers import hazard_label, number_label
from handlers.photos import pending_note, photo_note, store_attachments, store_taken_photos, take_pending
from models.drafts import (
    draft_photos,
    drop_drafts,
    drop_sender_drafts,
    drop_stale_drafts,
    OpenHazard,
    duplicate_candidates,
    keep_draft_photo,
    save_draft,
    sender_drafts,
)
from models.ledger import NewHazard, file_numbered_hazard, school_of, take_pending_photos
from models.lookback import MISSED_ORIGINS, ORIGINS, normalize_origin
from models.places import bare_text, text_numbers
from models.queries_directory import first_active_name_in
from models.tables import AttachmentFile, DraftPhoto, HazardStatus, PendingPhoto, PersonRow, ReportDraft, UnitRow

# A possible duplicate: an open hazard whose 部位 reads nearly the same (or names the same building) and whose
# 问题 is at least this similar (difflib's ratio on the text without punctuation).
SAME_PLACE_RATIO = 0.8
SAME_PROBLEM_RATIO = 0.6
# Expired drafts are kept this long, so that a late 确认 hears that its draft expired.
STALE_DRAFTS_KEPT = timedelta(days=1)


@dataclass(slots=True)
class Item:
    """One hazard being reported: what the message said, and what its sender has already settled."""

    fields: HazardFields
    note: str | None = None
    plain: bool = False  # read from plain words (no keys)
    ask_keys: bool = False  # plain words that may say nothing is wrong: asked before storing
    new_anyway: bool = False  # the sender answered 新的 to a possible duplicate

    @classmethod
    def from_command(cls, command: Command) -> Item:
        return cls(
            fields=command.fields, note=command.note, plain=command.plain, ask_keys="no_keys" in command.doubts
        )

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        deadline = self.fields.deadline
        data["fields"]["deadline"] = deadline.isoformat() if deadline is not None else None
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Item:
        data = json.loads(text)
        fields = dict(data.pop("fields"))
        if fields.get("deadline"):
            fields["deadline"] = date.fromisoformat(fields["deadline"])
        return cls(fields=HazardFields(**fields), **data)


@dataclass(frozen=True, slots=True)
class Ready:
    """A report with nothing left to ask: everything `register` needs."""

    unit_id: str
    responsible: PersonRow | None
    deadline: date
    deadline_note: str
    level: str
    notes: tuple[str, ...] = ()
    origin: str = "自查"  # 回头看 (issue 16): who found it (自查, 督查, 县普查, …)


@dataclass(frozen=True, slots=True)
class Doubt:
    """The one thing to ask before a report is stored."""

    kind: str  # location, problem, person, date, keys, duplicate
    question: str  # one line: what is unsure
    answer: str  # one line: how to settle it
    suggestion: str | None = None  # the name 确认 / 是 accepts (kind person)
    duplicate_of: int | None = None  # the open hazard it may repeat (kind duplicate)


@dataclass(frozen=True, slots=True)
class Refusal:
    """The report cannot be taken in this chat, whatever is answered."""

    reply: Reply


Assessment = Ready | Doubt | Refusal


# ---------------------------------------------------------------------------------------------------------
# Assessing a report, step by step


def assess(item: Item, context: Context) -> Assessment:
    """What to do with a report: register it (Ready), ask one thing (Doubt), or refuse it (Refusal)."""
    allowed = permissions.chat_scope(context)
    unit = _resolve_unit(item, context, allowed)
    if isinstance(unit, Refusal):
        return unit
    missing = _missing_text(item)
    if missing is not None:
        return missing
    owner = _resolve_owner(item, context, allowed, unit)
    if isinstance(owner, Doubt | Refusal):
        return owner
    responsible, notes = owner
    unit_id = unit.id if unit is not None else (responsible.unit_id if responsible else context.person.unit_id)
    origin = _origin(item.fields.source, context)  # 回头看 (issue 16): who found it
    if isinstance(origin, Refusal):
        return origin
    if unit is None and responsible is None and origin != "自查":
        unit_id = _inspected_unit(context, allowed) or unit_id
        if unit_id == context.person.unit_id and "supervisor" in context.person.role_set:
            # the 督导组's own office is no school: ask which school
            return Refusal(Reply(
                f"请写明是哪所学校的隐患，这条隐患没有登记。例如：单位：{_a_school(context, allowed)}"
            ))
    if allowed is not None and unit_id not in allowed:
        return Refusal(Reply(
            f"您的单位不属于{scope_words(context)}，这条隐患没有登记。"
            f"请在「单位」中写明{scope_words(context)}的部门，例如：单位：{example_unit(context, allowed)}"
        ))
    level = item.fields.level or "一般"
    deadline = _resolve_deadline(item, context, level)
    if isinstance(deadline, Doubt | Refusal):
        return deadline
    if item.ask_keys:
        return Doubt("keys", "没看出这是不是隐患。", "是隐患请回复「确认」登记，不是请回复「取消」。")
    if not item.new_anyway:
        duplicate = _find_duplicate(item, context, unit_id)
        if duplicate is not None:
            return duplicate
    return Ready(unit_id, responsible, deadline[0], deadline[1], level, tuple(notes), origin)


# 回头看 (issue 16): who may file a finding of an inspection from above, and where a supervisor's finding goes.
ORIGIN_ROLES = frozenset({"supervisor", "safety_officer", "leader", "admin"})


def _origin(typed: str | None, context: Context) -> str | Refusal:
    """The finding's source: 来源 as written, else 督查 for a supervisor (督导组), else the school's 自查."""
    roles = context.person.role_set
    if not typed:
        return "督查" if "supervisor" in roles else "自查"
    origin = normalize_origin(typed)
    if origin is None:
        return Refusal(Reply(
            f"来源「{typed}」看不懂，这条隐患没有登记。请写其中之一：{'、'.join(ORIGINS)}，例如：来源：督查"
        ))
    if origin != "自查" and not roles & ORIGIN_ROLES:
        return Refusal(Reply(
            f"「{origin}」发现的隐患由督导组、安全管理人员或校领导登记，这条隐患没有登记。"
            "自己排查发现的隐患不用写来源，删去「来源」一行后重新发送即可。"
        ))
    return origin


def _inspected_unit(context: Context, allowed: set[str] | None) -> str | None:
    """A supervisor from outside the chat's units, naming no unit: the one school this group serves."""
    if allowed is None or context.person.unit_id in allowed:
        return None
    roots = permissions.chat_roots(context) or []
    return roots[0] if len(roots) == 1 else None


def _a_school(context: Context, allowed: set[str] | None) -> str:
    """The name of a school (a unit owning buildings) this chat serves, for an example."""
    schools = [b.unit_id for b in context.policy.buildings if allowed is None or b.unit_id in allowed]
    return unit_names(context.session, schools[:1]).get(schools[0], "城南小学") if schools else "城南小学"


def _resolve_unit(item: Item, context: Context, allowed: set[str] | None) -> UnitRow | None | Refusal:
    """The unit written in 单位 (None when not written); one this chat does not serve is refused."""
    if not item.fields.unit:
        return None
    unit = find_unit(context.session, item.fields.unit, among=allowed)
    if unit is None:
        return Refusal(_unknown_unit_reply(context, item.fields.unit, allowed))
    return unit


def _missing_text(item: Item) -> Doubt | None:
    """部位 and 问题 are what a ledger row cannot do without: ask for the one missing (问题 first)."""
    if not item.fields.problem:
        return Doubt("problem", "没看出是什么问题。", "请直接回复问题，例如：消防通道堆放杂物；回复「取消」放弃。")
    if not item.fields.location:
        return Doubt("location", "没找到隐患在哪里（部位）。", "请直接回复部位，例如：食堂后门；回复「取消」放弃。")
    return None


def _resolve_owner(
    item: Item, context: Context, allowed: set[str] | None, unit: UnitRow | None
) -> tuple[PersonRow | None, list[str]] | Doubt | Refusal:
    """The 责任人 as a person of the directory; an unknown or ambiguous name is asked about, naming the closest."""
    name = (item.fields.responsible or "").strip().removeprefix("@")
    if not name:
        return None, []
    candidates = find_people(context.session, name)
    # A namesake in another school is no candidate while this chat has one of its own.
    candidates = [p for p in candidates if allowed is None or p.unit_id in allowed] or candidates
    prefer = [unit.id] if unit else list(allowed or [context.person.unit_id])
    responsible = pick_person(candidates, prefer_units=prefer)
    if responsible is None and candidates:
        units = unit_names(context.session, {person.unit_id for person in candidates})
        choices = "、".join(f"{p.name}（{units.get(p.unit_id, p.unit_id)}）" for p in candidates[:4])
        return Doubt(
            "person", f"有{len(candidates)}位「{name}」：{choices}。",
            f"请回复是哪个部门的，例如：单位：{units.get(candidates[0].unit_id, candidates[0].unit_id)}；回复「取消」放弃。",
        )
    if responsible is None:
        close = closest_people(context.session, name, among=allowed, limit=1)
        question = unknown_person_text(context.session, name, among=allowed)
        if close:
            return Doubt(
                "person", question, f"回复「是」按{close[0].name}登记，或直接回复正确的姓名；回复「取消」放弃。",
                suggestion=close[0].name,
            )
        return Doubt(
            "person", question,
            f"请直接回复责任人的姓名，例如：{_example_person(context, allowed)}（不确定可回复「不写」）；回复「取消」放弃。",
        )
    if allowed is not None and responsible.unit_id not in allowed:
        example = _example_person(context, allowed)
        return Refusal(Reply(
            f"「{responsible.name}」不属于{scope_words(context)}，这条隐患没有登记。"
            f"请写{scope_words(context)}的责任人，例如：责任人：{example}"
        ))
    return responsible, []


def _resolve_deadline(item: Item, context: Context, level: str) -> tuple[date, str] | Doubt | Refusal:
    """(期限, how it was chosen): a written one must be from today to the campaign's end, else it is asked about."""
    today, written = context.today, item.fields.deadline
    if written is None:
        if item.fields.immediate:
            return today, "（立即整改）"
        days = context.policy.major_deadline_days if level == "重大" else context.policy.general_deadline_days
        return today + timedelta(days=days), f"（未写期限，按{level}隐患默认{days}天）"
    end = context.campaign.end
    if written < today:
        return Doubt("date", f"期限已经过去了（{fmt_date(written)}）。", _date_answer(context))
    beyond = beyond_campaign_error(written, campaign_end=end, today=today, example="期限：{date}")
    if beyond is not None:
        if end < today:  # the campaign is over: no deadline can be settled in a chat
            return Refusal(Reply(beyond))
        if _passed_this_year(written, today):  # 12月1日 on 12月7日: next year's is after the campaign
            day = f"{written.month}月{written.day}日"
            beyond = f"期限{day}今年已经过去了，明年的{day}又晚于本次排查整治的结束日期 {end.isoformat()}。"
        return Doubt("date", beyond, _date_answer(context))
    return written, ""


def _passed_this_year(written: date, today: date) -> bool:
    """Whether `written` is a date without a year read as next year's because this year's has passed."""
    if written.year != today.year + 1:
        return False
    try:
        return written.replace(year=today.year) < today
    except ValueError:  # 2月29日
        return False


def _date_answer(context: Context) -> str:
    """How to answer a date question, with an example that would be accepted (within the campaign)."""
    end, today = context.campaign.end, context.today
    example = min(today + timedelta(days=7), end)
    return f"请直接回复 {end.isoformat()} 或之前的新期限，例如：{example.month}月{example.day}日；回复「取消」放弃。"


def _same_number_list(first: tuple[str, ...], b: str) -> bool:
    """Whether b names the same numbers as those of a text (`text_numbers`), or either names none: two places
    or problems that name different ones (3号楼, 二楼, 第5处) differ."""
    if not first:
        return True
    second = text_numbers(b)
    return not second or first == second


class _Like:
    """Whether texts are at least `at_least` similar to one text (difflib's ratio, without punctuation).

    The one text is difflib's second sequence, indexed once for all the open hazards it is compared with; the
    cheap upper bounds come first, since most open hazards differ.
    """

    def __init__(self, text: str, at_least: float) -> None:
        self.at_least = at_least
        self.empty = not bare_text(text)
        self.matcher = difflib.SequenceMatcher(None)
        self.matcher.set_seq2(bare_text(text))

    def __call__(self, other: str) -> bool:
        other = bare_text(other)
        if self.empty or not other:
            return False
        matcher, at_least = self.matcher, self.at_least
        matcher.set_seq1(other)
        return matcher.real_quick_ratio() >= at_least and matcher.quick_ratio() >= at_least and matcher.ratio() >= at_least


def _find_duplicate(item: Item, context: Context, unit_id: str) -> Doubt | None:
    """An open hazard of this campaign and school at the same place with a similar problem, offered for merging.

    Only the candidates `duplicate_candidates` reads through the place keys are compared (not every open hazard
    of the school): those naming the same numbers, in the same building, or whose place starts the same way."""
    location, problem = item.fields.location or "", item.fields.problem or ""
    units = school_units(context, unit_id)
    allowed = permissions.chat_scope(context)
    if allowed is not None:
        units &= allowed
    building = find_building(context.session, location, context.policy.buildings, unit_id=unit_id)
    candidates = duplicate_candidates(
        context.session, campaign_id=context.campaign.id, unit_ids=units, location=location,
        building_id=building.id if building is not None else None,
    )
    if not candidates:
        return None
    like_place, like_problem = _Like(location, SAME_PLACE_RATIO), _Like(problem, SAME_PROBLEM_RATIO)
    place_numbers, problem_numbers = text_numbers(location), text_numbers(problem)
    found: OpenHazard | None = None
    for hazard in candidates:
        if not _same_number_list(place_numbers, hazard.location):  # 二楼 is not 三楼
            continue
        same_place = (building is not None and hazard.building_id == building.id) or like_place(hazard.location)
        if not same_place:
            continue
        if _same_number_list(problem_numbers, hazard.problem) and like_problem(hazard.problem):
            found = hazard  # the most recent one (open hazards come oldest first)
    if found is None:
        return None
    hazard = found
    n = hazard.number
    # 城南小学#12 in a chat serving several schools (the hazard is of the report's school)
    label = number_label(context, school_of(context.session, unit_id, {b.unit_id for b in context.policy.buildings}), n)
    return Doubt(
        "duplicate", f"可能与 {label} 重复（{hazard.location} {_short(hazard.problem)}）。",
        f"回复「新的」仍登记，或「同 {label}」补充到 {label}；回复「取消」放弃。", duplicate_of=n,
    )


def _short(text: str, limit: int = 18) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------------------
# Registering a report


@dataclass(slots=True)
class Registered:
    hazard: NewHazard
    hazard_id: int
    ready: Ready
    photos: list[AttachmentFile] = field(default_factory=list)
    earlier: list[AttachmentFile] = field(default_factory=list)  # photos sent before the words


def register(
    item: Item, ready: Ready, context: Context, *, draft_ids: Sequence[int] = (), with_message_photos: bool = True,
    source_msg_id: int | None = None,
) -> Registered:
    """Write the ledger row with the school's next number, its report event, and the photos that came along.

    The number is taken last: its counter row stays locked until the transaction commits, and every other
    report of the school waits for it, so whatever does not need the number (lookups, taking the photos) comes
    first. The caller commits soon after (see bot.engine.Engine.process)."""
    fields, session, person = item.fields, context.session, context.person
    building = find_building(session, fields.location or "", context.policy.buildings, unit_id=ready.unit_id)
    responsible = ready.responsible
    # Numbers are per school within the campaign: #12 in a school's group is that school's 12.
    school_id = school_of(session, ready.unit_id, {b.unit_id for b in context.policy.buildings})
    taken: list[DraftPhoto | PendingPhoto] = [*draft_photos(session, draft_ids), *take_pending(context)]
    hazard = NewHazard(
        campaign_id=context.campaign.id,
        number=0,  # taken by file_numbered_hazard
        school_id=school_id,
        unit_id=ready.unit_id,
        location=fields.location or "",
        check_item=fields.check_item or "",
        problem=fields.problem or "",
        measure=fields.measure or "",
        responsible_name=(responsible.name if responsible else (fields.responsible or "")),
        responsible_id=responsible.id if responsible else None,
        reporter_id=person.id,
        category=fields.category or "其他",
        level=ready.level,
        building_id=building.id if building else None,
        immediate=bool(fields.immediate),
        closed_building=bool(fields.closed_building),
        deadline=ready.deadline,
        status=HazardStatus.RECTIFYING.value,
        found_at=context.now,
        remark=item.note or "",
        source_msg_id=source_msg_id if source_msg_id is not None else context.inbound_id,
        origin=ready.origin,
        origin_date=context.today if ready.origin != "自查" else None,
        missed_by_school=ready.origin in MISSED_ORIGINS,
    )
    hazard, hazard_id, event_id = file_numbered_hazard(
        session, hazard, detail=f"上报：{hazard.location} {hazard.problem}"
    )
    photos = store_attachments(context, hazard_id, event_id) if with_message_photos else []
    earlier = store_taken_photos(context, taken, hazard_id, event_id)
    return Registered(hazard, hazard_id, ready, photos, earlier)


def registered_reply(done: Registered, context: Context, *, plain: bool) -> Reply:
    """已登记隐患 #N, field by field, with the photos and the next step."""
    hazard, ready = done.hazard, done.ready
    label = hazard_label(context, hazard)  # 城南小学#12 in a chat serving several schools
    unit_name = unit_names(context.session, [hazard.unit_id]).get(hazard.unit_id, hazard.unit_id)
    lines = [
        f"已登记隐患 {label}（{hazard.level}·{hazard.category}）" + ("，按您的原话理解如下" if plain else ""),
        f"部位：{hazard.location}",
        f"问题：{hazard.problem}",
        f"责任人：{hazard.responsible_name or '未指定'}（{unit_name}）",
        f"期限：{fmt_date(hazard.deadline)}{ready.deadline_note}",
    ]
    if hazard.measure:
        lines.append(f"措施：{hazard.measure}")
    if hazard.origin != "自查":
        lines.append(f"来源：{hazard.origin}" + ("（学校自查未查出，计入本校）" if hazard.missed_by_school else ""))
    if done.photos:
        lines.append(photo_note(done.photos))
    if done.earlier:
        lines.append(pending_note(done.earlier))
    if hazard.level == "重大":
        lines.append("⚠ 重大隐患：将报校领导跟踪督办。")
    lines += ready.notes
    lines.append(f"下一步：整改完成后发「整改 {label} 说明」并附照片。")
    buttons = hazard_buttons(label)
    return Reply("\n".join(lines), mentions=_mentions([done], context), buttons=buttons)


def registered_list_reply(done: Sequence[Registered], context: Context) -> Reply:
    """Several hazards registered together: one line each."""
    lines = [f"已登记{len(done)}条隐患："]
    labels = [hazard_label(context, each.hazard) for each in done]  # 城南小学#12 in a chat serving several schools
    for each, label in zip(done, labels):
        hazard = each.hazard
        flag = "【重大】" if hazard.level == "重大" else ""
        lines.append(
            f"{label} {flag}{hazard.location} {_short(hazard.problem)}｜{hazard.responsible_name or '未指定'}"
            f"｜期限 {hazard.deadline:%m-%d}"
        )
    photos = [photo for each in done for photo in (*each.photos, *each.earlier)]
    if photos:
        lines.append(f"照片已附在 {labels[0]}：{photo_note(photos).removeprefix('照片：')}")
    if any(each.hazard.level == "重大" for each in done):
        lines.append("⚠ 重大隐患：将报校领导跟踪督办。")
    example = "#编号" if labels[0].startswith("#") else f"{labels[0].split('#')[0]}#编号"
    lines.append(f"下一步：整改完成后发「整改 {example} 说明」并附照片。")
    return Reply("\n".join(lines), mentions=_mentions(done, context))


def _mentions(done: Sequence[Registered], context: Context) -> tuple[str, ...]:
    people = (each.ready.responsible for each in done)
    return tuple(dict.fromkeys(p.id for p in people if p is not None and p.id != context.person.id))


def alerts(done: Sequence[Registered]) -> tuple[Effect, ...]:
    """重大 hazards: the leaders hear of them within seconds, whatever the hour."""
    return tuple(AlertLeaders(each.hazard_id) for each in done if each.hazard.level == "重大")


# ---------------------------------------------------------------------------------------------------------
# Drafts


def understood_line(fields: HazardFields) -> str:
    """我理解的是：部位「…」，问题「…」，责任人「…」，期限12月8日。"""
    parts = [
        f"{label}「{value}」"
        for label, value in (("部位", fields.location), ("问题", fields.problem), ("责任人", fields.responsible),
                             ("单位", fields.unit), ("等级", fields.level))
        if value
    ]
    if fields.deadline is not None:
        parts.append(f"期限{fields.deadline.month}月{fields.deadline.day}日")
    return "我理解的是：" + ("，".join(parts) or "（没看出内容）") + "。"


def doubt_reply(item: Item, doubt: Doubt, context: Context) -> Reply:
    """At most four lines: what was understood, the one question, how to answer, and that nothing is stored yet."""
    return Reply("\n".join([
        understood_line(item.fields),
        doubt.question,
        doubt.answer,
        f"这条还没有登记，{context.policy.draft_minutes}分钟内回复有效。",
    ]))


def item_line(index: int, item: Item, assessment: Assessment) -> str:
    """One numbered line of a multi-hazard draft, with its question when it has one."""
    fields = item.fields
    line = f"{index}. {fields.location or '（部位？）'} {_short(fields.problem or '（问题？）')}"
    extra = [f"责任人{fields.responsible}"] if fields.responsible else []
    if fields.deadline is not None:
        extra.append(f"期限{fields.deadline.month}月{fields.deadline.day}日")
    if extra:
        line += "（" + "，".join(extra) + "）"
    if isinstance(assessment, Doubt):
        line += f" —— {assessment.question}"
    return line


def drop_earlier_drafts(context: Context) -> bool:
    """Drop the sender's drafts in this chat; whether one was still waiting."""
    if not context.drafts_in_chat:  # none in this chat when the message was claimed
        return False
    return drop_sender_drafts(
        context.session, platform=context.platform, sender_id=context.person.id, chat_id=context.chat_id,
        now=context.now,
    )


def keep_as_drafts(items: Sequence[Item], context: Context) -> list[ReportDraft]:
    """Save the items as the sender's drafts in this chat (replacing any earlier ones), with the message's photos
    and the photos the sender sent just before (kept with the first draft, for as long as it waits)."""
    drop_stale_drafts(context.session, before=context.now - STALE_DRAFTS_KEPT)
    owner = {"platform": context.platform, "sender_id": context.person.id, "chat_id": context.chat_id}
    drop_drafts(context.session, sender_drafts(context.session, **owner))
    expires = context.now + timedelta(minutes=context.policy.draft_minutes)
    rows = [
        save_draft(
            context.session, **owner, campaign_id=context.campaign.id, payload=item.to_json(), at=context.now,
            expires_at=expires, source_msg_id=context.inbound_id,
        )
        for item in items
    ]
    first = rows[0].id
    assert first is not None
    for attachment in context.attachments:
        keep_draft_photo(
            context.session, draft_id=first, filename=attachment.filename, content_type=attachment.content_type,
            data=attachment.data, source_msg_id=context.inbound_id,
        )
    since = context.now - timedelta(minutes=context.policy.pending_photo_minutes)
    for photo in take_pending_photos(context.session, **owner, since=since):
        keep_draft_photo(
            context.session, draft_id=first, filename=photo.filename, content_type=photo.content_type,
            data=photo.data, source_msg_id=photo.source_msg_id,
        )
    return rows


# ---------------------------------------------------------------------------------------------------------
# Small replies


def _unknown_unit_reply(context: Context, typed: str, allowed: set[str] | None) -> Reply:
    """单位 names no unit this chat serves: say whether it exists elsewhere, and what may be written."""
    example = f"例如：单位：{example_unit(context, allowed)}"
    if allowed is not None and find_unit(context.session, typed) is not None:
        return Reply(f"「{typed}」不属于{scope_words(context)}，这条隐患没有登记。请写{scope_words(context)}的部门，{example}")
    choices = "、".join(sorted(unit_names(context.session, allowed or ()).values())[:8])
    hint = f"可用的单位有：{choices}。" if choices else ""
    return Reply(f"没有找到单位「{typed}」。{hint}请改正后重新发送，{example}")


def _example_person(context: Context, allowed: set[str] | None) -> str:
    """A person's name the speaker may really use here: themselves, else someone of the chat's units."""
    if allowed is None or context.person.unit_id in allowed:
        return context.person.name
    someone = first_active_name_in(context.session, allowed)
    return someone or "王建国"
