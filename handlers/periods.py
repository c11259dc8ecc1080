"""Reporting periods (每N天报送): report days are `first + k·N`; a 报送 counts for the next one."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from models.tables import CampaignRow


@dataclass(frozen=True, slots=True)
class ReportingPeriod:
    """The days (start, due] a unit reports on at `due`."""

    start: date  # first day counted (inclusive)
    due: date  # the report day (inclusive)

    def bounds(self, tz: tzinfo) -> tuple[datetime, datetime]:
        """Zone-aware [since, until) covering the period's days."""
        return (
            datetime.combine(self.start, time.min, tz),
            datetime.combine(self.due + timedelta(days=1), time.min, tz),
        )


LATE_CUTOFF_DAYS = 3


def report_days(campaign: CampaignRow) -> list[date]:
    """Every report day of the campaign, in order."""
    if not campaign.report_every_days or not campaign.report_first:
        return []
    days, day = [], campaign.report_first
    while day <= campaign.end:
        days.append(day)
        day += timedelta(days=campaign.report_every_days)
    return days


def _period(campaign: CampaignRow, days: list[date], index: int) -> ReportingPeriod:
    start = campaign.start if index == 0 else days[index - 1] + timedelta(days=1)
    return ReportingPeriod(start=start, due=days[index])


def period_for(
    campaign: CampaignRow, today: date, *, submitted: Collection[date] | None = None
) -> ReportingPeriod | None:
    """The period a 报送 made today belongs to: the next report day on or after today.

    Given the report days a unit has already `submitted`, a 报送 after a missed report day
    fills the missed period instead (补报) — except in the last LATE_CUTOFF_DAYS before the
    next report day, which always count for that one. Reminders moved off a weekend or a
    holiday (up to a week at Spring Festival) arrive after their report day; the answer to
    such a reminder must count for the period it reminded about.
    """
    days = report_days(campaign)
    if submitted is not None:
        past = [index for index, due in enumerate(days) if due < today]
        if past and days[past[-1]] not in submitted:
            upcoming = days[past[-1] + 1] if past[-1] + 1 < len(days) else None
            if upcoming is None or (upcoming - today).days >= LATE_CUTOFF_DAYS:
                return _period(campaign, days, past[-1])
    for index, due in enumerate(days):
        if due >= today:
            return _period(campaign, days, index)
    return None
