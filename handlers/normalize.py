"""Text normalisation shared by the parser: Traditional→Simplified, widths, whitespace, @mentions."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

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


def to_simplified(text: str) -> str:
    """Convert Traditional Chinese characters to Simplified (other text is left alone)."""
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


def normalize_text(text: str) -> str:
    """Return `text` simplified, with ASCII digits, single spaces, `\\n` line ends and no leading @mention."""
    text = text.replace("\r\n", "\n")
    text = "".join(_clean_char(ch) for ch in text).translate(_WIDTH_TABLE)
    text = to_simplified(text)
    lines = [_SPACES_RE.sub(" ", line).strip() for line in text.split("\n")]
    text = "\n".join(lines).strip()
    return _MENTION_RE.sub("", text).strip()
