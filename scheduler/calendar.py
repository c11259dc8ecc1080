"""When a push may go out: school workdays (Chinese holidays, make-up workdays, overrides) and quiet hours.

Workday answers come, in order, from the config's overrides, then `chinese-calendar` (the official
calendar: 1.11.0 knows 2004–2026 and raises NotImplementedError for 2027), then for later years the
holidays estimated from the lunar calendar (scheduler.holidays, without make-up workdays), then Mon–Fri.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
from chinese_calendar import constants as cc_constants

from models.config import Config
from scheduler import holidays

log = logging.getLogger(__name__)

# A push never moves further than this; a longer run of non-workdays means the overrides are wrong.
_MAX_SHIFT_DAYS = 60


def holiday_data_range() -> tuple[date, date]:
    """First and last day chinese-calendar has holiday data for (whole years)."""
    days = list(cc_constants.holidays) + list(cc_constants.workdays)
    return date(min(days).year, 1, 1), date(max(days).year, 12, 31)


def coverage_message(today: date | None = None) -> str:
    """One line for the start-up log: how far the holiday data reaches."""
    first, last = holiday_data_range()
    text = (
        f"holiday data (chinesecalendar) covers {first.year}–{last.year}; "
        f"dates after {last.isoformat()} use holidays estimated from the lunar calendar "
        "(no make-up workdays), otherwise Mon–Fri"
    )
    advice = "upgrade chinesecalendar or add [calendar] extra_holidays/extra_workdays"
    if today is not None and today > last:
        text += f" — today is past the official data: {advice}"
    elif today is not None and (last - today).days < 60:
        text += f" — the data ends soon: {advice}"
    return text


def _official_workday(day: date) -> bool | None:
    """chinese-calendar's answer, or None for a year it has no data for."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return None


def holiday_runs(days: dict[date, str]) -> list[str]:
    """Days off as runs of one holiday: '2027-02-05–2027-02-12 春节', '2027-04-05 清明节'."""
    runs: list[list[date]] = []
    for day in sorted(days):
        if runs and day - runs[-1][-1] == timedelta(days=1) and days[runs[-1][-1]] == days[day]:
            runs[-1].append(day)
        else:
            runs.append([day])
    return [
        f"{run[0].isoformat()}{'–' + run[-1].isoformat() if len(run) > 1 else ''} {days[run[0]]}"
        for run in runs
    ]


class WorkCalendar:
    """Workdays and quiet hours of one school, in its time zone."""

    def __init__(
        self,
        *,
        tz: ZoneInfo,
        quiet_hours: tuple[time, time] | None = (time(21, 30), time(7, 30)),
        extra_holidays: Iterable[date] = (),
        extra_workdays: Iterable[date] = (),
        skip_non_workdays: bool = True,
    ) -> None:
        self.tz = tz
        self.quiet_hours = quiet_hours if quiet_hours and quiet_hours[0] != quiet_hours[1] else None
        self.extra_holidays = frozenset(extra_holidays)
        self.extra_workdays = frozenset(extra_workdays)
        self.skip_non_workdays = skip_non_workdays
        self.estimated_years: set[int] = set()  # years answered from the estimate: the library had no data

    @classmethod
    def from_config(cls, config: Config) -> "WorkCalendar":
        """Build from a `models.config.Config` ([calendar] section and timezone)."""
        settings = config.calendar
        quiet = (settings.quiet_hours[0], settings.quiet_hours[1]) if settings.quiet_hours else None  # [start, end]
        return cls(
            tz=ZoneInfo(config.timezone),
            quiet_hours=quiet,
            extra_holidays=settings.extra_holidays,
            extra_workdays=settings.extra_workdays,
            skip_non_workdays=settings.skip_non_workdays,
        )

    def is_workday(self, day: date) -> bool:
        """Overrides first, then chinese-calendar, then the estimated holidays and Mon–Fri."""
        if day in self.extra_holidays:
            return False
        if day in self.extra_workdays:
            return True
        official = _official_workday(day)
        if official is not None:
            return official
        self._note_estimated_year(day.year)
        return holidays.estimated_holiday(day) is None and day.weekday() < 5

    def estimated_holiday(self, day: date) -> str | None:
        """The estimated holiday that makes `day` a day off, when the answer for `day` comes from the estimate."""
        if day in self.extra_holidays or day in self.extra_workdays or _official_workday(day) is not None:
            return None
        return holidays.estimated_holiday(day)

    def estimated_holidays(self, first: date, last: date) -> dict[date, str]:
        """Every day in [first, last] that is off only because of the estimate, with its holiday's name."""
        days = (first + timedelta(days=n) for n in range((last - first).days + 1))
        return {day: name for day in days if (name := self.estimated_holiday(day))}

    def _note_estimated_year(self, year: int) -> None:
        if year in self.estimated_years:
            return
        self.estimated_years.add(year)
        log.warning(
            "no official Chinese holiday data for %s (chinesecalendar %s): using holidays estimated from the "
            "lunar calendar, without make-up workdays; add [calendar] extra_holidays/extra_workdays or upgrade "
            "the package once the State Council publishes the calendar",
            year, getattr(chinese_calendar, "__version__", "?"),
        )

    def in_quiet_hours(self, moment: time) -> bool:
        """True inside [start, end); the span may wrap midnight (21:30 → 07:30)."""
        if self.quiet_hours is None:
            return False
        start, end = self.quiet_hours
        if start < end:
            return start <= moment < end
        return moment >= start or moment < end

    def _quiet_end(self, local: datetime) -> datetime:
        assert self.quiet_hours is not None  # only called inside quiet hours
        start, end = self.quiet_hours
        day = local.date()
        if start > end and local.time() >= start:  # evening part of a span that wraps midnight
            day += timedelta(days=1)
        return datetime.combine(day, end, self.tz)

    def next_allowed(self, moment: datetime, *, respect_quiet_hours: bool = True) -> datetime:
        """The first time at or after `moment` that is on a workday and outside quiet hours (local time).

        A push on a non-workday moves to the next workday at the same time of day; one in quiet
        hours moves to their end.
        """
        if moment.tzinfo is None:
            raise ValueError("naive datetime: pass a zone-aware time")
        local = moment.astimezone(self.tz)
        for _ in range(_MAX_SHIFT_DAYS * 2):
            if self.skip_non_workdays and not self.is_workday(local.date()):
                day = local.date() + timedelta(days=1)
                while not self.is_workday(day) and (day - local.date()).days < _MAX_SHIFT_DAYS:
                    day += timedelta(days=1)
                local = datetime.combine(day, local.time(), self.tz)
                continue
            if respect_quiet_hours and self.in_quiet_hours(local.time()):
                local = self._quiet_end(local)
                continue
            return local
        raise RuntimeError(f"no allowed time within {_MAX_SHIFT_DAYS} days after {moment.isoformat()}")
