"""A school's hazard numbers when reports are handled concurrently, fail, or meet a restarted database.

The number is taken last in the handling transaction (PostgreSQL: one statement with the hazard and its event),
so these pin what must not change with it: numbers stay gapless and per school.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine as DbEngine
from sqlalchemy import event, text
from sqlmodel import Session, col, select

from bot.engine import Engine
from handlers.messages import Attachment, Inbound
from models.clock import FixedClock
from models.db import PING_AFTER_IDLE_SECONDS, make_engine
from models.tables import AttachmentFile, Hazard
from tests.conftest import fresh_postgres_schema
from tests.school import START, make_config

BOOM = "boom"  # the message id whose handling the database refuses (see _refuse_boom)


def report(n: int, responsible: str = "王建国") -> str:
    """Distinct reports (the same one twice is asked about as a duplicate)."""
    return f"隐患\n部位：3号教学楼{n}室门口\n问题：消防通道堆放杂物\n责任人：{responsible}\n期限：12月10日"


def message(msg_id: str, n: int, *, group: str = "staff", sender: str = "zhang_wei") -> Inbound:
    text = report(n) if group == "staff" else report(n, "周涛")
    return Inbound(platform="console", msg_id=msg_id, chat_id=group, sender_id=sender, text=text, received_at=START)


@pytest.fixture
def postgres_url() -> Iterator[tuple[str, str]]:
    """A fresh schema: (URL, schema), the connections named after the schema (to find their backends)."""
    with fresh_postgres_schema() as schema:
        yield schema.base, schema.name


def _db(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, ping_after_idle: float = PING_AFTER_IDLE_SECONDS
) -> DbEngine:
    if kind == "sqlite":
        return make_engine(f"sqlite:///{tmp_path / 'test.db'}")
    url, schema = request.getfixturevalue("postgres_url")
    return make_engine(url, connect_args={"options": f"-csearch_path={schema}", "application_name": schema},
                       ping_after_idle=ping_after_idle)


def _engine(db: DbEngine, tmp_path: Path) -> Engine:
    return Engine(config=make_config(), db=db, data_dir=tmp_path / "data", clock=FixedClock(START))


def _refuse_boom(db: DbEngine) -> None:
    """The database refuses to mark message BOOM handled: its handling transaction rolls back at the end,
    after its number was taken (a failing database, not a fake of our code)."""
    with db.begin() as connection:
        if db.dialect.name == "sqlite":
            connection.execute(text(
                "CREATE TRIGGER refuse_boom BEFORE UPDATE OF state ON inbound_message "
                f"WHEN NEW.state = 'handled' AND NEW.platform_msg_id = '{BOOM}' BEGIN SELECT RAISE(ABORT, 'boom'); END"
            ))
            return
        connection.execute(text(
            "CREATE FUNCTION refuse_boom() RETURNS trigger AS $$ BEGIN "
            f"IF NEW.state = 'handled' AND NEW.platform_msg_id = '{BOOM}' THEN RAISE EXCEPTION 'boom'; END IF; "
            "RETURN NEW; END $$ LANGUAGE plpgsql"
        ))
        connection.execute(text(
            "CREATE TRIGGER refuse_boom BEFORE UPDATE ON inbound_message FOR EACH ROW EXECUTE FUNCTION refuse_boom()"
        ))


def _numbers(db: DbEngine, school: str = "school") -> list[int]:
    with Session(db) as session:
        return list(session.exec(
            select(Hazard.number).where(Hazard.school_id == school).order_by(col(Hazard.number))
        ))


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_handling_transaction_that_rolls_back_after_taking_its_number_burns_none(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = _db(kind, tmp_path, request)
    engine = _engine(db, tmp_path)
    engine.start()
    _refuse_boom(db)
    try:
        # the school's first number (no counter row yet), then the next one (PostgreSQL: the one-statement path)
        assert "出了问题" in engine.handle_sync(message(BOOM, 1))[0].text
        assert "已登记隐患 #1" in engine.handle_sync(message("m2", 2))[0].text
        with db.begin() as connection:  # frees the id, to be refused once more
            connection.execute(text(f"UPDATE inbound_message SET platform_msg_id = 'was-{BOOM}' WHERE platform_msg_id = '{BOOM}'"))
        assert "出了问题" in engine.handle_sync(message(BOOM, 3))[0].text
        assert "已登记隐患 #2" in engine.handle_sync(message("m4", 4))[0].text
        assert _numbers(db) == [1, 2]
    finally:
        db.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_concurrent_reports_of_one_school_get_distinct_consecutive_numbers(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Two handler processes (two engines, each its own pool) with four threads each, from the school's first
    number on (whose counter row two of them may create at once); the other school keeps its own numbers."""
    dbs = [_db(kind, tmp_path, request) for _ in range(2)]
    engines = [_engine(db, tmp_path) for db in dbs]
    engines[0].start()
    per_thread = 6
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def handle(engine: Engine, worker: int) -> None:
        try:
            start.wait()
            for k in range(per_thread):
                n = worker * 100 + k
                msg = message(f"w{worker}-{k}", n)
                if k == 0:  # a report of the other school now and then
                    msg = message(f"s2-{worker}", n, group="s2", sender="zhou_tao")
                replies = engine.handle_sync(msg)
                assert replies and "已登记隐患" in replies[0].text, replies
        except Exception as exc:  # noqa: BLE001  (any failure in a thread is reported by the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=handle, args=(engines[w % 2], w)) for w in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors[0]
        assert _numbers(dbs[0]) == list(range(1, 8 * (per_thread - 1) + 1))
        assert _numbers(dbs[0], "school2") == list(range(1, 9))
    finally:
        for db in dbs:
            db.dispose()


def test_the_first_message_after_a_postgres_restart_is_handled(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The server closed every connection of the pool (a restart): within the pool's idle time no ping notices,
    and the handling is tried again on a fresh connection; past it, the ping replaces the connection first."""
    for idle in (3600.0, 0.0):
        db = _db("postgres", tmp_path, request, ping_after_idle=idle)
        engine = _engine(db, tmp_path)
        try:
            engine.start()
            first = engine.record(message(f"before-{idle}", int(idle) + 1))
            assert "已登记" in engine.process(message(f"before-{idle}", int(idle) + 1), first.inbound_id)[0].text
            after = engine.record(message(f"after-{idle}", int(idle) + 2))
            _, schema = request.getfixturevalue("postgres_url")
            with make_engine(os.environ["TEST_DATABASE_URL"]).begin() as admin:
                closed = admin.execute(text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :name"
                ), {"name": schema}).scalar_one()
            assert closed >= 1
            replies = engine.process(message(f"after-{idle}", int(idle) + 2), after.inbound_id)
            assert "已登记" in replies[0].text, replies
        finally:
            db.dispose()


def test_a_report_with_no_photo_or_draft_waiting_reads_neither_and_one_with_them_takes_both(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The claim says whether any photo waits and whether a draft is kept in the chat; only then are they read."""
    db = _db("sqlite", tmp_path, request)
    engine = _engine(db, tmp_path)
    engine.start()
    statements: list[str] = []
    event.listen(db, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        assert "已登记隐患 #1" in engine.handle_sync(message("m1", 1))[0].text
        touched = [s for s in statements if "pending_photo" in s or "report_draft" in s]
        assert len(touched) == 1 and touched[0].startswith("UPDATE inbound_message")  # the claim alone
        doubtful = "隐患\n部位：食堂后门\n问题：灭火器过期\n责任人：王小明"  # no such person: asked, kept as a draft
        asked = Inbound(platform="console", msg_id="m2", chat_id="staff", sender_id="zhang_wei", text=doubtful,
                        received_at=START)
        assert "还没有登记" in engine.handle_sync(asked)[0].text
        photo = Attachment(filename="a.png", content_type="image/png", data=b"\x89PNG")
        lone = Inbound(platform="console", msg_id="m3", chat_id="staff", sender_id="zhang_wei", text="",
                       received_at=START, attachments=(photo,))
        assert "收到1张照片" in engine.handle_sync(lone)[0].text
        reply = engine.handle_sync(message("m4", 4))[0].text
        assert "已登记隐患 #2" in reply and "已附上刚才的1张照片" in reply and "已作废" in reply, reply
        with Session(db) as session:
            assert len(session.exec(select(AttachmentFile)).all()) == 1  # the lone photo went with a hazard
    finally:
        db.dispose()
