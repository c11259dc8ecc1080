"""Text helpers: replies kept short (capped lists, text cut at a line) and user text made inert in markdown."""

from __future__ import annotations

from datetime import date

import pytest

from handlers.format import escape_markdown, first_items, fit_replies, fit_text
from handlers.messages import Reply
from handlers.parser import parse_message


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

# -- escape_markdown: plain reply text sent as markdown can neither link, mention nor format.


@pytest.mark.parametrize(
    ("plain", "escaped"),
    [
        pytest.param("[点这里](http://evil)", "[点这里］(http://evil)", id="inline-link"),
        pytest.param("[点这里] (http://evil)", "[点这里］ (http://evil)", id="link-with-space"),
        pytest.param("![图](http://evil/x.png)", "![图］(http://evil/x.png)", id="image"),
        pytest.param("[点这里][1]\n[1]: http://evil", "[点这里］[1]\n[1］: http://evil", id="reference-link"),
        pytest.param("<@lisi> 请处理", "＜@lisi> 请处理", id="wecom-mention"),
        pytest.param('<font color="warning">红字</font>', '＜font color="warning">红字＜/font>', id="font-tag"),
        pytest.param("<http://evil>", "＜http://evil>", id="autolink"),
        pytest.param("&lt;@lisi&gt; &#60;", "＆lt;@lisi＆gt; ＆#60;", id="entities"),
        pytest.param("**紧急** `code`", "＊＊紧急＊＊ ｀code｀", id="bold-and-code"),
        pytest.param("# 通知\n## 二级\n  > 引用", "＃ 通知\n＃＃ 二级\n  ＞ 引用", id="heading-and-quote"),
    ],
)
def test_markup_becomes_inert_full_width(plain: str, escaped: str) -> None:
    assert escape_markdown(plain) == escaped


@pytest.mark.parametrize(
    "plain",
    [
        "#12 3号教学楼 插座松动｜王建国｜12-10 还剩5天",  # a list line: not a heading (no space after #)
        "请联系管理员在配置文件的 [[people]] 中添加您",
        "https://bot.example.edu.cn/photos/1/1701756000/a_b-c=?x=1&y=2",
        "温度>5度，A&B 两处，期限 12-10",
    ],
)
def test_ordinary_text_is_left_as_typed(plain: str) -> None:
    assert escape_markdown(plain) == plain


def test_a_copied_escaped_number_still_parses() -> None:
    copied = escape_markdown("# 12")
    assert copied == "＃ 12"
    assert parse_message(f"销号 {copied}", today=date(2023, 12, 5)).hazard_no == 12
