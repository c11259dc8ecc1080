"""Memory soak: resident memory while the engine handles 100,000 messages and renders 1,000 charts.

Run from the repository root:  .venv/bin/python bench/memory_soak.py [--messages 100000] [--charts 1000]
Target: RSS < 300 MB at the end and not growing (slope of the second half ≈ 0).

The engine runs in-process on SQLite (the example config, console platform) with a realistic mix: a report,
its 整改, 验收 (= 销号), 查看, 清单 and the odd typo, from the people whose roles allow each step. Every
`messages / charts` messages one 统计 chart is rendered through handlers.charts (skipped when that module
is missing). RSS is read from /proc/self/statm every 10,000 messages.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from sqlmodel import Session  # noqa: E402

from bot.app import build_engine  # noqa: E402
from bot.config import load_config  # noqa: E402
from bot.engine import Engine  # noqa: E402
from handlers.messages import Inbound  # noqa: E402
from models.tables import CampaignRow, GroupUnit  # noqa: E402
from tests.conftest import EXAMPLE_CONFIG, with_local_storage  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
TARGET_MB = 300.0
SAMPLE_EVERY = 10_000


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 1024 / 1024


def chart_renderer(engine: Engine) -> Callable[[], int] | None:
    """A function rendering the staff group's 统计 chart (PNG size), or None if handlers.charts is absent."""
    try:
        from handlers.stats import outstanding_chart_png
    except ImportError:
        return None
    with Session(engine.db) as session:
        from sqlmodel import select

        units = list(session.exec(select(GroupUnit.unit_id).where(GroupUnit.group_id == "staff")))
        campaign_id = engine.config.groups[0].campaign

    def render() -> int:
        with Session(engine.db) as session:
            campaign = session.get(CampaignRow, campaign_id)
            assert campaign is not None
            return len(outstanding_chart_png(session, campaign=campaign, unit_ids=units, now=engine.now()))

    return render


def message_mix() -> Callable[[int], tuple[str, str]]:
    """The i-th (sender, text): cycles of report → 查看 → 整改 → 清单 → 验收 → typo, over many places."""
    def nth(i: int) -> tuple[str, str]:
        cycle, step = divmod(i, 6)
        number = cycle + 1  # reports are numbered in order, one per cycle
        if step == 0:
            return "zhang_wei", (f"隐患\n部位：{cycle % 9 + 1}号教学楼{cycle % 5 + 1}楼{cycle % 40}室\n"
                                 f"问题：灭火器压力不足，第{cycle}处\n责任人：王建国\n期限：明天")
        if step == 1:
            return "zhang_wei", f"查看 #{number}"
        if step == 2:
            return "wang_jianguo", f"整改 #{number} 已更换灭火器"
        if step == 3:
            return "wang_jianguo", "清单"
        if step == 4:
            return "li_na", f"验收 #{number}"
        return "zhang_wei", "隐 患 部位 三楼"  # a typo: answered with help text
    return nth


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--charts", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="safetybot-soak-") as tmp_name:
        tmp = Path(tmp_name)
        path = tmp / "config.toml"
        path.write_text(with_local_storage(EXAMPLE_CONFIG.read_text(encoding="utf-8"),
                                           db_url=f"sqlite:///{tmp / 'soak.db'}", data_dir=str(tmp / "data")),
                        encoding="utf-8")
        engine = build_engine(load_config(path))
        engine.start()
        render = chart_renderer(engine) if args.charts else None
        if args.charts and render is None:
            print("charts: handlers.charts is not available, chart part skipped")
        chart_every = max(1, args.messages // args.charts) if render else 0
        nth = message_mix()
        samples: list[tuple[int, float]] = [(0, rss_mb())]
        print(f"{'messages':>9} {'charts':>7} {'RSS MB':>8} {'msg/s':>7}", flush=True)
        charts = 0
        started = last = time.perf_counter()
        for i in range(args.messages):
            sender, text = nth(i)
            replies = engine.handle_sync(Inbound(platform="console", msg_id=f"soak-{i}-{uuid.uuid4().hex[:6]}",
                                                 chat_id="staff", sender_id=sender, text=text, received_at=engine.now()))
            assert replies, f"no reply to message {i}"
            if chart_every and (i + 1) % chart_every == 0 and charts < args.charts:
                assert render is not None and render() > 1000
                charts += 1
            if (i + 1) % SAMPLE_EVERY == 0:
                gc.collect()
                samples.append((i + 1, rss_mb()))
                now = time.perf_counter()
                print(f"{i + 1:>9} {charts:>7} {samples[-1][1]:>8.1f} {SAMPLE_EVERY / (now - last):>7.0f}", flush=True)
                last = now
        engine.db.dispose()
    half = [s for s in samples if s[0] >= args.messages / 2]
    slope = 0.0
    if len(half) >= 2:
        mean_x = sum(x for x, _ in half) / len(half)
        mean_y = sum(y for _, y in half) / len(half)
        denominator = sum((x - mean_x) ** 2 for x, _ in half)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in half) / denominator * SAMPLE_EVERY if denominator else 0.0
    final = samples[-1][1]
    verdict = "ok" if final < TARGET_MB and slope < 1.0 else "MISSED"
    print(f"handled {args.messages} messages and {charts} charts in {time.perf_counter() - started:.0f} s; "
          f"final RSS {final:.1f} MB, peak {max(y for _, y in samples):.1f} MB, "
          f"second-half slope {slope:+.2f} MB per {SAMPLE_EVERY:,} messages; target (<{TARGET_MB:.0f} MB, flat): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
