"""The one clock: its kinds, and a scan that keeps every other wall-clock read out of the code."""

from __future__ import annotations

import ast
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from models.clock import FixedClock, SystemClock, wall_clock_ms

TZ = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "handlers", "models", "scheduler")
ALLOWED = {ROOT / "models" / "clock.py"}

# Attribute reads that tell the wall-clock time (monotonic time for timeouts is fine).
WALL_CLOCK_READS = {
    ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
    ("time", "time"), ("time", "time_ns"), ("func", "now"), ("func", "current_timestamp"),
}
SQL_NOW = re.compile(r"current_timestamp|(?<![\w.`])now\(\)", re.IGNORECASE)


def wall_clock_reads(source: str) -> list[str]:
    """`line: what` for every wall-clock read in Python source (calls, references, imports, SQL text)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            owner = node.value
            owner_name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
            if (owner_name, node.attr) in WALL_CLOCK_READS:
                found.append((node.lineno, f"{owner_name}.{node.attr}"))
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            found += [(node.lineno, f"from time import {a.name}") for a in node.names if a.name in {"time", "time_ns"}]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_NOW.search(node.value):
            found.append((node.lineno, f"SQL now in {node.value[:60]!r}"))
    return [f"{line}: {what}" for line, what in sorted(found)]


def test_the_scan_sees_every_kind_of_wall_clock_read() -> None:
    source = (
        "import time, datetime as dt\nfrom datetime import date, datetime\nfrom time import time as t\n"
        "a = datetime.now(tz)\nb = date.today()\nc = time.time()\nd = dt.datetime.utcnow()\n"
        "e = Callable = time.time\nf = sa.func.now()\ng = text('SELECT CURRENT_TIMESTAMP')\n"
        "h = 'where x < now()'\nok = engine.now(); ok2 = time.monotonic(); ok3 = clock.today()\n"
    )
    assert [line.split(":")[0] for line in wall_clock_reads(source)] == [
        "3", "4", "5", "6", "7", "8", "9", "10", "11",
    ]


def test_nothing_but_models_clock_reads_the_wall_clock() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{read}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path not in ALLOWED
        for read in wall_clock_reads(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, "read the time from an injected Clock (models/clock.py), not the wall clock:\n" + "\n".join(
        offenders
    )


def test_fixed_clock_stands_still_until_moved() -> None:
    clock = FixedClock(datetime(2023, 12, 31, 23, 30, tzinfo=TZ))
    assert clock.now() == datetime(2023, 12, 31, 23, 30, tzinfo=TZ) and clock.today() == date(2023, 12, 31)
    clock.advance(minutes=45)
    assert clock.now() == datetime(2024, 1, 1, 0, 15, tzinfo=TZ) and clock.today() == date(2024, 1, 1)
    clock.set(datetime(2024, 5, 1, 2, 0, tzinfo=timezone.utc))
    assert clock.now().utcoffset() == timedelta(hours=8) and clock.now().hour == 10


def test_today_is_the_date_in_the_clocks_zone_not_in_utc() -> None:
    late_evening_utc = datetime(2024, 2, 9, 17, 0, tzinfo=timezone.utc)  # already 2024-02-10 in Shanghai
    assert FixedClock(late_evening_utc, TZ).today() == date(2024, 2, 10)
    assert FixedClock(late_evening_utc).today() == date(2024, 2, 9)


def test_a_clock_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="zone-aware"):
        FixedClock(datetime(2024, 1, 1, 8, 0))
    with pytest.raises(ValueError, match="zone-aware"):
        SystemClock.starting_at(datetime(2024, 1, 1, 8, 0))


def test_system_clock_is_aware_in_its_zone_and_agrees_with_the_wall_clock() -> None:
    before = wall_clock_ms()
    now = SystemClock(TZ).now()
    after = wall_clock_ms()
    assert now.tzinfo is TZ
    assert before <= now.timestamp() * 1000 <= after + 1


def test_a_clock_started_at_another_instant_reads_it_and_runs_forward() -> None:
    start = datetime(2019, 3, 1, 9, 0, tzinfo=TZ)
    clock = SystemClock.starting_at(start)
    first = clock.now()
    second = clock.now()
    assert timedelta(0) <= first - start < timedelta(minutes=1)  # the wall clock's pace, not standing still
    assert second >= first and clock.today() == date(2019, 3, 1)
