"""Redis shared by replicas: the replay window and DingTalk access tokens (real Redis; skipped without one)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from bot.app import create_app
from bot.config import load_config
from bot.platforms import dingtalk
from bot.secrets import Secrets
from bot.shared import SharedCache
from models.tables import InboundMessage
from tests.bot.test_dingtalk import APP_KEY, APP_SECRET, ENV as DT_ENV, dingtalk_toml
from tests.bot.test_wecom import AES_KEY, CHAT, REPORT, SECRET_ENV, TOKEN, wecom_toml
from tests.conftest import EXAMPLE_CONFIG, campaign_clock, with_local_storage
from tests.fakes.dingtalk_server import FakeDingTalk, callback_headers, robot_message
from tests.fakes.wecom_server import FakeWeCom, callback_query, encrypt_text, post_aibot_callback

REDIS_URL = os.environ.get("TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL is not set (Redis tests need a server; CI sets it)")


def _replica(tmp: Path, fake: FakeWeCom, name: str) -> TestClient:
    """One `safetybot serve` replica with its own database, sharing Redis with the others."""
    (tmp / name).mkdir()
    path = tmp / name / "config.toml"
    path.write_text(with_local_storage(EXAMPLE_CONFIG.read_text(encoding="utf-8"), db_url=f"sqlite:///{tmp / name / 'db.sqlite'}",
                                       data_dir=str(tmp / name / "data")) + wecom_toml(fake), encoding="utf-8")
    secrets = Secrets(environ={**SECRET_ENV, "SAFETYBOT_REDIS_URL": str(REDIS_URL)})
    return TestClient(create_app(load_config(path), secrets=secrets, clock=campaign_clock()))


def _inbound_rows(client: TestClient) -> int:
    with Session(client.app.state.engine.db) as session:  # type: ignore[attr-defined]
        return session.exec(select(func.count()).select_from(InboundMessage)).one()


@pytest.fixture
def fake() -> Iterator[FakeWeCom]:
    with FakeWeCom(window=60.0) as server:
        yield server


@needs_redis
def test_a_request_replayed_to_another_replica_is_refused_there(tmp_path: Path, fake: FakeWeCom) -> None:
    with _replica(tmp_path, fake, "a") as first, _replica(tmp_path, fake, "b") as second:
        message = fake.aibot_text(f"@安全助手 {REPORT}", userid="ZhangWei", chatid=CHAT)
        encrypt = encrypt_text(AES_KEY, json.dumps(message, ensure_ascii=False))
        query, body = callback_query(TOKEN, encrypt), json.dumps({"encrypt": encrypt})
        for client in (first, second):  # the same signed request, byte for byte, to both replicas
            assert client.post("/wecom/callback", params=query, content=body).status_code == 200
        assert _inbound_rows(first) == 1
        assert _inbound_rows(second) == 0  # refused by the replay window it shares through Redis


@needs_redis
def test_dingtalk_replicas_share_one_access_token(tmp_path: Path) -> None:
    fake = FakeDingTalk()
    fake.add_app(APP_KEY, APP_SECRET)
    with fake:
        creds = dingtalk.AppCredentials(APP_KEY, APP_SECRET, APP_KEY)

        async def replicas() -> list[str]:
            tokens = []
            for _ in range(3):  # three processes, each with its own memory and HTTP client
                shared = SharedCache(str(REDIS_URL))
                async with httpx.AsyncClient() as http:
                    api = dingtalk.DingTalkApi(http, api_base=fake.base_url, oapi_base=fake.base_url, shared=shared)
                    await api.invalidate(creds, "stale")  # a no-op: only a matching token is dropped
                    tokens.append(await api.access_token(creds))
                await shared.aclose()
            return tokens

        shared = SharedCache(str(REDIS_URL))
        anyio.run(lambda: shared.client.delete(f"safetybot:dingtalk:token:{APP_KEY}"))
        tokens = anyio.run(replicas)
        assert fake.token_requests == 1 and len(set(tokens)) == 1

        async def refused() -> str:
            async with httpx.AsyncClient() as http:
                api = dingtalk.DingTalkApi(http, api_base=fake.base_url, oapi_base=fake.base_url, shared=SharedCache(str(REDIS_URL)))
                await api.invalidate(creds, tokens[0])  # the platform refused it: gone for every replica
                return await api.access_token(creds)

        assert anyio.run(refused) and fake.token_requests == 2


def test_without_redis_answering_callbacks_still_work(tmp_path: Path, fake: FakeWeCom, caplog: pytest.LogCaptureFixture) -> None:
    """Redis is an optimisation: when it does not answer, each process falls back to its own memory."""
    (tmp_path / "a").mkdir()
    path = tmp_path / "a" / "config.toml"
    path.write_text(with_local_storage(EXAMPLE_CONFIG.read_text(encoding="utf-8"), db_url=f"sqlite:///{tmp_path / 'a.db'}",
                                       data_dir=str(tmp_path / "data")) + wecom_toml(fake), encoding="utf-8")
    secrets = Secrets(environ={**SECRET_ENV, "SAFETYBOT_REDIS_URL": "redis://127.0.0.1:1/0"})  # nothing listens
    with TestClient(create_app(load_config(path), secrets=secrets, clock=campaign_clock())) as client:
        message = fake.aibot_text(f"@安全助手 {REPORT}", userid="ZhangWei", chatid=CHAT)
        encrypt = encrypt_text(AES_KEY, json.dumps(message, ensure_ascii=False))
        query, body = callback_query(TOKEN, encrypt), json.dumps({"encrypt": encrypt})
        for _ in range(2):  # the second is an exact replay: the process's own memory still refuses it
            assert client.post("/wecom/callback", params=query, content=body).status_code == 200
        assert _inbound_rows(client) == 1
        # a platform retry (same msgid, new signature) is recorded once, by the database's unique key
        retry = post_aibot_callback("/wecom/callback", message, token=TOKEN, encoding_aes_key=AES_KEY, http=client)
        assert retry.status_code == 200 and _inbound_rows(client) == 1
    assert "redis unavailable" in caplog.text


def _dingtalk_replica(tmp: Path, fake: FakeDingTalk, name: str, redis_url: str) -> TestClient:
    """One replica in DingTalk callback mode, with its own database, sharing `redis_url` with the others."""
    (tmp / name).mkdir()
    path = tmp / name / "config.toml"
    path.write_text(with_local_storage(EXAMPLE_CONFIG.read_text(encoding="utf-8"), db_url=f"sqlite:///{tmp / name / 'db.sqlite'}",
                                       data_dir=str(tmp / name / "data")) + dingtalk_toml(fake.base_url), encoding="utf-8")
    return TestClient(create_app(load_config(path), secrets=Secrets(environ={**DT_ENV, "SAFETYBOT_REDIS_URL": redis_url}), clock=campaign_clock()))


def _signed(message: dict[str, object]) -> bytes:
    return json.dumps(message, ensure_ascii=False).encode()


@needs_redis
def test_a_dingtalk_sign_used_at_one_replica_is_refused_for_another_message_at_every_other(tmp_path: Path) -> None:
    fake = FakeDingTalk()
    fake.add_app(APP_KEY, APP_SECRET)
    with fake, _dingtalk_replica(tmp_path, fake, "a", str(REDIS_URL)) as first, \
            _dingtalk_replica(tmp_path, fake, "b", str(REDIS_URL)) as second:
        headers = callback_headers(APP_SECRET)
        message = robot_message(fake, text=REPORT)
        assert first.post("/dingtalk/callback", content=_signed(message), headers=headers).status_code == 200
        forged = robot_message(fake, text="台账", sender_staff_id="0135210003", sender_nick="李娜")
        assert second.post("/dingtalk/callback", content=_signed(forged), headers=headers).status_code == 403
        assert _inbound_rows(second) == 0
        # the platform retrying the very same callback at the other replica is not refused
        assert second.post("/dingtalk/callback", content=_signed(message), headers=headers).status_code == 200
        assert _inbound_rows(first) == 1


def test_without_redis_a_dingtalk_sign_still_serves_one_message(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeDingTalk()
    fake.add_app(APP_KEY, APP_SECRET)
    with fake, _dingtalk_replica(tmp_path, fake, "a", "redis://127.0.0.1:1/0") as client:  # nothing listens
        headers = callback_headers(APP_SECRET)
        assert client.post("/dingtalk/callback", content=_signed(robot_message(fake, text=REPORT)),
                           headers=headers).status_code == 200
        forged = robot_message(fake, text="台账", sender_staff_id="0135210003", sender_nick="李娜")
        assert client.post("/dingtalk/callback", content=_signed(forged), headers=headers).status_code == 403
        assert _inbound_rows(client) == 1
    assert "redis unavailable" in caplog.text


@needs_redis
def test_claim_stores_once_and_reports_the_holder() -> None:
    async def run() -> list[str | None]:
        shared = SharedCache(str(REDIS_URL))
        key = f"test:claim:{os.getpid()}:{id(shared)}"
        try:
            await shared.client.delete(f"safetybot:{key}")
            results = [await shared.claim(key, "msg:a", 60), await shared.claim(key, "msg:b", 60)]
            results.append(str(await shared.client.ttl(f"safetybot:{key}")))
            await shared.client.delete(f"safetybot:{key}")
            return results
        finally:
            await shared.aclose()

    first, second, ttl = anyio.run(run)
    assert first == "msg:a" and second == "msg:a"  # the second claimant learns who holds the key
    assert ttl is not None and 0 < int(ttl) <= 60


def test_claim_says_none_when_redis_is_away() -> None:
    async def run() -> str | None:
        shared = SharedCache("redis://127.0.0.1:1/0")  # nothing listens
        try:
            return await shared.claim("test:claim:away", "msg:a", 60)
        finally:
            await shared.aclose()

    assert anyio.run(run) is None
