"""`safetybot parse --json`: what the bot understood from one message, as the JSON contract."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.cli import main

NOW = "2023-12-05T10:00+08:00"
FIELD_KEYS = {"location", "problem", "category", "level", "responsible", "unit", "deadline", "measure",
              "check_item", "immediate", "closed_building", "source"}


def parse_json(message: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["parse", "--now", NOW, "--json", message]) == 0
    out = capsys.readouterr().out
    result: dict[str, Any] = json.loads(out)
    return result


def test_report_prints_every_field_with_an_iso_deadline(capsys: pytest.CaptureFixture[str]) -> None:
    data = parse_json(
        "隐患\n部位：3号教学楼二楼东侧\n问题：消防通道堆放杂物\n等级：一般\n责任人：王建国\n单位：总务处\n"
        "期限：本周五\n措施：清理杂物\n检查内容：消防设施\n立即整改：否\n停用：否",
        capsys,
    )
    assert {"command", "hazard_no", "fields", "errors"} <= data.keys()
    assert data["command"] == "report"
    assert data["hazard_no"] is None
    assert data["errors"] == []
    assert set(data["fields"]) == FIELD_KEYS
    assert data["fields"] == {
        "location": "3号教学楼二楼东侧",
        "problem": "消防通道堆放杂物",
        "category": "消防",
        "level": "一般",
        "responsible": "王建国",
        "unit": "总务处",
        "deadline": "2023-12-08",
        "measure": "清理杂物",
        "check_item": "消防设施",
        "immediate": False,
        "closed_building": False,
        "source": None,
    }


def test_numbered_command_prints_the_hazard_number(capsys: pytest.CaptureFixture[str]) -> None:
    data = parse_json("延期 #23 12月20日 等待配件", capsys)
    assert data["command"] == "extend"
    assert data["hazard_no"] == 23
    assert data["fields"]["deadline"] == "2023-12-20"
    assert data["note"] == "等待配件"
    assert data["errors"] == []


def test_absent_fields_are_null(capsys: pytest.CaptureFixture[str]) -> None:
    data = parse_json("销号 #23", capsys)
    assert data["command"] == "close"
    assert data["fields"] == dict.fromkeys(FIELD_KEYS)


def test_traditional_message_prints_simplified_values(capsys: pytest.CaptureFixture[str]) -> None:
    data = parse_json("隱患 部位：3號教學樓，問題：消防通道堆放雜物", capsys)
    assert data["fields"]["location"] == "3号教学楼"
    assert data["fields"]["problem"] == "消防通道堆放杂物"


def test_bad_message_prints_errors_and_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    data = parse_json("你好", capsys)
    assert data["command"] is None
    assert len(data["errors"]) == 1
    assert "帮助" in data["errors"][0]


def test_report_with_errors_keeps_what_was_understood(capsys: pytest.CaptureFixture[str]) -> None:
    data = parse_json("隐患 部位：3号楼 问题：插座松动 期限：下个礼拜左右", capsys)
    assert data["command"] == "report"
    assert data["fields"]["location"] == "3号楼"
    assert data["fields"]["deadline"] is None
    assert data["errors"] == ["没看懂期限「下个礼拜左右」，请写成具体日期，例如：期限：12月10日、本周五或3天内"]


def test_deadline_is_resolved_against_the_now_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", "--now", "2023-12-30T09:00+08:00", "--json", "隐患 部位：3号楼 问题：插座松动 期限：1月5日"]) == 0
    assert json.loads(capsys.readouterr().out)["fields"]["deadline"] == "2024-01-05"


def test_config_gives_the_vocabulary_for_plain_words(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    config = Path(__file__).resolve().parents[2] / "config.example.toml"
    message = "三楼东侧灭火器过期了，王建图负责，周五前弄好"
    assert main(["parse", "--now", NOW, "--config", str(config), "--json", message]) == 0
    with_config = json.loads(capsys.readouterr().out)
    assert with_config["fields"]["location"] == "三楼东侧"
    assert with_config["fields"]["deadline"] == "2023-12-08"
    assert with_config["doubts"] == ["unknown_person:王建图>王建国"]
    without = parse_json(message, capsys)
    assert without["fields"]["responsible"] == "王建图" and without["doubts"] == []


def test_unreadable_config_is_reported_not_raised(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[units]]\nid = 1\n", encoding="utf-8")
    assert main(["parse", "--now", NOW, "--config", str(bad), "--json", "谢谢"]) == 2
    assert capsys.readouterr().err
