"""Handler processes: recorded messages are handled in another process, which is replaced when it dies."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import anyio
from sqlmodel import Session, func, select

from bot.config import load_config
from bot.engine import Engine
from bot.handler_process import HandlerPool, run_handler_process
from handlers.messages import Inbound
from models.db import make_engine
from models.tables import Hazard, InboundMessage
from tests.school import REPORT


def _engine(config_path: Path) -> Engine:
    config = load_config(config_path)
    engine = Engine(config=config, db=make_engine(config.database.url), data_dir=Path(config.server.data_dir))
    engine.start()
    return engine


def _record(engine: Engine, msg_id: str) -> int:
    msg = Inbound(platform="console", msg_id=msg_id, chat_id="staff", sender_id="zhang_wei", text=REPORT,
                  received_at=engine.now())
    inbound_id = engine.record(msg).inbound_id
    assert inbound_id is not None
    return inbound_id


def _handled(engine: Engine) -> int:
    with Session(engine.db) as session:
        return session.exec(
            select(func.count()).select_from(InboundMessage).where(InboundMessage.state == "handled")
        ).one()


async def _until(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await anyio.sleep(0.05)


def test_a_handler_process_handles_what_the_web_process_recorded_and_is_replaced_when_killed(config_path: Path) -> None:
    engine = _engine(config_path)
    replies: list[None] = []

    async def scenario() -> None:
        pool = HandlerPool(engine.config, processes=1, on_replies=lambda: replies.append(None))
        pool.start()
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(pool.supervise)
                first = [_record(engine, f"hp-{i}") for i in range(3)]
                for inbound_id in first:
                    pool.submit(inbound_id)
                await _until(lambda: _handled(engine) == 3 and not pool.pending())
                assert len(replies) == 3  # the console keeps replies on the row; each still wakes the sender

                # kill -9 the handler with a message in its inbox: its replacement gets that message
                process = pool._slots[0].process
                assert process is not None and process.pid is not None
                os.kill(process.pid, signal.SIGKILL)
                late = _record(engine, "hp-late")
                pool.submit(late)
                await _until(lambda: _handled(engine) == 4 and not pool.pending())
                assert pool._slots[0].process is not process
                tasks.cancel_scope.cancel()
        finally:
            await anyio.to_thread.run_sync(pool.stop)

    anyio.run(scenario)
    with Session(engine.db) as session:
        assert session.exec(select(func.count()).select_from(Hazard)).one() == 4
    engine.db.dispose()


def test_an_orphaned_handler_process_finishes_its_message_and_stops(config_path: Path) -> None:
    """After a kill -9 of the web process, its handler does not linger: it sees that its parent is gone."""
    engine = _engine(config_path)
    context = multiprocessing.get_context("spawn")
    inbox = context.Queue()
    results, done = context.Pipe(duplex=False)
    not_our_parent = -1  # what the handler sees once the web process that started it is gone
    process = context.Process(target=run_handler_process, args=(engine.config, 0, inbox, done, not_our_parent), daemon=True)
    process.start()
    done.close()
    inbox.put(_record(engine, "orphan-1"))
    process.join(60)
    assert process.exitcode == 0
    assert _handled(engine) == 1 and results.poll(5) and results.recv()[1:] == (1, True)
    engine.db.dispose()
