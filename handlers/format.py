"""Small text helpers for short replies that read well on a phone."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime

from handlers.buttons import MAX_BUTTONS
from handlers.messages import Reply
from models.tables import Hazard

WEEKDAYS = "一二三四五六日"


def fmt_date(value: date) -> str:
    """2023-12-10（周日）"""
    return f"{value.isoformat()}（周{WEEKDAYS[value.weekday()]}）"


def fmt_time(value: datetime) -> str:
    return value.strftime("%m-%d %H:%M")


def days_left_text(deadline: date, today: date) -> str:
    days = (deadline - today).days
    if days > 0:
        return f"还剩{days}天"
    if days == 0:
        return "今天到期"
    return f"已逾期{-days}天"


def hazard_line(hazard: Hazard, today: date) -> str:
    """One list line: #23 3号教学楼二楼东侧 消防通道堆放杂物｜王建国｜12-10 还剩5天"""
    problem = hazard.problem if len(hazard.problem) <= 18 else hazard.problem[:17] + "…"
    flag = "【重大】" if hazard.level == "重大" else ""
    if hazard.status == "rectifying":
        tail = f"{hazard.deadline:%m-%d} {days_left_text(hazard.deadline, today)}"
    else:
        tail = hazard.status_label
    who = hazard.responsible_name or "未指定"
    return f"#{hazard.number} {flag}{hazard.location} {problem}｜{who}｜{tail}"


def first_items(items: list[str], limit: int) -> list[str]:
    """The first `limit` distinct items, then a line saying how many more there were."""
    distinct = list(dict.fromkeys(items))
    if len(distinct) <= limit:
        return distinct
    return distinct[:limit] + [f"……另有 {len(distinct) - limit} 条未显示"]


_CUT_NOTE_ROOM = 120  # bytes kept free for the note that says what was cut


def fit_text(text: str, max_bytes: int) -> str:
    """Text within `max_bytes` UTF-8 bytes, cut after a whole line, ending with what was left out."""
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    room = max(0, max_bytes - _CUT_NOTE_ROOM)
    lines = text.split("\n")
    kept: list[str] = []
    size = 0
    for line in lines:
        size += len(line.encode("utf-8")) + 1
        if size > room:
            break
        kept.append(line)
    if kept:
        return "\n".join(kept) + f"\n……回复太长，另有 {len(lines) - len(kept)} 行未显示"
    # Even the first line is too long: show its beginning (never half a character).
    start = lines[0].encode("utf-8")[:room].decode("utf-8", "ignore")
    return f"{start}\n……回复太长，其余内容未显示"


def merge_replies(replies: list[Reply]) -> list[Reply]:
    """One reply with every text (and every @), then the images and files as replies of their own."""
    texts = [reply for reply in replies if reply.text]
    if len(texts) <= 1:
        return list(replies)
    mentions = tuple(dict.fromkeys(person for reply in texts for person in reply.mentions))
    buttons = tuple(dict.fromkeys(button for reply in texts for button in reply.buttons))  # issue 15: cards
    merged = Reply("\n\n".join(reply.text for reply in texts), mentions=mentions, kind=texts[0].kind,
                   buttons=buttons[:MAX_BUTTONS])
    attachments = [replace(r, text="", mentions=()) for r in replies if r.image_png is not None or r.file_data is not None]
    return [merged, *attachments]


def fit_replies(replies: list[Reply], max_bytes: int) -> list[Reply]:
    """The replies with their texts sharing `max_bytes` (attachments and mentions stay as they are)."""
    with_text = sum(1 for reply in replies if reply.text)
    if not with_text:
        return list(replies)
    share = max_bytes // with_text
    return [replace(reply, text=fit_text(reply.text, share)) if reply.text else reply for reply in replies]


# What turns plain text into markup in WeCom's and DingTalk's markdown: `<` opens HTML, <font> and WeCom's
# <@userid> mention; `](`, `][` and `]:` make links and link definitions (a [点这里](http://evil) would hide
# its address); `&lt;` entities, `*` and backticks for emphasis and code; `#` and `>` opening a line for
# headings and quotes. Each becomes its full-width twin, which reads the same and is inert (the parser
# maps ＃ back to #, so a copied number still works). Brackets elsewhere ([[people]] in help) stay as typed.
_MARKUP = re.compile(r"[<*`]|\](?=[ ]*[(\[:])|&(?=#?\w+;)|^[ ]*(?:#+(?=[ ]|$)|>)", re.MULTILINE)
_FULL_WIDTH = str.maketrans("<*`]&#>", "＜＊｀］＆＃＞")


def escape_markdown(text: str) -> str:
    """Plain text made safe to send as markdown: user text can neither link, mention nor format.

    Renderers call it on a reply's text before adding their own markup (the bot's real @mentions).
    """
    return _MARKUP.sub(lambda m: m.group().translate(_FULL_WIDTH), text)
