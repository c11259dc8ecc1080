"""DingTalk's monthly API budget: when it runs low a group's pushes are held for one message a day; 重大 alerts go."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine as DbEngine

from bot.config import Config, parse_config
from bot.engine import Engine
from models.db import make_engine
from models.outbox import PRIORITY_URGENT
from models.platform_usage import count_call
from tests.scheduler.conftest import at, due_rows, new_ticker, outbox, seed002_data, start_engine
from tests.school import Chat

REPORT = "隐患\n部位：3号教学楼二楼东侧\n问题：消防通道堆放杂物\n责任人：王建国\n期限：明天"
MAJOR = "隐患\n部位：实验楼三楼\n问题：危化品柜未上锁\n等级：重大\n责任人：李娜\n期限：12月20日"
DIGEST = "leader_digest:winter-2018:leaders:2018-12-03"
ESCALATION = "escalation:winter-2018:leaders:2018-12-03"


def dingtalk_leaders_config(**scheduler: Any) -> Config:
    """The seed-002 config with the leaders' group on DingTalk (custom robot + app robot), budget 100 a month."""
    data = seed002_data(**scheduler)
    for group in data["groups"]:
        if group["id"] == "leaders":
            group.update(platform="dingtalk", chat_id="cidLeaders001==",
                         credentials={"app_key": "DT_KEY", "app_secret": "DT_SECRET", "webhook_token": "DT_TOKEN"})
    data["dingtalk"] = {"monthly_call_budget": 100, "budget_low_percent": 80}
    return parse_config(data)


def start(config: Config, tmp_path: Path, used: int) -> tuple[Engine, DbEngine]:
    db = make_engine(f"sqlite:///{tmp_path / 'budget.db'}")
    engine = start_engine(config, db, tmp_path / "data")
    for _ in range(used):  # calls made earlier this month (December 2018, the clock's month)
        count_call(db, platform="dingtalk", month="2018-12", kind="group_send")
    count_call(db, platform="dingtalk", month="2018-12", kind="webhook:custom_robot")  # not budgeted
    count_call(db, platform="dingtalk", month="2018-11", kind="group_send")  # another month
    return engine, db


@pytest.fixture
def tmp(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def test_low_budget_holds_a_groups_pushes_for_one_message_and_escalations_go_at_once(tmp: Path) -> None:
    config = dingtalk_leaders_config()
    engine, db = start(config, tmp, used=80)  # 80 % used
    Chat(engine, at("2018-11-27 10:00")).say("zhang_wei", REPORT)  # deadline 11-28: overdue and escalated by 12-03
    result = new_ticker(config, db).tick(at("2018-12-03 09:00"))  # the digest (08:00) and escalation both due
    assert ESCALATION in result.sent and DIGEST in result.held
    [message] = outbox(db, "leaders")
    assert message.channel == "dingtalk_webhook" and message.dedupe_key == f"push:{ESCALATION}:0"
    assert "【逾期升级】" in json.loads(message.payload)["body"]["markdown"]["text"]

    result = new_ticker(config, db).tick(at("2018-12-03 17:00"))  # [dingtalk] merged_push_time
    assert DIGEST in result.sent
    [_, merged] = outbox(db, "leaders")
    assert merged.channel == "dingtalk_webhook" and merged.dedupe_key == f"push:{DIGEST}:0"
    assert "【领导日报】" in json.loads(merged.payload)["body"]["markdown"]["text"]
    [row] = due_rows(db, key=DIGEST)
    assert row.state == "sent" and row.reason.startswith("held for the day's merged message: 80 of 100")


def test_with_budget_left_each_push_is_its_own_message(tmp: Path) -> None:
    config = dingtalk_leaders_config()
    engine, db = start(config, tmp, used=79)  # 79 %: not low yet (the webhook's and November's calls do not count)
    Chat(engine, at("2018-11-27 10:00")).say("zhang_wei", REPORT)
    new_ticker(config, db).tick(at("2018-12-03 09:00"))
    assert sorted(m.dedupe_key for m in outbox(db, "leaders")) == [f"push:{ESCALATION}:0", f"push:{DIGEST}:0"]


def test_low_budget_keeps_charts_off_the_openapi_and_says_so(tmp: Path) -> None:
    config = dingtalk_leaders_config(charts_in_digests=True)
    engine, db = start(config, tmp, used=0)
    Chat(engine, at("2018-11-27 10:00")).say("zhang_wei", REPORT)
    new_ticker(config, db).tick(at("2018-12-03 08:00"))
    assert "dingtalk_openapi" in {m.channel for m in outbox(db, "leaders")}  # with budget left: the chart by OpenAPI

    low_config = dingtalk_leaders_config(charts_in_digests=True)
    engine2, db2 = start(low_config, tmp / "low", used=95)
    Chat(engine2, at("2018-11-27 10:00")).say("zhang_wei", REPORT)
    new_ticker(low_config, db2).tick(at("2018-12-03 08:00"))
    new_ticker(low_config, db2).tick(at("2018-12-03 17:00"))  # the held digest goes at the merge time
    messages = outbox(db2, "leaders")
    assert {m.channel for m in messages} == {"dingtalk_webhook"}  # moved to the custom robot, chart left out
    text = "\n".join(json.loads(m.payload)["body"]["markdown"]["text"] for m in messages)
    assert "本月钉钉接口调用已用 95%，图表和文件暂不推送" in text


def test_major_alerts_go_out_whatever_the_budget(tmp: Path) -> None:
    config = dingtalk_leaders_config()
    engine, db = start(config, tmp, used=100)  # the whole budget used
    Chat(engine, at("2018-12-04 23:10")).say("zhang_wei", MAJOR)
    result = new_ticker(config, db).tick(at("2018-12-04 23:11"))
    assert result.sent == ["major_alert:1:leaders"]
    alerts = outbox(db, "leaders")
    assert {m.priority for m in alerts} == {PRIORITY_URGENT}
    # Unmerged and whole: the alert, the 督办单 and its file, which only the OpenAPI can send.
    assert [m.channel for m in alerts] == ["dingtalk_webhook", "dingtalk_webhook", "dingtalk_openapi"]
    assert "【重大隐患】#1" in json.loads(alerts[0].payload)["body"]["markdown"]["text"]
