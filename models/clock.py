"""The one clock: every "now" and "today" in the bot comes from a `Clock` passed in.

This is the only module that reads the wall clock (a test scans the source for that). It lives in
the lowest layer so that models/, handlers/, scheduler/ and bot/ may all take a clock.

- `SystemClock(tz)`: the wall clock in a zone; `SystemClock.starting_at(at)` is the wall clock moved
  so that it reads `at` now and runs forward from there (`safetybot serve --now`, rehearsals).
- `FixedClock(at)`: stands still until a test moves it (`set`, `advance`).
- `wall_clock_seconds()`, `wall_clock_ms()`: the real epoch time for platform signatures and token expiries, which the
  platform checks against its own clock, so they must never follow a rehearsal clock.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo

DEFAULT_TZ = ZoneInfo("Asia/Shanghai")


class Clock(Protocol):
    """Tells the time: `now()` is zone-aware, `today()` is its date in the clock's zone."""

    def now(self) -> datetime: ...

    def today(self) -> date: ...


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"a clock needs a zone-aware time, got {at.isoformat()}")
    return at


class SystemClock:
    """The wall clock in `tz`, plus a fixed `offset` (zero unless started at another instant)."""

    def __init__(self, tz: tzinfo = DEFAULT_TZ, offset: timedelta = timedelta(0)) -> None:
        self.tz = tz
        self.offset = offset

    @classmethod
    def starting_at(cls, at: datetime, tz: tzinfo | None = None) -> SystemClock:
        """A clock that reads `at` now and runs forward at the wall clock's pace."""
        zone = tz or _aware(at).tzinfo or DEFAULT_TZ
        return cls(zone, _aware(at) - datetime.now(timezone.utc))

    def now(self) -> datetime:
        return (datetime.now(timezone.utc) + self.offset).astimezone(self.tz)

    def today(self) -> date:
        return self.now().date()

    def __repr__(self) -> str:
        return f"SystemClock({self.tz}, offset={self.offset})"


class FixedClock:
    """A clock that stands still at `at` until moved: for tests and one-shot commands."""

    def __init__(self, at: datetime, tz: tzinfo | None = None) -> None:
        self.tz = tz or _aware(at).tzinfo or DEFAULT_TZ
        self.at = _aware(at)

    def now(self) -> datetime:
        return self.at.astimezone(self.tz)

    def today(self) -> date:
        return self.now().date()

    def set(self, at: datetime) -> None:
        self.at = _aware(at)

    def advance(self, delta: timedelta | None = None, **parts: float) -> None:
        """Move forward by `delta` or by timedelta keywords, e.g. `advance(minutes=5)`."""
        self.at += (delta or timedelta(0)) + timedelta(**parts)

    def __repr__(self) -> str:
        return f"FixedClock({self.at.isoformat()})"


def wall_clock_seconds() -> float:
    """Real seconds since the epoch, for what a platform checks against its own clock."""
    return time.time()


def wall_clock_ms() -> int:
    """Real milliseconds since the epoch, for what a platform checks against its own clock."""
    return int(wall_clock_seconds() * 1000)


def monotonic_seconds() -> float:
    """Seconds on a clock that never jumps, for how long something waited in this process (not a time of day)."""
    return time.monotonic()
