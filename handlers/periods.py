"""Reporting periods (每N天报送): report days are `first + k·N`; a 报送 counts for the next one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from models.tables import CampaignRow


@dataclass(frozen=True, slots=True)
class ReportingPeriod:
    """The days (start, due] a unit reports on at `due`."""

    start: date  # first day counted (inclusive)
    due: date  # the report day (inclusive)

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """Zone-aware [since, until) covering the period's days."""
        return (
            datetime.combine(self.start, time.min, tz),
            datetime.combine(self.due + timedelta(days=1), time.min, tz),
        )


def report_days(campaign: CampaignRow) -> list[date]:
    """Every report day of the campaign, in order."""
    if not campaign.report_every_days or not campaign.report_first:
        return []
    days, day = [], campaign.report_first
    while day <= campaign.end:
        days.append(day)
        day += timedelta(days=campaign.report_every_days)
    return days


def period_for(campaign: CampaignRow, today: date) -> ReportingPeriod | None:
    """The period a 报送 made today belongs to (the next report day on or after today)."""
    days = report_days(campaign)
    for index, due in enumerate(days):
        if due >= today:
            start = campaign.start if index == 0 else days[index - 1] + timedelta(days=1)
            return ReportingPeriod(start=start, due=due)
    return None
