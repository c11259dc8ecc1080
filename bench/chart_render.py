"""Chart render time: the median of 50 renders of the 统计 chart, for 0, 1, 12 and 300 units.

Run: python bench/chart_render.py [--runs 50] [--out DIR]   (DIR keeps one PNG of each case to look at)
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handlers.charts import render_outstanding_chart  # noqa: E402
from models.reports import ChartData, StatusCounts, _fold_tail, _sum  # noqa: E402

CATEGORIES = ("消防", "用电", "建筑", "食品", "交通", "设施设备", "危化品", "燃气", "其他")


def case(units: int, days: int) -> ChartData:
    """Plausible figures: more items in bigger units, a few overdue, a steady found/closed trend."""
    rows = [StatusCounts(f"第{i + 1}中学", 2 + (i * 7) % 9, (i * 3) % 5, (i * 5) % 4) for i in range(units)]
    categories = [StatusCounts(name, 3 + (i * 5) % 11, i % 4, i % 3) for i, name in enumerate(CATEGORIES)]
    categories = categories if units else []
    start = date(2023, 11, 21)
    return ChartData(
        campaign_name="2023—2024学年冬春校园安全隐患排查整治",
        as_of=datetime(2023, 11, 21, 10, tzinfo=ZoneInfo("Asia/Shanghai")) + timedelta(days=days - 1),
        scope_name="县教育局",
        units=tuple(_fold_tail(rows, 12, lambda n: f"其他{n}个单位")),
        unit_count=max(units, 1),
        folded_units=units - 11 if units > 12 else 0,
        categories=tuple(_fold_tail(categories, 8, lambda n: "其他")),
        days=tuple(start + timedelta(days=d) for d in range(days)),
        found=tuple((d * 7) % 13 if units else 0 for d in range(days)),
        closed=tuple((d * 5) % 9 if units else 0 for d in range(days)),
        major=units // 10,
        totals=_sum(rows, "合计"),
    )


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--out", type=Path, help="directory to keep one PNG of each case")
    args = parser.parse_args()

    started = time.perf_counter()
    render_outstanding_chart(case(1, 1))  # imports, font lookup, caches
    print(f"first render (cold): {(time.perf_counter() - started) * 1000:.0f} ms")
    cases = (("0 hazards", 0, 1), ("1 unit", 1, 15), ("12 units", 12, 60), ("300 units", 300, 170))
    for _, units, days in cases:
        render_outstanding_chart(case(units, days))  # warm each case's text caches before measuring memory
    before = rss_mb()
    print(f"{'case':<24}{'median':>10}{'p90':>10}{'PNG size':>12}{'pixels':>14}")
    for name, units, days in cases:
        data = case(units, days)
        times = []
        png = b""
        for _ in range(args.runs):
            t0 = time.perf_counter()
            png = render_outstanding_chart(data)
            times.append(time.perf_counter() - t0)
        width, height = struct.unpack(">II", png[16:24])
        p90 = sorted(times)[int(len(times) * 0.9) - 1]
        print(f"{name:<24}{statistics.median(times) * 1000:>8.0f}ms{p90 * 1000:>8.0f}ms"
              f"{len(png) / 1024:>10.0f}KB{width:>8}×{height}")
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"chart_{units}_units.png").write_bytes(png)
    print(f"RSS growth over {len(cases) * args.runs} renders after warm-up: {rss_mb() - before:.1f} MB")


if __name__ == "__main__":
    main()
