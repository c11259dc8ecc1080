"""Handler processes: recorded messages are handled in another process, which is replaced when it dies."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import re
import signal
import time
import tomllib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from bot.app import create_app
from bot.config import load_config, parse_config
from bot.engine import Engine
from bot.handler_process import HandlerPool, run_handler_process
from bot.secrets import Secrets
from handlers.messages import Attachment, Inbound
from models.clock import FixedClock
from models.db import make_engine
from models.tables import AttachmentFile, Hazard, InboundAttachment, InboundMessage, OutboxMessage
from tests.bot.test_wecom import AES_KEY, SECRET_ENV, TOKEN, WEBHOOK_KEY, _report_with_photo, wecom_toml
from tests.conftest import EXAMPLE_CONFIG, campaign_clock, with_local_storage
from tests.fakes.wecom_server import FakeWeCom, post_aibot_callback
from tests.school import REPORT


def _engine(config_path: Path) -> Engine:
    config = load_config(config_path)
    engine = Engine(
        config=config, db=make_engine(config.database.url), data_dir=Path(config.server.data_dir),
        clock=campaign_clock(),
    )
    engine.start()
    return engine


_FLOORS = itertools.count(1)


def _record(engine: Engine, msg_id: str) -> int:
    """A report of its own (another floor each time: the same words again would be asked about as a duplicate)."""
    text = REPORT.replace("二楼", f"{next(_FLOORS)}楼")
    msg = Inbound(platform="console", msg_id=msg_id, chat_id="staff", sender_id="zhang_wei", text=text,
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
        pool = HandlerPool(engine.config, processes=1, on_replies=lambda: replies.append(None), clock=engine.clock)
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
    assert _handled(engine) == 1 and results.poll(5) and results.recv() == ("done", 0, 1, True)
    engine.db.dispose()


def test_a_photo_link_made_in_a_handler_process_opens_in_the_web_app(
    config_path: Path, tiny_png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The link key lives only in a secrets file the web process was given: the handler process signs with it too."""
    monkeypatch.delenv("SAFETYBOT_LINK_SECRET", raising=False)
    monkeypatch.delenv("SAFETYBOT_SECRETS_FILE", raising=False)
    secrets_file = config_path.with_name("secrets.toml")
    secrets_file.write_text('SAFETYBOT_LINK_SECRET = "link-key-from-the-secrets-file"\n', encoding="utf-8")
    secrets = Secrets(environ={}, file=secrets_file)
    config = load_config(config_path)
    server = config.server.model_copy(update={"public_url": "https://bot.example.edu.cn"})
    config = config.model_copy(update={"server": server})
    app = create_app(config, secrets=secrets, clock=campaign_clock())  # the web app: migrates, and serves /photos
    engine: Engine = app.state.engine
    photo = Attachment("p.png", "image/png", tiny_png)
    engine.handle_sync(Inbound("console", "report-1", "staff", "zhang_wei", REPORT, engine.now(), attachments=(photo,)))
    show = _record_text(engine, "show-1", "查看 #1")

    async def scenario() -> None:
        pool = HandlerPool(config, processes=1, on_replies=lambda: None, clock=engine.clock, secrets=secrets)
        pool.start()
        try:
            pool.submit(show)
            await _until(lambda: not pool.pending() and _handled(engine) == 2)
        finally:
            await anyio.to_thread.run_sync(pool.stop)

    anyio.run(scenario)
    with Session(engine.db) as session:
        reply = session.get(InboundMessage, show).reply_text  # type: ignore[union-attr]
    links = re.findall(r"https://bot\.example\.edu\.cn(/photos/\S+)", reply or "")
    assert len(links) == 1, reply
    response = TestClient(app).get(links[0])
    assert response.status_code == 200 and response.content == tiny_png
    engine.db.dispose()


def _record_text(engine: Engine, msg_id: str, text: str) -> int:
    msg = Inbound(platform="console", msg_id=msg_id, chat_id="staff", sender_id="zhang_wei", text=text,
                  received_at=engine.now())
    inbound_id = engine.record(msg).inbound_id
    assert inbound_id is not None
    return inbound_id


WINTER_2026 = datetime(2026, 12, 3, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Thursday inside winter-2026
MAJOR_REPORT = "隐患\n部位：实验楼三楼\n问题：危化品柜未上锁\n等级：重大\n责任人：王建国\n期限：12月20日"


def _poll(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _major_alerts(engine: Engine) -> list[OutboxMessage]:
    with Session(engine.db) as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.dedupe_key.startswith("push:major_alert:"))))  # type: ignore[attr-defined]


@pytest.mark.parametrize("processes", [1, 0], ids=["in-a-handler-process", "in-the-web-process"])
def test_a_major_report_reaches_the_leaders_outbox_within_seconds(
    processes: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A handler process tells the web process over its result pipe (handled in the web process, the engine
    tells it directly), which wakes the scheduler at once: the leaders' alert does not wait for the next
    60 s tick."""
    config = parse_config(tomllib.loads(with_local_storage(
        EXAMPLE_CONFIG.read_text(encoding="utf-8"), db_url=f"sqlite:///{tmp_path / 'safetybot.db'}",
        data_dir=str(tmp_path / "data"), scheduler=True, handler_processes=processes,  # 1 as shipped
    )))
    assert config.scheduler.tick_seconds == 60  # as shipped: without the wake-up, a minute's wait
    app = create_app(config, secrets=Secrets(environ={}), clock=FixedClock(WINTER_2026))
    engine: Engine = app.state.engine
    runtime = app.state.runtime

    def hand_off(msg_id: str, text: str) -> None:
        msg = Inbound("console", msg_id, "staff", "zhang_wei", text, WINTER_2026)
        inbound_id = engine.record(msg).inbound_id
        if processes:
            client.portal.call(runtime.hand_off.submit, inbound_id)  # what the callback does after its ack
        else:
            client.portal.call(runtime.work, inbound_id)  # what the callback's background task does

    with TestClient(app) as client:
        _poll(lambda: app.state.scheduler.leading and (runtime.hand_off is not None) == bool(processes), timeout=30)
        hand_off("warm-up", REPORT)  # the handler process has started and handles (spawn costs seconds)
        _poll(lambda: _handled(engine) == 1, timeout=60)
        assert _major_alerts(engine) == []

        reported = time.monotonic()
        hand_off("major-1", MAJOR_REPORT)
        _poll(lambda: bool(_major_alerts(engine)), timeout=30)
        delay = time.monotonic() - reported
    [alert, sheet] = sorted(_major_alerts(engine), key=lambda m: m.dedupe_key)  # the alert and its 督办单
    assert sheet.kind == "file"
    assert alert.group_id == "leaders" and "危化品柜未上锁" in json.loads(alert.payload)["text"]
    assert delay < 5.0, f"the alert took {delay:.1f} s"
    with capsys.disabled():
        print(f"\n重大 alert in the leaders' outbox {delay:.2f} s after the report was handed off ({processes=})")
    engine.db.dispose()


class _ExpiringAtHandOff:
    """The handler pool, with WeCom's photo links expiring the moment a message is handed to it: a handler
    process that tried to download the photo would find it gone."""

    def __init__(self, pool: HandlerPool, fake: FakeWeCom) -> None:
        self.pool, self.fake = pool, fake

    def submit(self, inbound_id: int) -> None:
        self.fake.media.clear()
        self.pool.submit(inbound_id)

    def pending(self) -> set[int]:
        return self.pool.pending()


def test_a_photo_report_handled_in_a_handler_process_gets_the_photo_the_web_process_downloaded(
    tmp_path: Path, tiny_png: bytes
) -> None:
    """The web process downloads the photo after its ack and stores it with the message; the handler process
    handles the message with it and calls no platform: WeCom's photo URL is fetched exactly once."""
    with FakeWeCom(window=60.0) as fake:
        fake.add_webhook_key(WEBHOOK_KEY)
        config = parse_config(tomllib.loads(with_local_storage(
            EXAMPLE_CONFIG.read_text(encoding="utf-8") + wecom_toml(fake),
            db_url=f"sqlite:///{tmp_path / 'safetybot.db'}", data_dir=str(tmp_path / "data"), handler_processes=1,
        )))
        app = create_app(config, secrets=Secrets(environ=SECRET_ENV), clock=campaign_clock())
        engine: Engine = app.state.engine
        with TestClient(app) as client:
            runtime = app.state.runtime
            _poll(lambda: runtime.hand_off is not None, timeout=30)
            runtime.hand_off = _ExpiringAtHandOff(runtime.hand_off, fake)
            message = _report_with_photo(fake, tiny_png, "hp-photo-1")
            response = post_aibot_callback("/wecom/callback", message, token=TOKEN, encoding_aes_key=AES_KEY, http=client)
            assert response.status_code == 200
            _poll(lambda: bool(fake.responses), timeout=60)  # spawning the handler process costs seconds
        assert "照片：1张已保存" in fake.responses[0]["markdown"]["content"]
        assert len(fake.media_gets) == 1
    with Session(engine.db) as session:
        assert session.exec(select(func.count()).select_from(AttachmentFile)).one() == 1
        assert session.exec(select(func.count()).select_from(InboundAttachment)).one() == 0
        assert session.exec(select(InboundMessage.state)).one() == "handled"
    engine.db.dispose()
