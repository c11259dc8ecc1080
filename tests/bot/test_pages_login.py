"""Issue 15: the hazard page's buttons after the platform's in-app login (WeCom OAuth2, DingTalk 免登), through
the fakes: sign-in, the buttons a person may use, the same commands and checks as typed, exactly once."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bot.app import create_app
from bot.config import load_config
from bot.pagelinks import HAZARD
from bot.pagelogin import PageLogin
from bot.secrets import Secrets
from bot.shared import SharedCache
from models.clock import SystemClock
from models.config import login_problems
from models.tables import Hazard, HazardEvent
from tests.bot.test_dingtalk import APP_KEY, APP_SECRET, WEBHOOK_SECRET, WEBHOOK_TOKEN, ENV as DT_ENV, dingtalk_toml
from tests.bot.test_wecom import AES_KEY, CHAT, REPORT, SECRET_ENV, TOKEN, WEBHOOK_KEY, wecom_toml
from tests.conftest import campaign_clock
from tests.fakes.dingtalk_server import FakeDingTalk, post_callback, robot_message
from tests.fakes.wecom_server import FakeWeCom, post_aibot_callback

PUBLIC = "http://127.0.0.1:8000"
CORP, APP_SECRET_WECOM, AGENT = "wwcorp0001", "wecom-app-secret-0001", "1000002"
DT_CORP = "dingcorp0001"
LINK_KEY = {"SAFETYBOT_LINK_SECRET": "a-long-test-signing-key-0123456789"}


def _public(text: str, url: str = PUBLIC) -> str:
    assert text.count("\n[server]\n") == 1
    return text.replace("\n[server]\n", f'\n[server]\npublic_url = "{url}"\n')


def wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def hazard_row(client: TestClient, number: int = 1) -> Hazard | None:
    with Session(client.app.state.engine.db) as session:  # type: ignore[attr-defined]
        return session.exec(select(Hazard).where(Hazard.number == number)).first()


def page_path(client: TestClient, hazard_id: int) -> str:
    return str(client.app.state.engine.page_links.path(HAZARD, str(hazard_id)))  # type: ignore[attr-defined]


def forms(html: str) -> dict[str, dict[str, str]]:
    """The page's button forms by command word: their hidden fields and the button's label."""
    found: dict[str, dict[str, str]] = {}
    for form in re.findall(r'<form method="post" action="([^"]+)">(.*?)</form>', html, flags=re.S):
        action, inner = form
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', inner))
        label = re.search(r"<button[^>]*>([^<]+)</button>", inner)
        fields["action"], fields["label"] = action, label.group(1) if label else ""
        found[fields["command"]] = fields
    return found


def close_events(client: TestClient) -> int:
    with Session(client.app.state.engine.db) as session:  # type: ignore[attr-defined]
        return len(session.exec(select(HazardEvent).where(HazardEvent.action == "close")).all())


# -- WeCom ---------------------------------------------------------------------------------------------------

WECOM_LOGIN = f"""
[login]
enabled = true
wecom = {{ corp_id = "SAFETYBOT_WECOM_CORP_ID", secret = "SAFETYBOT_WECOM_APP_SECRET", agent_id = "SAFETYBOT_WECOM_AGENT_ID" }}
"""
WECOM_ENV = {**SECRET_ENV, **LINK_KEY, "SAFETYBOT_WECOM_CORP_ID": CORP, "SAFETYBOT_WECOM_APP_SECRET": APP_SECRET_WECOM,
             "SAFETYBOT_WECOM_AGENT_ID": AGENT}


@pytest.fixture
def wecom_fake() -> Iterator[FakeWeCom]:
    with FakeWeCom(window=60.0) as server:
        server.add_webhook_key(WEBHOOK_KEY)
        server.add_corp(CORP, APP_SECRET_WECOM)
        server.agents[AGENT] = CORP
        yield server


@pytest.fixture
def clock() -> SystemClock:
    return campaign_clock()


def wecom_app(config_path: Path, fake: FakeWeCom, clock: SystemClock, public: str = PUBLIC) -> Any:
    text = _public(config_path.read_text(encoding="utf-8"), public) + wecom_toml(fake) + WECOM_LOGIN
    text += f'wecom_authorize_url = "{fake.base_url}/connect/oauth2/authorize"\n'
    config_path.write_text(text, encoding="utf-8")
    return create_app(load_config(config_path), secrets=Secrets(environ=WECOM_ENV), clock=clock)


@pytest.fixture
def wecom_client(config_path: Path, wecom_fake: FakeWeCom, clock: SystemClock) -> Iterator[TestClient]:
    with TestClient(wecom_app(config_path, wecom_fake, clock), base_url=PUBLIC) as client:
        yield client


def wecom_report(client: TestClient, fake: FakeWeCom) -> Hazard:
    """ZhangWei (a teacher) reports a hazard in the WeCom group; 王建国 is responsible."""
    message = fake.aibot_text("@安全助手 " + REPORT, userid="ZhangWei", chatid=CHAT)
    response = post_aibot_callback("/wecom/callback", message, token=TOKEN, encoding_aes_key=AES_KEY, http=client)
    assert response.status_code == 200
    return wait_for(lambda: hazard_row(client))  # type: ignore[no-any-return]


def wecom_sign_in(client: TestClient, fake: FakeWeCom, path: str, userid: str) -> httpx.Response:
    """Open the page's sign-in inside the WeCom app as `userid`; returns the bot's answer to the way back."""
    start = client.get(f"{path}/login", follow_redirects=False)
    assert start.status_code == 302, start.text
    location = start.headers["location"]
    assert location.endswith("#wechat_redirect")
    query = parse_qs(urlsplit(location).query)
    assert query["appid"] == [CORP] and query["agentid"] == [AGENT] and query["scope"] == ["snsapi_base"]
    assert query["redirect_uri"] == [f"{client.base_url}/p/auth/wecom"] and query["response_type"] == ["code"]
    assert re.fullmatch(r"[A-Za-z0-9]{1,128}", query["state"][0])
    fake.app_user = userid
    back = httpx.get(location.split("#", 1)[0], follow_redirects=False)  # the WeCom app follows it
    assert back.status_code == 302
    way_back = urlsplit(back.headers["location"])
    assert f"{way_back.scheme}://{way_back.netloc}" == str(client.base_url)
    return client.get(f"{way_back.path}?{way_back.query}", follow_redirects=False)


def test_wecom_sign_in_buttons_by_role_forged_post_refused_and_close_once(
    wecom_client: TestClient, wecom_fake: FakeWeCom
) -> None:
    client, fake = wecom_client, wecom_fake
    hazard = wecom_report(client, fake)
    path = page_path(client, hazard.id or 0)

    anonymous = client.get(path)
    assert anonymous.status_code == 200
    assert "用企业微信登录后操作" in anonymous.text and f'href="{path}/login"' in anonymous.text
    assert not forms(anonymous.text)

    # 张伟, the teacher who found it, may report a fix but not close it from 整改中: no 销号 button, and a
    # forged 销号 (his own valid form with the command changed) gets the typed command's refusal.
    assert wecom_sign_in(client, fake, path, "ZhangWei").status_code == 303
    zhang = forms(client.get(path).text)
    assert "整改" in zhang and "销号" not in zhang
    teacher_forged = client.post(zhang["整改"]["action"], data={**zhang["整改"], "command": "销号"})
    assert teacher_forged.status_code == 200 and "还没有报整改" in teacher_forged.text
    assert hazard_row(client).status == "rectifying"  # type: ignore[union-attr]
    client.cookies.clear()

    # 王建国 (responsible) signs in: a session cookie, then the page offers 整改 and no 销号 of his own task.
    signed = wecom_sign_in(client, fake, path, "WangJianGuo")
    assert signed.status_code == 303 and signed.headers["location"].startswith(f"/p/h/{hazard.id}/")
    cookie = signed.headers["set-cookie"]
    assert "sb_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/p/" in cookie
    assert "Max-Age=43200" in cookie and "Secure" not in cookie  # 12 h; the public URL here is http
    page = client.get(path)
    buttons = forms(page.text)
    assert "已登录：王建国" in page.text
    assert "整改" in buttons and "销号" not in buttons

    before = len(fake.sent_to(WEBHOOK_KEY))
    fixed = client.post(buttons["整改"]["action"], data={**buttons["整改"], "words": "已清理通道"})
    assert fixed.status_code == 200
    assert "机器人的答复" in fixed.text and "整改" in fixed.text
    assert hazard_row(client).status == "rectified"  # type: ignore[union-attr]
    # What the group sees when it is typed still happens: the answer reaches the group by its webhook.
    pushed = wait_for(lambda: fake.sent_to(WEBHOOK_KEY)[before:])
    assert any("已清理通道" in m.content or "整改" in m.content for m in pushed)
    # He fixed it: the page offers no 销号, and a forged 销号 POST is refused by the same checks as typed.
    after_fix = forms(client.get(path).text)
    assert "销号" not in after_fix
    any_form = next(iter(after_fix.values()))
    forged = client.post(any_form["action"], data={**any_form, "command": "销号", "nonce": "ab" * 16})
    assert forged.status_code == 200 and "机器人的答复" in forged.text
    assert "整改人不能自己验收销号" in forged.text  # the typed command's own answer
    assert hazard_row(client).status == "rectified"  # type: ignore[union-attr]

    # 陈静, a teacher of another unit, has nothing to do here: no buttons, so no form token either; a POST
    # made up by hand is refused before anything runs.
    client.cookies.clear()
    wecom_sign_in(client, fake, path, "ChenJing")
    chen = client.get(path)
    assert "已登录：陈静" in chen.text and not forms(chen.text) and "没有需要你做的操作" in chen.text
    refused = client.post(f"{path}/act", data={"csrf": "", "nonce": "cd" * 16, "command": "销号"})
    assert refused.status_code == 403 and "操作没有执行" in refused.text and "表单无效" in refused.text
    assert hazard_row(client).status == "rectified"  # type: ignore[union-attr]

    # 李娜, the safety officer, closes it: once, whatever the replays.
    client.cookies.clear()
    wecom_sign_in(client, fake, path, "LiNa")
    li = forms(client.get(path).text)
    assert "销号" in li and li["销号"]["label"] == "验收销号" and "退回" in li
    closed = client.post(li["销号"]["action"], data=li["销号"])
    assert closed.status_code == 200 and "销号" in closed.text
    assert hazard_row(client).status == "closed"  # type: ignore[union-attr]
    def closings() -> list[Any]:
        return [m for m in fake.sent_to(WEBHOOK_KEY) if "已销号" in m.content]

    assert "李娜" in wait_for(closings)[0].content  # the group sees who closed it
    again = client.post(li["销号"]["action"], data=li["销号"])  # the same form submitted twice
    assert again.status_code == 200 and "已经提交过" in again.text and "已销号" in again.text
    assert close_events(client) == 1
    assert not forms(again.text)  # closed: nothing left to do
    with Session(client.app.state.engine.db) as session:  # type: ignore[attr-defined]
        from models.tables import OutboxMessage

        rows = session.exec(select(OutboxMessage)).all()
    assert sum("已销号" in str(row.payload) for row in rows) == 1  # the replay queued nothing for the group


def test_wecom_bad_sessions_csrf_and_codes_get_clear_pages(
    wecom_client: TestClient, wecom_fake: FakeWeCom, clock: SystemClock
) -> None:
    client, fake = wecom_client, wecom_fake
    hazard = wecom_report(client, fake)
    path = page_path(client, hazard.id or 0)
    wecom_sign_in(client, fake, path, "LiNa")
    form = forms(client.get(path).text)["整改"]

    bad_csrf = client.post(form["action"], data={**form, "csrf": "x" + form["csrf"][1:]})
    assert bad_csrf.status_code == 403 and "表单无效" in bad_csrf.text

    session = client.cookies.get("sb_session")
    assert session
    client.cookies.set("sb_session", session[:-3] + "AAA", path="/p/")
    forged = client.post(form["action"], data=form)
    assert forged.status_code == 403 and "登录状态无效" in forged.text
    assert "重新登录" in client.get(path).text
    client.cookies.clear()
    nobody = client.post(form["action"], data=form)
    assert nobody.status_code == 401 and "请先登录" in nobody.text
    assert hazard_row(client).status == "rectifying"  # type: ignore[union-attr]

    # A session lasts 12 hours.
    client.cookies.set("sb_session", session, path="/p/")
    clock.offset += timedelta(hours=13)
    expired = client.post(form["action"], data=form)
    assert expired.status_code == 401 and "登录已过期" in expired.text
    clock.offset -= timedelta(hours=13)

    # A bad code, a reused code, a forged state: clear pages, no session.
    client.cookies.clear()
    start = client.get(f"{path}/login", follow_redirects=False)
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    bad = client.get("/p/auth/wecom", params={"code": "not-a-code", "state": state}, follow_redirects=False)
    assert bad.status_code == 400 and "登录码无效" in bad.text and "sb_session" not in client.cookies
    code = fake.issue_code("LiNa")
    start = client.get(f"{path}/login", follow_redirects=False)
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    ok = client.get("/p/auth/wecom", params={"code": code, "state": state}, follow_redirects=False)
    assert ok.status_code == 303
    start = client.get(f"{path}/login", follow_redirects=False)
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    reused = client.get("/p/auth/wecom", params={"code": code, "state": state}, follow_redirects=False)
    assert reused.status_code == 400 and "已经用过" in reused.text
    tampered = state[:-1] + ("0" if state[-1] != "0" else "1")
    forged_state = client.get("/p/auth/wecom", params={"code": fake.issue_code("LiNa"), "state": tampered},
                              follow_redirects=False)
    assert forged_state.status_code == 400 and "登录请求无效" in forged_state.text
    for response in (bad, reused, forged_state):
        assert "Traceback" not in response.text


def test_a_send_back_carries_its_reason_and_a_lost_token_is_fetched_again(
    wecom_client: TestClient, wecom_fake: FakeWeCom
) -> None:
    client, fake = wecom_client, wecom_fake
    hazard = wecom_report(client, fake)
    path = page_path(client, hazard.id or 0)
    wecom_sign_in(client, fake, path, "WangJianGuo")
    fix = forms(client.get(path).text)["整改"]
    assert client.post(fix["action"], data={**fix, "words": "已清理"}).status_code == 200
    client.cookies.clear()
    fake.access_tokens.clear()  # WeCom dropped the bot's token (40014): the sign-in fetches a new one
    assert wecom_sign_in(client, fake, path, "LiNa").status_code == 303
    back = forms(client.get(path).text)["退回"]
    assert 'placeholder="例如：仍有纸箱堆放" required' in client.get(path).text
    sent_back = client.post(back["action"], data={**back, "words": "仍有纸箱\n堆放"})  # kept on one line
    assert sent_back.status_code == 200 and "退回" in sent_back.text
    assert hazard_row(client).status == "rectifying"  # type: ignore[union-attr]
    with Session(client.app.state.engine.db) as session:  # type: ignore[attr-defined]
        events = session.exec(select(HazardEvent).where(HazardEvent.action == "reject")).all()
    assert len(events) == 1 and "仍有纸箱 堆放" in events[0].detail
    assert close_events(client) == 0


def test_behind_https_the_session_cookie_is_secure(config_path: Path, wecom_fake: FakeWeCom, clock: SystemClock) -> None:
    public = "https://safety.school.example"
    with TestClient(wecom_app(config_path, wecom_fake, clock, public), base_url=public) as client:
        hazard = wecom_report(client, wecom_fake)
        signed = wecom_sign_in(client, wecom_fake, page_path(client, hazard.id or 0), "LiNa")
        assert signed.status_code == 303
        assert "Secure" in signed.headers["set-cookie"] and "HttpOnly" in signed.headers["set-cookie"]


def test_an_unknown_member_signs_in_but_stays_read_only(wecom_client: TestClient, wecom_fake: FakeWeCom) -> None:
    hazard = wecom_report(wecom_client, wecom_fake)
    path = page_path(wecom_client, hazard.id or 0)
    assert wecom_sign_in(wecom_client, wecom_fake, path, "NewTeacher01").status_code == 303
    page = wecom_client.get(path)
    assert "不在机器人的通讯录里" in page.text and not forms(page.text)


# -- DingTalk ------------------------------------------------------------------------------------------------

DT_LOGIN = """
[login]
enabled = true
dingtalk = { corp_id = "SAFETYBOT_DT_CORP_ID" }
"""


@pytest.fixture
def dt_fake() -> Iterator[FakeDingTalk]:
    server = FakeDingTalk()
    server.add_app(APP_KEY, APP_SECRET)
    server.add_custom_robot(WEBHOOK_TOKEN, secret=WEBHOOK_SECRET)
    with server:
        yield server


@pytest.fixture
def dt_client(config_path: Path, dt_fake: FakeDingTalk) -> Iterator[TestClient]:
    text = _public(config_path.read_text(encoding="utf-8")) + dingtalk_toml(dt_fake.base_url) + DT_LOGIN
    config_path.write_text(text, encoding="utf-8")
    env = {**DT_ENV, **LINK_KEY, "SAFETYBOT_DT_CORP_ID": DT_CORP}
    app = create_app(load_config(config_path), secrets=Secrets(environ=env), clock=campaign_clock())
    with TestClient(app, base_url=PUBLIC) as client:
        yield client


def test_dingtalk_sign_in_by_auth_code_then_close_once(dt_client: TestClient, dt_fake: FakeDingTalk) -> None:
    client, fake = dt_client, dt_fake
    assert post_callback("", APP_SECRET, robot_message(fake, text=REPORT), client=client).status_code == 200
    hazard = wait_for(lambda: hazard_row(client))
    path = page_path(client, hazard.id)
    anonymous = client.get(path)
    assert "用钉钉登录后操作" in anonymous.text

    # The sign-in page asks the DingTalk client for a 免登 code; only its own script and the JSAPI may run.
    start = client.get(f"{path}/login")
    assert start.status_code == 200 and "dd.runtime.permission.requestAuthCode" in start.text
    assert f'corpId:"{DT_CORP}"' in start.text
    csp = start.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp)
    assert nonce and f'<script nonce="{nonce.group(1)}">' in start.text and "https://g.alicdn.com" in csp
    state = re.search(r'name="state" value="([^"]+)"', start.text)
    assert state

    # The client hands the page a code for 李娜; the page posts it back.
    code = fake.issue_auth_code("0135210003")
    signed = client.post("/p/auth/dingtalk", data={"code": code, "state": state.group(1)}, follow_redirects=False)
    assert signed.status_code == 303 and "sb_session=" in signed.headers["set-cookie"]
    page = client.get(path)
    assert "已登录：李娜" in page.text
    buttons = forms(page.text)
    assert "销号" in buttons  # a safety officer may close a hazard seen fixed on site

    before = len(fake.session_messages) + len(fake.group_messages) + len(fake.webhook_messages)
    closed = client.post(buttons["销号"]["action"], data=buttons["销号"])
    assert closed.status_code == 200 and "机器人的答复" in closed.text
    assert hazard_row(client).status == "closed"  # type: ignore[union-attr]
    again = client.post(buttons["销号"]["action"], data=buttons["销号"])
    assert "已经提交过" in again.text and close_events(client) == 1
    # The group hears of it as when typed (a form has no sessionWebhook: by the group's custom robot).
    wait_for(lambda: len(fake.session_messages) + len(fake.group_messages) + len(fake.webhook_messages) > before)
    assert any("销号" in str(m) for m in fake.webhook_messages)

    # The same code again (a reload of the sign-in): refused by us and by DingTalk.
    start = client.get(f"{path}/login")
    state = re.search(r'name="state" value="([^"]+)"', start.text)
    assert state
    reused = client.post("/p/auth/dingtalk", data={"code": code, "state": state.group(1)}, follow_redirects=False)
    assert reused.status_code == 400 and "已经用过" in reused.text


def test_check_config_names_what_page_login_lacks(config_path: Path) -> None:
    config_path.write_text(config_path.read_text(encoding="utf-8") + DT_LOGIN.replace(
        'dingtalk = { corp_id = "SAFETYBOT_DT_CORP_ID" }', "") + dingtalk_toml("https://api.dingtalk.com"),
        encoding="utf-8")
    config = load_config(config_path)
    problems = login_problems(config, lambda name: name in DT_ENV, "zh")
    assert any("server.public_url" in p for p in problems)
    assert any("corp_id" in p and "[login]" in p for p in problems), problems
    config_path.write_text(_public(config_path.read_text(encoding="utf-8")).replace(
        "[login]\nenabled = true\n", '[login]\nenabled = true\ndingtalk = { corp_id = "SAFETYBOT_DT_CORP_ID" }\n'),
        encoding="utf-8")
    problems = login_problems(load_config(config_path), lambda name: name in DT_ENV, "en")
    assert problems == ["login: page sign-in on dingtalk needs these environment variables, which are not set: "
                        "$SAFETYBOT_DT_CORP_ID"]
    assert login_problems(load_config(config_path), lambda name: True, "en") == []


def test_check_config_refuses_page_login_without_its_credentials(
    config_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cli import main

    for name in ("SAFETYBOT_WECOM_CORP_ID", "SAFETYBOT_WECOM_APP_SECRET", "SAFETYBOT_WECOM_AGENT_ID",
                 "SAFETYBOT_SECRETS_FILE"):
        monkeypatch.delenv(name, raising=False)
    from types import SimpleNamespace

    urls = SimpleNamespace(base_url="https://qyapi.weixin.qq.com", ws_url="wss://openws.work.weixin.qq.com")
    config_path.write_text(_public(config_path.read_text(encoding="utf-8")) + wecom_toml(urls)  # type: ignore[arg-type]
                           + "\n[login]\nenabled = true\n", encoding="utf-8")
    assert main(["check-config", str(config_path)]) == 1
    err = capsys.readouterr().err
    assert "login：企业微信群的网页登录缺少凭据 corp_id, secret, agent_id" in err and "[login]" in err


@pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="TEST_REDIS_URL is not set (CI sets it)")
def test_replicas_sharing_redis_take_a_code_once(config_path: Path) -> None:
    config = load_config(config_path)

    async def two_replicas() -> list[bool]:
        answers = []
        code = f"code-{uuid.uuid4().hex}"
        for _ in range(2):  # two processes: their own memory, one Redis
            shared = SharedCache(os.environ["TEST_REDIS_URL"])
            async with httpx.AsyncClient() as http:
                login = PageLogin(config=lambda: config, secrets=Secrets({}), http=http, link_key=b"k" * 32,
                                  clock=campaign_clock().now, shared=shared)
                answers.append(await login.use_once("code", code))
            await shared.aclose()
        return answers

    assert asyncio.run(two_replicas()) == [True, False]
