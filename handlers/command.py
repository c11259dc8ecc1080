"""The typed result of parsing one chat message (see `handlers.parser`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Literal

# The name of a chat command, as declared by its `CommandSpec` (the table is `handlers.commands.COMMANDS`).
CommandName = str


@dataclass(slots=True)
class HazardFields:
    """Structured fields of a hazard message; None when the message did not give them."""

    location: str | None = None  # 部位
    problem: str | None = None  # 存在隐患问题
    category: str | None = None  # 类别 (given or inferred from keywords)
    level: Literal["一般", "重大"] | None = None  # 等级
    responsible: str | None = None  # 责任人 (a name as typed)
    unit: str | None = None  # 单位 / 责任部门 (a name as typed)
    deadline: date | None = None  # 期限, resolved to a real date
    measure: str | None = None  # 整改措施
    check_item: str | None = None  # 检查内容
    immediate: bool | None = None  # 立即整改 是/否
    closed_building: bool | None = None  # 停用 是/否


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
        }
