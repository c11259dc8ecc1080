"""The plain-words corpus: at least 95 % of the fields right, and chit-chat never a hazard."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from handlers.command import Command
from handlers.parser import parse_message
from handlers.understand import Vocabulary
from tests.handlers.corpus.plain_messages import CORPUS, TODAY
from tests.school import make_config

FIELD_NAMES = ("location", "problem", "responsible", "unit", "deadline", "level", "category")
_LOOSE_RE = re.compile(r"[，,。！!、 了]")


def school_vocabulary() -> Vocabulary:
    from bot.engine import vocabulary_of

    return vocabulary_of(make_config())


def actual(command: Command, key: str) -> Any:
    if key in FIELD_NAMES:
        value = getattr(command.fields, key)
        return value.isoformat() if isinstance(value, date) else value
    return getattr(command, key)


def same(key: str, got: Any, want: Any) -> bool:
    if key in ("problem", "location", "note") and isinstance(got, str) and isinstance(want, str):
        return _LOOSE_RE.sub("", got) == _LOOSE_RE.sub("", want)  # 插座冒烟了 and 插座冒烟 say the same
    return bool(got == want)


def score(vocabulary: Vocabulary) -> tuple[int, int, list[str]]:
    """(fields right, fields checked, what was wrong)."""
    right = checked = 0
    wrong: list[str] = []
    for _, text, expected in CORPUS:
        command = parse_message(text, today=date.fromisoformat(TODAY), vocabulary=vocabulary)
        for key, want in expected.items():
            got = actual(command, key)
            checked += 1
            if same(key, got, want):
                right += 1
            else:
                wrong.append(f"{text!r} {key}: {got!r} != {want!r}")
    return right, checked, wrong


def test_corpus_is_big_and_varied() -> None:
    kinds = [kind for kind, _, _ in CORPUS]
    assert len(CORPUS) >= 150
    assert {kind: kinds.count(kind) >= 15 for kind in "RLQC"} == dict.fromkeys("RLQC", True)
    assert len({text for _, text, _ in CORPUS}) == len(CORPUS)


def test_at_least_95_percent_of_fields_are_understood() -> None:
    right, checked, wrong = score(school_vocabulary())
    print(f"\nplain-words corpus: {right}/{checked} fields right ({right / checked:.1%}), {len(CORPUS)} messages")
    print("\n".join(wrong))
    assert right / checked >= 0.95


def test_chitchat_is_never_a_hazard() -> None:
    today = date.fromisoformat(TODAY)
    for kind, text, _ in CORPUS:
        if kind == "C":
            command = parse_message(text, today=today, vocabulary=school_vocabulary())
            assert command.command == "chat" and command.ok, text


def test_held_out_messages_are_counted_apart() -> None:
    """The figure on messages written after tuning: what to expect from new messages (printed, not asserted)."""
    from tests.handlers.corpus import plain_messages

    held = plain_messages.CORPUS[plain_messages.HELD_OUT_START:]
    assert len(held) >= 25
    right = checked = 0
    for _, text, expected in held:
        command = parse_message(text, today=date.fromisoformat(TODAY), vocabulary=school_vocabulary())
        for key, want in expected.items():
            checked += 1
            right += same(key, actual(command, key), want)
    print(f"\nheld-out messages: {right}/{checked} fields right ({right / checked:.1%})")
    assert checked > 0
