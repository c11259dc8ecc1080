"""Config reload without a restart: a bad file is refused and logged in Chinese, a good one changes answers."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from bot.app import build_engine, create_app
from bot.config import load_config
from bot.reload import FileState
from models.clock import FixedClock
from tests.conftest import CAMPAIGN_NOW, EXAMPLE_CONFIG, with_local_storage
from tests.school import TZ, Chat

REPO_ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 11, 24, 10, 0, tzinfo=TZ)  # inside the example's winter-2026 campaign
OLD_NAME, NEW_NAME = 'name = "总务基建处"', 'name = "后勤保障处"'


@pytest.fixture
def app(config_path: Path) -> Iterator[FastAPI]:
    config = load_config(config_path)
    engine = build_engine(config, FixedClock(START))
    app = create_app(config, engine, config_path=config_path)
    yield app
    engine.db.dispose()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_good_file_changes_the_answer_everywhere(app: FastAPI, config_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    chat = Chat(app.state.engine, START)
    assert chat.say("wang_jianguo", "清单").startswith("总务基建处 未销号隐患")
    _edit(config_path, OLD_NAME, NEW_NAME)
    with caplog.at_level(logging.INFO, logger="bot.reload"):
        assert app.state.reloader.reload("test") is True
    assert chat.say("wang_jianguo", "清单").startswith("后勤保障处 未销号隐患")
    for holder in (app.state.engine, app.state.runtime, app.state.scheduler, app.state.scheduler.ticker):
        assert next(u.name for u in holder.config.units if u.id == "logistics") == "后勤保障处"
    assert any(r.getMessage().startswith("config reloaded in ") for r in caplog.records)


def test_a_reload_keeps_state_that_is_not_config(app: FastAPI, config_path: Path) -> None:
    engine = app.state.engine
    db, clock, notify = engine.db, engine.clock, engine.notify
    _edit(config_path, "withdraw_minutes = 30", "withdraw_minutes = 45")
    assert app.state.reloader.reload("test") is True
    assert engine.policy.withdraw_minutes == 45
    assert (engine.db, engine.clock, engine.notify) == (db, clock, notify)


def test_the_platform_adapters_take_the_new_allow_lists(app: FastAPI, config_path: Path) -> None:
    url = "https://files.school.example/photo.jpg"
    assert not app.state.wecom.urls.allows(url) and not app.state.dingtalk.urls.allows(url)
    config_path.write_text(
        config_path.read_text(encoding="utf-8")
        + '\n[wecom]\ncallback_url_hosts = ["files.school.example"]\n'
        + '\n[dingtalk]\ncallback_url_hosts = ["files.school.example"]\n',
        encoding="utf-8",
    )
    assert app.state.reloader.reload("test") is True
    assert app.state.wecom.urls.allows(url) and app.state.dingtalk.urls.allows(url)
    assert app.state.wecom.config is app.state.engine.config


def test_a_broken_file_is_refused_and_the_old_config_stays(app: FastAPI, config_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    chat = Chat(app.state.engine, START)
    running = app.state.engine.config
    _edit(config_path, OLD_NAME, NEW_NAME)  # a good change ...
    _edit(config_path, 'name = "王建国"\nunit = "logistics"', 'name = "王建国"\nunit = "logistic"')  # ... and a typo
    with caplog.at_level(logging.INFO, logger="bot.reload"):
        assert app.state.reloader.reload("test") is False
    assert app.state.engine.config is running and app.state.runtime.config is running
    assert chat.say("wang_jianguo", "清单").startswith("总务基建处 未销号隐患")
    logged = [r.getMessage() for r in caplog.records]
    assert "config: people「王建国」(wang_jianguo).unit: 没有 id 为 'logistic' 的单位；请写 [[units]] 里已有的 id；" \
           "您是不是想写 logistics？" in logged
    assert any("1 problem(s); the running config stays" in line for line in logged)
    assert not any(line.startswith("config reloaded") for line in logged)


def test_a_file_that_no_longer_parses_is_refused(app: FastAPI, config_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    config_path.write_text(config_path.read_text(encoding="utf-8") + "\n[[units]\n", encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="bot.reload"):
        assert app.state.reloader.reload("test") is False
    assert any(r.getMessage().startswith("config: (file): 不是有效的 TOML") for r in caplog.records)


def test_a_change_is_seen_by_content_not_by_a_touch(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('timezone = "Asia/Shanghai"\n', encoding="utf-8")
    state = FileState(path)
    state.remember()
    assert state.changed() is False
    os.utime(path, ns=(1, 1))  # touched: a new mtime, the same content
    assert state.changed() is False
    path.write_text('timezone = "Asia/Urumqi"\n', encoding="utf-8")
    os.utime(path, ns=(2, 2))
    assert state.changed() is True
    assert state.changed() is False  # reported once


# -- the wiring in a real `safetybot serve` ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(log: Path, text: str, *, times: int = 1, timeout: float = 30.0) -> str:
    """The server's log once it holds `text` (`times` times; polled, fails after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text(encoding="utf-8", errors="replace")
        if content.count(text) >= times:
            return content
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the log:\n{log.read_text(encoding='utf-8', errors='replace')}")


def _list_open_items(port: int) -> str:
    """清单 from 王建国 through the simulator of the running server: the first line names his unit."""
    response = httpx.post(
        f"http://127.0.0.1:{port}/sim/api/messages",
        data={"person_id": "wang_jianguo", "group_id": "staff", "text": "清单"}, timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["replies"][0]["text"]).splitlines()[0]


def test_serve_reloads_on_sighup_and_on_a_file_change(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        with_local_storage(
            EXAMPLE_CONFIG.read_text(encoding="utf-8"), db_url=f"sqlite:///{tmp_path / 'safetybot.db'}",
            data_dir=str(tmp_path / "data"), handler_processes=1,
        ),
        encoding="utf-8",
    )
    log, port = tmp_path / "serve.log", _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--config", str(path), "--port", str(port), "--now", CAMPAIGN_NOW],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        _wait_for(log, "handler process 0 started")
        _wait_for(log, "Application startup complete")
        os.kill(process.pid, signal.SIGHUP)
        assert "config reloaded in " in _wait_for(log, "(SIGHUP)")
        _wait_for(log, "config reloaded)")  # the handler process stopped to take the new config ...
        _wait_for(log, "handler process 0 started", times=2)  # ... and its successor started
        assert _list_open_items(port) == "总务基建处 未销号隐患"

        _edit(path, OLD_NAME, NEW_NAME)
        _edit(path, 'name = "王建国"\nunit = "logistics"', 'name = "王建国"\nunit = "logistic"')
        content = _wait_for(log, "the running config stays")
        assert "people「王建国」(wang_jianguo).unit: 没有 id 为 'logistic' 的单位" in content
        assert _list_open_items(port) == "总务基建处 未销号隐患"

        _edit(path, 'unit = "logistic"', 'unit = "logistics"')
        content = _wait_for(log, "(file changed)\n")
        assert _list_open_items(port) == "后勤保障处 未销号隐患"
        assert "WARNING" not in content  # --port is not the file's port: kept quietly
        assert process.poll() is None  # still serving
    finally:
        process.terminate()
        process.wait(timeout=30)
