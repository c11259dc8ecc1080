"""The outstanding-items chart (统计): one tall PNG that reads on a phone.

Pure rendering from `ChartData` (no database here), so the scheduler's digests reuse it. matplotlib's object
API on Agg only: pyplot keeps every figure alive in a global registry, which leaks in a long-running server.
"""

from __future__ import annotations

import logging
import math
import textwrap
import threading
from collections.abc import Callable, Sequence
from datetime import date
from functools import lru_cache
from io import BytesIO
from itertools import accumulate
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import DateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.text import Text
from matplotlib.ticker import FixedLocator, MaxNLocator
from matplotlib.typing import RcKeyType

from models.reports import ChartData, StatusCounts

__all__ = ["ChartData", "StatusCounts", "chart_fonts", "render_outstanding_chart", "short_labels"]

log = logging.getLogger(__name__)

# Okabe–Ito colours: distinguishable with every common colour-vision deficiency; overdue is the warning colour.
RECTIFYING = "#0072B2"  # blue: being fixed, still within the deadline
AWAITING = "#56B4E9"  # sky blue: fixed, waiting for verification (lighter: nearly done)
OVERDUE = "#D55E00"  # vermillion: past the deadline
FOUND_LINE = "#333333"
CLOSED_LINE = "#009E73"  # bluish green
GAP_FILL = "#D9D9D9"
MUTED = "#555555"
GRID = "#E5E5E5"

WIDTH_PX = 1080  # WeCom/DingTalk show images full-width; a phone screen is about this wide
DPI = 120
WIDTH_IN = WIDTH_PX / DPI
BASE_PT = 17  # about 28 px: readable on a phone without zooming
LABEL_CHARS = 8  # unit and category names longer than this are shortened with …

# Simplified Chinese first: the Noto CJK collection's first face is JP, whose glyph forms differ.
CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "PingFang SC",
    "Noto Sans CJK TC",
    "Noto Sans CJK JP",
)
_FONT_DIRS = (
    Path("/usr/share/fonts"),
    Path("/usr/local/share/fonts"),
    Path.home() / ".local/share/fonts",
    Path(__file__).resolve().parents[1] / "bot" / "assets" / "fonts",
)

# matplotlib's font cache, text layout caches and rcParams are process-wide and not thread-safe.
_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def chart_fonts() -> tuple[str, ...]:
    """The installed CJK font families to draw with, best first (registering font files if the cache missed them)."""
    from matplotlib import font_manager

    def installed() -> tuple[str, ...]:
        names = {entry.name for entry in font_manager.fontManager.ttflist}
        return tuple(family for family in CJK_FAMILIES if family in names)

    families = installed()
    if families:
        return families
    # The font cache predates the font's installation (e.g. a cached image layer): register the files.
    for directory in _FONT_DIRS:
        if not directory.is_dir():
            continue
        for path in sorted(directory.rglob("*")):
            lowered = path.name.lower()
            if path.suffix.lower() in {".ttc", ".otf", ".ttf"} and any(
                key in lowered for key in ("cjk", "notosanssc", "sourcehansans", "wqy")
            ):
                try:
                    font_manager.fontManager.addfont(str(path))
                except (OSError, RuntimeError, ValueError):
                    log.debug("cannot register font %s", path)
    families = installed()
    if not families:
        log.error("no CJK font installed: chart text will show as boxes (install fonts-noto-cjk)")
    return families


def _rc() -> dict[RcKeyType, Any]:
    return {
        "font.family": "sans-serif",
        "font.sans-serif": [*chart_fonts(), "DejaVu Sans"],
        "font.size": BASE_PT,
        "axes.unicode_minus": False,
        "axes.titlesize": BASE_PT + 3,
        "axes.titleweight": "bold",
        "axes.titlelocation": "left",
        "axes.titlepad": 12,
        "axes.labelsize": BASE_PT,
        "xtick.labelsize": BASE_PT - 1,
        "ytick.labelsize": BASE_PT,
        "legend.fontsize": BASE_PT - 1,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }


def _short(label: str, limit: int = LABEL_CHARS) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def short_labels(labels: Sequence[str], limit: int = LABEL_CHARS) -> list[str]:
    """Labels of at most `limit` characters that still tell the units apart.

    Unit names differ mostly at the end (通榆县第二实验小学 / 通榆县第二实验幼儿园) and share a place name at the
    start, so a long name first keeps its end ("…第二实验小学"); when that is not unique, its start and end
    around the cut, and only then its start. A shortened label never equals another label.
    """
    result: list[str] = []
    taken = {label for label in labels if len(label) <= limit}
    for label in labels:
        if len(label) <= limit:
            result.append(label)
            continue
        keep = limit - 1
        candidates = [
            "…" + label[-keep:],
            *(label[:head] + "…" + label[-(keep - head):] for head in range(2, keep - 1)),
            label[:keep] + "…",
        ]
        others = [other for other in labels if other != label]
        choice = next(
            (c for c in candidates if c not in taken and not any(_fits(c, other) for other in others)),
            next((c for c in candidates if c not in taken), candidates[0]),
        )
        taken.add(choice)
        result.append(choice)
    return result


def _fits(short: str, label: str) -> bool:
    """Whether a shortened label could also be read as `label` (same start and end around the …)."""
    head, _, tail = short.partition("…")
    return label.startswith(head) and label.endswith(tail) and len(label) >= len(head) + len(tail)


def _bar_height_in(rows: int) -> float:
    return 0.56 * rows if rows else 1.0


def _empty_text(data: ChartData) -> str:
    """Nothing outstanding: because nothing was reported yet, or because everything reported is closed."""
    return f"已登记{data.reported}项隐患，已全部销号" if data.reported else "尚未登记隐患"


def _status_bars(ax: Axes, rows: Sequence[StatusCounts], *, folded_tail: bool, empty: str = "暂无未销号隐患") -> None:
    """Horizontal stacked bars (overdue first: the part that matters), most urgent on top.

    A folded tail (其他N个单位) bigger than every named unit would squash their bars to slivers, so it is
    written as a figure in its row instead of drawn to scale.
    """
    if not rows:
        _empty(ax, empty)
        return
    named = rows[:-1] if folded_tail else rows
    largest = max((row.total for row in named), default=0) or max(row.total for row in rows) or 1
    tail_as_text = folded_tail and rows[-1].total > largest
    drawn = [row if not (tail_as_text and i == len(rows) - 1) else StatusCounts(row.label)
             for i, row in enumerate(rows)]
    positions = list(range(len(rows)))
    left = [0] * len(rows)
    for attr, colour in (("overdue", OVERDUE), ("rectifying", RECTIFYING), ("awaiting", AWAITING)):
        values = [getattr(row, attr) for row in drawn]
        ax.barh(positions, values, left=left, color=colour, height=0.68, edgecolor="white", linewidth=0.8)
        left = [a + b for a, b in zip(left, values)]
    for y, row in zip(positions, rows):
        text = f"{row.total}" + (f"（逾期{row.overdue}）" if row.overdue else "")
        if tail_as_text and y == len(rows) - 1:
            ax.text(0, y, f"合计 {text}", va="center", ha="left", fontsize=BASE_PT,
                    color=OVERDUE if row.overdue else MUTED, fontweight="bold" if row.overdue else "normal")
            continue
        ax.text(row.total + largest * 0.015, y, text, va="center", ha="left", fontsize=BASE_PT,
                color=OVERDUE if row.overdue else "black", fontweight="bold" if row.overdue else "normal")
    named_labels = short_labels([row.label for row in named])
    tail_label = [_short(rows[-1].label, LABEL_CHARS + 3)] if folded_tail else []
    ax.set_yticks(positions, [*named_labels, *tail_label])
    ax.set_ylim(len(rows) - 0.5, -0.5)  # the first row on top
    ax.set_xlim(0, largest * 1.45)  # room for the value labels
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
    ax.grid(axis="x", color=GRID, linewidth=1)
    ax.set_axisbelow(True)
    ax.tick_params(axis="y", length=0)


def _empty(ax: Axes, text: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=BASE_PT + 2, color=MUTED, transform=ax.transAxes)


def _title_lines(data: ChartData) -> list[str]:
    """The school (or county) the chart is about, then the campaign: never a chat group's name."""
    title = f"{data.scope_name}｜{data.campaign_name}" if data.scope_name else data.campaign_name
    return textwrap.wrap(title, 24) or ["隐患统计"]


def _header_height(data: ChartData) -> float:
    return 2.45 + 0.42 * (len(_title_lines(data)) - 1)


def _header(figure: Figure, data: ChartData, y: Callable[[float], float]) -> None:
    """Title, scope and time, the four headline figures, and the colour key of both bar panels."""
    lines = _title_lines(data)
    x0 = 0.03
    figure.text(x0, y(0.12), "\n".join(lines), ha="left", va="top", fontsize=BASE_PT + 7, fontweight="bold",
                linespacing=1.25)
    below_title = 0.12 + 0.42 * len(lines) + 0.1
    figure.text(x0, y(below_title), f"未销号隐患快照｜截至 {data.as_of:%Y-%m-%d %H:%M}",
                ha="left", va="top", fontsize=BASE_PT - 1, color=MUTED)
    totals = data.totals
    figures = (
        ("未销号", totals.total, "black"),
        ("已逾期", totals.overdue, OVERDUE if totals.overdue else "black"),
        ("待验收", totals.awaiting, "black"),
        ("重大隐患", data.major, OVERDUE if data.major else "black"),
    )
    numbers_top = below_title + 0.42
    for i, (label, value, colour) in enumerate(figures):
        x = x0 + i * 0.24
        figure.text(x, y(numbers_top), f"{value}", ha="left", va="top", fontsize=BASE_PT + 15, fontweight="bold",
                    color=colour)
        figure.text(x, y(numbers_top + 0.6), label, ha="left", va="top", fontsize=BASE_PT - 1, color=MUTED)
    key = [Patch(color=c, label=n) for c, n in ((OVERDUE, "已逾期"), (RECTIFYING, "整改中"), (AWAITING, "待验收"))]
    figure.legend(handles=key, loc="upper left", bbox_to_anchor=(x0, y(numbers_top + 0.98)), ncols=3,
                  frameon=False, handlelength=1.2, fontsize=BASE_PT, columnspacing=1.6, borderaxespad=0,
                  borderpad=0)


def _text_width_in(text: str, points: float) -> float:
    """Rough printed width: CJK characters are one em, Latin letters and digits about 0.6 em."""
    ems = sum(1.0 if ord(ch) >= 0x2E80 else 0.6 for ch in text)
    return ems * points / 72


def _day_axis(ax: Axes, start: date, end: date) -> None:
    """About five evenly spaced day ticks counted from the campaign's first day."""
    span = (end - start).days
    step = max(1, math.ceil((span + 1) / 5))
    ax.set_xlim(date2num(start) - 0.5, date2num(end) + max(0.8, span * 0.04))
    ax.xaxis.set_major_locator(FixedLocator([date2num(start) + day for day in range(0, span + 1, step)]))
    ax.xaxis.set_major_formatter(DateFormatter("%m-%d"))


def _burn_down(ax: Axes, data: ChartData) -> None:
    days = list(data.days)
    if not days:
        _empty(ax, "活动尚未开始")
        return
    found = list(accumulate(data.found))
    closed = list(accumulate(data.closed))
    start, end = days[0], days[-1]
    ax.set_title(f"累计发现与销号（{start:%m-%d} 至 {end:%m-%d}）")
    marker = "o" if len(days) < 3 else None
    x = [date2num(day) for day in days]
    ax.fill_between(x, closed, found, color=GAP_FILL, linewidth=0, label=f"未销号 {found[-1] - closed[-1]}")
    ax.plot(x, found, color=FOUND_LINE, linewidth=3, marker=marker, label=f"累计发现 {found[-1]}")
    ax.plot(x, closed, color=CLOSED_LINE, linewidth=3, marker=marker, label=f"累计销号 {closed[-1]}")
    ax.set_ylim(0, max(found[-1] * 1.3, 5))  # headroom for the legend
    _day_axis(ax, start, end)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
    ax.grid(axis="y", color=GRID, linewidth=1)
    ax.set_axisbelow(True)
    handles, labels = ax.get_legend_handles_labels()
    order = [1, 2, 0]  # 发现, 销号, then the gap between them
    ax.legend([handles[i] for i in order], [labels[i] for i in order], loc="upper left", frameon=False, ncols=3,
              columnspacing=1.2, handlelength=1.5)


def _build(data: ChartData) -> Figure:
    """Lay the panels out by hand, in inches: constrained layout would double the render time."""
    folded = data.folded_units > 0
    labels = [_short(r.label, LABEL_CHARS + 3) for r in data.units] + short_labels([r.label for r in data.categories])
    left = max(0.9, max((_text_width_in(label, BASE_PT) for label in labels), default=0) + 0.3)
    right = 0.35
    title_space, tick_space, gap = 0.58, 0.45, 0.12
    panels = [
        (_bar_height_in(len(data.units)), "units"),
        (_bar_height_in(len(data.categories)), "categories"),
        (3.4, "trend"),
    ]
    header = _header_height(data)
    height = header + sum(title_space + body + tick_space + gap for body, _ in panels)
    figure = Figure(figsize=(WIDTH_IN, height), dpi=DPI, facecolor="white")

    def y(inches_from_top: float) -> float:
        return 1 - inches_from_top / height

    _header(figure, data, y)
    top = header
    axes: dict[str, Axes] = {}
    for body, name in panels:
        top += title_space
        axes[name] = figure.add_axes(
            (left / WIDTH_IN, y(top + body), (WIDTH_IN - left - right) / WIDTH_IN, body / height)
        )
        top += body + tick_space + gap

    axes["units"].set_title(f"各单位未销号隐患（共{data.unit_count}个单位）" if data.unit_count > 1 else "未销号隐患")
    _status_bars(axes["units"], data.units, folded_tail=folded, empty=_empty_text(data))
    axes["categories"].set_title("按类别")
    _status_bars(axes["categories"], data.categories, folded_tail=False, empty=_empty_text(data))
    _burn_down(axes["trend"], data)
    return figure


def _release(figure: Figure, canvas: FigureCanvasAgg) -> None:
    """Drop the Agg pixel buffer (~10 MB) now instead of at the next full garbage collection.

    Each drawn Text keeps a reference to the renderer, and the figure's artists form reference cycles
    that a busy server collects rarely; without this, RSS climbs by tens of MB between collections.
    """
    for text in figure.findobj(Text):
        text._renderer = None  # type: ignore[attr-defined]  # private: matplotlib's stubs omit it
    canvas.__dict__.pop("renderer", None)
    figure.clear()


def render_outstanding_chart(data: ChartData) -> bytes:
    """Render the 统计 chart as PNG bytes (≥1080 px wide, well under WeCom's 2 MB image limit)."""
    with _LOCK, matplotlib.rc_context(_rc()):
        figure = _build(data)
        canvas = FigureCanvasAgg(figure)
        buffer = BytesIO()
        try:
            # No bbox_inches="tight": it would change the width.
            canvas.print_png(buffer, pil_kwargs={"compress_level": 3})
        finally:
            _release(figure, canvas)
        return buffer.getvalue()


# -- 动态清零 (回头看, issue 16) -------------------------------------------------------------------------

# One colour per source of a finding (Okabe–Ito, then greys): the school's own 自查 in blue, inspections warm.
ORIGIN_COLOURS = {
    "自查": "#0072B2", "县普查": "#E69F00", "市抽查": "#D55E00", "省督查": "#CC79A7", "督查": "#F0E442",
    "审计": "#009E73", "通报": "#56B4E9", "复查": "#999999",
}


def render_zero_chart(title: str, rows: Sequence[tuple[str, dict[str, int]]]) -> bytes:
    """动态清零: per unit, its open findings stacked by source (largest on top), as PNG bytes."""
    origins = [o for o in ORIGIN_COLOURS if any(o in counts for _, counts in rows)]
    origins += sorted({o for _, counts in rows for o in counts} - set(origins))
    shown = list(rows)[:20]
    with _LOCK, matplotlib.rc_context(_rc()):
        legend_in = 0.5 * math.ceil(len(origins) / 4)
        top_in, bottom_in = 1.0, 0.8 + legend_in
        height = top_in + _bar_height_in(len(shown)) + bottom_in
        figure = Figure(figsize=(WIDTH_IN, height), dpi=DPI)
        ax = figure.add_axes((0.22, bottom_in / height, 0.74, 1 - (top_in + bottom_in) / height))
        ax.set_title(title)
        ax.set_axisbelow(True)
        labels = [_short(name) for name, _ in shown][::-1]
        left = [0] * len(shown)
        for origin in origins:
            values = [counts.get(origin, 0) for _, counts in shown][::-1]
            ax.barh(labels, values, left=left, color=ORIGIN_COLOURS.get(origin, GAP_FILL), label=origin)
            left = [a + b for a, b in zip(left, values)]
        if not shown:
            _empty(ax, "已全部清零")
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(axis="x", color=GRID)
            figure.legend(loc="lower center", ncols=min(4, len(origins)) or 1, frameon=False)
        canvas = FigureCanvasAgg(figure)
        buffer = BytesIO()
        try:
            canvas.print_png(buffer, pil_kwargs={"compress_level": 3})
        finally:
            _release(figure, canvas)
        return buffer.getvalue()
