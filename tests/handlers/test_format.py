"""Text helpers that keep replies short: capped lists and text cut at a line, saying what was left out."""

from __future__ import annotations

import pytest

from handlers.format import first_items, fit_replies, fit_text
from handlers.messages import Reply


def test_first_items_drops_repeats_and_counts_the_rest() -> None:
    assert first_items(["a", "b", "a"], 5) == ["a", "b"]
    assert first_items([str(i) for i in range(12)], 3) == ["0", "1", "2", "……另有 9 条未显示"]


@pytest.mark.parametrize("limit", [200, 1000, 9000])
def test_fit_text_cuts_after_a_whole_line_within_the_limit(limit: int) -> None:
    lines = [f"#{i} 3号教学楼二楼东侧 消防通道堆放杂物 🔥" for i in range(2000)]
    text = fit_text("\n".join(lines), limit)
    assert len(text.encode("utf-8")) <= limit
    *shown, note = text.split("\n")
    assert shown == lines[: len(shown)] and shown
    assert note == f"……回复太长，另有 {len(lines) - len(shown)} 行未显示"


def test_fit_text_keeps_short_text_and_cuts_one_huge_line_at_a_character() -> None:
    assert fit_text("短回复", 100) == "短回复"
    text = fit_text("隐" * 5000, 600)
    assert len(text.encode("utf-8")) <= 600 and text.endswith("\n……回复太长，其余内容未显示")
    assert set(text.split("\n")[0]) == {"隐"}


def test_fit_replies_keeps_attachments_and_mentions() -> None:
    replies = [Reply("\n".join(["一行"] * 1000), mentions=("wang",)), Reply("", image_png=b"png")]
    short = fit_replies(replies, 500)
    assert len(short[0].text.encode("utf-8")) <= 500 and short[0].mentions == ("wang",)
    assert short[1] == replies[1]
