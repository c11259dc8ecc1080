"""Text normalisation shared by the parser: Traditional→Simplified, widths, whitespace, @mentions."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import opencc
from opencc import OpenCC  # opencc-python-reimplemented ships no stubs ([tool.mypy] ignore_missing_imports)

# Full-width digits, letters and the few ASCII signs the grammar relies on; the Chinese
# punctuation (：，；（）) is kept so that values are stored the way the teacher typed them.
_WIDTH_TABLE: dict[int, int] = {
    **{0xFF10 + i: ord("0") + i for i in range(10)},
    **{0xFF21 + i: ord("A") + i for i in range(26)},
    **{0xFF41 + i: ord("a") + i for i in range(26)},
    ord("＃"): ord("#"),
    ord("／"): ord("/"),
    ord("＠"): ord("@"),
    ord("．"): ord("."),
    ord("－"): ord("-"),
}
_LINE_BREAKS = {"\r", "\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"}
_MENTION_RE = re.compile(r"^(?:@\S+(?:[ \n]+|$))+")
_SPACES_RE = re.compile(r" {2,}")


@lru_cache(maxsize=1)
def _converter() -> OpenCC:
    return OpenCC("t2s")


@lru_cache(maxsize=1)
def _changed_chars() -> frozenset[str] | None:
    """For each entry of the t2s dictionaries that converts to something else, one character that the entry
    changes (its first one when the lengths differ): a text with none of them converts to itself. None when the
    dictionaries cannot be read (every text is then converted)."""
    folder = Path(opencc.__file__).parent / "dictionary"
    changed: set[str] = set()
    try:
        for name in ("TSPhrases.txt", "TSCharacters.txt"):  # the t2s conversion chain (opencc/config/t2s.json)
            for line in (folder / name).read_text(encoding="utf-8").splitlines():
                key, _, values = line.partition("\t")
                value = values.split(" ")[0] if values else key
                if key and value != key:
                    same = len(key) == len(value)
                    changed.add(next(a for a, b in zip(key, value) if a != b) if same else key[0])
    except OSError:
        return None
    return frozenset(changed)


def to_simplified(text: str) -> str:
    """Convert Traditional Chinese characters to Simplified (other text is left alone)."""
    changed = _changed_chars()
    if changed is not None and changed.isdisjoint(text):  # nearly every message: OpenCC's parse is the cost
        return text
    converted: str = _converter().convert(text)
    return converted


def _clean_char(ch: str) -> str:
    if ch in _LINE_BREAKS:
        return "\n"
    if ch == "\t" or ch.isspace():
        # WeCom puts U+2005 after an @mention; full-width and no-break spaces are common too.
        return " "
    category = unicodedata.category(ch)
    # Zero-width joiners, BOMs, control codes and lone surrogates carry no meaning and break JSON output.
    if category in ("Cf", "Cc", "Cs"):
        return ""
    return ch


@lru_cache(maxsize=256)  # the parser normalizes a message more than once
def normalize_text(text: str) -> str:
    """Return `text` simplified, with ASCII digits, single spaces, `\\n` line ends and no leading @mention."""
    text = text.replace("\r\n", "\n")
    text = "".join(_clean_char(ch) for ch in text).translate(_WIDTH_TABLE)
    text = to_simplified(text)
    lines = [_SPACES_RE.sub(" ", line).strip() for line in text.split("\n")]
    text = "\n".join(lines).strip()
    return _MENTION_RE.sub("", text).strip()
