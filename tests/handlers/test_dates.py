"""Deadline phrases (期限) resolved against a fixed `today`."""

from __future__ import annotations

from datetime import date

import pytest

from handlers.dates import looks_like_deadline, resolve_deadline, split_leading_deadline

TUE = date(2023, 12, 5)  # a Tuesday
SAT = date(2023, 12, 30)  # a Saturday, two days before New Year
SUN = date(2023, 12, 31)
LEAP = date(2024, 2, 28)


@pytest.mark.parametrize(
    ("phrase", "today", "expected"),
    [
        # absolute dates without a year: the next such date on or after today
        pytest.param("12月10日", TUE, date(2023, 12, 10), id="month-day-ri"),
        pytest.param("12月10号", TUE, date(2023, 12, 10), id="month-day-hao"),
        pytest.param("12月10号前", TUE, date(2023, 12, 10), id="month-day-before"),
        pytest.param("12月10日前完成", TUE, date(2023, 12, 10), id="month-day-before-done"),
        pytest.param("于12月10日前", TUE, date(2023, 12, 10), id="yu-prefix"),
        pytest.param("截止到12月31日", TUE, date(2023, 12, 31), id="jiezhidao-prefix"),
        pytest.param("12月10", TUE, date(2023, 12, 10), id="month-day-without-ri"),
        pytest.param("12 月 10 日", TUE, date(2023, 12, 10), id="spaces-inside"),
        pytest.param("十二月十日", TUE, date(2023, 12, 10), id="chinese-numerals"),
        pytest.param("十二月三十一号", TUE, date(2023, 12, 31), id="chinese-numerals-hao"),
        pytest.param("１２月１０日", TUE, date(2023, 12, 10), id="full-width-digits"),
        pytest.param("12/15", TUE, date(2023, 12, 15), id="slash"),
        pytest.param("12.15", TUE, date(2023, 12, 15), id="dot"),
        pytest.param("12-15", TUE, date(2023, 12, 15), id="dash"),
        pytest.param("12月5日", TUE, date(2023, 12, 5), id="today-as-date"),
        pytest.param("1月5日", TUE, date(2024, 1, 5), id="rolls-into-next-year"),
        pytest.param("12月4日", TUE, date(2024, 12, 4), id="yesterday-rolls-a-year"),
        pytest.param("2月29日", TUE, date(2024, 2, 29), id="leap-day-next-year"),
        pytest.param("20号", TUE, date(2023, 12, 20), id="day-of-month-later"),
        pytest.param("3号", TUE, date(2024, 1, 3), id="day-of-month-rolls-to-next-month"),
        pytest.param("下个月10号", TUE, date(2024, 1, 10), id="next-month-day"),
        pytest.param("12月8日（周五）", TUE, date(2023, 12, 8), id="echoed-weekday-in-brackets"),
        pytest.param("12月10日下午5点前完成", TUE, date(2023, 12, 10), id="time-of-day-ignored"),
        # absolute dates with a year are taken as written, even in the past
        pytest.param("2023年12月15日", TUE, date(2023, 12, 15), id="year-month-day"),
        pytest.param("二〇二四年一月五日", TUE, date(2024, 1, 5), id="year-in-chinese-digits"),
        pytest.param("23年12月15日", TUE, date(2023, 12, 15), id="two-digit-year"),
        pytest.param("2023-12-15", TUE, date(2023, 12, 15), id="iso"),
        pytest.param("2023/12/15", TUE, date(2023, 12, 15), id="year-slash"),
        pytest.param("2023.12.15", TUE, date(2023, 12, 15), id="year-dot"),
        pytest.param("20231215", TUE, date(2023, 12, 15), id="eight-digits"),
        pytest.param("2023-12-15 17:00", TUE, date(2023, 12, 15), id="iso-with-time"),
        pytest.param("2023年11月30日", TUE, date(2023, 11, 30), id="past-with-year-kept"),
        # today and the next days
        pytest.param("今天", TUE, TUE, id="jintian"),
        pytest.param("立即", TUE, TUE, id="liji"),
        pytest.param("马上", TUE, TUE, id="mashang"),
        pytest.param("当天", TUE, TUE, id="dangtian"),
        pytest.param("立即整改", TUE, TUE, id="liji-zhenggai"),
        pytest.param("明天", TUE, date(2023, 12, 6), id="mingtian"),
        pytest.param("明天下午三点", TUE, date(2023, 12, 6), id="mingtian-with-time"),
        pytest.param("后天", TUE, date(2023, 12, 7), id="houtian"),
        pytest.param("大后天", TUE, date(2023, 12, 8), id="dahoutian"),
        # weekdays
        pytest.param("本周五", TUE, date(2023, 12, 8), id="benzhou-friday"),
        pytest.param("这周五", TUE, date(2023, 12, 8), id="zhezhou-friday"),
        pytest.param("本周日", TUE, date(2023, 12, 10), id="benzhou-sunday-ends-the-week"),
        pytest.param("本周一", TUE, date(2023, 12, 4), id="benzhou-monday-is-in-the-past"),
        pytest.param("本周五", SAT, date(2023, 12, 29), id="benzhou-friday-on-saturday-is-past"),
        pytest.param("下周五", TUE, date(2023, 12, 15), id="xiazhou-friday"),
        pytest.param("下个礼拜五", TUE, date(2023, 12, 15), id="xiage-libai-friday"),
        pytest.param("下星期一", TUE, date(2023, 12, 11), id="xia-xingqi-monday"),
        pytest.param("下下周一", TUE, date(2023, 12, 18), id="xiaxiazhou-monday"),
        pytest.param("下周一", SAT, date(2024, 1, 1), id="xiazhou-across-new-year"),
        pytest.param("周五", TUE, date(2023, 12, 8), id="zhou-friday"),
        pytest.param("星期五", TUE, date(2023, 12, 8), id="xingqi-friday"),
        pytest.param("礼拜五", TUE, date(2023, 12, 8), id="libai-friday"),
        pytest.param("周二", TUE, TUE, id="bare-weekday-today-counts"),
        pytest.param("周一", TUE, date(2023, 12, 11), id="bare-weekday-next-week"),
        pytest.param("周五", SAT, date(2024, 1, 5), id="bare-friday-on-saturday"),
        pytest.param("周日", TUE, date(2023, 12, 10), id="zhouri"),
        pytest.param("周天", TUE, date(2023, 12, 10), id="zhoutian"),
        pytest.param("星期天", TUE, date(2023, 12, 10), id="xingqitian"),
        pytest.param("周五放学前", TUE, date(2023, 12, 8), id="weekday-before-school-ends"),
        # spans
        pytest.param("3天内", TUE, date(2023, 12, 8), id="3-tian-nei"),
        pytest.param("三天内", TUE, date(2023, 12, 8), id="san-tian-nei"),
        pytest.param("3日内", TUE, date(2023, 12, 8), id="3-ri-nei"),
        pytest.param("3天", TUE, date(2023, 12, 8), id="3-tian"),
        pytest.param("3天之内", TUE, date(2023, 12, 8), id="3-tian-zhinei"),
        pytest.param("3天后", TUE, date(2023, 12, 8), id="3-tian-hou"),
        pytest.param("十天内", TUE, date(2023, 12, 15), id="shi-tian-nei"),
        pytest.param("3天内", SAT, date(2024, 1, 2), id="span-across-new-year"),
        pytest.param("一周内", TUE, date(2023, 12, 12), id="yi-zhou-nei"),
        pytest.param("1周内", TUE, date(2023, 12, 12), id="1-zhou-nei"),
        pytest.param("一个星期内", TUE, date(2023, 12, 12), id="yige-xingqi-nei"),
        pytest.param("两周内", TUE, date(2023, 12, 19), id="liang-zhou-nei"),
        pytest.param("半个月内", TUE, date(2023, 12, 20), id="half-month-is-15-days"),
        pytest.param("半月内", TUE, date(2023, 12, 20), id="ban-yue-nei"),
        pytest.param("一个月内", TUE, date(2024, 1, 5), id="one-month"),
        pytest.param("两个月内", TUE, date(2024, 2, 5), id="two-months"),
        pytest.param("一个月内", date(2024, 1, 31), date(2024, 2, 29), id="one-month-clamped-to-month-end"),
        # month and year ends
        pytest.param("月底", TUE, date(2023, 12, 31), id="yuedi"),
        pytest.param("本月底", TUE, date(2023, 12, 31), id="ben-yuedi"),
        pytest.param("月底前", TUE, date(2023, 12, 31), id="yuedi-qian"),
        pytest.param("月底", LEAP, date(2024, 2, 29), id="yuedi-leap-february"),
        pytest.param("下月底", TUE, date(2024, 1, 31), id="xia-yuedi"),
        pytest.param("下个月底", TUE, date(2024, 1, 31), id="xiage-yuedi"),
        pytest.param("年底", TUE, date(2023, 12, 31), id="niandi"),
        pytest.param("年底", SUN, SUN, id="niandi-on-new-years-eve"),
        pytest.param("明年底", TUE, date(2024, 12, 31), id="ming-niandi"),
        # traditional characters
        pytest.param("下週五", TUE, date(2023, 12, 15), id="traditional-zhou"),
        pytest.param("禮拜五", TUE, date(2023, 12, 8), id="traditional-libai"),
    ],
)
def test_deadline_phrase_resolves(phrase: str, today: date, expected: date) -> None:
    assert resolve_deadline(phrase, today=today) == expected


@pytest.mark.parametrize(
    "phrase",
    [
        pytest.param("2月30日", id="february-30"),
        pytest.param("13月1日", id="month-13"),
        pytest.param("12月32日", id="day-32"),
        pytest.param("0号", id="day-0"),
        pytest.param("2023-00-10", id="iso-month-0"),
        pytest.param("尽快", id="vague-asap"),
        pytest.param("近期", id="vague-soon"),
        pytest.param("下周", id="next-week-without-day"),
        pytest.param("本周内", id="within-this-week-is-ambiguous"),
        pytest.param("周末", id="weekend-is-ambiguous"),
        pytest.param("下个礼拜左右", id="roughly-next-week"),
        pytest.param("3个工作日内", id="working-days-need-the-calendar"),
        pytest.param("3天前", id="three-days-ago"),
        pytest.param("9999999天内", id="absurdly-far"),
        pytest.param("2023 12 15", id="digits-separated-by-spaces"),
        pytest.param("", id="empty"),
        pytest.param("一二十天内", id="malformed-chinese-numeral"),
        pytest.param("消防通道堆放杂物", id="not-a-date-at-all"),
    ],
)
def test_phrase_that_is_not_a_deadline_gives_none(phrase: str) -> None:
    assert resolve_deadline(phrase, today=TUE) is None


@pytest.mark.parametrize(
    ("phrase", "today"),
    [
        pytest.param("明天", date.max, id="tomorrow-after-date-max"),
        pytest.param("1月1日", date.max, id="next-year-after-date-max"),
        pytest.param("下下周日", date(9999, 12, 30), id="weeks-after-date-max"),
        pytest.param("本周一", date.min, id="monday-before-date-min"),
    ],
)
def test_deadline_beyond_the_calendar_gives_none_instead_of_raising(phrase: str, today: date) -> None:
    result = resolve_deadline(phrase, today=today)
    assert result is None or date.min <= result <= date.max


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("12月20日 等待配件", (date(2023, 12, 20), "等待配件"), id="space-between"),
        pytest.param("12月20日等待配件", (date(2023, 12, 20), "等待配件"), id="no-space"),
        pytest.param("下周五，配件未到", (date(2023, 12, 15), "配件未到"), id="comma-between"),
        pytest.param("月底前 需要外请施工队", (date(2023, 12, 31), "需要外请施工队"), id="month-end-before"),
        pytest.param("12月20日", (date(2023, 12, 20), ""), id="date-only"),
        pytest.param("等待配件", None, id="no-date"),
        pytest.param("", None, id="empty"),
    ],
)
def test_split_leading_deadline(text: str, expected: tuple[date, str] | None) -> None:
    assert split_leading_deadline(text, today=TUE) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("下个礼拜左右", True), ("过两天", True), ("月底左右", True), ("等待配件", False), ("尽快", True), ("", False)],
)
def test_looks_like_deadline(text: str, expected: bool) -> None:
    assert looks_like_deadline(text) is expected
