"""Resolve Chinese deadline phrases (期限) to dates with a small ordered rule table.

Meaning of each form, with `today` the day the message was sent:

* ``今天`` ``今日`` ``当天`` ``立即`` ``马上`` …: today; ``明天`` +1, ``后天`` +2, ``大后天`` +3.
* ``2023年12月15日`` ``2023-12-15`` ``2023/12/15`` ``2023.12.15`` ``20231215``: that exact date, even when it is in
  the past (the parser turns a past deadline into an error).
* ``12月10日`` ``12月10号`` ``十二月十日`` ``12/15`` ``12.15`` ``12-15``: the next such date on or after today (so on
  2023-12-05 ``1月5日`` is 2024-01-05 and ``12月5日`` is today).  ``20号``: the next 20th on or after today.
  ``下月10号``: the 10th of next month.
* ``周五`` ``星期五`` ``礼拜五`` (``周日`` ``周天`` ``星期日`` ``礼拜天`` = Sunday): the next Friday on or after today.
* ``本周五`` ``这周五``: the Friday of the current Monday–Sunday week, which is *in the past* when today is Saturday
  or Sunday; the parser reports that as an error instead of silently moving it a week on.
  ``下周五`` ``下个礼拜五``: the Friday of next week; ``下下周一``: the Monday of the week after next.
* ``3天内`` ``三天内`` ``3日内`` ``3天`` ``3天后``: today + 3 days; ``一周内`` ``两周内`` ``1个星期内``: + 7 / 14 days;
  ``半个月内``: + 15 days; ``一个月内`` ``2个月内``: same day N months later (clamped to the month's end).
* ``月底`` ``本月底``: the last day of this month; ``下月底`` ``下个月底``: of next month; ``年底``: 31 December;
  ``明年底``: 31 December next year.

Around a phrase we accept ``于`` ``在`` ``截止`` … before it, and ``前`` ``之前`` ``完成`` ``整改``, a time of day
(``17:00``, ``下午3点``) or a weekday in brackets (``12月8日（周五）``) after it.
Vague phrases (``尽快`` ``近期`` ``下周`` ``本周内`` ``周末``), impossible dates (``2月30日``), working-day counts
(``3个工作日内``, which would need the holiday calendar) and ``3天前`` give None.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta

import cn2an
from dateutil.relativedelta import relativedelta

from handlers.normalize import normalize_text

_MAX_DAYS = 3660  # a deadline further than ten years away is a typo, not a plan

_PREFIX_RE = re.compile(r"^(?:请|务必|必须|须|需|要|应当|应|最迟|最晚|在|于|到|至|截至|截止到|截止|期限|限期|限)+")
_DONE_SUFFIX_RE = re.compile(r"(?:完成|整改|完毕|办结|处理|解决|到位)+$")
_BEFORE_SUFFIX_RE = re.compile(r"(?:之前|以前|前|为止|截止|止)$")
_PAST_SPAN_RE = re.compile(r"\d+个?(?:天|周|星期|礼拜|月)前$")
_TIME_SUFFIX_RE = re.compile(
    r"(?:(?:上午|下午|中午|晚上|早上|傍晚|凌晨)?\d{1,2}(?:[:：]\d{2}|点(?:半|\d{1,2}分?)?|时)"
    r"|上午|下午|中午|晚上|早上|傍晚|下班|放学)$"
)
_WEEKDAY_NOTE_RE = re.compile(r"[（(](?:周|星期|礼拜)[一二三四五六日天1-7][）)]$")
_TRAILING_PUNCT = "，,；;。！!、"
_INNER_SPACE_RE = re.compile(r"(?<!\d) +| +(?!\d)")

_Resolver = Callable[[re.Match[str], date], date | None]


def _make_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _add(today: date, delta: timedelta | relativedelta) -> date | None:
    try:
        shifted: date = today + delta
    except (OverflowError, ValueError):  # past date.max
        return None
    return shifted


def _next_month_day(month: int, day: int, today: date) -> date | None:
    this_year = _make_date(today.year, month, day)
    if this_year is not None and this_year >= today:
        return this_year
    if today.year >= 9999:
        return None
    return _make_date(today.year + 1, month, day)


def _full_year(text: str) -> int:
    year = int(text)
    return year + 2000 if len(text) == 2 else year


def _ymd(m: re.Match[str], today: date) -> date | None:
    if m["y"] is None:
        return _next_month_day(int(m["m"]), int(m["d"]), today)
    return _make_date(_full_year(m["y"]), int(m["m"]), int(m["d"]))


def _day_of_month(m: re.Match[str], today: date) -> date | None:
    day = int(m["d"])
    this_month = _make_date(today.year, today.month, day)
    if this_month is not None and this_month >= today:
        return this_month
    first_of_next = _add(today, relativedelta(months=1, day=1))
    return None if first_of_next is None else _make_date(first_of_next.year, first_of_next.month, day)


def _month_rel_day(m: re.Match[str], today: date) -> date | None:
    months = 1 if m["rel"].startswith("下") else 0
    first = _add(today, relativedelta(months=months, day=1))
    return None if first is None else _make_date(first.year, first.month, int(m["d"]))


_WEEKS_AHEAD: dict[str, int] = {"本": 0, "这": 0, "这个": 0, "下": 1, "下个": 1, "下下": 2, "下下个": 2}


def _weekday(m: re.Match[str], today: date) -> date | None:
    wanted = 6 if m["wd"] in ("日", "天", "7") else int(m["wd"]) - 1
    if m["rel"] is None:  # bare 周五: the next Friday on or after today
        return _add(today, timedelta(days=(wanted - today.weekday()) % 7))
    monday = _add(today, timedelta(days=-today.weekday()))
    return None if monday is None else _add(monday, timedelta(weeks=_WEEKS_AHEAD[m["rel"]], days=wanted))


def _month_day(m: re.Match[str], today: date) -> date | None:
    return _next_month_day(int(m["m"]), int(m["d"]), today)


def _span(days_per_unit: int) -> _Resolver:
    def resolve(m: re.Match[str], today: date) -> date | None:
        days = int(m["n"]) * days_per_unit
        return _add(today, timedelta(days=days)) if days <= _MAX_DAYS else None

    return resolve


def _months(m: re.Match[str], today: date) -> date | None:
    months = int(m["n"])
    return _add(today, relativedelta(months=months)) if months * 30 <= _MAX_DAYS else None


def _fixed(days: int) -> _Resolver:
    return lambda m, today: _add(today, timedelta(days=days))


def _month_end(months: int) -> _Resolver:
    return lambda m, today: _add(today, relativedelta(months=months, day=31))


def _year_end(years: int) -> _Resolver:
    return lambda m, today: _make_date(today.year + years, 12, 31) if today.year + years <= 9999 else None


_WITHIN = r"(?:内|之内|以内|后|之后|以后)"
# Ordered: the first rule whose pattern matches the whole (normalised) phrase wins.
_RULES: tuple[tuple[re.Pattern[str], _Resolver], ...] = tuple(
    (re.compile(pattern), resolver)
    for pattern, resolver in (
        (r"今天|今日|当天|当日|立即|立刻|即刻|马上|立马|现在|今天内|当天内|今日内|当日内", _fixed(0)),
        (r"明天|明日", _fixed(1)),
        (r"后天", _fixed(2)),
        (r"大后天", _fixed(3)),
        (r"(?:(?P<y>\d{4}|\d{2})年)?(?P<m>\d{1,2})月(?P<d>\d{1,2})[日号]?", _ymd),
        (r"(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})", _ymd),
        (r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})", _ymd),
        (r"(?P<m>\d{1,2})[-/.](?P<d>\d{1,2})", _month_day),
        (r"(?P<rel>本月|这个?月|下个?月)(?P<d>\d{1,2})[日号]?", _month_rel_day),
        (r"(?P<d>\d{1,2})[日号]", _day_of_month),
        (r"(?P<rel>下下个|下下|下个|下|这个|这|本)?(?:周|星期|礼拜)(?P<wd>[1-7日天])", _weekday),
        # 3日 alone is the 3rd of the month, so 日 counts days only with 内/后.
        (rf"(?P<n>\d{{1,5}})(?:日{_WITHIN}|天{_WITHIN}?)", _span(1)),
        (rf"(?P<n>\d{{1,4}})个?(?:周|星期|礼拜){_WITHIN}?", _span(7)),
        (rf"(?P<n>\d{{1,4}})个月{_WITHIN}?", _months),
        (rf"(?:0\.5个|半个?)月{_WITHIN}?", _fixed(15)),
        (r"(?:本|这个?|今|当)?月[底末]", _month_end(0)),
        (r"下个?月[底末]", _month_end(1)),
        (r"(?:本|今)?年[底末]|今年年[底末]", _year_end(0)),
        (r"(?:明|下)年[底末]|明年年[底末]", _year_end(1)),
    )
)


# Every character any rule, prefix or suffix can consume; anything else cannot be a deadline, which
# also keeps cn2an (it warns on odd input) away from free text.
_VOCABULARY = frozenset(
    " 0123456789-/.:：()（）〇零一二三四五六七八九十百两俩半廿"
    + "今天日当立即刻马上现在明后大年月号周星期礼拜本这个下内之以前为止截至到于在请务必须需要应最迟晚限"
    + "完成整改毕办结处理解决位底末点分时午中早傍凌班放学期"
)


_CN_RUN_RE = re.compile(r"[〇零一二三四五六七八九十百]+")
_CN_DIGITS = str.maketrans("〇零一二三四五六七八九", "00123456789")
# The numbers a deadline can hold (up to 999); cn2an raises KeyError or warns on malformed runs like 〇十〇.
_CN_NUMBER_RE = re.compile(r"(?=.)(?:[一二三四五六七八九]百)?(?:零[一二三四五六七八九]|[一二三四五六七八九]?十[一二三四五六七八九]?)?")


def _arabic_numerals(text: str) -> str | None:
    """Rewrite Chinese numerals as digits (二〇二三→2023, 十二→12, 两→2); None if a numeral is malformed."""
    text = text.replace("廿", "二十").replace("两", "二").replace("俩", "二").replace("半个月", "0.5个月")
    runs: list[str] = []
    last = 0
    for run in _CN_RUN_RE.finditer(text):
        digits = run.group()
        if "十" in digits or "百" in digits:
            if not _CN_NUMBER_RE.fullmatch(digits):
                return None
            digits = str(int(cn2an.cn2an(digits, "normal")))
        else:  # digit by digit, as years are written (二〇二三)
            digits = digits.translate(_CN_DIGITS)
        runs.append(text[last : run.start()] + digits)
        last = run.end()
    return "".join(runs) + text[last:]


def _core(text: str) -> str | None:
    text = _INNER_SPACE_RE.sub("", normalize_text(text)).rstrip(_TRAILING_PUNCT)
    if not text or len(text) > 40 or not set(text) <= _VOCABULARY:
        return None
    digits = _arabic_numerals(text)
    if digits is None:
        return None
    text = _WEEKDAY_NOTE_RE.sub("", digits)
    text = _PREFIX_RE.sub("", text)
    # Suffixes come in any order (12月10日下午5点前完成), so peel them until nothing changes.
    previous = None
    while previous != text:
        previous = text
        text = _DONE_SUFFIX_RE.sub("", text)
        if _PAST_SPAN_RE.search(text):
            return None  # 3天前 means three days ago
        text = _BEFORE_SUFFIX_RE.sub("", text)
        stripped = _TIME_SUFFIX_RE.sub("", text).strip()
        text = stripped if stripped else text
    return text or None


def resolve_deadline(text: str, *, today: date) -> date | None:
    """Return the date a deadline phrase means relative to `today`, or None if it is not understood."""
    core = _core(text)
    if core is None:
        return None
    for pattern, resolver in _RULES:
        match = pattern.fullmatch(core)
        if match is not None:
            return resolver(match, today)
    return None


def split_leading_deadline(text: str, *, today: date) -> tuple[date, str] | None:
    """Split `text` into the deadline it starts with and the rest (`12月20日 等待配件`), or None."""
    head = text[:40]
    for end in range(len(head), 0, -1):
        resolved = resolve_deadline(head[:end], today=today)
        if resolved is not None:
            return resolved, text[end:].strip().lstrip(_TRAILING_PUNCT + " ").strip()
    return None


_DATEISH_RE = re.compile(r"[\d〇零一二三四五六七八九十两半]|[月日号天周年底末]|星期|礼拜|明天|后天|今天|立即|马上|尽快")


def looks_like_deadline(text: str) -> bool:
    """Whether `text` reads like an attempt at a date (for choosing the right error message)."""
    return _DATEISH_RE.search(text) is not None


def beyond_campaign_error(deadline: date, *, campaign_end: date, today: date, example: str) -> str | None:
    """Why a written deadline after the campaign's last day is refused, or None when it is within the campaign.

    A far deadline (期限：9999年12月31日) would never fall due, and would spare the reporter asking a unit head
    for 延期; so a deadline must fall within the campaign. `example` is a message that would be accepted, with
    `{date}` where the date goes.
    """
    if deadline <= campaign_end:
        return None
    end = campaign_end.isoformat()
    if campaign_end < today:
        return (f"期限 {deadline.isoformat()} 不行：本次排查整治已于 {end} 结束，不能再设定之后的期限。"
                f"请联系管理员，例如：请管理员把排查整治的结束日期延后")
    written = f"{campaign_end.year}年{campaign_end.month}月{campaign_end.day}日"
    return (f"期限 {deadline.isoformat()} 晚于本次排查整治的结束日期 {end}，"
            f"请写 {end} 或之前的日期，例如：{example.format(date=written)}")


# A deadline phrase inside a sentence (三楼灭火器过期了，周五前弄好): the candidates are cut out with this pattern,
# then each is resolved with the rules above, so the two can never disagree about what a phrase means.
_CN_NUM = "〇零一二三四五六七八九十两半廿"
_IN_SENTENCE_RE = re.compile(
    r"(?:在|于|到|截止到?|最迟|最晚)?"
    r"(?:大后天|后天|明天|明日|今天|今日|当天|立即|立刻|马上|即刻"
    r"|(?:本|这个?|下个?)?月[底末]|(?:本|今|明)?年[底末]"
    rf"|(?:下下|下个?|这个?|本)?(?:周|星期|礼拜)[一二三四五六日天1-7](?![{_CN_NUM}\d])"
    rf"|(?:\d{{4}}年)?[\d{_CN_NUM}]{{1,3}}月[\d{_CN_NUM}]{{1,3}}[日号]?"
    r"|\d{1,2}[日号](?=$|[前之以为内，,；;。 ！!]|完成|处理|整改)"  # 3号 but not 3号教学楼
    rf"|[\d{_CN_NUM}]{{1,3}}个?(?:天|日|周|星期|礼拜|月)(?:内|之内|以内)"
    r")"
    r"(?:之前|以前|前|为止)?"
)


def find_deadline(text: str, *, today: date) -> tuple[date, int, int] | None:
    """The first deadline phrase anywhere in `text`: (its date, start, end), or None when there is none."""
    for match in _IN_SENTENCE_RE.finditer(text):
        resolved = resolve_deadline(match.group(), today=today)
        if resolved is not None:
            return resolved, match.start(), match.end()
    return None
