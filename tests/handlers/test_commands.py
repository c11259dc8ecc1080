"""The command table: every word of every command reaches its handler, its help and the 帮助 overview."""

from __future__ import annotations

from datetime import date

import pytest

from handlers.command import CommandSpec
from handlers.commands import COMMANDS, COMMANDS_BY_NAME, _check_unique
from handlers.parser import parse_message
from tests.school import Chat

TODAY = date(2023, 12, 5)
WORDS = [pytest.param(spec, word, id=f"{spec.name}-{word}") for spec in COMMANDS for word in spec.words]


@pytest.mark.parametrize(("spec", "word"), WORDS)
def test_every_word_of_the_table_parses_its_example_into_its_command(spec: CommandSpec, word: str) -> None:
    parsed = parse_message(spec.example(word), today=TODAY)
    assert parsed.errors == []
    assert parsed.command == spec.name
    assert (parsed.hazard_no == 23) == spec.takes_number


@pytest.mark.parametrize("spec", [pytest.param(spec, id=spec.name) for spec in COMMANDS])
def test_a_numbered_command_without_its_number_asks_for_it(spec: CommandSpec) -> None:
    parsed = parse_message(spec.word, today=TODAY)
    if spec.takes_number:
        assert parsed.errors[0] == f"请写上隐患编号，例如：{spec.example()}"
    else:
        assert "隐患编号" not in "".join(parsed.errors)


def test_help_overview_has_one_line_per_command_in_table_order(chat: Chat) -> None:
    overview = chat.say("zhang_wei", "帮助")
    lines = [line for line in overview.splitlines() if line.startswith("· ")]
    assert lines == [f"· {spec.usage} —— {spec.summary}" for spec in COMMANDS if spec.name not in ("help", "chat")]


@pytest.mark.parametrize("name", list(COMMANDS_BY_NAME))
def test_help_of_every_command_is_its_spec_help(chat: Chat, name: str) -> None:
    spec = COMMANDS_BY_NAME[name]
    assert chat.say("zhang_wei", f"帮助 {spec.word}") == spec.help


def test_a_word_used_by_two_commands_is_refused_when_the_table_is_built() -> None:
    clash = CommandSpec("overdue-again", ("清单",), COMMANDS_BY_NAME["list"].handler, usage="", summary="", help="")
    with pytest.raises(ValueError, match="清单"):
        _check_unique((*COMMANDS, clash))
