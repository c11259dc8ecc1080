"""Places as the duplicate check compares them, and the keys stored on a hazard to find it by place.

`handlers.intake` compares a report's 部位 with the open hazards' by the numbers they name and by difflib on
the text without punctuation; the hazard's `place_numbers` and `place_head` are computed here with the same
normalization, so that the candidates it compares come from an index instead of every open hazard.
"""

from __future__ import annotations

import re
from functools import lru_cache

PUNCTUATION_RE = re.compile(r"[\s，,。.；;、！!？?：:（）()了的]+")
_CN_DIGITS = str.maketrans("零一二两三四五六七八九", "01223456789")
_NUMBER_RE = re.compile(r"\d+")
# How many characters of a place (without punctuation and numbers) `place_head` keeps: a repeated report of a
# place is mostly worded the same at the start (食堂后门 / 食堂后门口), where the building or area is named.
HEAD_CHARS = 2


@lru_cache(maxsize=4096)  # the same places and problems come back on every report of their school
def text_numbers(text: str) -> tuple[str, ...]:
    """The numbers a text names, Chinese digits read as digits (3号楼, 二楼, 第5处)."""
    return tuple(_NUMBER_RE.findall(text.translate(_CN_DIGITS)))


@lru_cache(maxsize=4096)
def bare_text(text: str) -> str:
    """The text without punctuation, spaces, 了 and 的: what difflib compares."""
    return PUNCTUATION_RE.sub("", text)


def place_numbers(location: str) -> str:
    """The stored form of a place's numbers ("3,2" for 3号教学楼二楼; "" when it names none)."""
    return ",".join(text_numbers(location))


def place_head(location: str) -> str:
    """The first characters of a place without punctuation and numbers (号教 for 3号教学楼二楼, 楼东 for 一楼东侧)."""
    return _NUMBER_RE.sub("", bare_text(location).translate(_CN_DIGITS))[:HEAD_CHARS]


def place_keys(location: str) -> dict[str, str]:
    """Both keys, as the hazard's column values."""
    return {"place_numbers": place_numbers(location), "place_head": place_head(location)}
