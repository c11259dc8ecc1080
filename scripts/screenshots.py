#!/usr/bin/env python3
"""Screenshots of the hazard page and the leaders' page (issue 15) at a phone's 390 × 844, for the docs.

Runs `safetybot serve` on a copy of the example config (SQLite and data dir in a temporary directory,
`server.public_url` set to the server's own loopback address) at a fixed --now, files a few hazards through the
simulator's API (one with a before photo and a fixed-after photo, one 重大), then opens the signed links in
headless Debian Chromium:

    .venv/bin/python scripts/screenshots.py --now 2026-12-07T10:00+08:00

writes docs/hazard-page.png and docs/leader-page.png (tests/bot/test_pages_browser.py drives the same steps), and
docs/simulator-card.png: a report typed in the simulator with `[cards] enabled`, answered by a card with buttons.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
import tomllib
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.pagelinks import LEADER, PageLinks

EXAMPLE = ROOT / "config.example.toml"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PHONE = {"width": 390, "height": 844}
NOW = "2026-12-07T10:00+08:00"  # inside the example's winter-2026 campaign
LINK_SECRET = "screenshots-only-signing-key-not-a-secret"
PAGE_LINK = re.compile(r"网页（照片和记录）：(\S+)")
FIRST = "隐患\n部位：3号教学楼二楼东侧\n问题：消防通道堆放杂物，<纸箱>挡住安全出口\n责任人：王建国\n期限：明天"
MORE = [  # (person, text): the leaders' page needs a few more
    ("chen_jing", "隐患\n部位：学生宿舍1号楼三楼\n问题：应急照明灯不亮\n单位：学生工作处\n责任人：王建国\n期限：12月15日"),
    ("zhang_wei", "隐患\n部位：实验楼二楼化学实验室\n问题：危化品柜未上锁\n等级：重大\n单位：教务处\n责任人：王建国\n期限：12月20日"),
    ("zhang_wei", "隐患\n部位：食堂后厨\n问题：插座老化，电线裸露\n单位：食堂\n责任人：王建国\n期限：12月10日"),
]


def scene_png(*, boxes: bool, width: int = 320, height: int = 240) -> bytes:
    """A drawn corridor under an exit sign, blocked by boxes (before) or clear (after), as a PNG."""
    wall, floor = (236, 230, 218), (150, 150, 146)
    rects = [(120, 22, 200, 52, (0, 150, 80)), (132, 30, 188, 44, (240, 255, 245))]  # the exit sign
    if boxes:
        rects += [(40, 130, 120, 200, (176, 128, 78)), (60, 100, 110, 132, (196, 150, 96)),
                  (190, 140, 290, 215, (160, 112, 66)), (215, 115, 265, 142, (205, 162, 108))]
    else:
        rects += [(145, 60, 175, 240, (120, 170, 120))]  # a green floor marking: the way out is clear
    rows = bytearray()
    for y in range(height):
        rows.append(0)
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


def write_config(directory: Path, base_url: str) -> Path:
    """The example config with its database and data dir in `directory`, links on at `base_url`."""
    text = EXAMPLE.read_text(encoding="utf-8")
    head, sep, tail = text.partition("\n[server]\n")
    assert sep, "config.example.toml has no [server] table"
    text = head + sep + f'public_url = "{base_url}"\n' + tail
    text = text.replace('\n[database]\n', f'\n[database]\nurl = "sqlite:///{directory / "safetybot.db"}"\n', 1)
    text = re.sub(r'(?m)^url = "sqlite:///data/[^"]*"\n', "", text)
    text = re.sub(r'(?m)^data_dir = "data"$', f'data_dir = "{directory / "data"}"', text)
    text = re.sub(r"(?m)^handler_processes = \d+$", "handler_processes = 0", text)
    text += "\n[cards]\nenabled = true\n"  # the simulator draws the buttons of the bot's cards
    path = directory / "config.toml"
    path.write_text(text, encoding="utf-8")
    parsed = tomllib.loads(text)
    assert parsed["server"]["public_url"] == base_url and str(directory) in parsed["database"]["url"]
    return path


@contextmanager
def serving(directory: Path, now: str) -> Iterator[str]:
    """`safetybot serve` on a free loopback port at `now`; yields its base URL and always stops it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = write_config(directory, base)
    log = (directory / "server.log").open("w+b")
    env = {**os.environ, "SAFETYBOT_LINK_SECRET": LINK_SECRET, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
         "--port", str(port), "--now", now],
        cwd=directory, stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"server exited with {process.returncode}:\n{log.read().decode(errors='replace')}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not answer /healthz within 30 s")
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


def send(base: str, person: str, text: str, photo: bytes | None = None, group: str = "staff") -> str:
    files = {"photo": ("photo.png", photo, "image/png")} if photo else None
    response = httpx.post(f"{base}/sim/api/messages", data={"person_id": person, "group_id": group, "text": text},
                          files=files, timeout=30, trust_env=False)
    response.raise_for_status()
    return "\n".join(reply["text"] for reply in response.json()["replies"])


def seed(base: str, now: str) -> tuple[str, str]:
    """File the hazards; returns (the first hazard's page link from its 查看 reply, the leaders' page link)."""
    registered = send(base, "zhang_wei", FIRST, scene_png(boxes=True))
    number = re.search(r"已登记隐患 #(\d+)", registered)
    if number is None:
        raise RuntimeError(f"the report was not registered: {registered}")
    fixed = send(base, "wang_jianguo", f"整改 #{number.group(1)} 已清走纸箱，通道畅通", scene_png(boxes=False))
    if "整改" not in fixed:
        raise RuntimeError(f"the fix was not recorded: {fixed}")
    for person, text in MORE:
        reply = send(base, person, text)
        if "已登记隐患" not in reply:
            raise RuntimeError(f"not registered: {text!r}: {reply}")
    shown = send(base, "zhao_min", f"查看 #{number.group(1)}")
    link = PAGE_LINK.search(shown)
    if link is None:
        raise RuntimeError(f"查看 carries no page link: {shown}")
    # The leaders' digest carries this link; sign it here as the bot does, with the same key and clock.
    at = datetime.fromisoformat(now)
    leader = PageLinks(base_url=base, key=LINK_SECRET.encode(), ttl=timedelta(days=7), clock=lambda: at)
    return link.group(1), f"{base}{leader.path(LEADER, 'leaders')}"


def shoot(hazard_url: str, leader_url: str, out_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=PHONE, device_scale_factor=1)
            for url, name in ((hazard_url, "hazard-page.png"), (leader_url, "leader-page.png")):
                page.goto(url)
                page.wait_for_load_state("load")
                page.screenshot(path=str(out_dir / name))
                print(f"wrote {out_dir / name}")
        finally:
            browser.close()


CARD_REPORT = "隐患\n部位：图书馆二楼阅览室\n问题：书架不稳，有倾倒危险\n责任人：王建国\n期限：本周五"


def shoot_card(base: str, out_dir: Path) -> None:
    """The simulator on a phone: 张伟 types a report; the bot's answer is a card with 整改 / 查看照片 / 转交."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=PHONE, device_scale_factor=1)
            page.goto(f"{base}/sim")
            page.wait_for_selector("body[data-ready='1']")
            page.select_option("#person", "zhang_wei")
            page.fill("#input", CARD_REPORT)
            page.click("#send")
            page.locator(".msg.bot .card-button").first.wait_for()
            page.locator(".msg.bot").last.scroll_into_view_if_needed()
            page.screenshot(path=str(out_dir / "simulator-card.png"))
            print(f"wrote {out_dir / 'simulator-card.png'}")
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--now", default=NOW, help=f"the bot's clock (default {NOW})")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where to write the PNGs (default docs/)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, serving(Path(tmp), args.now) as base:
        hazard_url, leader_url = seed(base, args.now)
        shoot(hazard_url, leader_url, Path(args.out))
        shoot_card(base, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
