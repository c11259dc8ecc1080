"""Cards with buttons in the simulator (issue 15): replies that lead to an action carry their commands."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bot.app import create_app
from bot.config import load_config
from models.tables import Hazard
from tests.conftest import campaign_clock

REPORT = "隐患\n部位：3号教学楼二楼东侧\n问题：消防通道堆放杂物\n责任人：王建国\n期限：明天"
SIM_URL = "http://127.0.0.1:8000"


def _client(config_path: Path, *, cards: bool) -> TestClient:
    if cards:
        config_path.write_text(config_path.read_text(encoding="utf-8") + "\n[cards]\nenabled = true\n", encoding="utf-8")
    return TestClient(create_app(load_config(config_path), clock=campaign_clock()), base_url=SIM_URL)


@pytest.fixture
def client(config_path: Path) -> Iterator[TestClient]:
    with _client(config_path, cards=True) as test_client:
        yield test_client


def send(client: TestClient, text: str, *, person: str = "zhang_wei") -> list[dict]:
    response = client.post("/sim/api/messages", data={"person_id": person, "group_id": "staff", "text": text})
    assert response.status_code == 200, response.text
    return list(response.json()["replies"])


def tap(client: TestClient, reply: dict, label: str, *, person: str) -> list[dict]:
    """A tap sends the command the button stands for, as the page does."""
    command = next(b["command"] for b in reply["buttons"] if b["label"] == label)
    return send(client, command, person=person)


def test_report_fix_and_close_by_taps(client: TestClient) -> None:
    reported = send(client, REPORT)[0]
    assert reported["text"].startswith("已登记隐患 #1")
    assert [(b["label"], b["command"]) for b in reported["buttons"]] == [
        ("整改", "整改 #1"), ("查看照片", "查看 #1"), ("转交", "转交 #1")]

    fixed = tap(client, reported, "整改", person="wang_jianguo")[0]
    assert "已报整改" in fixed["text"]
    assert [b["label"] for b in fixed["buttons"]] == ["销号", "退回"]

    # 退回 by a tap asks for the reason; nothing changes.
    assert "请写上退回原因" in tap(client, fixed, "退回", person="li_na")[0]["text"]
    # The hazard's own responsible person may not verify their own fix: refused, still open.
    refused = tap(client, fixed, "销号", person="wang_jianguo")[0]["text"]
    assert "不能自己验收销号" in refused or "没有销号权限" in refused
    closed = tap(client, fixed, "销号", person="li_na")[0]["text"]
    assert "已销号" in closed or "销号" in closed and "验收人" in closed
    again = tap(client, fixed, "销号", person="li_na")[0]["text"]
    assert "无需再处理" in again
    with Session(client.app.state.engine.db) as session:  # type: ignore[attr-defined]
        hazard = session.exec(select(Hazard)).one()
        assert hazard.status == "closed"


def test_cards_off_replies_carry_no_buttons(config_path: Path) -> None:
    with _client(config_path, cards=False) as plain:
        reply = send(plain, REPORT)[0]
    assert reply["text"].startswith("已登记隐患 #1") and reply["buttons"] == []


def test_page_script_turns_buttons_into_taps(client: TestClient) -> None:
    script = client.get("/sim/assets/sim.js").text
    assert "card-button" in script and "send(button.command)" in script


def test_check_config_says_where_cards_cannot_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main
    from tests.conftest import EXAMPLE_CONFIG

    path = tmp_path / "config.toml"
    path.write_text(EXAMPLE_CONFIG.read_text(encoding="utf-8") + """
[[wecom.bots]]
id = "aibot"
mode = "callback"
credentials = { token = "SAFETYBOT_WECOM_TOKEN", encoding_aes_key = "SAFETYBOT_WECOM_AES_KEY" }

[[dingtalk.robots]]
id = "dt"
mode = "stream"
credentials = { app_key = "SAFETYBOT_DT_KEY", app_secret = "SAFETYBOT_DT_SECRET" }

[cards]
enabled = true
""", encoding="utf-8")
    assert main(["check-config", str(path), "--lang", "en"]) == 0
    err = capsys.readouterr().err
    assert "WeCom" not in err  # callback-mode bots show cards too since 18e7485 (the passive stream answer)
    assert "warning: cards: no dingtalk_template_id" in err
