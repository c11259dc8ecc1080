"""Card buttons (issue 15): the commands a reply leads to, as shortcuts a platform may render.

A button stands for the command text a person would type (`销号 #12`); tapping it runs exactly that command
through the same pipeline, with the same permission checks. Commands that need more words (退回's reason,
转交's name, 延期's date) answer with the usual prompt and example, so the person types the rest.
"""

from __future__ import annotations

from handlers.messages import Button

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
