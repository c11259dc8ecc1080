"""Issue 15 in headless Debian Chromium at a phone's 390 × 844: a hazard page opened from its signed link, signed in
through WeCom's OAuth2 (the fake WeCom plays the WeCom app), then a button tapped and its answer shown."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlmodel import Session, select

from bot.app import create_app
from bot.config import load_config
from bot.pagelinks import HAZARD
from bot.secrets import Secrets
from models.tables import Hazard
from tests.bot.test_pages_browser import TIMEOUT_MS, screenshots
from tests.bot.test_pages_login import AGENT, APP_SECRET_WECOM, CORP, WECOM_ENV, WECOM_LOGIN
from tests.bot.test_wecom import AES_KEY, CHAT, REPORT, TOKEN, WEBHOOK_KEY, wecom_toml
from tests.conftest import campaign_clock
from tests.fakes.wecom_server import FakeWeCom, post_aibot_callback

pytestmark = pytest.mark.browser


class _Served:
    """The bot's app under uvicorn on a loopback port, in a thread."""

    def __init__(self, app: object, sock: socket.socket) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))  # type: ignore[arg-type]
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[sock])), daemon=True)

    def __enter__(self) -> "_Served":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the bot did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def served(config_path: Path) -> Iterator[tuple[str, FakeWeCom, object]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with FakeWeCom(window=60.0) as fake:
        fake.add_webhook_key(WEBHOOK_KEY)
        fake.add_corp(CORP, APP_SECRET_WECOM)
        fake.agents[AGENT] = CORP
        text = config_path.read_text(encoding="utf-8").replace("\n[server]\n", f'\n[server]\npublic_url = "{base}"\n', 1)
        text += wecom_toml(fake) + WECOM_LOGIN + f'wecom_authorize_url = "{fake.base_url}/connect/oauth2/authorize"\n'
        config_path.write_text(text, encoding="utf-8")
        app = create_app(load_config(config_path), secrets=Secrets(environ=WECOM_ENV), clock=campaign_clock())
        with _Served(app, sock):
            yield base, fake, app


def test_sign_in_with_wecom_and_report_the_fix_on_a_phone(served: tuple[str, FakeWeCom, object]) -> None:
    if not screenshots.CHROMIUM.exists():
        pytest.skip("Debian Chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    base, fake, app = served
    message = fake.aibot_text("@安全助手 " + REPORT, userid="ZhangWei", chatid=CHAT)
    assert post_aibot_callback(f"{base}/wecom/callback", message, token=TOKEN, encoding_aes_key=AES_KEY).status_code == 200

    def hazard() -> Hazard | None:
        with Session(app.state.engine.db) as session:  # type: ignore[attr-defined]
            return session.exec(select(Hazard)).first()

    deadline = time.monotonic() + 15
    while hazard() is None:
        assert time.monotonic() < deadline, "the report was not handled"
        time.sleep(0.1)
    reported = hazard()
    assert reported is not None
    url = base + app.state.engine.page_links.path(HAZARD, str(reported.id))  # type: ignore[attr-defined]
    fake.app_user = "WangJianGuo"  # who is signed in to the WeCom app that opens the link

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(screenshots.CHROMIUM), args=screenshots.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=screenshots.PHONE, device_scale_factor=1)
            page.set_default_timeout(TIMEOUT_MS)
            expect = sync_api.expect
            assert page.goto(url) is not None
            login = page.locator("a.btn", has_text="用企业微信登录后操作")
            expect(login).to_be_visible()
            login.click()  # → WeCom's OAuth2 page → back with a code → the page, signed in
            expect(page.locator(".acts")).to_contain_text("已登录：王建国")
            expect(page.locator(".acts button", has_text="验收销号")).to_have_count(0)
            assert page.evaluate("document.documentElement.scrollWidth") <= screenshots.PHONE["width"]
            fix = page.locator("form", has=page.locator("button", has_text="整改")).first
            fix.locator("input[name=words]").fill("已清理通道")
            fix.locator("button").click()
            expect(page.locator(".result")).to_contain_text("机器人的答复")
            expect(page.locator(".result")).to_contain_text("整改")
            expect(page.locator("header")).to_contain_text("待验收")
            assert page.evaluate("document.documentElement.scrollWidth") <= screenshots.PHONE["width"]
            assert "Traceback" not in page.content()
        finally:
            browser.close()
    fixed = hazard()
    assert fixed is not None and fixed.status == "rectified"
