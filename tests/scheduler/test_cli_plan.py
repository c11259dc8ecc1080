"""`safetybot plan`: every push the bot will make, as text lines or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from tests.conftest import EXAMPLE_CONFIG


@pytest.fixture
def seed_config(tmp_path: Path) -> Path:
    """The example config with its groups on the seed-002 campaign."""
    path = tmp_path / "config.toml"
    path.write_text(
        EXAMPLE_CONFIG.read_text(encoding="utf-8").replace('campaign = "winter-2026"', 'campaign = "winter-2018"'),
        encoding="utf-8",
    )
    return path


def test_plan_lines(seed_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--config", str(seed_config), "--from", "2018-11-26", "--until", "2018-12-17"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "2018-11-26 17:00+08:00  report_reminder  winter-2018  staff          第1期报送提醒（截至11-26）" in lines
    assert "2018-12-17 17:00+08:00  report_reminder  winter-2018  staff          第3期报送提醒（截至12-16）（原定12-16周日，顺延）" in lines
    assert any("milestone_nudge  winter-2018  staff" in line and "报送阶段性情况（第一次）截止（12-19，还有2天）" in line for line in lines)
    assert lines == sorted(lines, key=lambda line: line[:22])
    assert not any("2018-12-16" in line[:10] for line in lines)  # a Sunday: nothing goes out


def test_plan_json(seed_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--config", str(seed_config), "--from", "2019-02-11", "--until", "2019-02-11", "--json"]) == 0
    pushes = json.loads(capsys.readouterr().out)
    assert all(set(p) == {"at", "kind", "campaign", "group", "summary"} for p in pushes)
    assert {"at": "2019-02-11T17:00+08:00", "kind": "report_reminder", "campaign": "winter-2018", "group": "staff",
            "summary": "第8期报送提醒（截至02-04）（原定02-04周一，顺延）"} in pushes
    assert {p["kind"] for p in pushes} == {"report_reminder", "overdue_digest", "leader_digest"}


def test_plan_of_the_example_config_warns_where_holiday_data_ends(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--config", str(EXAMPLE_CONFIG), "--from", "2026-12-28", "--until", "2027-01-12"]) == 0
    out, err = capsys.readouterr()
    assert "2027-01-11 17:00+08:00  report_reminder  winter-2026  school2-staff  第6期报送提醒（截至01-09）（原定01-09周六，顺延）" in out
    assert "holiday data ends 2026-12-31" in err


def test_plan_rejects_a_reversed_window(seed_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--config", str(seed_config), "--from", "2019-01-02", "--until", "2019-01-01"]) == 2
    assert "before --from" in capsys.readouterr().err
