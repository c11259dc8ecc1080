"""Low DingTalk budget: a group's non-urgent pushes of the day are held and go as ONE message at the merge time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import Engine as DbEngine
from sqlmodel import Session

from bot.config import Config, parse_config
from bot.outbox import OutboxSender
from bot.platforms.base import PlatformDeps
from bot.platforms.dingtalk.platform import DingTalkPlatform
from bot.secrets import Secrets
from models.db import make_engine
from models.platform_usage import budgeted_calls, count_call, usage_of_month
from models.tables import DuePushState
from tests.fakes.dingtalk_server import FakeDingTalk
from tests.scheduler.conftest import at, due_rows, new_ticker, outbox, seed002_data, start_engine
from tests.school import Chat

APP_KEY, APP_SECRET = "dingappkey0001", "dingappsecret0001"
TOKEN, SECRET = "1c53e149ba5de6597ca2442f0e901fd8", "SEC0123456789abcdef0123456789abcdef"
ENV = {"DT_KEY": APP_KEY, "DT_SECRET": APP_SECRET, "DT_TOKEN": TOKEN, "DT_SIGN": SECRET}
REPORT = "隐患\n部位：3号教学楼二楼东侧\n问题：消防通道堆放杂物\n责任人：王建国\n期限：12月14日"
MAJOR = "隐患\n部位：实验楼三楼\n问题：危化品柜未上锁\n等级：重大\n责任人：李娜\n期限：12月20日"
DAY = "2018-12-17"  # a Monday: the overdue digest (08:30), a milestone nudge (09:00) and the reporting reminder (17:00)
HELD = [
    f"overdue_digest:winter-2018:staff:{DAY}", f"milestone_nudge:winter-2018:staff:m2:2018-12-19:3",
    "report_reminder:winter-2018:staff:2018-12-16",
]


@pytest.fixture
def fake() -> Iterator[FakeDingTalk]:
    server = FakeDingTalk()
    server.add_app(APP_KEY, APP_SECRET)
    server.add_custom_robot(TOKEN, secret=SECRET)
    with server:
        yield server


def config_for(fake: FakeDingTalk, **dingtalk: Any) -> Config:
    """Seed 002 with the staff and leaders' groups on DingTalk (custom robot + app robot), budget 100 a month."""
    data = seed002_data()
    for group in data["groups"]:
        if group["id"] in ("staff", "leaders"):
            group.update(platform="dingtalk", chat_id=f"cid{group['id']}==", credentials={
                "app_key": "DT_KEY", "app_secret": "DT_SECRET", "webhook_token": "DT_TOKEN", "webhook_secret": "DT_SIGN",
            })
    # Overdue hazards climb to the leaders at once, so the staff group's digest is not folded into an escalation.
    data["escalation"] = {"at": "08:45", "steps": [{"after_days": 0, "name": "分管领导", "to": "leaders"}]}
    data["dingtalk"] = {"api_base": fake.base_url, "oapi_base": fake.base_url, "monthly_call_budget": 100,
                        "budget_low_percent": 80, **dingtalk}
    return parse_config(data)


def start(config: Config, tmp_path: Path, used: int, db: DbEngine | None = None) -> tuple[Chat, DbEngine]:
    db = db or make_engine(f"sqlite:///{tmp_path / 'daily.db'}")
    engine = start_engine(config, db, tmp_path / "data")
    for _ in range(used):  # calls made earlier this month
        count_call(db, platform="dingtalk", month="2018-12", kind="group_send")
    chat = Chat(engine, at("2018-12-10 10:00"))
    chat.say("zhang_wei", REPORT)  # overdue from 12-15: in the staff group's digest and escalations on the 17th
    return chat, db


def deliver(config: Config, db: DbEngine, now: datetime) -> int:
    """Drain the outbox once through the DingTalk deliveries against the fake; rows attempted."""

    async def run() -> int:
        async with httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as http:
            deps = PlatformDeps(config=config, secrets=Secrets(environ=ENV), http=http, db=db, now=lambda: now)
            platform = DingTalkPlatform(deps)
            sender = OutboxSender(db=db, deliveries=platform.deliveries, clock=lambda: now)
            try:
                return await sender.drain_once()
            finally:
                await platform.ctx.meter.aclose()  # a clean stop writes the calls counted in memory

    return anyio.run(run)


def webhook_texts(fake: FakeDingTalk) -> list[str]:
    return [m["markdown"]["text"] for m in fake.webhook_messages]


def tick_through_the_day(config: Config, db: DbEngine, times: list[str]) -> None:
    for moment in times:
        new_ticker(config, db).tick(at(f"{DAY} {moment}"))  # a new Ticker each time: restarts lose nothing


def test_three_pushes_of_a_day_go_as_one_message_at_the_merge_time(tmp_path: Path, fake: FakeDingTalk) -> None:
    config = config_for(fake)
    _, db = start(config, tmp_path, used=80)
    ticker = new_ticker(config, db)
    result = ticker.tick(at(f"{DAY} 09:00"))
    assert HELD[0] in result.held and HELD[1] in result.held
    # Escalations go at once, whatever the budget.
    assert f"escalation:winter-2018:leaders:{DAY}" in result.sent
    for key in HELD[:2]:
        [row] = due_rows(db, key=key)
        assert row.state == DuePushState.HELD.value and row.send_at == at(f"{DAY} 17:00")
        assert row.reason.startswith(f"held for the group's merged message at {DAY} 17:00: 80 of 100")
    staff_before = len(outbox(db, "staff"))
    assert ticker.tick(at(f"{DAY} 16:59")).sent == []
    assert len(outbox(db, "staff")) == staff_before

    deliver(config, db, at(f"{DAY} 16:59"))  # the escalation(s) so far
    sent_before = len(fake.webhook_messages)
    result = ticker.tick(at(f"{DAY} 17:00"))  # the reminder falls due, is held, and the merge time has come
    assert sorted(k for k in result.sent if ":staff:" in k) == sorted(HELD)
    [merged] = outbox(db, "staff")[staff_before:]
    assert merged.channel == "dingtalk_webhook" and merged.dedupe_key.endswith("+2:0")
    assert deliver(config, db, at(f"{DAY} 17:00")) >= 1
    new = webhook_texts(fake)[sent_before:]
    [text] = [t for t in new if "【报送提醒】" in t]
    assert "【逾期" in text and "【报送提醒】" in text and "截止" in text
    assert len(new) == 2  # the staff group's merged message, and the leaders' (their digest was held too)
    for key in HELD:
        [row] = due_rows(db, key=key)
        assert row.state == "sent" and row.reason.startswith("merged with 2 other push(es) into one message")
    # The custom robot carried it: no budgeted call was spent on the day's pushes.
    assert budgeted_calls(Session(db), "dingtalk", "2018-12") == 80
    with Session(db) as session:
        webhook_calls = {u.kind: u.calls for u in usage_of_month(session, "2018-12")}["webhook:custom_robot"]
    assert webhook_calls == len(fake.webhook_messages)
    # Nothing is left to send, and a later tick sends nothing again.
    assert new_ticker(config, db).tick(at(f"{DAY} 17:05")).sent == []


def test_a_restart_between_hold_and_send_loses_nothing_and_sends_once(tmp_path: Path, fake: FakeDingTalk) -> None:
    config = config_for(fake)
    _, db = start(config, tmp_path, used=90)
    _restart_between_hold_and_send(config, db)


def test_held_pushes_on_postgres_are_sent_once(postgres_engine: DbEngine, tmp_path: Path, fake: FakeDingTalk) -> None:
    config = config_for(fake)
    _, db = start(config, tmp_path, used=90, db=postgres_engine)
    _restart_between_hold_and_send(config, db)


def _restart_between_hold_and_send(config: Config, db: DbEngine) -> None:
    tick_through_the_day(config, db, ["08:30", "09:00"])  # each tick by a new process
    assert {r.key for r in due_rows(db, state="held") if r.group_id == "staff"} == set(HELD[:2])
    before = len(outbox(db, "staff"))
    # Two processes come up at the merge time; the rows are sent by one of them, once.
    results = [new_ticker(config, db, name=f"p{i}").tick(at(f"{DAY} 17:00")) for i in (1, 2)]
    assert sorted(k for r in results for k in r.sent if ":staff:" in k) == sorted(HELD)
    assert len(outbox(db, "staff")) == before + 1
    assert not [r for r in due_rows(db, state="held") if r.group_id == "staff"]


def test_a_major_alert_goes_at_once_while_the_days_pushes_wait(tmp_path: Path, fake: FakeDingTalk) -> None:
    config = config_for(fake)
    chat, db = start(config, tmp_path, used=100)
    tick_through_the_day(config, db, ["08:00", "09:00"])
    assert [r.key for r in due_rows(db, state="held") if r.group_id == "leaders"]  # the leaders' digest waits
    chat.now = at(f"{DAY} 10:00")
    chat.say("zhang_wei", MAJOR)
    result = new_ticker(config, db).tick(at(f"{DAY} 10:01"))
    assert [k for k in result.sent if k.startswith("major_alert:")] == ["major_alert:2:leaders"]
    deliver(config, db, at(f"{DAY} 10:01"))
    assert any("【重大隐患】" in t for t in webhook_texts(fake))


def test_with_budget_left_each_push_goes_at_its_own_time(tmp_path: Path, fake: FakeDingTalk) -> None:
    config = config_for(fake)
    _, db = start(config, tmp_path, used=79)
    result = new_ticker(config, db).tick(at(f"{DAY} 09:00"))
    assert result.held == [] and HELD[0] in result.sent and HELD[1] in result.sent
    assert len([m for m in outbox(db, "staff") if m.dedupe_key.startswith(f"push:{HELD[0]}")]) == 1


def test_the_merge_time_is_configurable_and_a_later_push_waits_for_the_next_day(tmp_path: Path, fake: FakeDingTalk) -> None:
    config = config_for(fake, merged_push_time="12:00")
    _, db = start(config, tmp_path, used=85)
    tick_through_the_day(config, db, ["09:00"])
    [row] = due_rows(db, key=HELD[0])
    assert row.send_at == at(f"{DAY} 12:00")
    tick_through_the_day(config, db, ["12:00", "17:00"])
    assert due_rows(db, key=HELD[0])[0].state == "sent"
    [reminder] = due_rows(db, key=HELD[2])
    assert reminder.state == "held" and reminder.send_at == at("2018-12-18 12:00")


def test_plan_and_usage_show_the_held_pushes_and_when_their_message_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main
    from bot.config import load_config
    from tests.conftest import EXAMPLE_CONFIG

    path = tmp_path / "config.toml"
    path.write_text(
        EXAMPLE_CONFIG.read_text(encoding="utf-8")
        .replace('campaign = "winter-2026"', 'campaign = "winter-2018"')
        .replace('url = "sqlite:///data/safetybot.db"', f'url = "sqlite:///{tmp_path / "plan.db"}"')
        + '\n[dingtalk]\nmonthly_call_budget = 100\n\n[[groups]]\nid = "dt-staff"\nname = "一中安全工作群（钉钉）"\n'
        'platform = "dingtalk"\nkind = "staff"\nunits = ["school"]\ncampaign = "winter-2018"\nchat_id = "cidStaff=="\n'
        'credentials = { webhook_token = "DT_TOKEN" }\n',
        encoding="utf-8",
    )
    config = load_config(path)
    db = make_engine(config.database.url)
    start_engine(config, db, tmp_path / "data")
    for _ in range(85):
        count_call(db, platform="dingtalk", month="2018-12", kind="group_send")
    new_ticker(config, db).tick(at(f"{DAY} 09:00"))
    nudge = "milestone_nudge:winter-2018:dt-staff:m2:2018-12-19:3"
    assert due_rows(db, key=nudge)[0].state == "held"
    capsys.readouterr()

    assert main(["plan", "--config", str(path), "--from", DAY, "--until", DAY, "--now", f"{DAY}T09:30+08:00"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("dingtalk API budget 2018-12: 85 of 100") and "held and go as one message a day at 17:00"
               in line for line in out)
    assert "held for the merged message of their group (1 push(es)):" in out
    assert f"{DAY} 17:00  merged  dt-staff  1 push(es) in one message: {nudge}" in out

    assert main(["outbox", "--config", str(path), "--usage", "--now", f"{DAY}T09:30+08:00"]) == 0
    assert f"{DAY} 17:00  merged  dt-staff  1 push(es) in one message: {nudge}" in capsys.readouterr().out
    db.dispose()
