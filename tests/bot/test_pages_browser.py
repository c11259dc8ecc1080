"""Issue 15 end to end: the real server in a subprocess, the signed pages opened in headless Debian Chromium at a
phone's 390 × 844 (the same steps as scripts/screenshots.py, which writes the docs' screenshots)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

from bot.pagelinks import HAZARD, PageLinks

pytestmark = pytest.mark.browser

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "screenshots.py"
NOW = "2026-12-07T10:00+08:00"  # inside the example's winter-2026 campaign, on any date
TIMEOUT_MS = 15_000


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("screenshots", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


screenshots = _script()


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """(base URL, a hazard page link, the leaders' page link) of a served example campaign."""
    with screenshots.serving(tmp_path, NOW) as base:
        hazard_url, leader_url = screenshots.seed(base, NOW)
        yield base, hazard_url, leader_url


def _loaded(image) -> bool:  # type: ignore[no-untyped-def]
    return bool(image.evaluate("img => img.complete && img.naturalWidth > 0"))


def test_hazard_and_leader_pages_on_a_phone(seeded: tuple[str, str, str]) -> None:
    if not screenshots.CHROMIUM.exists():
        pytest.skip("Debian Chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    base, hazard_url, leader_url = seeded
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(screenshots.CHROMIUM), args=screenshots.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=screenshots.PHONE, device_scale_factor=1)
            page.set_default_timeout(TIMEOUT_MS)
            expect = sync_api.expect

            response = page.goto(hazard_url)
            assert response is not None and response.status == 200
            page.wait_for_load_state("load")
            expect(page.locator("h1")).to_contain_text("隐患 城关第一中学#1")
            expect(page.locator("dd", has_text="<纸箱>挡住安全出口")).to_have_count(1)  # escaped, shown as text
            before, after = page.locator("figure.before img"), page.locator("figure.after img")
            expect(before).to_have_count(1)
            expect(after).to_have_count(1)
            for image in (before, after):
                expect(image).to_be_visible()
                assert _loaded(image), "a photo did not load"
            expect(page.locator("ol.history li")).to_have_count(2)
            assert page.evaluate("document.documentElement.scrollWidth") <= screenshots.PHONE["width"]

            response = page.goto(leader_url)
            assert response is not None and response.status == 200
            page.wait_for_load_state("load")
            expect(page.locator("h1")).to_contain_text("城关第一中学 未销号隐患")
            chart = page.locator(".chart img")
            expect(chart).to_be_visible()
            assert _loaded(chart), "the chart did not load"
            expect(page.locator("ul.items li")).to_have_count(4)
            page.click("nav.filters a:text('重大')")
            expect(page.locator("ul.items li")).to_have_count(1)
            expect(page.locator("ul.items li")).to_contain_text("危化品柜未上锁")
            page.click("ul.items li a")  # each row opens its own signed hazard page
            expect(page.locator("h1")).to_contain_text("隐患 城关第一中学#")
            assert page.evaluate("document.documentElement.scrollWidth") <= screenshots.PHONE["width"]

            tampered = hazard_url[:-3] + ("AAA" if not hazard_url.endswith("AAA") else "BBB")
            response = page.goto(tampered)
            assert response is not None and response.status == 403
            expect(page.locator("h1")).to_have_text("无法打开此页面")
            expect(page.locator("p")).to_contain_text("链接无效")

            long_ago = datetime.fromisoformat(NOW) - timedelta(days=30)
            old = PageLinks(base_url=base, key=screenshots.LINK_SECRET.encode(), ttl=timedelta(days=7),
                            clock=lambda: long_ago)
            response = page.goto(f"{base}{old.path(HAZARD, '1')}")
            assert response is not None and response.status == 410
            expect(page.locator("p")).to_contain_text("链接已过期")
            assert "Traceback" not in page.content()
        finally:
            browser.close()
