"""Traditional → Simplified skips OpenCC for text it would not change, and still converts what it would."""

from __future__ import annotations

import random
from pathlib import Path

import opencc

from handlers.normalize import _changed_chars, _converter, normalize_text, to_simplified


def _dictionary_keys() -> list[str]:
    folder = Path(opencc.__file__).parent / "dictionary"
    return [
        line.split("\t")[0]
        for name in ("TSPhrases.txt", "TSCharacters.txt")
        for line in (folder / name).read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def test_text_without_a_changed_character_is_what_opencc_gives_back() -> None:
    changed = _changed_chars()
    assert changed is not None and "銷" in changed and "号" not in changed
    keys = _dictionary_keys()
    skipped = [key for key in keys if changed.isdisjoint(key)]
    assert skipped  # entries that convert to themselves (or whose conversion is the same text)
    assert [key for key in skipped if _converter().convert(key) != key] == []
    # texts made of the dictionaries' other characters, as OpenCC would segment them in any order
    alphabet = sorted({ch for key in keys for ch in key} - changed)
    rnd = random.Random(11)
    texts = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 12))) for _ in range(3000)]
    assert [text for text in texts if _converter().convert(text) != text] == []


def test_traditional_characters_are_still_converted() -> None:
    assert to_simplified("銷號 #23 滅火器過期") == "销号 #23 灭火器过期"
    assert to_simplified("3号教学楼二楼东侧 消防通道堆放杂物") == "3号教学楼二楼东侧 消防通道堆放杂物"
    assert normalize_text("＠安全助手 隱患\r\n部位：食堂後門") == "隐患\n部位：食堂后门"
