"""One ticking process: the PostgreSQL advisory lock, the SQLite file lock, and the runner that waits for it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine as DbEngine

from bot.services import build_pushes
from scheduler.leader import FileLeaderLock, PostgresLeaderLock, leader_lock_for, lock_key
from scheduler.runner import JOB_ID, SchedulerService
from tests.scheduler.conftest import TZ, at, seed002_config, start_engine


def test_file_lock_admits_one_leader_at_a_time(tmp_path: Path) -> None:
    first, second = FileLeaderLock(tmp_path / "s.lock"), FileLeaderLock(tmp_path / "s.lock")
    assert first.try_acquire()
    assert not second.try_acquire()
    assert first.still_held() and not second.still_held()
    first.release()
    assert second.try_acquire()
    second.release()


def test_sqlite_gets_a_lock_file_next_to_the_database(sqlite_engine: DbEngine, tmp_path: Path) -> None:
    lock = leader_lock_for(sqlite_engine, data_dir=tmp_path / "data")
    assert isinstance(lock, FileLeaderLock)
    assert lock.path == tmp_path / "ledger.db.scheduler.lock"


def test_lock_key_is_stable_and_fits_bigint() -> None:
    assert lock_key() == lock_key("safetybot-scheduler")
    assert -(2**63) <= lock_key() < 2**63


def test_postgres_advisory_lock_admits_one_leader(postgres_engine: DbEngine) -> None:
    assert isinstance(leader_lock_for(postgres_engine, data_dir=Path("unused")), PostgresLeaderLock)
    # A name of its own: other test runs may share this PostgreSQL server (advisory locks are server-wide).
    name = f"test-{uuid.uuid4().hex}"
    first, second = PostgresLeaderLock(postgres_engine, name=name), PostgresLeaderLock(postgres_engine, name=name)
    try:
        assert first.try_acquire()
        assert first.try_acquire()  # idempotent while held
        assert not second.try_acquire()
        assert first.still_held()
        first.release()  # NullPool: the connection really closes, so the lock is gone
        assert second.try_acquire()
    finally:
        first.dispose()
        second.dispose()


def test_postgres_lock_is_released_when_its_connection_dies(postgres_engine: DbEngine) -> None:
    name = f"test-{uuid.uuid4().hex}"
    first, second = PostgresLeaderLock(postgres_engine, name=name), PostgresLeaderLock(postgres_engine, name=name)
    try:
        assert first.try_acquire()
        first._connection.invalidate()  # type: ignore[union-attr]  (the server side is closed: a crash)
        assert not first.still_held()
        assert second.try_acquire()
    finally:
        first.dispose()
        second.dispose()


def test_runner_ticks_only_as_leader_with_the_configured_zone(tmp_path: Path, sqlite_engine: DbEngine) -> None:
    config = seed002_config()
    start_engine(config, sqlite_engine, tmp_path / "data")
    clock = lambda: at("2018-11-26 17:00")  # noqa: E731
    lock_path = tmp_path / "leader.lock"
    leader = SchedulerService(config=config, db=sqlite_engine, clock=clock, data_dir=tmp_path,
                              enqueue_push=build_pushes(config).enqueue_push,
                              lock=FileLeaderLock(lock_path), retry_seconds=0.05, first_tick_after=0)
    follower = SchedulerService(config=config, db=sqlite_engine, clock=clock, data_dir=tmp_path,
                                enqueue_push=build_pushes(config).enqueue_push,
                                lock=FileLeaderLock(lock_path), retry_seconds=0.05)
    kicked: list[bool] = []
    leader.on_sent = lambda: kicked.append(True)

    async def scenario() -> None:
        tasks = [asyncio.create_task(leader.run())]
        for _ in range(200):  # wait (bounded) for the first tick, which runs at start
            await asyncio.sleep(0.01)
            if kicked:
                break
        tasks.append(asyncio.create_task(follower.run()))
        await asyncio.sleep(0.2)
        assert leader.leading and not follower.leading
        job = leader._scheduler.get_job(JOB_ID)  # type: ignore[union-attr]
        assert str(leader._scheduler.timezone) == "Asia/Shanghai"  # type: ignore[union-attr]
        assert job.trigger.interval.total_seconds() == config.scheduler.tick_seconds
        leader.wake()
        await asyncio.sleep(0.05)
        assert job.next_run_time <= datetime.now(TZ) + timedelta(seconds=3)  # woken: ticks in ~2 s, not a minute
        tasks[0].cancel()  # the leader stops: the follower takes over within a retry
        for _ in range(200):
            await asyncio.sleep(0.01)
            if follower.leading:
                break
        assert follower.leading
        tasks[1].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(scenario())
    assert kicked  # the first tick sent the 11-26 reminders and woke the outbox sender
