"""DingTalk interactive cards (issue 15), end to end: `safetybot serve` with a Stream robot against the fake
DingTalk. A report's reply comes with a card (created with callbackType STREAM and delivered into the group);
taps arrive on the Stream topic /v1.0/card/instances/callback and are answered by updating the card."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.bot.test_dingtalk_e2e import (
    HTTP_CID, HTTP_KEY, HTTP_SECRET, REPORT, SECRETS, STREAM_CID, STREAM_KEY, STREAM_SECRET, config_text, free_port, replies_for,
)
from tests.conftest import CAMPAIGN_NOW, REPO_ROOT
from tests.fakes.dingtalk_server import FakeDingTalk, post_callback, robot_message

TEMPLATE = "safetybot-card.schema"
ZHANG_WEI, WANG_JIANGUO, LI_NA = "0135210001", "0135210002", "0135210003"


class Served:
    def __init__(self, fake: FakeDingTalk, db_url: str, url: str) -> None:
        self.fake, self.db_url, self.url = fake, db_url, url

    def scalar(self, sql: str) -> Any:
        engine = create_engine(self.db_url)
        try:
            with engine.connect() as connection:
                return connection.execute(text(sql)).scalar_one()
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("dingtalk-cards")
    fake = FakeDingTalk()
    fake.add_app(STREAM_KEY, STREAM_SECRET)
    fake.add_app(HTTP_KEY, HTTP_SECRET)
    fake.start()
    config = tmp / "config.toml"
    config.write_text(config_text(tmp, fake.base_url) + f'\n[cards]\nenabled = true\ndingtalk_template_id = "{TEMPLATE}"\n',
                      encoding="utf-8")
    port, log = free_port(), tmp / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--config", str(config), "--port", str(port), "--now", CAMPAIGN_NOW],
            cwd=REPO_ROOT, env={**os.environ, **SECRETS, "PYTHONUNBUFFERED": "1"}, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"serve did not start:\n{log.read_text(errors='replace')}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield Served(fake, f"sqlite:///{tmp / 'safetybot.db'}", f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        fake.stop()


def _updates(fake: FakeDingTalk, track: str, count: int) -> list[dict[str, str]]:
    return list(fake.wait_for(lambda: len(fake.cards[track]["updates"]) >= count and fake.cards[track]["updates"]))


def test_report_card_and_taps_over_the_stream(served: Served) -> None:
    fake = served.fake
    fake.wait_for(lambda: fake.stream_connected, timeout=30)
    fake.wait_for(lambda: any({"type": "CALLBACK", "topic": "/v1.0/card/instances/callback"} in o["subscriptions"]
                              for o in fake.stream_opens))
    message = robot_message(fake, text=REPORT, conversation_id=STREAM_CID, robot_code=STREAM_KEY,
                            sender_staff_id=ZHANG_WEI)
    assert fake.push_stream(message)["code"] == 200
    track = fake.wait_for(lambda: next((t for t, c in fake.cards.items() if c["space"]), None))
    card = fake.cards[track]
    assert card["create"]["cardTemplateId"] == TEMPLATE and card["create"]["callbackType"] == "STREAM"
    assert card["space"] == f"dtv1.card//IM_GROUP.{STREAM_CID}"
    params = card["create"]["cardData"]["cardParamMap"]
    assert re.search(r"已登记隐患 #1", params["title"])
    assert [b["command"] for b in json.loads(params["buttons"])] == ["整改 #1", "查看 #1", "转交 #1"]

    assert fake.tap_card(track, "整改 #1", user_id=WANG_JIANGUO)["code"] == 200
    fixed = _updates(fake, track, 1)[-1]
    assert "已报整改" in fixed["title"] and "王建国" in fixed["who"]
    assert [b["command"] for b in json.loads(fixed["buttons"])] == ["销号 #1", "退回 #1"]

    # Not allowed (the responsible person verifying their own fix): refused on the card, nothing changes.
    fake.tap_card(track, "销号 #1", user_id=WANG_JIANGUO)
    refused = _updates(fake, track, 2)[-1]
    assert "王建国 点了「销号」" == refused["who"] and ("不能" in refused["title"] + refused["text"]
                                                    or "没有" in refused["title"] + refused["text"])
    assert served.scalar("select status from hazard") == "rectified"

    # The safety officer closes it; the same Stream frame delivered again is recorded once.
    fake.tap_card(track, "销号 #1", user_id=LI_NA, message_id="card-tap-close-1")
    closed = _updates(fake, track, 3)[-1]
    assert "李娜" in closed["who"]
    fake.tap_card(track, "销号 #1", user_id=LI_NA, message_id="card-tap-close-1")
    fake.tap_card(track, "销号 #1", user_id=LI_NA)  # a second tap finds the work done
    again = _updates(fake, track, 4)[-1]
    assert "无需再处理" in again["title"] + again["text"]
    assert served.scalar("select status from hazard") == "closed"
    assert served.scalar("select count(*) from hazard_event where action = 'close'") == 1
    assert served.scalar("select count(*) from inbound_message where platform_msg_id like 'card:%'") == 4


def test_a_callback_mode_robot_answers_in_text_without_a_card(served: Served) -> None:
    """Its taps could never come back (no Stream connection), so it sends no card."""
    fake = served.fake
    before = served.scalar("select count(*) from outbox where kind = 'card'")
    message = robot_message(fake, text=REPORT.replace("3号", "5号"), conversation_id=HTTP_CID, robot_code=HTTP_KEY)
    assert post_callback(served.url, HTTP_SECRET, message).status_code == 200
    replies = replies_for(fake, message)
    assert re.search(r"已登记隐患 #\d+", replies[0]["markdown"]["text"])  # type: ignore[index]
    # The reply's rows are stored together, before any is sent: no card row came with it.
    assert served.scalar("select count(*) from outbox where kind = 'card'") == before
