"""Photos are reachable only through unguessable links that expire."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bot.app import create_app
from bot.engine import Engine
from handlers.messages import Attachment, Inbound
from models.clock import FixedClock
from models.db import make_engine
from tests.school import REPORT, SCHOOL, START, make_config

PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 80


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[TestClient, Engine, FixedClock]:
    monkeypatch.setenv("SAFETYBOT_LINK_SECRET", "test-only-link-key")
    config = make_config(server={"public_url": "https://bot.example.edu.cn", "photo_link_hours": 2, "data_dir": str(tmp_path / "d")})
    clock = FixedClock(START)
    engine = Engine(config=config, db=make_engine(f"sqlite:///{tmp_path / 'p.db'}"), data_dir=tmp_path / "d", clock=clock)
    return TestClient(create_app(config, engine)), engine, clock


def _send(engine: Engine, clock: FixedClock, text: str, *, msg_id: str, photos: tuple[Attachment, ...] = ()) -> str:
    msg = Inbound("console", msg_id, "staff", "zhang_wei", text, clock.now(), attachments=photos)
    return "\n".join(r.text for r in engine.handle_sync(msg))


def test_show_links_the_photo_and_the_link_serves_it_until_it_expires(setup: tuple[TestClient, Engine, FixedClock]) -> None:
    client, engine, clock = setup
    _send(engine, clock, REPORT, msg_id="1", photos=(Attachment("p.png", "image/png", PNG),))
    reply = _send(engine, clock, "查看 #1", msg_id="2")
    links = re.findall(r"https://bot\.example\.edu\.cn(/photos/\S+)", reply)
    assert len(links) == 1
    response = client.get(links[0])
    assert response.status_code == 200 and response.content == PNG
    assert response.headers["content-type"] == "image/png"
    clock.advance(hours=3)
    assert client.get(links[0]).status_code == 404


def test_guessed_or_tampered_links_get_404(setup: tuple[TestClient, Engine, FixedClock]) -> None:
    client, engine, clock = setup
    _send(engine, clock, REPORT, msg_id="1", photos=(Attachment("p.png", "image/png", PNG),))
    link = re.findall(r"(/photos/\S+)", _send(engine, clock, "#1", msg_id="2"))[0]
    _, _, photo_id, expires, signature = link.split("/")
    far_future = int(expires) + 10**6
    assert client.get(f"/photos/{photo_id}/{far_future}/{signature}").status_code == 404
    assert client.get(f"/photos/{int(photo_id) + 1}/{expires}/{signature}").status_code == 404
    assert client.get(f"/photos/{photo_id}/{expires}/{'A' * len(signature)}").status_code == 404


def test_without_a_public_url_no_links_are_given(tmp_path: Path) -> None:
    assert SCHOOL.get("server") is None
    config = make_config()
    clock = FixedClock(START)
    engine = Engine(config=config, db=make_engine(f"sqlite:///{tmp_path / 'p.db'}"), data_dir=tmp_path / "d", clock=clock)
    engine.start()
    _send(engine, clock, REPORT, msg_id="1", photos=(Attachment("p.png", "image/png", PNG),))
    reply = _send(engine, clock, "#1", msg_id="2")
    assert "照片：1张" in reply and "/photos/" not in reply


def test_malformed_links_get_404_not_500_or_an_echo(setup: tuple[TestClient, Engine, FixedClock]) -> None:
    """Each once answered 500 (compare_digest on non-ASCII) or 422 echoing 5000 digits back."""
    client, engine, clock = setup
    _send(engine, clock, REPORT, msg_id="1", photos=(Attachment("p.png", "image/png", PNG),))
    link = re.findall(r"(/photos/\S+)", _send(engine, clock, "#1", msg_id="2"))[0]
    _, _, photo_id, expires, signature = link.split("/")
    for bad in (
        f"/photos/{photo_id}/{expires}/{signature[:-1]}é",  # non-ASCII signature
        f"/photos/{photo_id}/{expires}/签名",
        f"/photos/{photo_id}/{'9' * 5000}/{signature}",  # more digits than int() takes
        f"/photos/{'9' * 30}/{expires}/{signature}",  # past any database integer
        f"/photos/-1/{expires}/{signature}",
        f"/photos/{photo_id}/{expires}.0/{signature}",
        f"/photos/١/{expires}/{signature}",  # int() reads Arabic-Indic digits
    ):
        response = client.get(bad)
        assert response.status_code == 404, (bad, response.status_code)
        assert len(response.content) < 100
    assert client.get(link).status_code == 200
