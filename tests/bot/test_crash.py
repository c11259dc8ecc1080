"""kill -9 in the middle of 1,000 reports: nothing acknowledged is lost, nothing is stored or answered twice.

`safetybot serve` runs as a subprocess against the fake WeCom. A client posts 1,000 encrypted report
callbacks (distinct msgids) and retries like WeCom: after a timeout or a connection error it tries again,
up to three times (WeCom waits 5 s; scaled down to RETRY_SECONDS here so CI stays fast). After ~400
acknowledgements the server gets SIGKILL and is restarted on the same port and database.

Guaranteed, and asserted: every acknowledged msgid has exactly one hazard; no msgid has two; hazard
numbers are unique; every recorded message is handled; every handled message's reply reached its
single-use response_url exactly once.

The outbox's documented window: a reply POSTed successfully just before the kill, but not yet marked
sent, is attempted again after the lease expires. The fake refuses a used response_url, so the retry
falls back to the group webhook: that is a second copy of one reply in the group. The sender delivers
rows one at a time, so a kill can catch at most one row in that window: asserted as ≤ 1, and printed.
"""

from __future__ import annotations

import asyncio
import re
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from models.db import make_engine
from tests.bot.test_wecom import AES_KEY, CHAT, SECRET_ENV, TOKEN, WEBHOOK_KEY, ROBOT_WEBHOOK_KEY, wecom_toml
from tests.conftest import CAMPAIGN_NOW, EXAMPLE_CONFIG, REPO_ROOT, fresh_postgres_schema, with_local_storage
from tests.fakes.wecom_server import FakeWeCom, callback_query, encrypt_text

pytestmark = pytest.mark.crash

MESSAGES = 1000
KILL_AFTER_ACKS = 400
CONCURRENCY = 16
RETRIES = 3  # WeCom: three more tries after the first
RETRY_SECONDS = 2.0  # WeCom: 5 s; scaled down, same rule (timeout or connection error → try again)
LEASE_SECONDS = 120.0  # OutboxSender's default lease: a row claimed at the kill is retried after it
RECOVERY_SECONDS = 45.0  # recover() every 15 s for rows older than 30 s
DEADLINE_SECONDS = 300.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def report_text(i: int) -> str:
    """A real report, different for every message, naming 王建国 as owner: each reply also @s him by the group
    webhook, where the pending notices go merged (a few messages carry the burst's 1,000 lines)."""
    return (f"@安全助手 隐患\n部位：{i % 9 + 1}号教学楼{i % 5 + 1}楼{i}室\n问题：灭火器压力不足第{i}处\n"
            f"责任人：王建国\n期限：明天")


@dataclass
class Server:
    """`safetybot serve` on a fixed port; restartable on the same port and database."""

    config_path: Path
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--config", str(self.config_path), "--port", str(self.port), "--now", CAMPAIGN_NOW],
            cwd=REPO_ROOT, env={**os.environ, **SECRET_ENV, "PYTHONUNBUFFERED": "1"}, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(self.log_path.read_text(errors="replace")[-4000:])
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError("safetybot serve did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no shutdown handlers, no flush
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@dataclass
class Client:
    """Posts callbacks like WeCom: a timeout or connection error means try again, at most RETRIES times."""

    url: str
    messages: list[dict]
    acked: set[str] = field(default_factory=set)
    gave_up: set[str] = field(default_factory=set)
    attempts: int = 0
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        finally:
            self.done.set()

    async def _run(self) -> None:
        queue: asyncio.Queue[dict] = asyncio.Queue()
        for message in self.messages:
            queue.put_nowait(message)
        timeout = httpx.Timeout(RETRY_SECONDS, connect=RETRY_SECONDS)
        async with httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=CONCURRENCY)) as http:
            async def worker() -> None:
                while not queue.empty():
                    await self._deliver(http, queue.get_nowait())

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

    async def _deliver(self, http: httpx.AsyncClient, message: dict) -> None:
        encrypt = encrypt_text(AES_KEY, json.dumps(message, ensure_ascii=False))
        body = json.dumps({"encrypt": encrypt})
        for attempt in range(1 + RETRIES):
            self.attempts += 1
            started = time.monotonic()
            try:
                response = await http.post(f"{self.url}/wecom/callback", params=callback_query(TOKEN, encrypt),
                                           content=body, headers={"Content-Type": "application/json"})
                if response.status_code == 200:
                    self.acked.add(message["msgid"])
                    return
            except httpx.HTTPError:
                pass
            # WeCom tries again 5 s after sending; a refused connection fails at once, so wait out the rest.
            await asyncio.sleep(max(0.0, RETRY_SECONDS - (time.monotonic() - started)))
        self.gave_up.add(message["msgid"])


def _fake() -> FakeWeCom:
    fake = FakeWeCom(window=60.0)
    # The fake's pre-bound socket misses asyncio's TCP_NODELAY: every reply would wait 40 ms for an ACK.
    fake._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return fake


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """A database URL for the server, and an engine on it for the assertions."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'safetybot.db'}"
        engine = make_engine(url)
        yield url, engine
        engine.dispose()
        return
    with fresh_postgres_schema("crash") as schema:
        engine = make_engine(schema.url)
        yield schema.url, engine
        engine.dispose()


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_kill_9_mid_burst_loses_and_duplicates_nothing(database: tuple[str, Engine], tmp_path: Path) -> None:
    db_url, db = database
    started = time.monotonic()
    with _fake() as fake:
        fake.add_webhook_key(WEBHOOK_KEY)
        fake.add_webhook_key(ROBOT_WEBHOOK_KEY)
        config_path = tmp_path / "config.toml"
        base = with_local_storage(EXAMPLE_CONFIG.read_text(encoding="utf-8"), db_url=db_url,
                                  data_dir=str(tmp_path / "data"), handler_processes=1)
        # Replies go to single-use response_urls; lift the per-robot push limit so 1,000 drain in seconds.
        extra = wecom_toml(fake, window=60.0).replace("[outbox]\n", "[outbox]\nper_minute = 1000000\n")
        config_path.write_text(base + extra, encoding="utf-8")
        server = Server(config_path, free_port(), tmp_path / "serve.log")
        server.start()
        try:
            messages = [
                fake.aibot_text(report_text(i), userid="ZhangWei", chatid=CHAT, msgid=f"crash-{i:04d}-{uuid.uuid4().hex[:6]}")
                for i in range(MESSAGES)
            ]
            client = Client(server.url, messages)
            thread = threading.Thread(target=client.run, daemon=True)
            thread.start()
            _wait(lambda: len(client.acked) >= KILL_AFTER_ACKS or client.done.is_set(), 120, "400 acknowledgements")
            assert not client.done.is_set(), "the client finished before the kill: raise MESSAGES"
            server.kill()
            killed_at = time.monotonic()
            acked_before_kill = len(client.acked)
            server.start()
            restarted_in = time.monotonic() - killed_at
            thread.join(timeout=180)
            assert client.done.is_set(), "the client did not finish"

            def settled() -> bool:
                with db.connect() as c:
                    open_inbound = c.execute(text("select count(*) from inbound_message where state in ('received', 'processing')")).scalar_one()
                    pending = c.execute(text("select count(*) from outbox where state = 'pending'")).scalar_one()
                return open_inbound == 0 and pending == 0

            _wait(settled, LEASE_SECONDS + RECOVERY_SECONDS + 60, "recovery and the outbox to finish")
            time.sleep(1.0)  # a late duplicate would arrive now
            with db.connect() as c:
                inbound = {row[0]: (row[1], row[2]) for row in c.execute(
                    text("select platform_msg_id, id, state from inbound_message where platform = 'wecom'"))}
                hazards = c.execute(text(
                    "select i.platform_msg_id, h.number from hazard h join inbound_message i on i.id = h.source_msg_id"
                )).all()
                outbox = c.execute(text("select dedupe_key, channel, state, last_error from outbox")).all()
                orphan_hazards = c.execute(text("select count(*) from hazard where source_msg_id is null")).scalar_one()
        finally:
            server.stop()

        per_msgid: dict[str, list[int]] = {}
        for msgid, number in hazards:
            per_msgid.setdefault(msgid, []).append(number)
        numbers = [number for _, number in hazards]
        responses: dict[str, int] = {}
        for answer in fake.responses:
            responses[answer["response_code"]] = responses.get(answer["response_code"], 0) + 1
        code_of = {m["msgid"]: m["response_url"].rsplit("=", 1)[1] for m in messages}
        fallbacks = [row for row in outbox if ":webhook:" in row[0]]
        webhook_messages = [sent.content for sent in fake.sent_to(WEBHOOK_KEY)]
        webhook_copies = [m for m in webhook_messages if "请留意" not in m]
        notice_lines = [line for m in webhook_messages if "请留意" in m for line in m.split("\n")]
        noticed = Counter(int(match.group(1)) for line in notice_lines
                          if (match := re.match(r"<@WangJianGuo> 请留意：已登记隐患 #(\d+)", line)))

        print(f"\n[crash {db.dialect.name}] acked {len(client.acked)} (before kill {acked_before_kill}), gave up "
              f"{len(client.gave_up)}, attempts {client.attempts}, restart {restarted_in:.1f} s, recorded {len(inbound)}, "
              f"hazards {len(hazards)}, replies {len(fake.responses)}, duplicate replies (webhook fallback) "
              f"{len(fallbacks)}/{len(webhook_copies)}, notices {len(notice_lines)} lines in "
              f"{len(webhook_messages) - len(webhook_copies)} webhook messages, total {time.monotonic() - started:.0f} s")

        # Nothing acknowledged is lost, nothing is stored twice.
        assert server.starts == 2
        assert not client.acked - set(inbound), "an acknowledged message is not in the database"
        assert all(len(per_msgid.get(msgid, [])) == 1 for msgid in client.acked), "acknowledged without one hazard"
        assert all(len(found) == 1 for found in per_msgid.values()), "a message produced two hazards"
        assert len(numbers) == len(set(numbers)), "a hazard number was given twice"
        assert orphan_hazards == 0
        assert {state for _, state in inbound.values()} == {"handled"}, "a recorded message was not handled"
        assert set(per_msgid) == set(inbound), "a handled report has no hazard"
        # Every handled message's reply reached its single-use response_url exactly once.
        assert all(responses.get(code_of[msgid]) == 1 for msgid in inbound), "a reply is missing"
        assert max(responses.values()) == 1
        assert all(state in ("sent", "failed") for _, _, state, _ in outbox)
        replies = [row for row in outbox if row[1] == "wecom_response_url"]
        assert len(replies) == len(inbound)
        # The row in flight at the kill is retried after its lease; its response_url, already used by the
        # interrupted attempt, is refused, which counts as delivered: no copy goes out by webhook.
        assert fallbacks == [] and webhook_copies == []
        assert all(row[2] == "sent" for row in replies)
        # Every hazard's owner was @-ed by a merged notice; only the message in flight at the kill may repeat.
        assert set(noticed) == set(numbers) and len(notice_lines) == sum(noticed.values())
        assert sum(count - 1 for count in noticed.values()) <= max((len(m.split("\n")) for m in webhook_messages), default=0)
        assert time.monotonic() - started < DEADLINE_SECONDS
