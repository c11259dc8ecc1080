"""The closed loop after a report: 整改 → 验收/销号 (or 退回), plus 进展, 延期 and 撤销."""

from __future__ import annotations

from datetime import timedelta


from handlers import permissions
from handlers.command import Command, CommandSpec
from handlers.context import Context
from handlers.buttons import rectified_buttons
from handlers.dates import beyond_campaign_error
from handlers.format import days_left_text, fmt_date
from handlers.messages import Reply
from handlers.numbers import find_hazard, hazard_label
from handlers.photos import attach_pending_photos, has_pending_photos, pending_note, photo_note, store_attachments
from models.ids import stored_id
from models.ledger import record_event
from models.queries_ledger import has_fix_photo
from models.tables import Hazard, HazardStatus, PersonRow

HELP_RECTIFY = "整改完成后发：整改 #23 已清理通道（在同一条消息里附整改后的照片），随后由发现人或安全员验收销号。"
HELP_PROGRESS = "记录进展：进展 #23 已联系后勤，周五前清运"
HELP_CLOSE = "验收通过后发：销号 #23（发现人、部门负责人、安全员或校领导可以销号；整改人和责任人不能自己销号）"
HELP_REJECT = "验收不通过时发：退回 #23 仍有纸箱未清理（必须写原因）"
HELP_EXTEND = "调整期限：延期 #23 12月20日 等待配件到货（部门负责人或校领导可以延期）"
HELP_REOPEN = "管理员重开误销号或误撤销的隐患：重开 #23 销号时未见整改照片（必须写原因）"
HELP_WITHDRAW = "撤回误报：撤销 #23（上报人在上报后30分钟内可撤销，之后请联系管理员）"

RECTIFYING, RECTIFIED = HazardStatus.RECTIFYING.value, HazardStatus.RECTIFIED.value
CLOSED, WITHDRAWN = HazardStatus.CLOSED.value, HazardStatus.WITHDRAWN.value


def _load(command: Command, context: Context) -> Hazard | Reply:
    """The hazard #N of this campaign if the person may see it, else the reply saying why not."""
    return find_hazard(command, context)


def _ended(hazard: Hazard, label: str) -> Reply | None:
    if hazard.status == CLOSED:
        return Reply(f"隐患 {label} 已于 {hazard.closed_at:%Y-%m-%d} 销号，无需再处理。")
    if hazard.status == WITHDRAWN:
        return Reply(f"隐患 {label} 已撤销，无需再处理。")
    return None


def _photo_required(context: Context, hazard: Hazard) -> bool:
    return hazard.level in context.policy.photo_required


def _has_fix_photo(context: Context, hazard: Hazard) -> bool:
    """A photo came with this message or was stored with a 整改 or 销号 of the hazard."""
    if context.attachments:
        return True
    return has_fix_photo(context.session, stored_id(hazard))


def _name(context: Context, person_id: str | None) -> str | None:
    person = context.session.get(PersonRow, person_id) if person_id else None
    return person.name if person else None


def handle_rectify(command: Command, context: Context) -> list[Reply]:
    """整改 #N 说明: the fix is done; wait for verification."""
    hazard = _load(command, context)
    if isinstance(hazard, Reply):
        return [hazard]
    label = hazard_label(context, hazard)  # 城南小学#12 in a chat serving several schools
    if (ended := _ended(hazard, label)) is not None:
        return [ended]
    if hazard.status == RECTIFIED:
        return [Reply(f"隐患 {label} 已报整改，正在等待验收。如需补充，请发「进展 {label} 说明」。")]
    if not permissions.can_rectify(context.session, context.person, hazard):
        return [Reply(f"只有责任人、发现人或该部门的负责人可以报整改隐患 {label}。")]
    if _photo_required(context, hazard) and not context.attachments and not has_pending_photos(context):
        return [Reply(
            f"{hazard.level}隐患报整改必须附整改后的照片，这条没有登记。请在同一条消息里附上照片重新发送，"
            f"例如：整改 {label} {command.note or '已清理通道'}（附照片）"
        )]
    note = command.note or "已整改"
    hazard.completion = note
    hazard.rectified_at = context.now
    event = record_event(
        context.session, hazard=hazard, actor_id=context.person.id, action="rectify", at=context.now,
        detail=note, to_status=RECTIFIED,
    )
    photos = store_attachments(context, stored_id(hazard), stored_id(event))
    earlier = attach_pending_photos(context, stored_id(hazard), stored_id(event))
    lines = [f"隐患 {label} 已报整改，待验收。", f"说明：{note}"]
    if photos:
        lines.append(photo_note(photos))
    if earlier:
        lines.append(pending_note(earlier))
    if not photos and not earlier:
        lines.append("建议补一张整改后的照片，便于验收。")
    finder_fixed = context.policy.verify_by_other and hazard.reporter_id in (context.person.id, hazard.responsible_id)
    verifiers = "安全员、部门负责人或校领导" if finder_fixed else "发现人或安全员"
    lines.append(f"下一步：请{verifiers}现场验收后发「销号 {label}」。")
    mentions = (hazard.reporter_id,) if hazard.reporter_id != context.person.id else ()
    return [Reply("\n".join(lines), mentions=mentions, buttons=rectified_buttons(hazard_label(context, hazard)))]


def handle_progress(command: Command, context: Context) -> list[Reply]:
    """进展 #N 说明: a progress note in the audit trail."""
    hazard = _load(command, context)
    if isinstance(hazard, Reply):
        return [hazard]
    label = hazard_label(context, hazard)  # 城南小学#12 in a chat serving several schools
    if (ended := _ended(hazard, label)) is not None:
        return [ended]
    if not permissions.can_rectify(context.session, context.person, hazard):
        return [Reply(f"只有责任人、发现人或该部门的负责人可以记录隐患 {label} 的进展。")]
    event = record_event(
        context.session, hazard=hazard, actor_id=context.person.id, action="progress", at=context.now,
        detail=command.note or "",
    )
    photos = store_attachments(context, stored_id(hazard), stored_id(event))
    earlier = attach_pending_photos(context, stored_id(hazard), stored_id(event))
    missing = any(photo.missing for photo in photos)
    extra = f"，照片{len(photos)}张" if photos and not missing else ""
    lines = [
        f"已记录隐患 {label} 的进展{extra}：{command.note}",
        f"期限 {fmt_date(hazard.deadline)}，{days_left_text(hazard.deadline, context.today)}。",
    ]
    if missing:
        lines.append(photo_note(photos))
    if earlier:
        lines.append(pending_note(earlier))
    return [Reply("\n".join(lines))]


def handle_close(command: Command, context: Context) -> list[Reply]:
    """销号 #N: verified, close it (谁发现、谁督促、谁销号)."""
    hazard = _load(command, context)
    if isinstance(hazard, Reply):
        return [hazard]
    label = hazard_label(context, hazard)  # 城南小学#12 in a chat serving several schools
    if (ended := _ended(hazard, label)) is not None:
        return [ended]
    session, person = context.session, context.person
    if not permissions.can_verify(session, person, hazard):
        return [Reply(f"您没有销号权限。隐患 {label} 可由发现人、部门负责人、安全员或校领导验收销号。")]
    if hazard.status == RECTIFYING and not permissions.can_close_unrectified(session, person, hazard):
        return [Reply(
            f"隐患 {label} 还没有报整改。请责任人整改后发「整改 {label} 说明」，再来销号。"
        )]
    rectifier_id = permissions.rectifier_of(session, hazard)
    skipped = _skipped_checks(context, hazard, rectifier_id)
    if skipped and not permissions.can_override(person):
        return [_refuse_close(context, hazard, rectifier_id, skipped[0])]
    override = f"（领导直接销号：{'，'.join(skipped)}）" if skipped else ""
    detail = command.note or ("验收通过" if hazard.status == RECTIFIED else "现场验收通过（未经报整改直接销号）")
    rectifier = _name(context, rectifier_id) or f"{hazard.responsible_name or '未指定'}（未报整改，现场验收）"
    if not hazard.completion:
        hazard.completion = "已整改"
    if hazard.rectified_at is None:
        hazard.rectified_at = context.now
    hazard.closed_at = context.now
    event = record_event(
        session, hazard=hazard, actor_id=person.id, action="close", at=context.now, detail=detail + override,
        to_status=CLOSED,
    )
    store_attachments(context, stored_id(hazard), stored_id(event))
    return [Reply(
        f"隐患 {label} 已销号 ✔\n{hazard.location} {hazard.problem}\n"
        f"发现人：{_name(context, hazard.reporter_id)}\n整改人：{rectifier}\n"
        f"验收人：{person.name}{override}，{context.now:%Y-%m-%d %H:%M}"
    )]


OWN_FIX, OWN_RESPONSIBILITY, NO_PHOTO = "本人整改", "本人是责任人", "无整改照片"


def _skipped_checks(context: Context, hazard: Hazard, rectifier_id: str | None) -> list[str]:
    """The policy checks this 销号 would skip: verifying one's own fix, or closing without the required photo."""
    skipped = []
    if context.policy.verify_by_other and permissions.fixed_it(context.person, hazard, rectifier_id):
        skipped.append(OWN_FIX if context.person.id == rectifier_id else OWN_RESPONSIBILITY)
    if _photo_required(context, hazard) and not _has_fix_photo(context, hazard):
        skipped.append(NO_PHOTO)
    return skipped


def _refuse_close(context: Context, hazard: Hazard, rectifier_id: str | None, reason: str) -> Reply:
    """One polite line: why this person may not close it now, and who may or what to send."""
    number = hazard_label(context, hazard)
    if reason == NO_PHOTO:
        return Reply(
            f"{hazard.level}隐患销号需要整改后的照片。请责任人发「整改 {number} 说明」并附照片，"
            f"或验收时在同一条消息里附现场照片发「销号 {number}」。"
        )
    who = "整改人" if reason == OWN_FIX else "责任人"
    finder = hazard.reporter_id not in (rectifier_id, hazard.responsible_id)
    others = (f"发现人{_name(context, hazard.reporter_id)}、" if finder else "") + "单位负责人、安全员或校领导"
    return Reply(f"{who}不能自己验收销号。请{others}现场验收后发「销号 {number}」。")


def handle_reject(command: Command, context: Context) -> list[Reply]:
    """退回 #N 原因: verification failed, back to rectifying."""
    hazard = _load(command, context)
    if isinstance(hazard, Reply):
        return [hazard]
    label = hazard_label(context, hazard)  # 城南小学#12 in a chat serving several schools
    if (ended := _ended(hazard, label)) is not None:
        return [ended]
    if not permissions.can_verify(context.session, context.person, hazard):
        return [Reply(f"您没有验收权限。隐患 {label} 可由发现人、部门负责人、安全员或校领导验收。")]
    if hazard.status != RECTIFIED:
        return [Reply(f"隐患 {label} 还在整改中，不需要退回。可以发「进展 {label} 说明」督促。")]
    hazard.rectified_at = None
    record_event(
        context.session, hazard=hazard, actor_id=context.person.id, action="reject", at=context.now,
        detail=command.note or "", to_status=RECTIFYING,
    )
    mentions = (hazard.responsible_id,) if hazard.responsible_id else ()
    return [Reply(
        f"隐患 {label} 验收未通过，已退回整改。\n原因：{command.note}\n"
        f"期限 {fmt_date(hazard.deadline)}，{days_left_text(hazard.deadline, context.today)}。"
        f"整改后请再发「整改 {label} 说明」。",
        mentions=mentions,
    )]


def handle_extend(command: Command, context: Context) -> list[Reply]:
    """延期 #N 日期 原因: unit heads and leaders move the deadline."""
    hazard = _load(command, context)
    if isinstance(hazard, Reply):
        return [hazard]
    label = hazard_label(context, hazard)  # 城南小学#12 in a chat serving several schools
    if (ended := _ended(hazard, label)) is not None:
        return [ended]
    if not permissions.can_extend(context.session, context.person, hazard):
        return [Reply(f"只有部门负责人或校领导可以延期。请联系他们发「延期 {label} 日期 原因」。")]
    new_deadline = command.fields.deadline
    if new_deadline is None:
        return [Reply(f"请写上新的期限，例如：延期 {label} 12月20日 等待配件")]
    if new_deadline < context.today:
        return [Reply(f"新的期限 {fmt_date(new_deadline)} 已经过去，请写今天或以后的日期。")]
    beyond = beyond_campaign_error(new_deadline, campaign_end=context.campaign.end, today=context.today,
                                   example=f"延期 {label} {{date}} 等待配件")
    if beyond is not None:
        return [Reply(beyond)]
    old = hazard.deadline
    hazard.deadline = new_deadline
    reason = command.note or ""
    record_event(
        context.session, hazard=hazard, actor_id=context.person.id, action="extend", at=context.now,
        detail=f"期限 {old.isoformat()} → {new_deadline.isoformat()}；{reason}".rstrip("；"),
    )
    lines = [f"隐患 {label} 期限已调整：{fmt_date(old)} → {fmt_date(new_deadline)}"]
    if reason:
        lines.append(f"原因：{reason}")
    mentions = (hazard.responsible_id,) if hazard.responsible_id else ()
    return [Reply("\n".join(lines), mentions=mentions)]


def handle_withdraw(command: Command, context: Context) -> list[Reply]:
    """撤销 #N: the reporter soon after reporting, or an admin."""
    hazard = _load(command, context)
    if isinstance(hazard, Reply):
        return [hazard]
    label = hazard_label(context, hazard)  # 城南小学#12 in a chat serving several schools
    if (ended := _ended(hazard, label)) is not None:
        return [ended]
    person = context.person
    window = timedelta(minutes=context.policy.withdraw_minutes)
    is_admin = "admin" in person.role_set
    if not is_admin:
        if person.id != hazard.reporter_id:
            return [Reply(f"只有上报人或管理员可以撤销隐患 {label}。")]
        if context.now - hazard.found_at.astimezone(context.now.tzinfo) > window:
            return [Reply(
                f"隐患 {label} 上报已超过{context.policy.withdraw_minutes}分钟，不能自行撤销，请联系管理员。"
            )]
    record_event(
        context.session, hazard=hazard, actor_id=person.id, action="withdraw", at=context.now,
        detail=command.note or "误报撤销", to_status=WITHDRAWN,
    )
    return [Reply(f"隐患 {label} 已撤销（保留记录，不计入统计）。")]


def handle_reopen(command: Command, context: Context) -> list[Reply]:
    """重开 #N 原因: an admin undoes a mistaken 销号 or 撤销 (the history keeps both)."""
    hazard = _load(command, context)
    if isinstance(hazard, Reply):
        return [hazard]
    label = hazard_label(context, hazard)  # 城南小学#12 in a chat serving several schools
    if "admin" not in context.person.role_set:
        return [Reply(f"重开只能由管理员操作。如隐患 {label} 被误销号，请联系管理员。")]
    if hazard.status not in (CLOSED, WITHDRAWN):
        return [Reply(f"隐患 {label} 还没有销号或撤销（当前：{hazard.status_label}），不需要重开。")]
    hazard.closed_at = None
    hazard.rectified_at = None
    record_event(
        context.session, hazard=hazard, actor_id=context.person.id, action="reopen", at=context.now,
        detail=command.note or "", to_status=RECTIFYING,
    )
    mentions = (hazard.responsible_id,) if hazard.responsible_id else ()
    return [Reply(
        f"隐患 {label} 已重开，回到整改中。\n原因：{command.note}\n"
        f"期限 {fmt_date(hazard.deadline)}，{days_left_text(hazard.deadline, context.today)}。",
        mentions=mentions,
    )]


RECTIFY = CommandSpec(
    "rectify", ("整改", "已整改", "整改完成", "整改完毕", "完成整改", "已完成整改"), handle_rectify,
    usage="整改 #编号 说明", summary="整改完成，等待验收", help=HELP_RECTIFY, example_tail=" #23 已清理通道",
    takes_number=True,
)
PROGRESS = CommandSpec(
    "progress", ("进展", "整改进展"), handle_progress,
    usage="进展 #编号 说明", summary="记录整改进展", help=HELP_PROGRESS, example_tail=" #23 已联系后勤",
    takes_number=True,
)
CLOSE = CommandSpec(
    "close", ("销号", "验收", "验收销号", "确认销号"), handle_close,
    usage="销号 #编号", summary="验收通过并销号", help=HELP_CLOSE, example_tail=" #23", takes_number=True,
)
REJECT = CommandSpec(
    "reject", ("退回", "驳回"), handle_reject,
    usage="退回 #编号 原因", summary="验收不通过，退回整改", help=HELP_REJECT, example_tail=" #23 仍有纸箱",
    takes_number=True,
)
EXTEND = CommandSpec(
    "extend", ("延期", "申请延期"), handle_extend,
    usage="延期 #编号 日期 原因", summary="调整整改期限", help=HELP_EXTEND, example_tail=" #23 12月20日 等待配件",
    takes_number=True,
)
WITHDRAW = CommandSpec(
    "withdraw", ("撤销", "撤回"), handle_withdraw,
    usage="撤销 #编号", summary="撤回误报", help=HELP_WITHDRAW, example_tail=" #23", takes_number=True,
)
REOPEN = CommandSpec(
    "reopen", ("重开", "重新打开", "恢复"), handle_reopen,
    usage="重开 #编号 原因", summary="管理员重开误销号的隐患", help=HELP_REOPEN,
    example_tail=" #23 销号时未见整改照片", takes_number=True, everyday=False,
)
