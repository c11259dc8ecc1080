"""Card buttons (issue 15): the commands a reply leads to, as shortcuts a platform may render.

A button stands for the command text a person would type (`销号 #12`); tapping it runs exactly that command
through the same pipeline, with the same permission checks. Commands that need more words (退回's reason,
转交's name, 延期's date) answer with the usual prompt and example, so the person types the rest.
"""

from __future__ import annotations

from sqlmodel import Session

from handlers import permissions
from handlers.messages import Button
from models.tables import Hazard, HazardStatus, PersonRow

# WeCom's button_interaction card takes at most 6 buttons; DingTalk's cards are laid out for a few.
MAX_BUTTONS = 6


def hazard_buttons(ref: str) -> tuple[Button, ...]:
    """A new hazard: report the fix, see it (photos, history), or hand it to someone else."""
    return (Button("整改", f"整改 {ref}"), Button("查看照片", f"查看 {ref}"), Button("转交", f"转交 {ref}"))


def rectified_buttons(ref: str) -> tuple[Button, ...]:
    """A reported fix: verify and close it, or send it back (the bot then asks for the reason)."""
    return (Button("销号", f"销号 {ref}"), Button("退回", f"退回 {ref}"))


def overdue_buttons(refs: list[str]) -> tuple[Button, ...]:
    """Overdue items: a progress note or an extension request for the first few listed."""
    buttons: list[Button] = []
    for ref in refs[: MAX_BUTTONS // 2]:
        several = len(refs) > 1
        buttons.append(Button(f"进展 {ref}" if several else "进展", f"进展 {ref}"))
        buttons.append(Button(f"延期 {ref}" if several else "申请延期", f"延期 {ref}"))
    return tuple(buttons)


# A page's buttons (issue 15) may carry the words a command needs after the number: what the field asks for,
# an example, and whether the command is useless without it.
PAGE_FIELDS: dict[str, tuple[str, str, bool]] = {
    "整改": ("整改说明（可不填）", "已清理通道", False),
    "进展": ("进展说明", "已联系后勤，周五前完成", True),
    "退回": ("退回原因", "仍有纸箱堆放", True),
    "延期": ("新期限和原因", "12月20日 等待配件", True),
    "转交": ("新的责任人姓名", "王建国", True),
}


def page_buttons(
    session: Session, person: PersonRow, hazard: Hazard, ref: str, *, verify_by_other: bool = True
) -> tuple[Button, ...]:
    """The buttons a signed-in viewer of a hazard's page may use in its state: the commands the cards offer,
    left out where the permission checks would refuse them outright (those checks still decide)."""
    buttons: list[Button] = []
    # 销号 of one's own task or fix is refused when another must verify (policy.verify_by_other), unless a leader:
    # the same rule as the command's (handlers.lifecycle), whoever reported the fix.
    own = (
        verify_by_other
        and permissions.fixed_it(person, hazard, permissions.rectifier_of(session, hazard))
        and not permissions.can_override(person)
    )
    if hazard.status == HazardStatus.RECTIFYING.value:
        if permissions.can_rectify(session, person, hazard):
            buttons += [Button("整改", f"整改 {ref}"), Button("进展", f"进展 {ref}")]
        if permissions.can_extend(session, person, hazard):
            buttons.append(Button("申请延期", f"延期 {ref}"))
        if permissions.can_transfer(session, person, hazard):
            buttons.append(Button("转交", f"转交 {ref}"))
        if permissions.can_close_unrectified(session, person, hazard) and not own:
            buttons.append(Button("验收销号", f"销号 {ref}"))
    elif hazard.status == HazardStatus.RECTIFIED.value:
        if permissions.can_verify(session, person, hazard) and not own:
            buttons += [Button("验收销号", f"销号 {ref}"), Button("退回", f"退回 {ref}")]
        if permissions.can_rectify(session, person, hazard):
            buttons.append(Button("进展", f"进展 {ref}"))
    return tuple(buttons)
