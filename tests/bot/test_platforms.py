"""The platform protocol's wiring: parts handed to constructors once, routes bound to a runtime, reloads reach all."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from starlette.routing import Route

from bot.config import load_config
from bot.reload import Holders, swap_config
from bot.secrets import Secrets
from bot.services import Services, build_services
from tests.conftest import campaign_clock

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def services(config_path: Path) -> Iterator[Services]:
    built = build_services(load_config(config_path), Secrets(environ={}), campaign_clock())
    yield built
    anyio.run(built.aclose)
    built.engine.db.dispose()


def test_each_platform_hands_its_parts_to_the_constructors(services: Services) -> None:
    assert [p.name for p in services.platforms] == ["wecom", "dingtalk", "console"]
    assert not hasattr(services.engine, "renderers")  # replies are rendered when delivered, by the deliveries
    assert set(services.runtime.fetchers) == {"wecom", "dingtalk"}
    assert set(services.pushes.renderers) == {"wecom", "dingtalk", "console"}
    assert set(services.sender.deliveries) == {
        "console", "wecom_webhook", "wecom_response_url", "wecom_ws", "wecom_passive",
        "dingtalk_openapi", "dingtalk_session_webhook", "dingtalk_webhook",
    }
    for platform in services.platforms:
        for channel, delivery in platform.deliveries.items():
            assert services.sender.deliveries[channel] is delivery


def test_nothing_is_registered_after_construction(services: Services) -> None:
    for mapping in (services.runtime.fetchers, services.sender.deliveries,
                    services.wecom.deliveries, services.dingtalk.deliveries):
        with pytest.raises(TypeError):
            mapping["late"] = None  # type: ignore[index]


def test_receiving_binds_the_callback_routes_to_a_runtime(services: Services) -> None:
    wecom = services.wecom.receive(services.runtime)
    dingtalk = services.dingtalk.receive(services.runtime)
    assert [r.path for r in wecom.routes if isinstance(r, Route)] == ["/wecom/callback", "/wecom/callback/{credential_id}"]
    assert [r.path for r in dingtalk.routes if isinstance(r, Route)] == ["/dingtalk/callback"]
    websocket_bots = [b for b in services.config.wecom.bots if b.mode == "websocket"]
    assert len(wecom.services) == 1 + len(websocket_bots)  # the callbacks' task group, one per long connection


def test_a_reload_reaches_every_platform(services: Services, config_path: Path) -> None:
    fresh = load_config(config_path)
    swap_config(Holders(engine=services.engine, platforms=services.platforms), fresh)
    assert all(platform.config is fresh for platform in services.platforms)  # type: ignore[attr-defined]
    assert services.engine.config is fresh


def test_a_handler_process_builds_no_web_app() -> None:
    probe = "import sys, bot.handler_process; print('bot.app' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert result.stdout.strip() == "False"


def _open_files_under(folder: Path) -> list[str]:
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc to list this process's open files")
    targets = []
    for fd in fds.iterdir():
        try:
            targets.append(str(fd.readlink()))
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
    return [target for target in targets if target.startswith(str(folder))]


def test_closing_the_services_closes_the_database_files_they_opened_but_not_a_lent_engine(config_path: Path) -> None:
    from sqlalchemy import text

    from bot.app import build_engine

    config = load_config(config_path)
    folder = Path(config.database.url.removeprefix("sqlite:///")).parent
    built = build_services(config, Secrets(environ={}), campaign_clock())
    built.engine.start()  # migrates and syncs: the database file and the recorder's own connection are opened
    with built.engine.journal.connect() as connection:
        connection.execute(text("SELECT 1"))
    assert _open_files_under(folder)
    anyio.run(built.aclose)
    assert _open_files_under(folder) == []
    with built.engine.db.connect() as connection:  # still usable after closing: it opens a new connection
        assert connection.execute(text("SELECT count(*) FROM person")).scalar_one() > 0

    lent = build_engine(config, clock=campaign_clock())
    services = build_services(config, Secrets(environ={}), engine=lent)
    with lent.db.connect() as connection:
        connection.execute(text("SELECT 1"))
    anyio.run(services.aclose)
    assert not services.owns_db
    assert lent.db.pool.checkedin() == 1  # the lender's pooled connection is left to the lender
    lent.db.dispose()
    built.engine.db.dispose()
