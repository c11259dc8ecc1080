"""Ledger at scale: 1,000,000 hazards over 5,000 units (a bureau, 250 schools and their departments).

Targets: one group's digest < 50 ms, all 500 groups' digests < 10 s, the statistics export < 30 s.
The digests are composed exactly as the ticker composes them (scheduler.messages.compose, one session
per push), without the chart; the chart (SQL + render) is timed separately. PostgreSQL gets a fresh
schema that is dropped afterwards; SQLite a temporary file.
Run: python bench/ledger_scale.py [--hazards 1000000] [--units 5000] [--db both|postgres|sqlite]
     [--postgres-url postgresql+psycopg://root@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine as DbEngine  # noqa: E402
from sqlalchemy import text, update  # noqa: E402
from sqlmodel import Session  # noqa: E402

from bot.config import Config, parse_config  # noqa: E402
from bot.engine import Engine  # noqa: E402
from handlers.charts import render_outstanding_chart  # noqa: E402
from handlers.exports import export_workbook  # noqa: E402
from models.db import make_engine  # noqa: E402
from models.ledger import descendants  # noqa: E402
from models.reports import chart_data  # noqa: E402
from models.tables import CampaignRow, DuePush  # noqa: E402
from scheduler.messages import ComposeSettings, Composed, compose  # noqa: E402
from bot.services import build_pushes  # noqa: E402
from scheduler.ticker import Ticker  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
CAMPAIGN = "bench"
START = date(2025, 9, 1)
END = date(2026, 6, 30)
NOW = datetime(2026, 1, 14, 8, 30, tzinfo=TZ)  # a Wednesday: leader digests at 08:00, overdue digests at 08:30
DEPARTMENTS = (
    "安全保卫处", "总务处", "教务处", "学生处", "食堂", "图书馆", "信息中心", "体育组", "实验室", "宿舍管理科",
    "校医室", "团委", "办公室", "财务室", "德育处", "科研处", "工会", "年级组", "后勤服务中心", "保安队",
)
CATEGORIES = (("消防", 30), ("用电", 20), ("建筑", 10), ("设施设备", 12), ("食品", 8), ("交通", 5), ("燃气", 4),
              ("实验室", 3), ("校园安防", 5), ("其他", 3))
PROBLEMS = (
    ("一楼东侧走廊", "消防通道堆放杂物，应急照明灯损坏"), ("配电室", "配电箱未上锁，线路老化"),
    ("三楼卫生间", "吊顶渗水，墙皮脱落"), ("操场", "篮球架底座松动"), ("食堂后厨", "燃气管道无报警装置"),
    ("校门口", "防冲撞设施缺失"), ("宿舍楼", "私拉乱接电线给电动车充电"), ("实验楼", "危化品柜未双人双锁"),
)
TARGETS = {"one_digest": 0.050, "all_digests": 10.0, "statistics_export": 30.0}
HAZARD_COLUMNS = (
    "campaign_id", "number", "unit_id", "location", "check_item", "problem", "measure", "completion",
    "responsible_name", "responsible_id", "reporter_id", "category", "level", "building_id", "immediate",
    "closed_building", "deadline", "status", "found_at", "rectified_at", "closed_at", "remark",
)


@dataclass(slots=True)
class Layout:
    """The unit tree and who reports in it, as the config describes them."""

    schools: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)  # every unit that owns hazards (schools and departments)
    head: dict[str, str] = field(default_factory=dict)  # unit id -> unit head's person id
    reporter: dict[str, str] = field(default_factory=dict)  # unit id -> a teacher of its school


def build_config(url: str, units: int) -> tuple[Config, Layout]:
    """A bureau, units/20 schools, departments up to `units`; a staff and a leaders group per school."""
    schools = max(1, units // 20)
    departments = max(0, units - 1 - schools)
    layout = Layout()
    unit_rows: list[dict[str, Any]] = [{"id": "bureau", "name": "市教育局"}]
    people: list[dict[str, Any]] = [{"id": "admin", "name": "管理员", "unit": "bureau", "roles": ["admin", "leader"]}]
    groups: list[dict[str, Any]] = []
    for s in range(schools):
        school = f"s{s}"
        layout.schools.append(school)
        unit_rows.append({"id": school, "name": f"第{s + 1}学校", "parent": "bureau"})
        people += [
            {"id": f"{school}h", "name": f"校长{s}", "unit": school, "roles": ["unit_head", "leader"]},
            {"id": f"{school}t", "name": f"教师{s}", "unit": school, "roles": ["teacher"]},
        ]
        own = [school]
        for d in range(departments // schools + (1 if s < departments % schools else 0)):
            unit = f"{school}d{d}"
            name = DEPARTMENTS[d % len(DEPARTMENTS)] + ("" if d < len(DEPARTMENTS) else str(d // len(DEPARTMENTS) + 1))
            unit_rows.append({"id": unit, "name": name, "parent": school})
            people.append({"id": f"{unit}h", "name": f"{name}主任{s}_{d}", "unit": unit,
                           "roles": ["unit_head", "safety_officer"] if d == 0 else ["unit_head"]})
            own.append(unit)
        for unit in own:
            layout.units.append(unit)
            layout.head[unit] = f"{unit}h"
            layout.reporter[unit] = f"{school}t"
        groups += [
            {"id": f"{school}-staff", "name": f"第{s + 1}学校安全工作群", "platform": "console", "kind": "staff",
             "units": [school], "campaign": CAMPAIGN},
            {"id": f"{school}-leaders", "name": f"第{s + 1}学校安全领导群", "platform": "console", "kind": "leaders",
             "units": [school], "campaign": CAMPAIGN},
        ]
    config = parse_config({
        "timezone": "Asia/Shanghai",
        "database": {"url": url},
        "scheduler": {"charts_in_digests": True},
        "campaigns": [{
            "id": CAMPAIGN, "name": "2025—2026学年冬春校园安全隐患排查整治", "start": START, "end": END,
            "reporting": {"every_days": 10, "first": date(2025, 9, 10), "at": "17:00"},
            "phases": [{"name": "自查自改", "start": START, "end": date(2026, 4, 20), "deliverable": "隐患清单全部整改销号"}],
        }],
        "units": unit_rows,
        "people": people,
        "groups": groups,
    })
    return config, layout


def hazard_rows(layout: Layout, count: int) -> Iterator[tuple[Any, ...]]:
    """`count` hazards in HAZARD_COLUMNS order: status follows age, ~1% 重大, most with a responsible head."""
    rng = random.Random(20260114)
    now_utc = NOW.astimezone(timezone.utc)
    first = datetime.combine(START, datetime.min.time(), TZ).astimezone(timezone.utc)
    span = int((now_utc - first).total_seconds())
    names, weights = zip(*CATEGORIES)
    categories = rng.choices(names, weights, k=4096)
    units = layout.units
    for number in range(1, count + 1):
        unit = units[rng.randrange(len(units))]
        found = first + timedelta(seconds=rng.randrange(span))
        age = (now_utc - found).days
        major = rng.random() < 0.01
        deadline = (found.astimezone(TZ) + timedelta(days=30 if major else 7)).date()
        roll = rng.random()
        if roll < 0.02:
            status = "withdrawn"
        elif age <= 7:
            status = "rectifying" if roll < 0.7 else "rectified" if roll < 0.85 else "closed"
        elif age <= 30:
            status = "rectifying" if roll < 0.3 else "rectified" if roll < 0.45 else "closed"
        else:
            status = "rectifying" if roll < 0.06 else "rectified" if roll < 0.10 else "closed"
        rectified = found + timedelta(hours=rng.randrange(2, 24 * 7)) if status in ("rectified", "closed") else None
        closed = rectified + timedelta(hours=rng.randrange(1, 48)) if status == "closed" and rectified else None
        location, problem = PROBLEMS[number % len(PROBLEMS)]
        responsible = layout.head[unit] if roll < 0.8 else None
        yield (
            CAMPAIGN, number, unit, location, "安全隐患排查", problem, "立即整改" if number % 3 else "", "",
            "主任" if responsible else "", responsible, layout.reporter[unit], categories[number % 4096],
            "重大" if major else "一般", None, number % 3 != 0, False, deadline, status, found, rectified, closed, "",
        )


def _sqlite_value(value: Any) -> Any:
    """The text SQLAlchemy's SQLite types store (DATETIME with microseconds, DATE, booleans as 0/1)."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


def insert_hazards(db: DbEngine, layout: Layout, count: int) -> None:
    """Bulk load: COPY on PostgreSQL, executemany in 50,000-row transactions on SQLite; then VACUUM/ANALYZE."""
    raw = db.raw_connection()
    try:
        connection: Any = raw.driver_connection
        columns = ", ".join(HAZARD_COLUMNS)
        if db.dialect.name == "postgresql":
            with connection.cursor() as cursor:
                with cursor.copy(f"COPY hazard ({columns}) FROM STDIN") as copy:
                    for row in hazard_rows(layout, count):
                        copy.write_row(row)
            connection.commit()
        else:
            statement = f"INSERT INTO hazard ({columns}) VALUES ({', '.join('?' * len(HAZARD_COLUMNS))})"
            batch: list[tuple[Any, ...]] = []
            for row in hazard_rows(layout, count):
                batch.append(tuple(_sqlite_value(value) for value in row))
                if len(batch) == 50_000:
                    connection.executemany(statement, batch)
                    connection.commit()
                    batch = []
            connection.executemany(statement, batch)
            connection.commit()
    finally:
        raw.close()
    with db.begin() as conn:
        conn.execute(update(CampaignRow).where(CampaignRow.id == CAMPAIGN).values(next_number=count + 1))
    # A ledger built up over months has been vacuumed by autovacuum (PostgreSQL's index-only scans need
    # the visibility map it sets); a bulk load has not, so do it here. SQLite only needs statistics.
    with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE hazard" if db.dialect.name == "postgresql" else "ANALYZE"))


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


def due_push(planned: Any) -> DuePush:
    """The due-push row the ticker would hand to compose() (not stored)."""
    return DuePush(
        key=planned.key, kind=planned.kind, campaign_id=planned.campaign_id, group_id=planned.group_id,
        due_at=planned.due_at, send_at=planned.send_at,
        payload=json.dumps(dict(planned.payload), ensure_ascii=False, sort_keys=True), created_at=NOW,
    )


def compose_one(db: DbEngine, push: DuePush, settings: ComposeSettings) -> Composed:
    """One push composed in its own session, as Ticker.send_due does."""
    with Session(db) as session:
        composed = compose(session, push, now=NOW, settings=settings)
    assert composed.skip_reason is None, composed.skip_reason
    return composed


def median_of(runs: int, action: Callable[[], Any]) -> tuple[float, float]:
    """(first run, median of the following `runs`)."""
    first, _ = timed(action)
    return first, statistics.median(timed(action)[0] for _ in range(runs))


@dataclass(slots=True)
class Figures:
    setup: dict[str, float] = field(default_factory=dict)
    rows: list[tuple[str, float, float | None, str]] = field(default_factory=list)  # name, seconds, target, note


def measure(db: DbEngine, config: Config, layout: Layout, hazards: int, runs: int) -> Figures:
    figures = Figures()
    t, _ = timed(lambda: Engine(config=config, db=db, data_dir=Path(tempfile.gettempdir()) / "safetybot-bench").start())
    figures.setup["migrate + sync config"] = t
    t, _ = timed(lambda: insert_hazards(db, layout, hazards))
    figures.setup[f"load {hazards:,} hazards"] = t

    today = NOW.date()
    planned = [
        p for p in Ticker(config=config, db=db, enqueue_push=build_pushes(config).enqueue_push).planned(NOW)
        if p.kind in ("leader_digest", "overdue_digest") and p.due_at.date() == today
    ]
    pushes = [due_push(p) for p in planned]
    school = layout.schools[0]
    leader = next(p for p in pushes if p.group_id == f"{school}-leaders" and p.kind == "leader_digest")
    overdue = next(p for p in pushes if p.group_id == f"{school}-staff" and p.kind == "overdue_digest")
    plain = ComposeSettings(charts_in_digests=False)

    first, median = median_of(runs, lambda: compose_one(db, leader, plain))
    figures.rows.append(("one group: leader digest (no chart)", median, TARGETS["one_digest"], f"first {first * 1000:.0f} ms"))
    first, median = median_of(runs, lambda: compose_one(db, overdue, plain))
    figures.rows.append(("one group: overdue digest", median, TARGETS["one_digest"], f"first {first * 1000:.0f} ms"))

    campaign = _campaign(db)
    with Session(db) as session:
        scope = descendants(session, [school])
        sql, data = timed(lambda: chart_data(session, campaign=campaign, unit_ids=scope, now=NOW, scope_name=school))
    render, _ = timed(lambda: render_outstanding_chart(data))
    figures.rows.append(("one group: chart SQL (not in digest)", sql, None, f"render {render * 1000:.0f} ms more"))

    t, _ = timed(lambda: [compose_one(db, push, plain) for push in pushes])
    kinds = {k: sum(p.kind == k for p in pushes) for k in ("leader_digest", "overdue_digest")}
    note = f"{kinds['leader_digest']} leader + {kinds['overdue_digest']} overdue"
    figures.rows.append((f"all groups: {len(pushes)} digests (no chart)", t, TARGETS["all_digests"], note))

    with Session(db) as session:
        t, result = timed(lambda: export_workbook(
            session, campaign=campaign, forms=["statistics"], unit_ids=None, unit_name="市教育局", on=today,
        ))
    figures.rows.append(("statistics export (all units)", t, TARGETS["statistics_export"], f"{len(result.data) / 1024:.0f} KB"))
    return figures


def _campaign(db: DbEngine) -> CampaignRow:
    with Session(db, expire_on_commit=False) as session:
        campaign = session.get(CampaignRow, CAMPAIGN)
        assert campaign is not None
        return campaign


def run_postgres(url: str, config_for: Callable[[str], tuple[Config, Layout]], hazards: int, runs: int) -> Figures:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        config, layout = config_for(url)
        return measure(db, config, layout, hazards, runs)
    finally:
        db.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run_sqlite(config_for: Callable[[str], tuple[Config, Layout]], hazards: int, runs: int) -> Figures:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        db = make_engine(url)
        try:
            config, layout = config_for(url)
            return measure(db, config, layout, hazards, runs)
        finally:
            db.dispose()


def report(name: str, figures: Figures) -> bool:
    print(f"\n== {name} ==")
    for label, seconds in figures.setup.items():
        print(f"  setup: {label:<36}{seconds:>8.1f} s")
    print(f"  {'measure':<44}{'time':>10}{'target':>10}  result  note")
    ok = True
    for label, seconds, target, note in figures.rows:
        shown = f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
        if target is None:
            verdict, goal = "  -   ", ""
        else:
            passed = seconds < target
            ok &= passed
            verdict, goal = ("  pass" if passed else "  FAIL"), (f"{target * 1000:.0f} ms" if target < 1 else f"{target:.0f} s")
        print(f"  {label:<44}{shown:>10}{goal:>10}{verdict}  {note}")
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hazards", type=int, default=1_000_000)
    parser.add_argument("--units", type=int, default=5_000)
    parser.add_argument("--db", choices=("both", "postgres", "sqlite"), default="both")
    parser.add_argument("--postgres-url", default="postgresql+psycopg://root@127.0.0.1:5432/test")
    parser.add_argument("--runs", type=int, default=5, help="timed repetitions of the one-group digests (median)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    t, (_, layout) = timed(lambda: build_config("sqlite://", args.units))
    print(f"{args.hazards:,} hazards over {len(layout.units) + 1:,} units ({len(layout.schools)} schools, "
          f"{2 * len(layout.schools)} groups); config validated in {t:.1f} s")
    ok = True
    if args.db in ("both", "postgres"):
        ok &= report("PostgreSQL", run_postgres(args.postgres_url, lambda url: build_config(url, args.units), args.hazards, args.runs))
    if args.db in ("both", "sqlite"):
        ok &= report("SQLite", run_sqlite(lambda url: build_config(url, args.units), args.hazards, args.runs))
    print(f"\ntotal {time.perf_counter() - started:.0f} s; {'all targets met' if ok else 'some targets missed'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
