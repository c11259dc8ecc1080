"""Handling cost: CPU milliseconds and SQL statements per report, through the real `Engine`.

Run from the repository root:  .venv/bin/python bench/handling_cost.py [--reports 300] [--profile]
PostgreSQL is measured too when --postgres URL (or TEST_DATABASE_URL) is given (a throw-away schema).

Each report is what a handler process does for one WeCom AI-bot callback: the callback is recorded
(`Engine.record_many`, as the web process does before acknowledging it), then `Engine.process` claims
it, identifies the sender, parses, files the hazard and stores the replies as one outbox row (WeCom
renders them when the row is sent, which this does not measure). Only `process` is measured. CPU is
`time.process_time` (this process only: the PostgreSQL server's work is not in it), so the figure holds on
a machine shared with other work;
statements are counted with a SQLAlchemy `before_cursor_execute` listener (each executemany counts once).
`--profile` prints the top of a cProfile of the measured loop. `--open N` first files N more open hazards in
the reports' school (at other rooms of the same building, as the reports are), to show what the duplicate
check costs as a school's open hazards grow. `--hold N` then handles as many reports again with N threads
at once (one process) and times how long each holds the school's number counter row: from the end of the
statement that takes the number (`hazard_counter`) to the end of its COMMIT, which every other report of the
school waits for; it prints the median and p90 and the share of the wall time the row was held.
`--runtime` measures what a handler process does per message instead (bot/handler_process.py): `Runtime.work`
with the message's id, awaited on one event loop, which reads the recorded message, hands it to a worker thread
and handles it there, as the end-to-end figure of `callback_throughput.py` counts it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from sqlalchemy import event  # noqa: E402
from sqlalchemy.orm import Session as SASession
from sqlmodel import Session, col, select  # noqa: E402

from bench.callback_throughput import drop_postgres_schema, fresh_postgres_schema  # noqa: E402
from bot.config import parse_config  # noqa: E402
from bot.secrets import Secrets  # noqa: E402
from bot.services import build_services  # noqa: E402
from handlers.messages import Inbound  # noqa: E402
from models.ledger import next_hazard_number  # noqa: E402
from models.tables import Hazard  # noqa: E402
from models.clock import FixedClock  # noqa: E402
from tests.bot.test_wecom import CHAT, REPORT, SECRET_ENV, wecom_toml  # noqa: E402
from tests.conftest import CAMPAIGN_NOW, EXAMPLE_CONFIG, with_local_storage  # noqa: E402

import tomllib  # noqa: E402

WARMUP = 20
TARGET_CPU_MS = 3.0


@dataclass(frozen=True, slots=True)
class _FakeEndpoints:
    """Where the config says WeCom is: nothing is sent (the outbox sender is never started)."""

    base_url: str = "http://127.0.0.1:9"
    ws_url: str = "ws://127.0.0.1:9/ws"


@dataclass(frozen=True, slots=True)
class Figures:
    target: str
    reports: int
    cpu_ms: float
    statements: float
    wall_ms: float
    hold: tuple[int, float, float, float] | None = None  # threads, median ms, p90 ms, held share of the wall time


def _config_text(db_url: str, data_dir: str) -> str:
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8") + wecom_toml(_FakeEndpoints())  # type: ignore[arg-type]
    return with_local_storage(text, db_url=db_url, data_dir=data_dir)


def room(n: int) -> str:
    return f"3号教学楼{n}室门口"


def distinct_report(n: int) -> str:
    """REPORT at room n: the same report twice is asked about as a duplicate (kept as a draft), not filed."""
    return REPORT.replace("3号教学楼二楼东侧", room(n))


def seed_open_hazards(db: Any, n: int) -> None:
    """N open hazards like the last one filed (same school, reporter, problem), each at a room no report names."""
    with Session(db) as session:
        last = session.exec(select(Hazard).order_by(col(Hazard.id).desc())).first()
        assert last is not None, "seeding copies a hazard the warm-up filed"
        keep = last.model_dump(exclude={"id", "number", "location", "place_numbers", "place_head"})
        for k in range(n):
            number = next_hazard_number(session, last.campaign_id, last.school_id)
            session.add(Hazard(**keep, number=number, location=room(100_000 + k)))
        session.commit()


def measure_hold(db: Any, handle: Any, batch: list[tuple[Inbound, int]], threads: int) -> tuple[float, float, float]:
    """Handle `batch` with `threads` threads; each report's hold of the counter row, from the end of the statement
    that takes the number to the end of the COMMIT: (median ms, p90 ms, sum of holds / wall time)."""
    local = threading.local()
    holds: list[float] = []

    def taken(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if "hazard_counter" in statement and getattr(local, "since", None) is None:
            local.since = time.perf_counter()

    def committed(_session: Any) -> None:
        since, local.since = getattr(local, "since", None), None
        if since is not None:
            holds.append((time.perf_counter() - since) * 1000)

    def rolled_back(_session: Any) -> None:
        local.since = None

    event.listen(db, "after_cursor_execute", taken)
    event.listen(SASession, "after_commit", committed)
    event.listen(SASession, "after_rollback", rolled_back)
    wall = time.perf_counter()
    try:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda item: handle(*item), batch))
    finally:
        wall = time.perf_counter() - wall
        event.remove(db, "after_cursor_execute", taken)
        event.remove(SASession, "after_commit", committed)
        event.remove(SASession, "after_rollback", rolled_back)
    assert len(holds) == len(batch), f"{len(holds)} holds timed for {len(batch)} reports"
    return statistics.median(holds), statistics.quantiles(holds, n=10)[-1], sum(holds) / 1000 / wall


def measure(
    target: str, db_url: str, data_dir: str, reports: int, *, profile: bool, open_hazards: int = 0, hold: int = 0,
    runtime: bool = False,
) -> Figures:
    config = parse_config(tomllib.loads(_config_text(db_url, data_dir)))
    clock = FixedClock(datetime.fromisoformat(CAMPAIGN_NOW))
    services = build_services(config, Secrets(environ=dict(SECRET_ENV)), clock)
    engine = services.engine
    db = engine.db  # handling's engine (on SQLite, recording uses its own `journal` engine)
    engine.start()

    statements = 0

    def count(*_args: Any) -> None:
        nonlocal statements
        statements += 1

    route = {
        "chat_id": CHAT, "group_id": "wecom-staff", "mode": "response_url", "channel": "response_url",
        "robot": f"wecom:aibot:aibot:{CHAT}", "bot": "aibot", "response_url": "http://127.0.0.1:9/response",
    }

    def one_batch(prefix: str, first: int, n: int) -> list[tuple[Inbound, int]]:
        messages = [
            Inbound(platform="wecom", msg_id=f"{prefix}-{i}", chat_id=CHAT, sender_id="ZhangWei",
                    text=distinct_report(first + i), received_at=engine.now(), sender_name="张伟")
            for i in range(n)
        ]
        recorded = engine.record_many([(msg, route) for msg in messages])
        return [(msg, int(r.inbound_id)) for msg, r in zip(messages, recorded, strict=True) if r.inbound_id is not None]

    for msg, inbound_id in one_batch("warm", 100, WARMUP):
        replies = engine.process(msg, inbound_id)
        assert replies and "已登记" in replies[0].text, f"a report was not filed: {replies}"
        clock.advance(seconds=1)
    if open_hazards:
        seed_open_hazards(db, open_hazards)
    batch = one_batch("run", 100 + WARMUP, reports)
    event.listen(db, "before_cursor_execute", count)
    profiler = cProfile.Profile(time.process_time) if profile else None  # CPU, not wall: the machine is shared
    wall = time.perf_counter()
    cpu = time.process_time()
    if profiler:
        profiler.enable()
    if runtime:
        asyncio.run(_work_all(services.runtime, [inbound_id for _msg, inbound_id in batch]))
    else:
        for msg, inbound_id in batch:
            engine.process(msg, inbound_id)
    if profiler:
        profiler.disable()
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    event.remove(db, "before_cursor_execute", count)
    if profiler:
        print(f"--- cProfile, {target} ---")
        stats = pstats.Stats(profiler).sort_stats("cumulative")
        stats.print_stats(25)  # the whole stack
        stats.print_stats(str(REPO_ROOT), 40)  # our own functions
    held = None
    if hold:
        median, p90, share = measure_hold(db, engine.process, one_batch("hold", 100 + WARMUP + reports, reports), hold)
        held = (hold, median, p90, share)
    db.dispose()
    return Figures(target, len(batch), cpu * 1000 / len(batch), statements / len(batch), wall * 1000 / len(batch), held)


async def _work_all(runtime: Any, ids: list[int]) -> None:
    """Handle recorded messages one after another as a handler process does (`Runtime.work`: thread hops included)."""
    for inbound_id in ids:
        assert await runtime.work(inbound_id), f"inbound message {inbound_id} got no reply"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=300)
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL", ""))
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile of the measured loop")
    parser.add_argument("--open", type=int, default=0, help="open hazards filed in the school before measuring")
    parser.add_argument("--hold", type=int, default=0, metavar="THREADS",
                        help="then time the number counter row's hold with this many threads handling at once")
    parser.add_argument("--runtime", action="store_true",
                        help="measure Runtime.work by message id (a handler process's whole path), not Engine.process")
    args = parser.parse_args()
    results: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="handling-cost-") as tmp:
        if args.only != "postgres":
            results.append(measure("SQLite", f"sqlite:///{tmp}/bench.db", f"{tmp}/data-sqlite", args.reports,
                                   profile=args.profile, open_hazards=args.open, hold=args.hold,
                                   runtime=args.runtime))
        if args.postgres and args.only != "sqlite":
            pg_url, schema = fresh_postgres_schema(args.postgres)
            try:
                results.append(measure("PostgreSQL", pg_url, f"{tmp}/data-pg", args.reports, profile=args.profile,
                                       open_hazards=args.open, hold=args.hold, runtime=args.runtime))
            finally:
                drop_postgres_schema(args.postgres, schema)
    print(f"{'target':<12} {'reports':>7} {'CPU ms/report':>14} {'statements/report':>18} {'wall ms/report':>15}")
    for f in results:
        print(f"{f.target:<12} {f.reports:>7} {f.cpu_ms:>14.2f} {f.statements:>18.1f} {f.wall_ms:>15.2f}")
    for f in results:
        if f.hold is not None:
            threads, median, p90, share = f.hold
            print(f"{f.target}: number row held {median:.2f} ms median, {p90:.2f} ms p90 per report "
                  f"({threads} threads; held {share:.0%} of the wall time)")
    print(f"measured: {'Runtime.work (a handler process per message)' if args.runtime else 'Engine.process'}")
    print(f"target: ≤ {TARGET_CPU_MS} ms of CPU per report")
    return 0


if __name__ == "__main__":
    sys.exit(main())
