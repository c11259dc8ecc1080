"""API calls counted per platform and month, the DingTalk reply fallback that keeps the @, and `outbox --usage`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import anyio
import httpx
import pytest
from sqlmodel import Session

from bot.app import build_engine
from bot.cli import main
from bot.config import load_config
from bot.platforms import dingtalk
from bot.platforms.base import PlatformDeps
from bot.platforms.dingtalk.platform import DingTalkPlatform
from bot.secrets import Secrets
from models.clock import wall_clock_ms
from models.db import make_engine, upgrade
from models.platform_usage import count_call, usage_of_month
from models.tables import OutboxMessage
from tests.bot.test_dingtalk import ENV, WEBHOOK_TOKEN, dt_config, fake  # noqa: F401  (fixtures)
from tests.conftest import CAMPAIGN_NOW as CAMPAIGN_NOW_TEXT
from tests.fakes.dingtalk_server import FakeDingTalk

CAMPAIGN_NOW = datetime.fromisoformat(CAMPAIGN_NOW_TEXT)


def _row(payload: dict[str, object]) -> OutboxMessage:
    return OutboxMessage(
        id=1, dedupe_key="reply:1:0", platform="dingtalk", channel=dingtalk.CH_SESSION, robot="r",
        group_id=payload.get("group_id"), kind="markdown", payload=json.dumps(payload, ensure_ascii=False),
        created_at=CAMPAIGN_NOW, next_attempt_at=CAMPAIGN_NOW, give_up_at=CAMPAIGN_NOW,
    )


def _reply(url: str, group_id: str | None) -> dict[str, object]:
    text = "已登记隐患 #1  \n@0135210002"
    return {
        "robot_id": "dt-app", "group_id": group_id, "conversation_id": "cidSafetyStaff001==", "url": url,
        "expires": wall_clock_ms() - 1000,  # the sessionWebhook expired (the fake checks signs by the wall clock)
        "body": {"msgtype": "markdown", "markdown": {"title": "已登记隐患 #1", "text": text},
                 "at": {"atUserIds": ["0135210002"], "atMobiles": [], "isAtAll": False}},
        "fallback": {"title": "已登记隐患 #1", "text": "已登记隐患 #1"},
    }


def test_an_expired_session_webhook_falls_back_to_the_custom_robot_with_the_at_and_calls_are_counted(
    dt_config: Path, fake: FakeDingTalk  # noqa: F811
) -> None:
    config = load_config(dt_config)
    engine = build_engine(config)
    engine.start()

    async def deliver_both() -> tuple[bool, bool]:
        async with httpx.AsyncClient(timeout=httpx.Timeout(2.0)) as http:
            deps = PlatformDeps(config=config, secrets=Secrets(environ=ENV), http=http, db=engine.db,
                                now=lambda: CAMPAIGN_NOW)
            platform = DingTalkPlatform(deps)
            session = platform.deliveries[dingtalk.CH_SESSION]
            url, _ = fake.new_session()
            # The group has a custom robot: the reply goes there, @ and all.
            by_webhook = await session.deliver(_row(_reply(url, "dt-staff")))
            # No group (so no custom robot): the app robot's OpenAPI, without the @.
            by_openapi = await session.deliver(_row(_reply(url, None)))
            await platform.ctx.meter.aclose()  # counts are written within a second, and on a clean stop
            return by_webhook.ok, by_openapi.ok

    assert anyio.run(deliver_both) == (True, True)
    assert fake.session_messages == []
    [webhook] = fake.webhook_messages
    assert webhook["_token"] == WEBHOOK_TOKEN and webhook["at"]["atUserIds"] == ["0135210002"]
    assert "@0135210002" in webhook["markdown"]["text"]
    [group_message] = fake.group_messages
    assert group_message["msgParam"] == {"title": "已登记隐患 #1", "text": "已登记隐患 #1"}

    with Session(engine.db) as db_session:
        usage = {(u.kind, u.calls, u.budgeted) for u in usage_of_month(db_session, CAMPAIGN_NOW.strftime("%Y-%m"))}
    assert usage == {("webhook:custom_robot", 1, False), ("access_token", 1, True), ("group_send", 1, True)}
    # What the fake saw, call for call.
    assert [path for _, path in fake.requests if "accessToken" in path or "groupMessages" in path] == [
        "/v1.0/oauth2/accessToken", "/v1.0/robot/groupMessages/send",
    ]


def _usage_config(tmp_path: Path, budget: int) -> tuple[Path, str]:
    config = tmp_path / "c.toml"
    db_url = f"sqlite:///{tmp_path / 'o.db'}"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n[dingtalk]\nmonthly_call_budget = {budget}\n'
        '[[units]]\nid = "s"\nname = "学校"\n[[people]]\nid = "a"\nname = "管理员"\nunit = "s"\nroles = ["admin"]\n',
        encoding="utf-8",
    )
    upgrade(make_engine(db_url))
    return config, db_url


def test_outbox_usage_shows_the_month_per_platform_and_kind_with_the_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, db_url = _usage_config(tmp_path, budget=5000)
    db = make_engine(db_url)
    for _ in range(3):
        count_call(db, platform="dingtalk", month="2026-12", kind="group_send")
    count_call(db, platform="dingtalk", month="2026-12", kind="access_token")
    count_call(db, platform="dingtalk", month="2026-12", kind="webhook:custom_robot")
    count_call(db, platform="wecom", month="2026-12", kind="webhook_send")
    count_call(db, platform="dingtalk", month="2026-11", kind="group_send")  # last month: not shown
    assert main(["outbox", "--config", str(config), "--usage", "--now", "2026-12-31T23:30+08:00"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "API calls in 2026-12"
    assert "  dingtalk: 5" in out and "  wecom: 1" in out
    assert any(line.split() == ["group_send", "3"] for line in out)
    assert any(line.split()[:2] == ["webhook:custom_robot", "1"] and "not counted" in line for line in out)
    assert out[-1] == "dingtalk API budget 2026-12: 4 of 5000 calls used (0.1%), 4996 left; pushes merge from 80%"

    # A minute later it is January in Asia/Shanghai: a new month, nothing counted yet.
    assert main(["outbox", "--config", str(config), "--usage", "--json", "--now", "2026-12-31T16:00Z"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == {"month": "2027-01", "calls": [], "budget": {"dingtalk": 5000}, "used": {"dingtalk": 0}}


def test_outbox_usage_says_when_the_budget_runs_low_and_plan_shows_the_budget_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, db_url = _usage_config(tmp_path, budget=10)
    db = make_engine(db_url)
    for _ in range(9):
        count_call(db, platform="dingtalk", month="2026-12", kind="group_send")
    assert main(["outbox", "--config", str(config), "--usage", "--now", "2026-12-15T10:00+08:00"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("dingtalk API budget 2026-12: 9 of 10 calls used (90.0%), 1 left; LOW:") and "重大" in last
    assert main(["plan", "--config", str(config), "--from", "2026-12-15", "--until", "2026-12-16",
                 "--now", "2026-12-15T10:00+08:00"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == last
    assert main(["plan", "--config", str(config), "--from", "2026-12-15", "--until", "2026-12-16", "--no-db",
                 "--now", "2026-12-15T10:00+08:00"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "dingtalk API budget 2026-12: 10 calls a month (usage not read)"


def test_no_budget_no_budget_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = _usage_config(tmp_path, budget=0)
    assert main(["outbox", "--config", str(config), "--usage", "--now", "2026-12-15T10:00+08:00"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "API calls in 2026-12", "  none counted", "no monthly API budget set ([dingtalk] monthly_call_budget)",
    ]


def test_calls_are_counted_in_memory_written_within_a_second_and_all_on_a_clean_stop(tmp_path: Path) -> None:
    import time
    from zoneinfo import ZoneInfo

    from bot.usage import CallMeter
    from models.platform_usage import budgeted_calls

    db = make_engine(f"sqlite:///{tmp_path / 'u.db'}")
    upgrade(db)

    def used() -> int:
        with Session(db) as session:
            return budgeted_calls(session, "dingtalk", "2026-12")

    meter = CallMeter(db, ZoneInfo("Asia/Shanghai"), lambda: CAMPAIGN_NOW, flush_seconds=3600)

    async def burst() -> None:
        for _ in range(40):
            await meter.count("dingtalk", "group_send")
        assert used() == 0  # held in memory: no write per call
        await meter.aclose()

    anyio.run(burst)
    assert used() == 40  # a clean stop writes every count

    quick = CallMeter(db, ZoneInfo("Asia/Shanghai"), lambda: CAMPAIGN_NOW, flush_seconds=0.05)
    for _ in range(5):
        quick.count_now("dingtalk", "group_send")
    deadline = time.monotonic() + 5
    while used() < 45 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert used() == 45  # the timer wrote them without a stop
