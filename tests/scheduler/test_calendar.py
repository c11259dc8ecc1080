"""Workdays (Chinese holidays, make-up workdays, overrides, estimated holidays from 2027) and quiet hours."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, time, timedelta

import chinese_calendar
import pytest

from scheduler.calendar import WorkCalendar, coverage_message, holiday_data_range, holiday_runs
from scheduler.holidays import estimated_holiday, lunar_day, qingming
from tests.scheduler.conftest import TZ, at


@pytest.fixture
def calendar() -> WorkCalendar:
    return WorkCalendar(tz=TZ, quiet_hours=(time(21, 30), time(7, 30)))


def test_chinese_holidays_and_make_up_workdays(calendar: WorkCalendar) -> None:
    assert not calendar.is_workday(date(2019, 1, 1))  # 元旦
    assert calendar.is_workday(date(2018, 12, 29))  # a Saturday, 调休上班 for 元旦
    assert not calendar.is_workday(date(2019, 2, 4))  # 除夕, Spring Festival 02-04 … 02-10
    assert calendar.is_workday(date(2019, 2, 2))  # Saturday make-up workday before it
    assert not calendar.is_workday(date(2018, 12, 16))  # an ordinary Sunday


def test_config_overrides_come_before_the_library() -> None:
    calendar = WorkCalendar(tz=TZ, extra_holidays=[date(2018, 12, 17)], extra_workdays=[date(2018, 12, 16)])
    assert not calendar.is_workday(date(2018, 12, 17))
    assert calendar.is_workday(date(2018, 12, 16))


def test_a_year_without_holiday_data_uses_the_estimate(
    calendar: WorkCalendar, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="scheduler.calendar"):
        assert not calendar.is_workday(date(2027, 1, 1))  # 元旦, a Friday; chinese_calendar 1.11.0 has no 2027
        assert calendar.is_workday(date(2027, 1, 4))
        assert not calendar.is_workday(date(2027, 1, 9))  # an ordinary Saturday
        assert not calendar.is_workday(date(2027, 2, 8))  # Monday in the Spring Festival week
        assert calendar.is_workday(date(2027, 2, 15))
    warnings = [r for r in caplog.records if "2027" in r.getMessage()]
    assert len(warnings) == 1  # once per year, not once per call
    assert "estimated from the lunar calendar" in warnings[0].getMessage()
    assert calendar.estimated_years == {2027}


def test_coverage_message_says_how_far_the_data_reaches() -> None:
    first, last = holiday_data_range()
    assert (first, last) == (date(2004, 1, 1), date(2026, 12, 31))
    message = coverage_message(date(2026, 11, 23))
    assert "2004–2026" in message
    assert "after 2026-12-31 use holidays estimated from the lunar calendar (no make-up workdays)" in message
    assert "ends soon" in message
    assert "ends soon" not in coverage_message(date(2025, 1, 1))
    assert "today is past the official data" in coverage_message(date(2027, 3, 1))


def test_the_2027_spring_festival_week_moves_a_push_past_it(calendar: WorkCalendar) -> None:
    assert lunar_day(2027, 1, 1) == date(2027, 2, 6)  # 初一, from lunar-python
    assert holiday_runs(calendar.estimated_holidays(date(2027, 1, 20), date(2027, 2, 28))) == [
        "2027-02-05–2027-02-12 春节"  # 除夕 (Friday) through 初七 (Friday)
    ]
    assert calendar.next_allowed(at("2027-02-05 17:00")) == at("2027-02-15 17:00")


def test_qingming_is_the_solar_term(calendar: WorkCalendar) -> None:
    assert (qingming(2027), qingming(2028)) == (date(2027, 4, 5), date(2028, 4, 4))
    # 2027-04-05 is a Monday: Sat–Mon off. 2028-04-04 is a Tuesday: Sun–Tue off (the Saturday is 调休).
    assert calendar.estimated_holidays(date(2027, 4, 1), date(2027, 4, 30)) == dict.fromkeys(
        [date(2027, 4, 3), date(2027, 4, 4), date(2027, 4, 5)], "清明节"
    )
    assert not calendar.is_workday(date(2028, 4, 3)) and not calendar.is_workday(date(2028, 4, 4))
    assert calendar.is_workday(date(2028, 4, 5))


def test_mid_autumn_merges_with_national_day_when_they_touch(calendar: WorkCalendar) -> None:
    assert lunar_day(2028, 8, 15) == date(2028, 10, 3)
    assert holiday_runs(calendar.estimated_holidays(date(2028, 9, 1), date(2028, 10, 31))) == [
        "2028-10-01–2028-10-08 国庆节、中秋节"
    ]
    assert lunar_day(2027, 8, 15) == date(2027, 9, 15)  # a Wednesday: one day, apart from 国庆节
    assert holiday_runs(calendar.estimated_holidays(date(2027, 9, 1), date(2027, 10, 31))) == [
        "2027-09-15 中秋节", "2027-10-01–2027-10-07 国庆节"
    ]


def test_new_year_run_may_start_in_december(calendar: WorkCalendar) -> None:
    # 2030-01-01 is a Tuesday: Sun 12-30 through Tue 01-01, so Monday 2029-12-31 is off.
    assert estimated_holiday(date(2029, 12, 31)) == "元旦"
    assert not calendar.is_workday(date(2029, 12, 31))
    assert calendar.is_workday(date(2029, 12, 28))


def test_overrides_beat_the_estimate() -> None:
    calendar = WorkCalendar(tz=TZ, extra_holidays=[date(2027, 3, 1)], extra_workdays=[date(2027, 2, 8)])
    assert calendar.is_workday(date(2027, 2, 8)) and calendar.estimated_holiday(date(2027, 2, 8)) is None
    assert not calendar.is_workday(date(2027, 3, 1)) and calendar.estimated_holiday(date(2027, 3, 1)) is None
    assert calendar.estimated_holiday(date(2027, 2, 9)) == "春节"
    assert calendar.next_allowed(at("2027-02-05 17:00")) == at("2027-02-08 17:00")


def test_the_official_data_beats_the_estimate(calendar: WorkCalendar) -> None:
    # 2024-02-09 (除夕) was a workday then; the estimate follows the 2025 rules that made 除夕 a holiday.
    assert estimated_holiday(date(2024, 2, 9)) == "春节"
    assert calendar.is_workday(date(2024, 2, 9)) and calendar.estimated_holiday(date(2024, 2, 9)) is None
    assert calendar.estimated_years == set()


def _holiday_weekdays(year: int, is_off: Callable[[date], bool]) -> set[date]:
    """Mondays to Fridays of `year` that `is_off` gives off: the days a holiday actually takes from school."""
    days = (date(year, 1, 1) + timedelta(days=n) for n in range(366))
    return {day for day in days if day.year == year and day.weekday() < 5 and is_off(day)}


@pytest.mark.parametrize("year", [2025, 2026])
def test_the_estimate_matches_the_official_holidays_of_recent_years(year: int) -> None:
    official = _holiday_weekdays(year, lambda day: not chinese_calendar.is_workday(day))
    estimated = _holiday_weekdays(year, lambda day: estimated_holiday(day) is not None)
    assert len(official) in (18, 19) and estimated == official


@pytest.mark.parametrize(
    ("year", "only_estimated"),
    [
        # Before 2025 除夕 was not a statutory holiday and Labour Day had one day less: the runs sometimes
        # fell a day short of the 2025 shape the estimate follows.
        (2020, set()),
        (2021, {date(2021, 2, 18)}),  # 初七: the run was 除夕–初六
        (2022, {date(2022, 2, 7), date(2022, 5, 5)}),  # 初七, same; Labour Day was Apr 30–May 4
        (2023, {date(2023, 5, 4), date(2023, 5, 5)}),  # Labour Day was Apr 29–May 3
        (2024, {date(2024, 2, 9)}),  # 除夕: the run was 初一–初八
    ],
)
def test_the_estimate_covers_every_official_holiday_since_2020(year: int, only_estimated: set[date]) -> None:
    official = _holiday_weekdays(year, lambda day: not chinese_calendar.is_workday(day))
    estimated = _holiday_weekdays(year, lambda day: estimated_holiday(day) is not None)
    assert official <= estimated  # no official day off is missed
    assert estimated - official == only_estimated
    assert len(official) / len(estimated) >= 0.9


def test_sunday_push_moves_to_monday_at_the_same_time(calendar: WorkCalendar) -> None:
    assert calendar.next_allowed(at("2018-12-16 17:00")) == at("2018-12-17 17:00")


def test_holiday_push_moves_past_the_whole_holiday(calendar: WorkCalendar) -> None:
    assert calendar.next_allowed(at("2019-02-04 17:00")) == at("2019-02-11 17:00")  # Spring Festival
    assert calendar.next_allowed(at("2019-01-01 09:00")) == at("2019-01-02 09:00")  # New Year


def test_make_up_saturday_is_not_moved(calendar: WorkCalendar) -> None:
    assert calendar.next_allowed(at("2018-12-29 17:00")) == at("2018-12-29 17:00")


@pytest.mark.parametrize(
    ("planned", "allowed"),
    [
        ("2018-12-04 22:00", "2018-12-05 07:30"),  # evening part of the span: next morning
        ("2018-12-05 03:00", "2018-12-05 07:30"),  # early morning: the same morning
        ("2018-12-05 21:29", "2018-12-05 21:29"),  # just before
        ("2018-12-05 07:30", "2018-12-05 07:30"),  # the end is allowed
        ("2018-12-07 23:00", "2018-12-10 07:30"),  # Friday night: past the weekend too
    ],
)
def test_quiet_hours(calendar: WorkCalendar, planned: str, allowed: str) -> None:
    assert calendar.next_allowed(at(planned)) == at(allowed)


def test_quiet_hours_within_one_day() -> None:
    calendar = WorkCalendar(tz=TZ, quiet_hours=(time(12, 0), time(14, 0)))
    assert calendar.next_allowed(at("2018-12-05 12:30")) == at("2018-12-05 14:00")
    assert calendar.next_allowed(at("2018-12-05 11:59")) == at("2018-12-05 11:59")


def test_everything_allowed_when_switched_off() -> None:
    calendar = WorkCalendar(tz=TZ, quiet_hours=None, skip_non_workdays=False)
    assert calendar.next_allowed(at("2019-02-04 23:00")) == at("2019-02-04 23:00")


def test_the_zone_is_explicit() -> None:
    calendar = WorkCalendar(tz=TZ)
    with pytest.raises(ValueError):
        calendar.next_allowed(datetime(2018, 12, 16, 17, 0))
    # 09:00 UTC on Sunday is 17:00 in Shanghai: moved by the school's calendar, answered in its zone.
    moved = calendar.next_allowed(datetime.fromisoformat("2018-12-16T09:00:00+00:00"))
    assert moved == at("2018-12-17 17:00") and moved.utcoffset() == TZ.utcoffset(moved.replace(tzinfo=None))
