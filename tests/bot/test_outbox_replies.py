"""Replies rendered when they are delivered: one platform-neutral `replies` row per handled message, sent in
place when it makes one message; when it makes several, the first goes in place and the rest are queued once as
`#2`, `#3` … (or all as `#1`, `#2` … when the first is not for the row's channel); rows queued
already rendered (before an upgrade) still go out. Driven against the fake WeCom, by the app's real deliveries."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlmodel import Session

from bot.app import create_app
from bot.cli import main
from bot.config import load_config
from bot.outbox import REPLIES_KIND, Draft, OutboxSender, read_replies_payload
from bot.platforms import wecom
from bot.secrets import Secrets
from handlers.messages import Button, Reply, reply_from_json, reply_to_json
from models import outbox as store
from models.tables import OutboxMessage
from tests.bot.test_wecom import AES_KEY, CHAT, REPORT, SECRET_ENV, TOKEN, WEBHOOK_KEY, wait_for, write_config
from tests.conftest import campaign_clock
from tests.fakes.wecom_server import FakeWeCom, post_aibot_callback

WANG_JIANGUO = "WangJianGuo"  # 王建国's WeCom userid in the example config


class Harness:
    """The app on the fake WeCom with its own sender stopped: the test drains the outbox on a fixed clock."""

    def __init__(self, client: TestClient, fake: FakeWeCom, config_path: Path) -> None:
        self.client, self.fake, self.config_path = client, fake, config_path
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        runtime.sender.may_send = lambda: False
        self.engine = runtime.engine
        self.db = runtime.engine.db
        self.now: datetime = runtime.engine.now()  # the sender's clock: moved only by the test
        self.sender = OutboxSender(db=self.db, deliveries=runtime.sender.deliveries, clock=lambda: self.now)

    def post(self, text: str, *, msgid: str) -> None:
        """An @-message to the AI bot in the staff group (callback mode: the reply goes by response_url)."""
        message = self.fake.aibot_text(f"@安全助手 {text}", userid="ZhangWei", chatid=CHAT, msgid=msgid)
        response = post_aibot_callback("/wecom/callback", message, token=TOKEN, encoding_aes_key=AES_KEY,
                                       http=self.client)
        assert response.status_code == 200

    def rows(self) -> list[OutboxMessage]:
        return sorted(store.list_messages(self.db, limit=500), key=lambda row: row.id or 0)

    def drain(self) -> int:
        return self.client.portal.call(self.sender.drain_once)  # type: ignore[union-attr]


@pytest.fixture
def fake() -> Iterator[FakeWeCom]:
    with FakeWeCom(window=60.0) as server:
        server.add_webhook_key(WEBHOOK_KEY)
        yield server


@pytest.fixture
def harness(config_path: Path, fake: FakeWeCom) -> Iterator[Harness]:
    config = load_config(write_config(config_path, fake))
    with TestClient(create_app(config, secrets=Secrets(environ=SECRET_ENV), clock=campaign_clock())) as client:
        yield Harness(client, fake, config_path)


def _replies_row(harness: Harness) -> OutboxMessage:
    rows = wait_for(lambda: [row for row in harness.rows() if row.kind == REPLIES_KIND])
    assert len(rows) == 1  # type: ignore[arg-type]
    harness.now = harness.engine.now()  # the row is due from the time the message was handled
    return rows[0]  # type: ignore[index]


def test_a_reply_serializes_and_reads_back_whole(tiny_png: bytes) -> None:
    reply = Reply("已登记隐患 #3\n部位：食堂", mentions=("wang_jianguo",), image_png=tiny_png, file_name="台账.xlsx",
                  file_data=b"PK\x03\x04\x00", kind="markdown", extras={"hazard": "3"},
                  buttons=(Button("销号", "销号 #3"),))
    data = json.loads(json.dumps(reply_to_json(reply), ensure_ascii=False))
    assert reply_from_json(data) == reply
    assert reply_from_json(reply_to_json(Reply("好的"))) == Reply("好的") and reply_to_json(Reply("好的")) == {"text": "好的"}
    for bad in ([], {"text": 3}, {"text": "x", "image_png": "not base64!"}, {"text": "x", "kind": "html"},
                {"text": "x", "buttons": [{"label": "销号"}]}, {"text": "x", "mentions": "wang_jianguo"}):
        with pytest.raises(ValueError):
            reply_from_json(bad)


def test_a_reply_is_stored_unrendered_and_rendered_when_it_is_delivered(harness: Harness, fake: FakeWeCom) -> None:
    harness.post("帮助", msgid="help-1")
    row = _replies_row(harness)
    assert (row.dedupe_key, row.channel, row.state) == ("reply:wecom:help-1", wecom.CHANNEL_RESPONSE_URL, "pending")
    assert row.robot == f"wecom:aibot:aibot:{CHAT}" and row.group_id == "wecom-staff"
    replies, route = read_replies_payload(row.payload)
    assert route["mode"] == "response_url" and route["response_url"].startswith(fake.base_url)
    assert replies and fake.responses == []  # nothing rendered or sent while handling

    assert harness.drain() == 1
    [answer] = fake.responses
    # The platform rendered it as markdown for the response_url (one message: sent in place, no children).
    assert answer["msgtype"] == "markdown" and replies[0].text.split("\n")[0] in answer["markdown"]["content"]
    [row] = harness.rows()
    assert (row.state, row.attempts, row.kind) == ("sent", 1, REPLIES_KIND)
    assert harness.drain() == 0 and len(fake.responses) == 1


def test_a_reply_of_several_messages_sends_the_first_in_place_and_queues_the_rest_once(
    harness: Harness, fake: FakeWeCom, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.post(REPORT, msgid="report-1")  # 责任人 王建国: the answer by response_url, and an @ by the webhook
    parent = _replies_row(harness)
    assert harness.drain() == 1  # the answer goes in place; the @-notice is queued as the row's child
    [answer] = fake.responses
    assert re.search(r"已登记隐患 #\d+", answer["markdown"]["content"])
    assert fake.sent_to(WEBHOOK_KEY) == []
    parent_row, second = harness.rows()
    assert (parent_row.id, parent_row.state, parent_row.attempts) == (parent.id, "sent", 1)
    assert (second.dedupe_key, second.channel, second.kind, second.state) == (
        "reply:wecom:report-1#2", wecom.CHANNEL_WEBHOOK, "notice", "pending")
    assert second.robot == "wecom:webhook:wecom-staff"
    assert second.give_up_at == parent.give_up_at  # the reply's deadline does not move with its children

    # Settling again (a retried row, a second sender) adds nothing.
    again = [store.QueuedMessage(second.channel, second.robot, second.kind, json.loads(second.payload))]
    assert store.settle_with_children(harness.db, parent_row, again, now=harness.now, sent=True) == 0
    assert len(harness.rows()) == 2

    assert harness.drain() == 1
    assert harness.drain() == 0
    assert len(fake.responses) == 1
    [notice] = fake.sent_to(WEBHOOK_KEY)
    assert notice.content.startswith(f"<@{WANG_JIANGUO}> 请留意：")
    assert [r.state for r in harness.rows()] == ["sent", "sent"]

    assert main(["outbox", "--config", str(harness.config_path)]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"sent .* replies .*reply:wecom:report-1  \[1 reply: 已登记隐患 #\d+", listing), listing
    assert "reply:wecom:report-1#2" in listing


def test_a_delivery_retried_after_a_crash_queues_the_rest_once(harness: Harness, fake: FakeWeCom) -> None:
    harness.post(REPORT, msgid="report-2")
    parent = _replies_row(harness)
    # Sender A takes the row and sends the answer in place, then dies before recording it (nothing queued).
    [stale] = store.claim(harness.db, [parent.id or 0], now=harness.now, lease=timedelta(seconds=120))
    delivery = harness.sender.deliveries[stale.channel]
    result = harness.client.portal.call(delivery.deliver, stale)  # type: ignore[union-attr]
    assert result.ok and [d.kind for d in result.rest] == ["notice"]
    assert len(fake.responses) == 1 and len(harness.rows()) == 1

    # The lease runs out and the row is tried again: rendered again, its single-use response_url is refused
    # (that interrupted attempt used it), so the answer counts as sent; the notice is queued now.
    harness.now += timedelta(seconds=121)
    assert harness.drain() == 1
    assert len(fake.responses) == 1
    assert [(r.dedupe_key, r.state) for r in harness.rows()] == [
        ("reply:wecom:report-2", "sent"), ("reply:wecom:report-2#2", "pending")]

    # A comes back and records its outcome late: the child exists already, nothing is added.
    anyio.run(harness.sender._settle, stale, result, harness.now)
    assert len(harness.rows()) == 2
    assert harness.drain() == 1 and harness.drain() == 0
    assert len(fake.responses) == 1 and len(fake.sent_to(WEBHOOK_KEY)) == 1
    assert [r.state for r in harness.rows()] == ["sent", "sent"]


def test_when_the_first_message_is_refused_for_good_the_rest_still_go(harness: Harness, fake: FakeWeCom) -> None:
    harness.post(REPORT, msgid="report-4")
    parent = _replies_row(harness)
    _, route = read_replies_payload(parent.payload)
    assert httpx.post(route["response_url"], json={"msgtype": "markdown", "markdown": {"content": "x"}}).status_code == 200
    assert harness.drain() == 1  # the response_url is refused: the answer is re-queued by webhook, the notice queued
    assert [(r.dedupe_key, r.state) for r in harness.rows()] == [
        ("reply:wecom:report-4", "failed"), ("reply:wecom:report-4:webhook:0", "pending"),
        ("reply:wecom:report-4#2", "pending")]
    harness.now = harness.engine.now()  # the re-queued answer is due from the time the delivery queued it
    assert harness.drain() == 2 and harness.drain() == 0
    sent = [s.content for s in fake.sent_to(WEBHOOK_KEY)]
    assert len(sent) == 2 and "已登记隐患" in sent[0] and sent[1].startswith(f"<@{WANG_JIANGUO}> 请留意：")


def test_a_row_whose_lease_ran_out_is_expanded_by_one_sender_only(harness: Harness, fake: FakeWeCom) -> None:
    """A first message for another channel or robot (the group's webhook here) still
    expands the whole row, once."""
    harness.post(REPORT, msgid="report-3")
    parent = _replies_row(harness)
    drafts = (Draft("markdown", {"content": "a"}, channel=wecom.CHANNEL_WEBHOOK, robot="wecom:webhook:wecom-staff"),
              Draft("markdown", {"content": "b"}))
    [stale] = store.claim(harness.db, [parent.id or 0], now=harness.now, lease=timedelta(seconds=120))
    harness.now += timedelta(seconds=121)
    [taken] = store.claim(harness.db, [parent.id or 0], now=harness.now, lease=timedelta(seconds=120))
    anyio.run(harness.sender._expand, taken, drafts, harness.now)
    assert len(harness.rows()) == 3
    anyio.run(harness.sender._expand, stale, drafts, harness.now)  # A wakes up and expands what B already expanded
    assert len(harness.rows()) == 3
    assert [r.state for r in harness.rows()] == ["expanded", "pending", "pending"]


def test_rendering_reads_mention_targets_from_the_process_directory_cache(harness: Harness, fake: FakeWeCom) -> None:
    from bot.outbox import read_replies_row
    from models.directory_cache import read_version

    harness.post(REPORT, msgid="report-5")
    row = _replies_row(harness)
    with Session(harness.db) as session:  # the row carries the version it was handled at
        assert read_replies_row(row.payload).directory_version == read_version(session)
    loads = harness.engine.directory.loads  # handling loaded it; rendering in this process shares it
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(harness.db, "before_cursor_execute", seen)
    try:
        assert harness.drain() == 1
    finally:
        event.remove(harness.db, "before_cursor_execute", seen)
    [answer] = fake.responses
    assert "请王建国留意" in answer["markdown"]["content"]  # the name came from the cache
    assert not [s for s in statements if re.search(r"FROM person\b", s)], statements
    assert not [s for s in statements if "directory_version" in s], statements  # nor a query of its version
    assert harness.engine.directory.loads == loads


def test_rows_queued_already_rendered_still_go_out(harness: Harness, fake: FakeWeCom) -> None:
    """A queue written before the upgrade holds rendered rows (markdown for the response_url, an @ by webhook)."""
    url = fake.new_response_url()
    with Session(harness.db) as session:
        for index, (channel, payload) in enumerate([
            (wecom.CHANNEL_RESPONSE_URL, {"url": url, "content": "已登记隐患 #7（一般·消防）", "group_id": "wecom-staff"}),
            (wecom.CHANNEL_WEBHOOK, {"group_id": "wecom-staff", "content": f"<@{WANG_JIANGUO}> 请留意：已登记隐患 #7"}),
        ]):
            store.enqueue(session, dedupe_key=f"reply:wecom:old-1:{index}", platform="wecom", channel=channel,
                          robot="wecom:webhook:wecom-staff" if index else f"wecom:aibot:aibot:{CHAT}",
                          group_id="wecom-staff", kind="markdown", payload=payload, now=harness.now,
                          give_up_after=timedelta(minutes=30))
        session.commit()
    assert harness.drain() == 2
    assert [r["markdown"]["content"] for r in fake.responses] == ["已登记隐患 #7（一般·消防）"]
    assert [s.content for s in fake.sent_to(WEBHOOK_KEY)] == [f"<@{WANG_JIANGUO}> 请留意：已登记隐患 #7"]
    assert [r.state for r in harness.rows()] == ["sent", "sent"]


def test_an_unreadable_replies_row_fails_with_the_reason(harness: Harness, fake: FakeWeCom) -> None:
    with Session(harness.db) as session:
        store.enqueue(session, dedupe_key="reply:wecom:broken", platform="wecom", channel=wecom.CHANNEL_RESPONSE_URL,
                      robot="r", kind=REPLIES_KIND, payload={"route": {}, "replies": [{"text": 3}]}, now=harness.now,
                      give_up_after=timedelta(minutes=30))
        session.commit()
    assert harness.drain() == 1
    [row] = harness.rows()
    assert row.state == "failed" and row.last_error.startswith("unreadable replies row:")
    assert fake.responses == []


def _answer_row(harness: Harness, fake: FakeWeCom, key: str, directory_version: int | None) -> None:
    """A handled answer naming 王建国, as the engine stores it (with the directory version it was handled at)."""
    from bot.outbox import replies_payload

    route = {"mode": "response_url", "channel": wecom.CHANNEL_RESPONSE_URL, "robot": f"wecom:aibot:aibot:{CHAT}",
             "bot": "aibot", "response_url": fake.new_response_url(), "group_id": "wecom-staff", "chat_id": CHAT}
    payload = replies_payload([Reply("已登记隐患 #9", mentions=("wang_jianguo",))], route,
                              directory_version=directory_version)
    with Session(harness.db) as session:
        store.enqueue(session, dedupe_key=f"reply:wecom:{key}", platform="wecom", channel=route["channel"],
                      robot=route["robot"], group_id="wecom-staff", kind=REPLIES_KIND, payload=payload,
                      now=harness.now, give_up_after=timedelta(minutes=30))
        session.commit()


def test_rendering_after_a_directory_change_uses_a_directory_at_least_as_new_as_the_handling(
    harness: Harness, fake: FakeWeCom
) -> None:
    from models.directory_cache import read_version
    from models.tables import PersonRow

    cache = harness.engine.directory  # the sender's process's cache
    with Session(harness.db) as session:
        before = read_version(session)
        cache.at(session, before)
        # Another process (a handler, an admin's edit) renames the owner after this process cached the directory.
        person = session.get(PersonRow, "wang_jianguo")
        assert person is not None and person.name == "王建国"
        person.name = "王建华"
        session.add(person)
        session.commit()
        after = read_version(session)
    assert after > before
    _answer_row(harness, fake, "handled-after-the-change", after)
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(harness.db, "before_cursor_execute", seen)
    try:
        assert harness.drain() == 1
        # The cache is older than the row's handling: reloaded, so the new name shows.
        assert "请王建华留意" in fake.responses[-1]["markdown"]["content"]
        versions_read = len([s for s in statements if "directory_version" in s])
        assert versions_read == 1 and cache.at_least(after) is not None
        statements.clear()
        # A row handled before the change, delivered now: the cache is newer than its handling, so no query at all
        # about the directory, and the current name.
        _answer_row(harness, fake, "handled-before-the-change", before)
        statements.clear()
        assert harness.drain() == 2  # with the first answer's @-notice
        assert "请王建华留意" in fake.responses[-1]["markdown"]["content"]
        assert not [s for s in statements if "directory_version" in s or re.search(r"FROM person\b", s)], statements
        # This answer's own @-notice went along with the first one's when its row was queued before that notice
        # was sent (they share the webhook); else it goes now. Either way nothing is left for the next step.
        assert harness.drain() in (0, 1) and harness.drain() == 0
        assert not [row for row in harness.rows() if row.state == "pending"]
        # A row queued before rows carried the version: the version is read, as before.
        _answer_row(harness, fake, "queued-before-the-upgrade", None)
        statements.clear()
        assert harness.drain() == 1
        assert len([s for s in statements if "directory_version" in s]) == 1
    finally:
        event.remove(harness.db, "before_cursor_execute", seen)
