"""Workdays (Chinese holidays, make-up workdays, overrides, the 2027 fallback) and quiet hours."""

from __future__ import annotations

import logging
from datetime import date, datetime, time

import pytest

from scheduler.calendar import WorkCalendar, coverage_message, holiday_data_range
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


def test_a_year_without_holiday_data_falls_back_to_monday_to_friday(
    calendar: WorkCalendar, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="scheduler.calendar"):
        assert calendar.is_workday(date(2027, 1, 4))  # chinese_calendar 1.11.0 raises NotImplementedError here
        assert not calendar.is_workday(date(2027, 1, 9))
        assert calendar.is_workday(date(2027, 1, 11))
    warnings = [r for r in caplog.records if "2027" in r.getMessage()]
    assert len(warnings) == 1  # once per year, not once per call
    assert calendar.fallback_years == {2027}


def test_coverage_message_says_how_far_the_data_reaches() -> None:
    first, last = holiday_data_range()
    assert (first, last) == (date(2004, 1, 1), date(2026, 12, 31))
    message = coverage_message(date(2026, 11, 23))
    assert "2004–2026" in message and "after 2026-12-31 fall back to Mon–Fri" in message
    assert "ends soon" in message
    assert "ends soon" not in coverage_message(date(2025, 1, 1))


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
