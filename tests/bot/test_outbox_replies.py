"""Replies rendered when they are delivered: one platform-neutral `replies` row per handled message, sent in
place when it makes one message, expanded once into `#1`, `#2` … rows when it makes several; rows queued
already rendered (before an upgrade) still go out. Driven against the fake WeCom, by the app's real deliveries."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from bot.app import create_app
from bot.cli import main
from bot.config import load_config
from bot.outbox import REPLIES_KIND, OutboxSender, _SentMarks, read_replies_payload
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


def test_a_reply_of_several_messages_expands_once_and_each_part_goes_once(
    harness: Harness, fake: FakeWeCom, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.post(REPORT, msgid="report-1")  # 责任人 王建国: the answer by response_url, and an @ by the webhook
    parent = _replies_row(harness)
    assert harness.drain() == 1  # rendered into two messages: queued as the row's children, nothing sent yet
    assert fake.responses == [] and fake.sent_to(WEBHOOK_KEY) == []
    parent_row, first, second = harness.rows()
    assert (parent_row.id, parent_row.state) == (parent.id, "expanded")
    assert [(r.dedupe_key, r.channel, r.kind, r.state) for r in (first, second)] == [
        ("reply:wecom:report-1#1", wecom.CHANNEL_RESPONSE_URL, "markdown", "pending"),
        ("reply:wecom:report-1#2", wecom.CHANNEL_WEBHOOK, "notice", "pending"),  # @-notices merge per webhook
    ]
    assert second.robot == "wecom:webhook:wecom-staff" and first.robot == parent.robot
    assert first.give_up_at == parent.give_up_at  # the reply's deadline does not move with the expansion

    # Expanding again (a retry, a second sender) adds nothing and leaves the parent as it is.
    again = [store.QueuedMessage(r.channel, r.robot, r.kind, json.loads(r.payload)) for r in (first, second)]
    assert store.expand(harness.db, parent.id or 0, again, now=harness.now) == 0
    assert len(harness.rows()) == 3

    assert harness.drain() == 2
    assert harness.drain() == 0
    [answer] = fake.responses
    assert re.search(r"已登记隐患 #\d+", answer["markdown"]["content"])
    [notice] = fake.sent_to(WEBHOOK_KEY)
    assert notice.content.startswith(f"<@{WANG_JIANGUO}> 请留意：")
    assert [(r.state, r.attempts) for r in harness.rows()] == [("expanded", 1), ("sent", 1), ("sent", 1)]

    assert main(["outbox", "--config", str(harness.config_path)]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"expanded .* replies .*reply:wecom:report-1  \[1 reply: 已登记隐患 #\d+", listing), listing
    assert "reply:wecom:report-1#2" in listing


def test_a_row_whose_lease_ran_out_is_expanded_by_one_sender_only(harness: Harness, fake: FakeWeCom) -> None:
    harness.post(REPORT, msgid="report-2")
    parent = _replies_row(harness)
    # Sender A takes the row and stalls before its expansion; its lease runs out and sender B takes the row.
    [stale] = store.claim(harness.db, [parent.id or 0], now=harness.now, lease=timedelta(seconds=120))
    harness.now += timedelta(seconds=121)
    assert harness.drain() == 1
    assert len(harness.rows()) == 3
    anyio.run(harness.sender._deliver, stale, _SentMarks(harness.db))  # A wakes up and expands what B already expanded
    assert len(harness.rows()) == 3
    assert harness.drain() == 2 and harness.drain() == 0
    assert len(fake.responses) == 1 and len(fake.sent_to(WEBHOOK_KEY)) == 1


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
