"""The contacts spreadsheet an admin exports from the WeCom or DingTalk admin console, as a Snapshot.

For schools whose app has no contacts permission: 企业微信管理后台 → 通讯录 → 导出, or 钉钉管理后台 → 通讯录 →
导出. The file is read as the platforms write it: title rows above the header are skipped; the columns are found by
their names (WeCom: 姓名, 账号, 别名, 职务, 部门, 性别, 手机, 激活状态, 禁用状态 …; DingTalk: 姓名, 工号, UserID or
员工UserID, 部门, 职位, 手机号, 主管 …). A member's 部门 is a path from the organisation's root (WeCom `/`,
DingTalk `-` or `/`), several of them separated by `;` (DingTalk also `,`).

An export carries no department ids, so a department's id here is its path, and a `[directory] schools` key
names a school by its department id as usual when the configured unit has the department's name, or by the
department's name or path (see `schools_in_export`). The snapshot then goes to the one `apply_snapshot`.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config import Directory
from models.directory import Department, Member, Snapshot

HEADER_SEARCH_ROWS = 15  # title and note rows the consoles put above the header
PLATFORM_NAMES = {"wecom": "企业微信", "dingtalk": "钉钉"}


@dataclass(frozen=True)
class Column:
    """One column the import reads: its canonical name and the header spellings the consoles use."""

    name: str
    spellings: tuple[str, ...]
    required: bool = False


COLUMNS: dict[str, tuple[Column, ...]] = {
    "wecom": (
        Column("姓名", ("姓名",), required=True),
        Column("账号", ("账号", "帐号", "userid", "UserID"), required=True),
        Column("部门", ("部门", "所在部门"), required=True),
        Column("手机", ("手机", "手机号", "手机号码")),
        Column("部门负责人", ("部门负责人", "是否部门负责人", "是否为部门负责人", "身份", "上级")),
        Column("状态", ("禁用状态", "账号状态", "帐号状态", "状态")),
    ),
    "dingtalk": (
        Column("姓名", ("姓名",), required=True),
        Column("UserID", ("UserID", "员工UserID", "userid", "用户ID", "员工ID"), required=True),
        Column("部门", ("部门", "所在部门"), required=True),
        Column("手机号", ("手机号", "手机", "手机号码")),
        Column("主管", ("主管", "是否主管", "部门主管", "是否部门主管", "是否部门负责人")),
        Column("状态", ("状态", "账号状态", "在职状态")),
    ),
}
_YES = {"是", "y", "yes", "true", "1", "上级", "主管", "负责人", "部门负责人"}
_INACTIVE = {"禁用", "已禁用", "离职", "已离职", "停用", "已停用"}


class ExportFileError(Exception):
    """The file cannot be imported; the message (Chinese) says what is wrong and how to fix it."""


def read_export(path: Path, platform: str) -> Snapshot:
    """The members and their departments in a console export (.xlsx); ExportFileError when unreadable."""
    if platform not in COLUMNS:
        raise ExportFileError(f"不认识的平台 {platform!r}：请写 --platform wecom 或 --platform dingtalk")
    rows = _sheet_rows(path)
    header_at, columns = _find_header(rows, platform)
    departments: dict[str, Department] = {}
    members: dict[str, Member] = {}
    for row in rows[header_at + 1:]:
        def cell(name: str, row: Sequence[Any] = row) -> str:
            index = columns.get(name)
            if index is None or index >= len(row) or row[index] is None:
                return ""
            return str(row[index]).strip()

        user_id, name = cell(columns_id(platform)), cell("姓名")
        if not user_id or not name:
            continue  # blank lines and the consoles' trailing notes
        paths = [_path(text, platform) for text in _split_list(cell("部门"))]
        paths = [p for p in paths if p]
        for levels in paths:
            _add_path(departments, levels)
        ids = tuple(dict.fromkeys("/".join(levels) for levels in paths))
        flags = _flags(cell(_leader_column(platform)), len(ids))
        status = cell("状态")
        mobile = re.sub(r"^\+?86-?", "", cell(_mobile_column(platform))) or None
        members.setdefault(user_id, Member(
            user_id=user_id, name=name, department_ids=ids,
            leader_of=tuple(d for d, flag in zip(ids, flags) if flag),
            mobile=mobile, active=status not in _INACTIVE,
        ))
    if not members:
        raise ExportFileError(f"{path.name}：表头下面没有成员。请从管理后台重新导出通讯录（含子部门成员）后再试。")
    return Snapshot(platform=platform, departments=tuple(departments.values()), members=tuple(members.values()))


def columns_id(platform: str) -> str:
    return "账号" if platform == "wecom" else "UserID"


def _mobile_column(platform: str) -> str:
    return "手机" if platform == "wecom" else "手机号"


def _leader_column(platform: str) -> str:
    return "部门负责人" if platform == "wecom" else "主管"


def schools_in_export(directory: Directory, snapshot: Snapshot, unit_names: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """`[directory] schools` with each key turned into the export's department path, and the keys not found.

    A key matches a department by its path, else by its name (one department of that name), else — a numeric
    id from the API — by the configured school unit's name (`unit_names`: unit id → name).
    """
    by_name: dict[str, list[str]] = {}
    for dept in snapshot.departments:
        by_name.setdefault(dept.name, []).append(dept.id)
    paths = {dept.id for dept in snapshot.departments}
    mapped: dict[str, str] = {}
    problems: list[str] = []
    for key, unit in directory.schools.items():
        as_path = "/".join(_path(key, snapshot.platform))
        candidates = [as_path] if as_path in paths else by_name.get(key.strip(), [])
        if not candidates:
            candidates = by_name.get(unit_names.get(unit, ""), [])
        if len(candidates) == 1:
            mapped[candidates[0]] = unit
        elif candidates:
            problems.append(f"directory.schools.{key}：导出文件里有 {len(candidates)} 个同名部门，请把键写成完整路径，"
                            f"如 \"{candidates[0]}\"")
        else:
            problems.append(f"directory.schools.{key}：导出文件里找不到这个部门（单位「{unit_names.get(unit, unit)}」）；"
                            "请把键写成部门名称或路径，或确认导出时勾选了这所学校")
    return mapped, problems


# -- reading the sheet --------------------------------------------------------------------------------------


def _sheet_rows(path: Path) -> list[tuple[Any, ...]]:
    from openpyxl import load_workbook  # imported here: only the import needs it

    if not path.is_file():
        raise ExportFileError(f"找不到文件 {path}：请写从管理后台导出的 .xlsx 文件的路径")
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError):
        raise ExportFileError(
            f"{path.name} 不是 Excel (.xlsx) 文件：请在管理后台 通讯录 → 导出 下载 .xlsx 文件；"
            "若是 .xls 或 .csv，请用 Excel/WPS 另存为 .xlsx 后再试"
        ) from None
    try:
        sheet = workbook.worksheets[0]
        return [tuple(row) for row in sheet.iter_rows(values_only=True)]
    finally:
        workbook.close()


def _find_header(rows: list[tuple[Any, ...]], platform: str) -> tuple[int, dict[str, int]]:
    """The header row (the first with a 姓名 cell among the first rows) and each known column's index."""
    spec = COLUMNS[platform]
    for at, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        texts = [_header_text(value) for value in row]
        if "姓名" not in texts:
            continue
        columns: dict[str, int] = {}
        for column in spec:
            spellings = {s.lower() for s in column.spellings}
            found = next((i for i, text in enumerate(texts) if text.lower() in spellings), None)
            if found is not None:
                columns[column.name] = found
        missing = [c.name for c in spec if c.required and c.name not in columns]
        if missing:
            raise ExportFileError(_missing_message(platform, missing))
        return at, columns
    raise ExportFileError(_missing_message(platform, ["姓名"]))


def _missing_message(platform: str, missing: list[str]) -> str:
    required = "、".join(c.name for c in COLUMNS[platform] if c.required)
    names = "、".join(f"「{name}」" for name in missing)
    hint = (
        "DingTalk 导出时请在「导出字段」里勾选 UserID" if platform == "dingtalk"
        else "请导出通讯录的成员表，不要删改表头"
    )
    return (f"导出文件里没有{names}列：{PLATFORM_NAMES[platform]}导出的通讯录应有 {required} 列。{hint}；"
            f"若是另一个平台导出的文件，请改 --platform。")


def _header_text(value: Any) -> str:
    """A header cell without the consoles' decorations (`*姓名`, `部门（必填）`, spaces)."""
    text = re.sub(r"\s+", "", str(value or ""))
    text = re.sub(r"[(（][^)）]*[)）]$", "", text)
    return text.lstrip("*＊")


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"[;；,，\n]", text) if part.strip()]


def _path(text: str, platform: str) -> tuple[str, ...]:
    """The levels of one department path: WeCom `/`; DingTalk `/` when present, else `-`."""
    separator = "/" if platform == "wecom" or "/" in text else "-"
    return tuple(level.strip() for level in text.split(separator) if level.strip())


def _add_path(departments: dict[str, Department], levels: tuple[str, ...]) -> None:
    """The department of a path and every department above it, in the order they first appear."""
    for depth in range(1, len(levels) + 1):
        dept_id = "/".join(levels[:depth])
        if dept_id not in departments:
            parent = "/".join(levels[:depth - 1]) or None
            departments[dept_id] = Department(dept_id, levels[depth - 1], parent, order=len(departments))


def _flags(text: str, count: int) -> list[bool]:
    """Per-department yes/no: one value for all departments, or one per department (`是;否`)."""
    values = [v.lower() for v in _split_list(text)]
    if len(values) == count and count > 1:
        return [v in _YES for v in values]
    head = bool(values) and values[0] in _YES
    return [head] * count
