"""回头看 (issue 16) in the campaign clock's pushes: the leaders' digest lists the 复查 items, the coverage gaps and the
findings the schools' self-checks missed; phase reminders name the 复查 items still to do."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import parse_config
from bot.engine import Engine
from tests.handlers.test_lookback import IN_C1, IN_LOOKBACK, LOOKBACK, c1_history
from tests.handlers.test_lookback import items
from tests.scheduler.conftest import at, new_ticker, outbox
from tests.school import Chat, start_engine


@pytest.fixture
def county(tmp_path: Path) -> Iterator[Chat]:
    engine = start_engine(parse_config(LOOKBACK), tmp_path)
    yield Chat(engine, IN_C1)
    engine.db.dispose()


def texts(engine: Engine, group: str) -> list[str]:
    return [json.loads(m.payload)["text"] for m in outbox(engine.db, group) if m.kind == "text"]


def test_leader_digest_and_phase_reminder_of_a_lookback(county: Chat) -> None:
    c1_history(county)  # the clock now stands in the look-back
    county.say("wu_ju", "复查", group="lb_county")  # the draw: 4 items (see tests/handlers)
    teaching = sum(1 for item, _ in items(county) if item.unit_id == "teaching")  # 城关一中's share of them
    county.say("li_na", "检查 部位：3号教学楼 结果：无隐患", group="lb_s1")
    county.say("zheng_gang", "隐患 部位：食堂 问题：灭火器过期 期限：3月20日", group="lb_s1")
    ticker = new_ticker(county.engine.config, county.engine.db)
    ticker.tick(at("2024-03-06 08:00"))
    [digest] = [t for t in texts(county.engine, "lb_county") if t.startswith("【领导日报】回头看")]
    assert "待复查4项（发「复查」查看）" in digest
    assert "覆盖：学校：已检查1/2；建筑单体：已检查2/4" in digest
    assert "未检查的学校：城南小学" in digest and "未检查的建筑（城南小学）：3号教学楼、食堂" in digest
    assert "督查发现、自查未查出：城关一中1项" in digest
    assert "三看未答完：城关一中、城南小学" in digest
    assert "动态清零：未销号1项（本次共登记1项：督查1）" in digest
    assert [m.kind for m in outbox(county.engine.db, "lb_county")].count("image") == 2  # + the 动态清零 chart
    # c1's own digest (another campaign, not a look-back) says nothing of it.
    assert not any("待复查" in t for t in texts(county.engine, "leaders"))
    ticker.tick(at("2024-03-28 09:00"))  # 3 days before the 自查 phase ends
    [nudge] = [t for t in texts(county.engine, "lb_s1") if t.startswith("【阶段提醒】自查")]
    assert f"待复查{teaching}项：教务处{teaching}（发「复查」查看）" in nudge and teaching >= 1
    assert IN_LOOKBACK.date() < at("2024-03-28 09:00").date()
