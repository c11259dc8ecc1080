"""End to end: the real server in a subprocess, the /sim page driven in headless Debian Chromium."""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "simulator.png"
SERVE_AT = "2026-12-07T10:00+08:00"  # the bot's clock starts inside the example's winter-2026, on any date
REPORT = "隐患\n部位：3号教学楼二楼东侧\n问题：消防通道堆放杂物\n责任人：王建国\n期限：明天"
TIMEOUT_MS = 15_000


def scene_png(width: int = 320, height: int = 200) -> bytes:
    """A small drawn "photo" of boxes blocking a corridor under an exit sign, as a PNG."""
    wall, floor = (236, 230, 218), (150, 150, 146)
    rects = [  # (x0, y0, x1, y1, colour), painted in order
        (120, 22, 200, 52, (0, 150, 80)),  # exit sign
        (132, 30, 188, 44, (240, 255, 245)),
        (40, 110, 120, 170, (176, 128, 78)),  # boxes
        (60, 80, 110, 112, (196, 150, 96)),
        (190, 120, 290, 175, (160, 112, 66)),
        (215, 95, 265, 122, (205, 162, 108)),
    ]
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # PNG filter type: none
        for x in range(width):
            colour = wall if y < height * 0.55 else floor
            for x0, y0, x1, y1, fill in rects:
                if x0 <= x < x1 and y0 <= y < y1:
                    colour = fill
            rows.extend(colour)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows))) + chunk(b"IEND", b"")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(config_path: Path, tmp_path: Path) -> Iterator[str]:
    """`safetybot serve` on a free loopback port; yields its base URL and always stops it."""
    port = free_port()
    log = (tmp_path / "server.log").open("w+b")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--config", str(config_path),
         "--host", "127.0.0.1", "--port", str(port), "--now", SERVE_AT],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                log.seek(0)
                pytest.fail(f"server exited with {process.returncode}:\n{log.read().decode(errors='replace')}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("server did not answer /healthz within 30 s")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_report_with_photo_then_close_in_the_browser(server: str, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian Chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    photo = tmp_path / "fire-exit.png"
    photo.write_bytes(scene_png())

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1100}, device_scale_factor=1)
            page.set_default_timeout(TIMEOUT_MS)
            expect = sync_api.expect
            page.goto(f"{server}/sim")
            page.wait_for_selector("body[data-ready='1']")
            expect(page.locator("#group option:checked")).to_have_text(re.compile("一中安全工作群"))

            page.click("#tpl-report")
            assert page.input_value("#input") == "隐患\n部位：\n问题：\n类别：\n责任人：\n期限："
            page.fill("#input", "")

            # As 张伟: type the report line by line (Shift+Enter), attach a photo, send with Enter.
            page.select_option("#person", "zhang_wei")
            page.set_input_files("#photo", str(photo))
            expect(page.locator("#preview")).to_be_visible()
            lines = REPORT.split("\n")
            page.focus("#input")
            for i, line in enumerate(lines):
                page.keyboard.insert_text(line)
                if i < len(lines) - 1:
                    page.keyboard.press("Shift+Enter")
            assert page.input_value("#input") == REPORT
            page.keyboard.press("Enter")

            mine = page.locator(".msg.me").last
            expect(mine).to_contain_text("消防通道堆放杂物")
            expect(mine.locator("img.photo")).to_be_visible()
            registered = page.locator(".msg.bot", has_text="已登记隐患 #")
            expect(registered).to_have_count(1)
            match = re.search(r"已登记隐患 #(\d+)", registered.inner_text())
            assert match, registered.inner_text()
            number = match.group(1)

            # As 李娜, the safety officer: verify and close it.
            page.select_option("#person", "li_na")
            expect(page.locator(".msg.me")).to_have_count(0)  # 张伟's message now shows as someone else's
            page.fill("#input", f"销号 #{number}")
            page.click("#send")
            expect(page.locator(".msg.bot", has_text="已销号")).to_have_count(1)
            expect(page.locator(".msg.me").last).to_contain_text(f"销号 #{number}")
            expect(page.locator(".msg.system.error")).to_have_count(0)

            if os.environ.get("SAFETYBOT_SCREENSHOT") == "1":
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOT))
        finally:
            browser.close()
