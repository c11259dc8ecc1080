"""A chat command: the typed result of parsing one message (see `handlers.parser`), and `CommandSpec`, what one
command is (its words, help and handler), declared next to its handler and listed in `handlers.commands`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from handlers.context import Context
    from handlers.messages import Outcome, Reply

# The name of a chat command, as declared by its `CommandSpec` (the table is `handlers.commands.COMMANDS`).
CommandName = str

Level = Literal["一般", "重大"]  # 等级 of a hazard


@dataclass(slots=True)
class HazardFields:
    """Structured fields of a hazard message; None when the message did not give them."""

    location: str | None = None  # 部位
    problem: str | None = None  # 存在隐患问题
    category: str | None = None  # 类别 (given or inferred from keywords)
    level: Level | None = None  # 等级
    responsible: str | None = None  # 责任人 (a name as typed)
    unit: str | None = None  # 单位 / 责任部门 (a name as typed)
    deadline: date | None = None  # 期限, resolved to a real date
    measure: str | None = None  # 整改措施
    check_item: str | None = None  # 检查内容
    immediate: bool | None = None  # 立即整改 是/否
    closed_building: bool | None = None  # 停用 是/否
    source: str | None = None  # 来源 (回头看: 督查, 县普查, 市抽查 …; None: the school's own 自查)


@dataclass(slots=True)
class Command:
    """One parsed chat command.

    `errors` holds polite Chinese messages; a command with errors must not change anything.
    `note` is the free text after the command (整改说明, 退回原因, 延期原因, 进展 …).
    `result` is the 结果 of a 检查 record.
    """

    command: CommandName | None
    hazard_no: int | None = None
    fields: HazardFields = field(default_factory=HazardFields)
    note: str | None = None
    result: str | None = None
    errors: list[str] = field(default_factory=list)
    help_topic: str | None = None  # for 帮助 <command>: which command's help to show
    # A report read from plain words (no keys) is `plain`; `doubts` are what it is unsure of (codes such as
    # "no_location", "unknown_person:王建图>王建国", "past_date"): such a report is shown back, not stored.
    plain: bool = False
    doubts: list[str] = field(default_factory=list)
    list_status: str | None = None  # 清单 待验收: only hazards in this status
    items: list["Command"] = field(default_factory=list)  # several hazards in one message (1. … 2. …), each a report
    hazard_school: str | None = None  # 城南小学#12: the school whose #12 (numbers are per school)

    @property
    def ok(self) -> bool:
        return self.command is not None and not self.errors

    def to_json(self) -> dict[str, Any]:
        """The `safetybot parse --json` contract."""
        fields = asdict(self.fields)
        if self.fields.deadline is not None:
            fields["deadline"] = self.fields.deadline.isoformat()
        return {
            "command": self.command,
            "hazard_no": self.hazard_no,
            "fields": fields,
            "note": self.note,
            "result": self.result,
            "errors": list(self.errors),
            "doubts": list(self.doubts),
            **({"hazard_school": self.hazard_school} if self.hazard_school else {}),
        }


Handler = Callable[[Command, "Context"], "list[Reply] | Outcome"]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One chat command: how people write it, what it does and how it is explained.

    Declared at the end of its handler module and listed once in `handlers.commands.COMMANDS`, from which the
    parser's vocabulary, the 帮助 texts and the routes are derived.
    """

    name: str  # internal name, e.g. "close"; also what `safetybot parse --json` reports
    words: tuple[str, ...]  # the words that start it; the first is the one used in help and examples
    handler: Handler
    usage: str  # how the 帮助 overview writes it, e.g. "销号 #编号"
    summary: str  # what it does, after the usage in the overview
    help: str  # the 帮助 <命令> template, also shown under an error in this command
    example_tail: str = ""  # what follows the word in the examples of error messages, e.g. " #23"
    takes_number: bool = False  # needs a hazard number (#23)
    everyday: bool = True  # named in the reply to a message that starts with no command word
    # The word is the whole message (确认, 是, 同 #12): a message that only starts with it (是否…, 同学们…) is not it.
    alone: bool = False

    @property
    def word(self) -> str:
        """The canonical command word."""
        return self.words[0]

    def example(self, word: str | None = None) -> str:
        """An example message, starting with `word` as the person typed it (or the canonical word)."""
        return (word or self.word) + self.example_tail
