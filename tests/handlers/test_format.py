"""escape_markdown: plain reply text sent as markdown can neither link, mention nor format."""

from __future__ import annotations

from datetime import date

import pytest

from handlers.format import escape_markdown
from handlers.parser import parse_message


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
