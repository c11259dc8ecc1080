"""A group an admin bound in chat (登记本群) gets the pushes of a configured one: planned, sent once (issue 13)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlmodel import Session

from bot.config import Config, parse_config
from bot.engine import Engine
from bot.services import build_pushes
from models.clock import FixedClock
from models.db import make_engine
from models.push_groups import stored_groups
from scheduler.calendar import WorkCalendar
from scheduler.plan import PlanGroup, plan_window
from scheduler.ticker import Ticker
from tests.handlers.test_join import WeComChat, county
from tests.scheduler.conftest import due_rows, outbox
from tests.school import START, TZ, start_engine

STAFF_CHAT, LEADERS_CHAT = "wrkS2", "wrkS2L"
STAFF_GROUP, LEADERS_GROUP = f"wecom-chat-{STAFF_CHAT}", f"wecom-chat-{LEADERS_CHAT}"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


@pytest.fixture
def config() -> Config:
    data = county()
    data["scheduler"] = {"charts_in_digests": False}
    return parse_config(data)


@pytest.fixture
def bound(config: Config, tmp_path: Path) -> Iterator[WeComChat]:
    """The county with 城南小学's staff and leaders' chats bound in chat by the county admin (no TOML entry)."""
    engine = start_engine(config, tmp_path)
    chat = WeComChat(engine)
    assert chat.say("wu_ju", "登记本群 城南小学 城南小学安全群 教职工", chat=STAFF_CHAT).startswith("已登记本群")
    assert chat.say("wu_ju", "登记本群 城南小学 城南小学领导群 领导", chat=LEADERS_CHAT).startswith("已登记本群")
    yield chat
    engine.db.dispose()


def new_ticker(config: Config, engine: Engine) -> Ticker:
    return Ticker(config=config, db=engine.db, enqueue_push=build_pushes(config).enqueue_push)


def texts(engine: Engine, group: str) -> list[str]:
    return [json.loads(m.payload).get("content", "") for m in outbox(engine.db, group)]


def test_the_plan_lists_a_group_bound_in_chat(bound: WeComChat, config: Config) -> None:
    with Session(bound.engine.db) as session:
        groups = [PlanGroup.of_stored(group) for group in stored_groups(session)]
    assert {(g.id, g.kind, g.units, g.source) for g in groups if g.source == "chat"} == {
        (STAFF_GROUP, "staff", ("school2",), "chat"), (LEADERS_GROUP, "leaders", ("school2",), "chat"),
    }
    pushes = plan_window(config, WorkCalendar.from_config(config), first=date(2023, 12, 6), last=date(2023, 12, 6),
                         groups=groups)
    mine = {(p.kind, p.group_id, p.send_at) for p in pushes if p.group_id in (STAFF_GROUP, LEADERS_GROUP)}
    assert ("report_reminder", STAFF_GROUP, at("2023-12-06 17:00")) in mine
    assert ("leader_digest", LEADERS_GROUP, at("2023-12-06 08:00")) in mine
    assert ("overdue_digest", STAFF_GROUP, at("2023-12-06 08:30")) in mine
    # Without the database's groups the plan knows only the TOML's (the old behaviour, kept for `plan --no-db`).
    toml_only = plan_window(config, WorkCalendar.from_config(config), first=date(2023, 12, 6), last=date(2023, 12, 6))
    assert not [p for p in toml_only if p.group_id in (STAFF_GROUP, LEADERS_GROUP)]


def test_a_group_bound_in_chat_gets_the_report_reminder_on_its_day_exactly_once(
    bound: WeComChat, config: Config
) -> None:
    engine = bound.engine
    ticker, other = new_ticker(config, engine), new_ticker(config, engine)  # two processes

    before = ticker.tick(at("2023-12-06 16:59"))
    assert not [key for key in before.sent if key.startswith("report_reminder")]

    result = ticker.tick(at("2023-12-06 17:00"))
    again = other.tick(at("2023-12-06 17:01"))
    ticker.tick(at("2023-12-06 17:05"))

    key = f"report_reminder:c1:{STAFF_GROUP}:2023-12-06"
    assert key in result.sent and key not in again.sent
    [row] = due_rows(engine.db, key=key)
    assert row.state == "sent" and row.group_id == STAFF_GROUP
    [reminder] = [t for t in texts(engine, STAFF_GROUP) if "报送提醒" in t]
    assert "第2期（11-27至12-06）统计报表今天17:00截止" in reminder
    assert "城南小学" in reminder and "城关一中" not in reminder  # the group's own school only
    # The leaders' chat gets no staff reminder.
    assert not [t for t in texts(engine, LEADERS_GROUP) if "报送提醒" in t]


def test_a_leaders_group_bound_in_chat_gets_the_leaders_digest_on_its_day_exactly_once(
    bound: WeComChat, config: Config
) -> None:
    engine = bound.engine
    ticker = new_ticker(config, engine)
    ticker.tick(at("2023-12-06 07:59"))
    assert not [t for t in texts(engine, LEADERS_GROUP) if "领导日报" in t]

    first = ticker.tick(at("2023-12-06 08:00"))
    ticker.tick(at("2023-12-06 08:01"))
    new_ticker(config, engine).tick(at("2023-12-06 08:02"))  # a restart

    assert f"leader_digest:c1:{LEADERS_GROUP}:2023-12-06" in first.sent
    [digest] = [t for t in texts(engine, LEADERS_GROUP) if "领导日报" in t]
    assert "城南小学" in digest
    assert [r.state for r in due_rows(engine.db, key=f"leader_digest:c1:{LEADERS_GROUP}:2023-12-06")] == ["sent"]
    # Saturday: no daily digest; Monday's comes at 08:00.
    saturday = ticker.tick(at("2023-12-09 08:00"))
    assert not [key for key in saturday.sent if key.startswith(f"leader_digest:c1:{LEADERS_GROUP}")]
    monday = ticker.tick(at("2023-12-11 08:00"))
    assert f"leader_digest:c1:{LEADERS_GROUP}:2023-12-11" in monday.sent
    assert len([t for t in texts(engine, LEADERS_GROUP) if "领导日报" in t]) == 2


CLI_CONFIG = """
timezone = "Asia/Shanghai"

[database]
url = "sqlite:///{db}"

[scheduler]
charts_in_digests = false

[[campaigns]]
id = "c1"
name = "冬春安全整治大会战"
start = 2023-11-21
end = 2024-05-10
reporting = {{ every_days = 10, first = 2023-11-26, at = "17:00" }}

[[units]]
id = "school"
name = "城关一中"

[[units]]
id = "school2"
name = "城南小学"

[[people]]
id = "wu_ju"
name = "吴菊"
unit = "school"
roles = ["admin", "leader"]
wecom_userid = "wu_ju"

[directory]
platform = "wecom"
schools = {{ 10 = "school", 20 = "school2" }}
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Iterator[Path]:
    """A TOML config without [[groups]]: 城南小学's chat is bound in chat only."""
    from bot.config import load_config

    path = tmp_path / "config.toml"
    path.write_text(CLI_CONFIG.format(db=tmp_path / "cli.db"), encoding="utf-8")
    config = load_config(path)
    engine = Engine(config=config, db=make_engine(config.database.url), data_dir=tmp_path / "data",
                    clock=FixedClock(START))
    engine.start()
    chat = WeComChat(engine)
    assert chat.say("wu_ju", "登记本群 城南小学 城南小学安全群 教职工", chat=STAFF_CHAT).startswith("已登记本群")
    yield path
    engine.db.dispose()


def test_cli_plan_lists_a_group_bound_in_chat(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    assert main(["plan", "--config", str(config_file), "--from", "2023-12-06", "--until", "2023-12-06"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("2023-12-06 17:00+08:00  report_reminder") and STAFF_GROUP in line
               and "第2期报送提醒（截至12-06）" in line for line in lines)
    assert main(["plan", "--config", str(config_file), "--from", "2023-12-06", "--until", "2023-12-06", "--no-db"]) == 0
    assert "no pushes between 2023-12-06 and 2023-12-06" in capsys.readouterr().out  # the TOML has no groups


def test_groups_and_check_config_say_what_a_wecom_group_bound_in_chat_needs_to_get_pushes(
    config_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cli import main

    env = "SAFETYBOT_PUSH_KEY_WECOM_CHAT_WRKS2"
    monkeypatch.delenv(env, raising=False)
    assert main(["groups", "--config", str(config_file)]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert f"城南小学安全群 (staff); pushes: need the chat's 消息推送 webhook key in the environment variable {env}" in line
    assert main(["check-config", str(config_file)]) == 0
    err = capsys.readouterr().err
    assert f"警告：群「城南小学安全群」（{STAFF_GROUP}，在群里登记）：" in err and env in err

    monkeypatch.setenv(env, "0b0c-key")
    assert main(["groups", "--config", str(config_file), "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["push"] == f"ready (webhook key in {env})"
    assert main(["check-config", "--lang", "en", str(config_file)]) == 0
    assert "bound in chat" not in capsys.readouterr().err


def test_the_reminder_of_a_wecom_group_bound_in_chat_goes_out_by_the_webhook_key_its_variable_names(
    tmp_path: Path,
) -> None:
    import anyio
    import httpx

    from bot.platforms.base import PlatformDeps
    from bot.platforms.wecom.context import WeComContext
    from bot.platforms.wecom.deliveries import WebhookDelivery
    from bot.secrets import Secrets
    from tests.fakes.wecom_server import FakeWeCom

    key, env = "5f1e-chat-bound-key", "SAFETYBOT_PUSH_KEY_WECOM_CHAT_WRKS2"
    with FakeWeCom(window=60.0) as fake:
        fake.add_webhook_key(key)
        data = county()
        data["scheduler"] = {"charts_in_digests": False}
        data["wecom"] = {"api_base": fake.base_url}
        config = parse_config(data)
        engine = start_engine(config, tmp_path)
        try:
            chat = WeComChat(engine)
            assert chat.say("wu_ju", "登记本群 城南小学 城南小学安全群 教职工", chat=STAFF_CHAT).startswith("已登记本群")
            new_ticker(config, engine).tick(at("2023-12-06 17:00"))
            rows = outbox(engine.db, STAFF_GROUP)
            assert [row.channel for row in rows] == ["wecom_webhook"]

            async def deliver(environ: dict[str, str]) -> list[str]:
                async with httpx.AsyncClient() as http:
                    ctx = WeComContext(PlatformDeps(config=config, secrets=Secrets(environ=environ), http=http,
                                                          db=engine.db, now=lambda: at("2023-12-06 17:00")))
                    delivery = WebhookDelivery(ctx)
                    return [(await delivery.deliver(row)).error or "sent" for row in rows]

            [missing] = anyio.run(deliver, {})
            assert env in missing and "bound in chat" in missing
            assert anyio.run(deliver, {env: key}) == ["sent"]
            [sent] = fake.sent_to(key)
            assert sent.msgtype == "markdown" and "报送提醒" in sent.content and "城南小学" in sent.content
        finally:
            engine.db.dispose()


def test_a_group_removed_from_the_toml_gets_no_more_pushes_while_groups_bound_in_chat_do(
    bound: WeComChat, config: Config
) -> None:
    from models.tables import GroupRow

    with Session(bound.engine.db) as session:  # a [[groups]] entry of an earlier config: its row stays
        session.add(GroupRow(id="old-staff", name="旧群", platform="wecom", kind="staff", source="config"))
        session.commit()
    planned = {p.group_id for p in new_ticker(config, bound.engine).planned(at("2023-12-06 09:00"))}
    assert {"staff", STAFF_GROUP, LEADERS_GROUP} <= planned and "old-staff" not in planned
