"""`safetybot plan`: every push the bot will make, as text lines or JSON."""

from __future__ import annotations

import json
import re
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
    # Report day 01-09 is a Saturday: both reminders before it ("-1d 16:00", "0d 09:00") fall on days off and
    # come on the Friday before, as one; none comes after the deadline.
    assert "2027-01-08 16:00+08:00  report_reminder  winter-2026  school2-staff  第6期报送提醒（01-09 17:00截止）" in out
    assert "2027-01-11 17:00+08:00  report_reminder" not in out
    assert "official holiday data ends 2026-12-31" in err
    assert "estimated from the lunar calendar (make-up workdays are not): 2027-01-01–2027-01-03 元旦." in err


def test_plan_moves_a_reminder_out_of_the_estimated_2027_spring_festival(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Spring Festival 2027: 初一 is 02-06, so 除夕–初七 is 02-05–02-12; report day 02-08 lies inside."""
    assert main(["plan", "--config", str(EXAMPLE_CONFIG), "--from", "2027-02-01", "--until", "2027-02-19"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert (  # the reminders before a deadline inside the holiday come before it
        "2027-02-04 16:00+08:00  report_reminder  winter-2026  staff          "
        "第9期报送提醒（02-08 17:00截止）（原定02-07周日，提前）"
    ) in lines
    assert not any(line.startswith(("2027-02-05", "2027-02-08", "2027-02-12")) for line in lines)
    assert "2027-02-05–2027-02-12 春节" in err
    assert main(["plan", "--config", str(EXAMPLE_CONFIG), "--from", "2027-03-01", "--until", "2027-03-01"]) == 0
    assert "report_reminder" not in capsys.readouterr().out


def test_plan_without_remind_before_moves_the_reminder_after_the_holiday(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        EXAMPLE_CONFIG.read_text(encoding="utf-8").replace('remind_before = ["-1d 16:00", "0d 09:00"]', ""),
        encoding="utf-8",
    )
    assert main(["plan", "--config", str(path), "--from", "2027-02-01", "--until", "2027-02-19"]) == 0
    assert (
        "2027-02-15 17:00+08:00  report_reminder  winter-2026  staff          "
        "第9期报送提醒（截至02-08）（原定02-08周一，按估算假期顺延）"
    ) in capsys.readouterr().out.splitlines()
    # A weekend move outside the estimated holidays keeps the plain label.
    assert main(["plan", "--config", str(path), "--from", "2027-03-01", "--until", "2027-03-01"]) == 0
    assert "（原定02-28周日，顺延）" in capsys.readouterr().out


def test_plan_follows_the_overrides_over_the_estimate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        EXAMPLE_CONFIG.read_text(encoding="utf-8").replace("extra_workdays = []", "extra_workdays = [2027-02-08]"),
        encoding="utf-8",
    )
    assert main(["plan", "--config", str(path), "--from", "2027-02-08", "--until", "2027-02-08", "--json"]) == 0
    out, err = capsys.readouterr()
    assert {"at": "2027-02-08T09:00+08:00", "kind": "report_reminder", "campaign": "winter-2026", "group": "staff",
            "summary": "第9期报送提醒（02-08 17:00截止）"} in json.loads(out)
    assert "extra_holidays / extra_workdays" in err and "): none." in err


def test_check_config_names_the_estimated_holidays_of_the_campaigns(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE_CONFIG), "--lang", "en"]) == 0
    out, err = capsys.readouterr()
    note = out.splitlines()[1]
    assert note.startswith("note: official holiday data ends 2026-12-31; days off after it in the campaigns")
    assert (
        "2027-01-01–2027-01-03 元旦, 2027-02-05–2027-02-12 春节, 2027-04-03–2027-04-05 清明节, "
        "2027-05-01–2027-05-05 劳动节, 2027-06-09 端午节." in note  # 端午: the look-back runs to 06-15
    )
    assert err == ""


def test_check_config_speaks_of_the_estimated_holidays_in_chinese_by_default(
    capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", str(EXAMPLE_CONFIG)]) == 0
    note = capsys.readouterr().out.splitlines()[1]
    assert note.startswith("提示：官方节假日数据只到 2026-12-31；活动期间在此之后的假日是按农历推算的（调休上班日无法推算）：")
    assert "2027-01-01–2027-01-03 元旦、2027-02-05–2027-02-12 春节、" in note
    assert note.endswith("请写进 [calendar] extra_holidays / extra_workdays，或升级 chinesecalendar")


def test_check_config_says_nothing_of_estimates_within_the_official_data(
    seed_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Only the seed-002 campaign (2018–2019) is left.
    text = re.sub(r'\[\[campaigns\]\]\nid = "winter-2026".*?(?=\n# ====)', "", seed_config.read_text(encoding="utf-8"),
                  flags=re.DOTALL)
    seed_config.write_text(text, encoding="utf-8")
    assert main(["check-config", str(seed_config), "--lang", "en"]) == 0
    out = capsys.readouterr().out
    assert "OK (1 campaigns" in out and "note:" not in out


def test_plan_rejects_a_reversed_window(seed_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--config", str(seed_config), "--from", "2019-01-02", "--until", "2019-01-01"]) == 2
    assert "before --from" in capsys.readouterr().err
