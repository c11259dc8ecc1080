"""Small text helpers for short replies that read well on a phone."""

from __future__ import annotations

import re
from datetime import date, datetime

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
