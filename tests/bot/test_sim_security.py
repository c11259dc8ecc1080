"""The simulator is a rehearsal tool, not a back door: each attack of issue 10 reproduced and shown closed."""

from __future__ import annotations

import logging
import re
import selectors
import socket
import threading
import time
import tomllib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from bot.app import build_engine, create_app
from bot.cli import main as cli_main
from bot.config import Config, is_loopback_host, parse_config
from bot.engine import Engine
from bot.logging_setup import secret_values
from bot.secrets import Secrets
from handlers.messages import Inbound
from models.clock import FixedClock
from models.tables import Hazard, HazardStatus, InboundMessage
from tests.conftest import campaign_clock

SIM_URL = "http://127.0.0.1:8000"  # the example config's port
FIXED_NOW = datetime(2026, 12, 3, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # inside the winter-2026 campaign
TOKEN = "sim-token-3f9c1e7a52b04d8e"
MB = 1024 * 1024

DINGTALK_GROUP = {
    "id": "dingtalk-school2",
    "name": "城南小学安全工作群（钉钉）",
    "platform": "dingtalk",
    "kind": "staff",
    "units": ["school2"],
    "campaign": "winter-2026",
    "chat_id": "cidSchool2Production==",
    "credentials": {"app_key": "SAFETYBOT_DINGTALK_APP_KEY", "app_secret": "SAFETYBOT_DINGTALK_APP_SECRET"},
}
BUREAU_INSPECTOR = {  # belongs to no unit a console group covers
    "id": "qian_jun",
    "name": "钱军",
    "unit": "bureau",
    "roles": ["leader"],
    "wecom_userid": "QianJun",
    "mobile": "13800000099",
}
REPORT_TEXT = "隐患\n部位：3号教学楼二楼东侧\n问题：消防通道堆放杂物\n责任人：王建国\n期限：明天"
SCHOOL2_REPORT = "隐患\n部位：城南小学食堂后门\n问题：灭火器过期\n责任人：周涛\n期限：明天"


def make_config(
    config_path: Path,
    *,
    simulator: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
    groups: tuple[dict[str, Any], ...] = (),
    people: tuple[dict[str, Any], ...] = (),
) -> Config:
    """The test copy of the example config with some tables changed, validated like a real file."""
    data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    if simulator is None:
        data.pop("simulator", None)  # as a config written before the simulator had settings
    else:
        data["simulator"] = {**data.get("simulator", {}), **simulator}
    data["server"] = {**data["server"], **(server or {})}
    data["groups"] = [*data["groups"], *groups]
    data["people"] = [*data["people"], *people]
    return parse_config(data)


def client_for(config: Config, *, secrets: Secrets | None = None, base_url: str = SIM_URL) -> TestClient:
    engine = build_engine(config, FixedClock(FIXED_NOW))
    return TestClient(create_app(config, engine, secrets or Secrets(environ={})), base_url=base_url)


def count(client: TestClient, table: type) -> int:
    with Session(client.app.state.engine.db) as session:  # type: ignore[attr-defined]
        return session.exec(select(func.count()).select_from(table)).one()


def hazard_status(engine: Engine, number: int) -> str:
    with Session(engine.db) as session:
        hazard = session.get(Hazard, number)
        assert hazard is not None
        return hazard.status


def post(client: TestClient, text: str, *, person: str = "zhang_wei", group: str = "staff", **kwargs: Any):
    return client.post(
        "/sim/api/messages", data={"person_id": person, "group_id": group, "text": text}, **kwargs
    )


# -- off unless enabled ---------------------------------------------------------------------


def test_simulator_is_off_by_default_and_then_not_mounted(config_path: Path) -> None:
    config = make_config(config_path, simulator=None)
    assert config.simulator.enabled is False
    with client_for(config) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/sim").status_code == 404
        assert client.get("/sim/api/directory").status_code == 404
        assert client.get("/sim/api/pushes").status_code == 404
        assert post(client, "台账", person="liu_yang").status_code == 404
        assert count(client, InboundMessage) == 0


def test_example_config_turns_it_on_for_the_readme_first_run(config_path: Path) -> None:
    config = make_config(config_path, simulator={})
    assert config.simulator.enabled is True
    with client_for(config) as client:
        assert client.get("/sim").status_code == 200


# -- only console groups ---------------------------------------------------------------------


def test_withdrawing_or_reading_a_production_group_is_refused(config_path: Path) -> None:
    config = make_config(config_path, simulator={}, groups=(DINGTALK_GROUP,))
    with client_for(config) as client:
        engine = client.app.state.engine  # type: ignore[attr-defined]
        # 孙丽 reports a hazard in her school's real DingTalk group.
        replies = engine.handle_sync(Inbound(
            platform="dingtalk", msg_id="dt-1", chat_id=DINGTALK_GROUP["chat_id"], sender_id="0135210007",
            text=SCHOOL2_REPORT, received_at=FIXED_NOW,
        ))
        number = re.search(r"已登记隐患 #(\d+)", replies[0].text).group(1)  # type: ignore[union-attr]
        inbound_before = count(client, InboundMessage)
        status_before = hazard_status(engine, int(number))

        # The attack: another school's admin posts into that group through the simulator.
        for text in (f"撤销 #{number}", "台账"):
            response = post(client, text, person="liu_yang", group="dingtalk-school2")
            assert response.status_code == 403
            detail = response.json()["detail"]
            assert "钉钉的正式群" in detail and "staff" in detail  # what is wrong, and a group that works

        assert count(client, InboundMessage) == inbound_before  # nothing reached the engine
        assert hazard_status(engine, int(number)) == status_before != HazardStatus.WITHDRAWN


def test_directory_lists_console_groups_and_their_people_without_platform_ids(config_path: Path) -> None:
    config = make_config(config_path, simulator={}, groups=(DINGTALK_GROUP,), people=(BUREAU_INSPECTOR,))
    with client_for(config) as client:
        response = client.get("/sim/api/directory")
        assert response.status_code == 200
        data = response.json()
        assert {g["id"] for g in data["groups"]} == {"staff", "leaders", "school2-staff"}
        assert {g["platform"] for g in data["groups"]} == {"console"}
        people = {p["id"] for p in data["people"]}
        assert "liu_yang" in people and "sun_li" in people
        assert "qian_jun" not in people
        for needle in ("cidSchool2Production", "SAFETYBOT_", "QianJun", "13800000", "wecom_userid", "mobile"):
            assert needle not in response.text
        # Nobody outside the console groups' units can post either.
        refused = post(client, "帮助", person="qian_jun")
        assert refused.status_code == 403
        assert "模拟器群" in refused.json()["detail"]


# -- Host and Origin -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "http://rebind.attacker.example:8000",  # DNS rebinding: the attacker's name resolving to 127.0.0.1
        "http://127.0.0.1:9999",  # a loopback name, but not the port the bot listens on
        "http://testserver",
    ],
)
def test_foreign_host_is_refused(config_path: Path, base_url: str) -> None:
    with client_for(make_config(config_path, simulator={}), base_url=base_url) as client:
        for response in (client.get("/sim"), client.get("/sim/api/directory"), post(client, REPORT_TEXT)):
            assert response.status_code == 403
            assert "http://127.0.0.1:8000/sim" in response.json()["detail"]
        assert count(client, InboundMessage) == 0


@pytest.mark.parametrize("base_url", ["http://localhost:8000", "http://[::1]:8000", "http://sim.school.example"])
def test_loopback_names_and_allowed_hosts_are_served(config_path: Path, base_url: str) -> None:
    config = make_config(config_path, simulator={"allowed_hosts": ["sim.school.example"]})
    with client_for(config, base_url=base_url) as client:
        assert client.get("/sim/api/directory").status_code == 200


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "http://127.0.0.1:9999", "null", "http://127.0.0.1.evil.example:8000"]
)
def test_foreign_origin_is_refused(config_path: Path, origin: str) -> None:
    with client_for(make_config(config_path, simulator={})) as client:
        response = post(client, REPORT_TEXT, headers={"Origin": origin})
        assert response.status_code == 403
        assert "其他网页" in response.json()["detail"]
        assert client.get("/sim/api/directory", headers={"Origin": origin}).status_code == 403
        assert count(client, InboundMessage) == 0 and count(client, Hazard) == 0


def test_same_origin_post_is_served(config_path: Path) -> None:
    with client_for(make_config(config_path, simulator={})) as client:
        response = post(client, REPORT_TEXT, headers={"Origin": SIM_URL})
        assert response.status_code == 200, response.text
        assert "已登记隐患" in response.json()["replies"][0]["text"]


# -- body size: refused before it is read -----------------------------------------------------


def call_asgi(app: FastAPI, headers: list[tuple[bytes, bytes]], body_chunks: Iterator[bytes]) -> tuple[int, str, int]:
    """POST /sim/api/messages straight into the ASGI app; (status, body, body bytes the app pulled)."""
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        chunk = next(body_chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/sim/api/messages", "raw_path": b"/sim/api/messages", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), *headers], "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    anyio.run(app, scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body.decode(), pulled


def endless_multipart(chunk_size: int = 64 * 1024) -> Iterator[bytes]:
    """A multipart photo upload that would go on for 300 MB; produced lazily, never held in memory."""
    boundary = b"----sim"
    yield (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="person_id"\r\n\r\nzhang_wei\r\n'
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="group_id"\r\n\r\nstaff\r\n'
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="photo"; filename="big.png"\r\n'
        b"Content-Type: image/png\r\n\r\n"
    )
    for _ in range(300 * MB // chunk_size):
        yield b"\x00" * chunk_size


MULTIPART = (b"content-type", b"multipart/form-data; boundary=----sim")


def test_lying_content_length_is_refused_before_any_byte_is_read(config_path: Path) -> None:
    with client_for(make_config(config_path, simulator={})) as client:
        status, body, pulled = call_asgi(
            client.app, [MULTIPART, (b"content-length", str(300 * MB).encode())], endless_multipart()
        )
        assert status == 413
        assert "不要超过 10 MB" in body
        assert pulled == 0


@pytest.mark.parametrize("declared", [b"abc", b"-5", "²".encode("latin-1")])
def test_unreadable_content_length_is_refused(config_path: Path, declared: bytes) -> None:
    with client_for(make_config(config_path, simulator={})) as client:
        status, body, pulled = call_asgi(client.app, [MULTIPART, (b"content-length", declared)], endless_multipart())
        assert status == 400
        assert "Content-Length" in body
        assert pulled == 0


def test_streamed_body_is_cut_off_at_the_limit(config_path: Path) -> None:
    """No Content-Length (chunked): the app stops pulling as soon as the limit is passed."""
    with client_for(make_config(config_path, simulator={"max_upload_mb": 1})) as client:
        status, body, pulled = call_asgi(client.app, [MULTIPART], endless_multipart())
        assert status == 413
        assert "不要超过 1 MB" in body
        assert 1 * MB < pulled <= 1 * MB + 64 * 1024 + 2 * 64 * 1024  # the limit (with headroom) plus one chunk
        assert count(client, InboundMessage) == 0


@pytest.fixture
def live_server(config_path: Path) -> Iterator[int]:
    """The app under a real uvicorn on a free loopback port (port taken into the config)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = make_config(config_path, simulator={"max_upload_mb": 1}, server={"port": port})
    server = uvicorn.Server(uvicorn.Config(
        create_app(config, secrets=Secrets(environ={}), clock=campaign_clock()), host="127.0.0.1", port=port, lifespan="off",
        log_config=None, access_log=False,
    ))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def raw_post(port: int, headers: str, parts: Iterator[bytes]) -> tuple[bytes, int]:
    """Send a request by hand until the server answers; (status line, body bytes sent by then)."""
    head = (
        f"POST /sim/api/messages HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary=----sim\r\n{headers}\r\n"
    ).encode()
    sent, pending, answer = 0, b"", b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, selectors.DefaultSelector() as sel:
        sock.sendall(head)
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while b"\r\n" not in answer:
            events = sel.select(timeout=10)
            assert events, "the server neither read on nor answered within 10 s"
            if events[0][1] & selectors.EVENT_READ:
                data = sock.recv(65536)
                assert data, "the server closed the connection without an answer"
                answer += data
                continue
            pending = pending or next(parts, b"")
            if not pending:  # all sent: only the answer is awaited now
                sel.modify(sock, selectors.EVENT_READ)
                continue
            try:
                count_sent = sock.send(pending)
            except (BrokenPipeError, ConnectionResetError):
                sel.modify(sock, selectors.EVENT_READ)
                continue
            sent += count_sent
            pending = pending[count_sent:]
    return answer.split(b"\r\n", 1)[0], sent


def chunked(parts: Iterator[bytes]) -> Iterator[bytes]:
    for part in parts:
        yield b"%x\r\n%s\r\n" % (len(part), part)


def test_real_server_answers_413_at_once_to_a_300_mb_content_length(live_server: int) -> None:
    # Only the first part is sent; a server that waited for 300 MB would never answer.
    status, sent = raw_post(live_server, f"Content-Length: {300 * MB}\r\n", iter([next(endless_multipart())]))
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert sent < 1024


def test_real_server_stops_a_chunked_upload_at_the_limit(live_server: int) -> None:
    status, sent = raw_post(live_server, "Transfer-Encoding: chunked\r\n", chunked(endless_multipart()))
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert sent < 16 * MB  # far from 300 MB: the answer came while the client was still sending


# -- the token beyond loopback ---------------------------------------------------------------


def test_no_token_beyond_loopback_means_no_simulator(config_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = make_config(config_path, simulator={}, server={"host": "0.0.0.0"})
    with caplog.at_level(logging.ERROR, logger="bot.platforms.console"), client_for(config) as client:
        assert client.get("/sim").status_code == 404
        assert post(client, "台账", person="liu_yang").status_code == 404
        assert client.get("/healthz").status_code == 200  # the platforms' callbacks still run
    assert "simulator NOT mounted" in caplog.text and "token_env" in caplog.text


def test_token_env_naming_an_unset_variable_means_no_simulator(config_path: Path) -> None:
    config = make_config(config_path, simulator={"token_env": "SAFETYBOT_SIM_TOKEN"}, server={"host": "0.0.0.0"})
    with client_for(config, secrets=Secrets(environ={})) as client:
        assert client.get("/sim/api/directory").status_code == 404


def test_a_short_token_means_no_simulator(config_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = make_config(config_path, simulator={"token_env": "SAFETYBOT_SIM_TOKEN"}, server={"host": "0.0.0.0"})
    with caplog.at_level(logging.ERROR, logger="bot.platforms.console"):
        with client_for(config, secrets=Secrets(environ={"SAFETYBOT_SIM_TOKEN": "1234"})) as client:
            assert client.get("/sim/api/directory", headers={"Authorization": "Bearer 1234"}).status_code == 404
    assert "shorter than 16 characters" in caplog.text and "1234" not in caplog.text


def test_token_required_beyond_loopback(config_path: Path) -> None:
    config = make_config(config_path, simulator={"token_env": "SAFETYBOT_SIM_TOKEN"}, server={"host": "0.0.0.0"})
    with client_for(config, secrets=Secrets(environ={"SAFETYBOT_SIM_TOKEN": TOKEN})) as client:
        for response in (
            client.get("/sim"),
            client.get("/sim/api/directory"),
            client.get("/sim/api/directory", headers={"Authorization": "Bearer wrong-token"}),
            client.get("/sim/api/directory", params={"token": TOKEN[:-1]}),
            post(client, "台账", person="liu_yang"),
        ):
            assert response.status_code == 401
            assert "口令" in response.json()["detail"]
        assert count(client, InboundMessage) == 0

        bearer = client.get("/sim/api/directory", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200
        assert "set-cookie" not in bearer.headers

        page = client.get("/sim", params={"token": TOKEN})
        assert page.status_code == 200
        cookie = page.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/sim" in cookie
        assert page.headers["referrer-policy"] == "no-referrer"
        # From now on the browser's cookie is enough.
        assert client.get("/sim/api/directory").status_code == 200
        assert post(client, "帮助").status_code == 200


def test_a_configured_token_is_enforced_on_loopback_too(config_path: Path) -> None:
    config = make_config(config_path, simulator={"token_env": "SAFETYBOT_SIM_TOKEN"})
    with client_for(config, secrets=Secrets(environ={"SAFETYBOT_SIM_TOKEN": TOKEN})) as client:
        assert client.get("/sim/api/directory").status_code == 401
        assert client.get("/sim/api/directory", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_the_token_is_masked_in_logs(config_path: Path) -> None:
    config = make_config(config_path, simulator={"token_env": "SAFETYBOT_SIM_TOKEN"})
    assert TOKEN in secret_values(config, Secrets(environ={"SAFETYBOT_SIM_TOKEN": TOKEN}))


@pytest.mark.parametrize(("host", "mounted"), [("0.0.0.0", False), ("127.0.0.1", True)])
def test_serve_guards_the_address_it_really_listens_on(
    config_path: Path, monkeypatch: pytest.MonkeyPatch, host: str, mounted: bool
) -> None:
    """`serve --host/--port` (as in the Dockerfile) count as the config: 0.0.0.0 without a token mounts no /sim."""
    served: dict[str, Any] = {}
    # uvicorn is the outside world here: keep the app it would serve instead of opening a port.
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    assert cli_main(["serve", "--config", str(config_path), "--host", host, "--port", "8123"]) == 0
    assert (served["host"], served["port"]) == (host, 8123)
    with TestClient(served["app"], base_url="http://127.0.0.1:8123") as client:
        assert client.get("/sim").status_code == (200 if mounted else 404)
    if mounted:
        with TestClient(served["app"], base_url=SIM_URL) as client:
            assert client.get("/sim").status_code == 403  # the config file's port is not the one listened on


# -- check-config -------------------------------------------------------------------------------


def write_config(config_path: Path, tmp_path: Path, *, simulator: str, host: str) -> Path:
    text = config_path.read_text(encoding="utf-8")
    text = re.sub(r'(?m)^host = "127\.0\.0\.1"$', f'host = "{host}"', text)
    head, table, rest = text.partition("[simulator]\n")
    text = head + table + simulator + "\n" + rest.replace("enabled = true\n", "", 1)
    path = tmp_path / "checked.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_check_config_errors_on_an_exposed_simulator_without_token(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(config_path, tmp_path, simulator="enabled = true", host="0.0.0.0")
    assert cli_main(["check-config", str(path), "--lang", "en"]) == 1
    err = capsys.readouterr().err
    assert "simulator: enabled while server.host = '0.0.0.0'" in err and "token_env" in err
    assert cli_main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "simulator：已开启，但 server.host = '0.0.0.0' 对本机以外开放，又没有设置 simulator.token_env" in err


def test_check_config_warns_on_an_exposed_simulator_with_token(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    simulator = 'enabled = true\ntoken_env = "SAFETYBOT_SIM_TOKEN"'
    path = write_config(config_path, tmp_path, simulator=simulator, host="0.0.0.0")
    assert cli_main(["check-config", str(path), "--lang", "en"]) == 0
    out = capsys.readouterr()
    assert "warning: simulator: enabled while server.host = '0.0.0.0'" in out.err
    assert "OK" in out.out
    assert cli_main(["check-config", str(path)]) == 0
    assert "警告：simulator：已开启，且 server.host = '0.0.0.0' 对本机以外开放" in capsys.readouterr().err


@pytest.mark.parametrize(("simulator", "host"), [("enabled = true", "127.0.0.1"), ("enabled = false", "0.0.0.0")])
def test_check_config_is_quiet_when_the_simulator_is_local_or_off(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], simulator: str, host: str
) -> None:
    path = write_config(config_path, tmp_path, simulator=simulator, host=host)
    assert cli_main(["check-config", str(path)]) == 0
    assert "simulator" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True), ("127.0.0.2", True),
     ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("bot.school.example", False)],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
