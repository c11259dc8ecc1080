"""`CommandSpec`: everything about one chat command, declared next to its handler.

The ordered table of all specs lives in `handlers.commands`; the parser's vocabulary, the 帮助 texts and the
routes are all derived from it, so adding a command is one handler module plus one table entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from handlers.command import Command
from handlers.context import Context
from handlers.messages import Reply

Handler = Callable[[Command, Context], list[Reply]]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One chat command: how people write it, what it does and how it is explained."""

    name: str  # internal name, e.g. "close"; also what `safetybot parse --json` reports
    words: tuple[str, ...]  # the words that start it; the first is the one used in help and examples
    handler: Handler
    usage: str  # how the 帮助 overview writes it, e.g. "销号 #编号"
    summary: str  # what it does, after the usage in the overview
    help: str  # the 帮助 <命令> template, also shown under an error in this command
    example_tail: str = ""  # what follows the word in the examples of error messages, e.g. " #23"
    takes_number: bool = False  # needs a hazard number (#23)
    everyday: bool = True  # named in the reply to a message that starts with no command word

    @property
    def word(self) -> str:
        """The canonical command word."""
        return self.words[0]

    def example(self, word: str | None = None) -> str:
        """An example message, starting with `word` as the person typed it (or the canonical word)."""
        return (word or self.word) + self.example_tail
