"""Chinese statutory holidays estimated from the lunar calendar, for years the official data does not cover yet.

The State Council publishes each year's calendar around November, and `chinesecalendar` ships it some days
later. Until then, this module estimates the days off from the rules the recent calendars follow (2025 on):

  元旦        Jan 1, stretched to a 3-day weekend as below
  春节        除夕 through 初七 (8 days)
  清明节      the solar term 清明 (Apr 4–6), stretched to a 3-day weekend
  劳动节      May 1–5
  端午节      五月初五, stretched to a 3-day weekend
  中秋节      八月十五, stretched to a 3-day weekend, or merged with 国庆节 when it falls within Sep 29–Oct 8
  国庆节      Oct 1–7 (8 days from Sep 29/30 or Oct 1 when merged with 中秋节)

A one-day holiday becomes a 3-day weekend the way the State Council does it: Mon → Sat–Mon, Tue → Sun–Tue,
Thu → Thu–Sat, Fri → Fri–Sun, Sat/Sun → Sat–Mon; a Wednesday holiday stays one day. Make-up workdays
(调休上班) are not estimated: which weekend day is swapped varies from year to year, so those Saturdays and
Sundays stay days off until the official calendar (or `[calendar] extra_workdays`) says otherwise.

Lunar dates and solar terms come from `lunar-python` (6tail, MIT, pure Python, years 1–9999).
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

from lunar_python import Lunar, Solar

NEW_YEAR = "元旦"
SPRING_FESTIVAL = "春节"
QINGMING = "清明节"
LABOUR_DAY = "劳动节"
DRAGON_BOAT = "端午节"
MID_AUTUMN = "中秋节"
NATIONAL_DAY = "国庆节"

# Days before (negative) and after a one-day holiday that make its weekend, by weekday (Mon = 0).
_THREE_DAY_WEEKEND = {0: (-2, 0), 1: (-2, 0), 2: (0, 0), 3: (0, 2), 4: (0, 2), 5: (0, 2), 6: (-1, 1)}


def _to_date(solar: Solar) -> date:
    return date(solar.getYear(), solar.getMonth(), solar.getDay())


def lunar_day(year: int, month: int, day: int) -> date:
    """The Gregorian date of a day of lunar year `year` (e.g. 1, 1 is 春节 初一)."""
    return _to_date(Lunar.fromYmd(year, month, day).getSolar())


def qingming(year: int) -> date:
    """The day of the solar term 清明 in `year` (Apr 4, 5 or 6)."""
    # Mid-April always lies in lunar year `year`, whose table holds that spring's 清明.
    return _to_date(Solar.fromYmd(year, 4, 15).getLunar().getJieQiTable()["清明"])


def _span(first: date, last: date, name: str) -> dict[date, str]:
    return {first + timedelta(days=n): name for n in range((last - first).days + 1)}


def _weekend_around(day: date, name: str) -> dict[date, str]:
    """A one-day holiday with the weekend days (and the swapped weekday) the State Council joins to it."""
    before, after = _THREE_DAY_WEEKEND[day.weekday()]
    return _span(day + timedelta(days=before), day + timedelta(days=after), name)


@lru_cache(maxsize=64)
def estimate_year(year: int) -> dict[date, str]:
    """Estimated days off of the holidays of `year`, weekends inside each run included.

    The 元旦 run of a year may start in late December of the year before.
    """
    days: dict[date, str] = {}
    days |= _weekend_around(date(year, 1, 1), NEW_YEAR)
    new_year_eve = lunar_day(year, 1, 1) - timedelta(days=1)
    days |= _span(new_year_eve, new_year_eve + timedelta(days=7), SPRING_FESTIVAL)
    days |= _weekend_around(qingming(year), QINGMING)
    days |= _span(date(year, 5, 1), date(year, 5, 5), LABOUR_DAY)
    days |= _weekend_around(lunar_day(year, 5, 5), DRAGON_BOAT)
    days |= _autumn(year)
    return days


def _autumn(year: int) -> dict[date, str]:
    """中秋节 and 国庆节: one 8-day run when they touch, else a 3-day weekend and Oct 1–7."""
    mid_autumn = lunar_day(year, 8, 15)
    national_day = date(year, 10, 1)
    if date(year, 9, 29) <= mid_autumn <= date(year, 10, 8):
        first = min(mid_autumn, national_day)
        return _span(first, first + timedelta(days=7), f"{NATIONAL_DAY}、{MID_AUTUMN}")
    return _weekend_around(mid_autumn, MID_AUTUMN) | _span(national_day, date(year, 10, 7), NATIONAL_DAY)


def estimated_holiday(day: date) -> str | None:
    """The name of the estimated holiday `day` falls in, or None for an ordinary day."""
    # Next year's 元旦 run may begin on Dec 30 or 31.
    return estimate_year(day.year).get(day) or estimate_year(day.year + 1).get(day)
