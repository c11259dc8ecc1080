"""WeCom cards with buttons (issue 15): `template_card` (button_interaction) replies and taps on them.

A reply with buttons goes out, over the 智能机器人's long connection, as `stream_with_template_card`: the whole
text as the stream, and below it a card whose buttons each carry, as their `key`, the command they stand for
(`销号 #12`). A tap comes back as a `template_card_event` with that key; it becomes an ordinary message whose
text is the key (so it passes the same permission checks as typed words) and whose id is the event's own
`msgid` (a retried callback is recorded once; a second tap is a new message that finds the work done). Its
answer updates the card (`aibot_respond_update_msg`, within 5 s), naming who tapped what.

In HTTP-callback mode the same card is the finished stream's, given as the passive answer to one of WeCom's
stream refreshes, and a tap's callback is answered with `update_template_card` (see callbacks.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from handlers.messages import Button, Reply

CARD_TYPE = "button_interaction"
MAX_CARD_BUTTONS = 6  # button_list
TITLE_MAX_CHARS = 26  # main_title.title
DESC_MAX_CHARS = 30  # main_title.desc
SUB_TITLE_MAX_CHARS = 112  # sub_title_text
KEY_MAX_BYTES = 1024  # button key / event_key
TASK_ID_MAX_BYTES = 128  # task_id: letters, digits, _-@
_TASK_ID = re.compile(r"^[A-Za-z0-9_\-@]{1,128}$")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def buttons_of(replies: Sequence[Reply]) -> tuple[Button, ...]:
    """The buttons of a handled message's replies, each once, at most six (what one card holds)."""
    seen = dict.fromkeys(b for r in replies for b in r.buttons if len(b.command.encode("utf-8")) <= KEY_MAX_BYTES)
    return tuple(seen)[:MAX_CARD_BUTTONS]


def task_id_for(seed: str) -> str:
    """A card's task_id: unique per card, within WeCom's charset and length."""
    return "sb-" + hashlib.sha1(seed.encode("utf-8")).hexdigest()[:32]


def button_card(title: str, buttons: Sequence[Button], *, task_id: str, desc: str = "", sub_title: str = "") -> dict[str, Any]:
    """A `button_interaction` template card: a title, an optional line, and the buttons (key = the command)."""
    card: dict[str, Any] = {
        "card_type": CARD_TYPE,
        "main_title": {"title": _clip(title, TITLE_MAX_CHARS)},
        "task_id": task_id,
        "button_list": [
            {"text": _clip(b.label, 10), "style": 1 if i == 0 else 2, "key": b.command}
            for i, b in enumerate(buttons[:MAX_CARD_BUTTONS])
        ],
    }
    if desc:
        card["main_title"]["desc"] = _clip(desc, DESC_MAX_CHARS)
    if sub_title:
        card["sub_title_text"] = _clip(sub_title, SUB_TITLE_MAX_CHARS)
    return card


def reply_card(replies: Sequence[Reply], *, task_id: str) -> dict[str, Any] | None:
    """The card under a reply that leads to an action; None when no reply has buttons."""
    buttons = buttons_of(replies)
    if not buttons:
        return None
    first = next((r.text.strip().split("\n", 1)[0] for r in replies if r.text.strip()), "请选择下一步")
    return button_card(first, buttons, task_id=task_id, desc="点按钮即可，也可以直接打字")


def tapped_label(key: str) -> str:
    """What the tapper pressed, in words: the command's first word (`销号 #12` → 销号)."""
    return key.split(maxsplit=1)[0] if key.strip() else key


def update_card(
    replies: Sequence[Reply], *, key: str, who: str, task_id: str
) -> dict[str, Any]:
    """The card after a tap: the answer's first line as title, who tapped what, the rest of the answer below.

    Its buttons are the answer's own (整改 → 销号 / 退回); an answer without any (a refusal, or the work done)
    keeps the tapped button, so someone else allowed may still press it and a second tap changes nothing."""
    texts = [r.text.strip() for r in replies if r.text.strip()]
    lines = "\n".join(texts).split("\n") if texts else ["已收到"]
    buttons = buttons_of(replies) or (Button(tapped_label(key), key),)
    below = lines[0:3] if len(lines[0]) > TITLE_MAX_CHARS else lines[1:4]  # a clipped title is shown whole below
    return button_card(
        lines[0], buttons, task_id=task_id, desc=f"{who} 点了「{tapped_label(key)}」", sub_title="\n".join(below),
    )


def valid_task_id(task_id: object) -> bool:
    return isinstance(task_id, str) and bool(_TASK_ID.match(task_id)) and len(task_id.encode()) <= TASK_ID_MAX_BYTES


def pending_card(*, key: str, who: str, task_id: str) -> dict[str, Any]:
    """The card while a tap's answer takes longer than WeCom waits: who tapped what, and that the result follows."""
    label = tapped_label(key)
    return button_card(f"正在处理「{label}」", (Button(label, key),), task_id=task_id,
                       desc=f"{who} 点了「{label}」", sub_title="处理结果稍后发到本群，请勿重复点击。")
