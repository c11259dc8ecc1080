"""DingTalk interactive cards (issue 15): the parameters of our card template, and taps on its buttons.

The template (`[cards] dingtalk_template_id`, built in DingTalk's card platform) shows `title`, `text`
(markdown), `who` and the buttons listed in `buttons` (a JSON string of [{"label","command"}]); a button's
callback carries its `command` as a parameter. Cards are created with callbackType STREAM, so taps arrive on
the Stream topic /v1.0/card/instances/callback; a tap becomes an ordinary message whose text is that command
(same permission checks as typed words), identified by the Stream messageId (a redelivery is recorded once).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from handlers.messages import Button, Reply

CARD_TOPIC = "/v1.0/card/instances/callback"
MAX_BUTTONS = 6


def _buttons(replies: Sequence[Reply]) -> tuple[Button, ...]:
    return tuple(dict.fromkeys(b for r in replies for b in r.buttons))[:MAX_BUTTONS]


def _params(title: str, text: str, buttons: Sequence[Button], who: str = "") -> dict[str, str]:
    return {
        "title": title, "text": text, "who": who,
        "buttons": json.dumps([{"label": b.label, "command": b.command} for b in buttons], ensure_ascii=False),
    }


def card_params(replies: Sequence[Reply]) -> dict[str, str] | None:
    """The card under a reply that leads to an action (its first line and buttons); None without buttons."""
    buttons = _buttons(replies)
    if not buttons:
        return None
    first = next((r.text.strip().split("\n", 1)[0] for r in replies if r.text.strip()), "请选择下一步")
    return _params(first, "点按钮即可，也可以直接打字", buttons)


def tapped_card_params(replies: Sequence[Reply], *, key: str, who: str) -> dict[str, str]:
    """The card after a tap: the answer, who tapped what, and the answer's buttons (else the tapped one stays)."""
    texts = [r.text.strip() for r in replies if r.text.strip()]
    lines = "\n".join(texts).split("\n") if texts else ["已收到"]
    label = key.split(maxsplit=1)[0] if key.strip() else key
    return _params(lines[0], "\n".join(lines[1:6]), _buttons(replies) or (Button(label, key),), f"{who} 点了「{label}」")


def parse_card_tap(data: Mapping[str, Any]) -> tuple[str, str, str, str] | None:
    """(outTrackId, userId, conversation id, command) of a card callback; None when it is not a tap we made."""
    try:
        content = json.loads(str(data.get("content") or "{}"))
    except ValueError:
        return None
    private = content.get("cardPrivateData") if isinstance(content, dict) else None
    params = private.get("params") if isinstance(private, dict) else None
    command = params.get("command") if isinstance(params, dict) else None
    fields = (data.get("outTrackId"), data.get("userId"), data.get("spaceId"), command)
    if data.get("spaceType") != "IM_GROUP" or not all(isinstance(v, str) and v for v in fields):
        return None
    track, user, space, text = (str(v) for v in fields)
    return track, user, space, text.strip()[:200]
