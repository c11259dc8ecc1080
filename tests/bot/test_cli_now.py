"""`--now` on every command: one-shot commands stand at that time, `serve --now` starts its clock there."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.cli import build_parser, main
from models.clock import SystemClock
from tests.conftest import EXAMPLE_CONFIG

TZ = ZoneInfo("Asia/Shanghai")


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_command_takes_now() -> None:
    commands = _commands()
    assert {"serve", "check-config", "parse", "migrate", "export", "outbox", "plan"} <= commands.keys()
    for name, command in commands.items():
        assert any("--now" in action.option_strings for action in command._actions), name


@pytest.mark.parametrize("argv", [
    ["parse", "隐患"], ["plan"], ["check-config", str(EXAMPLE_CONFIG)], ["migrate"], ["outbox"], ["serve"],
    ["export", "--campaign", "winter-2026", "--form", "ledger", "--out", "x.xlsx"],
])
@pytest.mark.parametrize("bad", ["2023-12-05T10:00", "tomorrow"])
def test_a_time_without_offset_is_refused_before_anything_runs(
    argv: list[str], bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--now", bad]) == 2
    assert "--now needs an ISO time with a UTC offset, e.g. 2023-12-05T10:00+08:00" in capsys.readouterr().err


def test_plan_starts_its_window_on_the_day_of_now(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--config", str(EXAMPLE_CONFIG), "--now", "2026-12-28T23:30+08:00", "--json"]) == 0
    days = sorted({push["at"][:10] for push in json.loads(capsys.readouterr().out)})
    assert days[0] >= "2026-12-28" and days[-1] <= "2027-01-11"  # --from defaults to today, --until to 14 days on
    assert "2027-01-11" in days  # the reminder postponed from Saturday 01-09


def test_plan_takes_today_in_the_configs_zone(capsys: pytest.CaptureFixture[str]) -> None:
    # 16:30 UTC on 12-27 is already 00:30 on 12-28 in Shanghai, the config's zone.
    assert main(["plan", "--config", str(EXAMPLE_CONFIG), "--now", "2026-12-27T16:30+00:00", "--json"]) == 0
    days = sorted({push["at"][:10] for push in json.loads(capsys.readouterr().out)})
    assert days[0] >= "2026-12-28"


def test_serve_now_starts_the_bots_clock_there_and_lets_it_run(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    served: dict[str, Any] = {}

    def run(app: Any, **options: Any) -> None:  # the network edge: capture the app instead of listening
        served["app"], served["options"] = app, options

    monkeypatch.setattr(uvicorn, "run", run)
    assert main(["serve", "--config", str(config_path), "--now", "2019-03-01T09:00+08:00", "--port", "0"]) == 0
    engine = served["app"].state.runtime.engine
    first = engine.now()
    assert first.tzinfo == TZ
    assert timedelta(0) <= first - datetime(2019, 3, 1, 9, 0, tzinfo=TZ) < timedelta(minutes=5)
    assert isinstance(engine.clock, SystemClock)  # the wall clock moved back, running on; not a standing clock
    engine.db.dispose()
