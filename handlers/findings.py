"""Earlier findings in (回头看, issue 16): read a spreadsheet of findings from earlier inspections and file them.

Three layouts are understood, told apart by their header row:

* the ledger of seed 003 附件2 (安全隐患自查整改清单): 序号 · 部位 · 检查内容 · 存在隐患问题 · 整改措施 · 整改完成情况 ·
  责任人 · 检查时间 · 销号时间 · 备注, with the unit in a 「部门（章）：…」 line above the header;
* a simple list: 来源 · 单位 · 部位 · 问题 · 发现日期 · 期限 (more columns of the ledger may follow);
* the 回头看排查情况汇总表 of seed 004, whose header takes two rows: 序号 · 建筑物名称 · 新发现隐患内容（无隐患填“无”）·
  是否能立即整改 · 不能立即整改的隐患 (over 计划完成日期 · 具体责任人 · 是否停用) · 备注, with 「填报单位：…」 above it.
  Its columns are found by the two rows' names combined; one building's row lists its hazards as 1. 2. 3.,
  each filed as a hazard of its own, and a building without hazard (无) is no hazard.

Each row becomes a hazard of the look-back campaign that keeps its source (县普查, 市抽查, 省督查, 审计, 通报, 自查 …)
and the date it was first found. A row whose unit is not one of the campaign's units (by exact name or alias), or
whose source, date or deadline cannot be read, is reported with its line number and not filed: nothing is guessed.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session

from handlers.categories import infer_category
from handlers.context import BuildingRef, Policy
from handlers.dates import resolve_deadline
from handlers.directory import find_building, find_people, find_unit, pick_person
from models.ledger import descendants, next_hazard_number, record_event, school_of
from models.lookback import MISSED_ORIGINS, ORIGINS, normalize_origin
from models.queries_directory import active_units
from models.tables import CampaignRow, Hazard, HazardStatus, PersonRow, UnitRow

# Header words of each column (the first is the form's own), for both layouts.
COLUMNS: dict[str, tuple[str, ...]] = {
    "origin": ("来源", "发现来源", "问题来源", "检查来源"),
    "unit": ("单位", "部门", "责任单位", "责任部门", "学校"),
    "location": ("部位", "位置", "地点", "建筑物名称"),
    "check_item": ("检查内容", "检查项目"),
    "problem": ("存在隐患问题", "问题", "隐患问题", "存在问题", "隐患内容", "新发现隐患内容"),
    "measure": ("整改措施", "措施"),
    "completion": ("整改完成情况",),
    "responsible": ("责任人", "具体责任人"),
    "found_on": ("检查时间", "发现日期", "发现时间", "检查日期"),
    "deadline": ("期限", "整改期限", "计划完成日期", "完成时限"),
    "closed_on": ("销号时间", "销号日期"),
    "remark": ("备注",),
    "seq": ("序号",),
    "immediate": ("是否能立即整改",),
    "stopped": ("是否停用",),
}
# Columns of a two-row header by their names combined (the merged cell above, the cell below).
COMBINED: dict[str, str] = {
    "不能立即整改的隐患计划完成日期": "deadline",
    "不能立即整改的隐患具体责任人": "responsible",
    "不能立即整改的隐患是否停用": "stopped",
}
_HEADER_WORDS = {word: key for key, words in COLUMNS.items() for word in words}
_UNIT_LINE = re.compile(r"(?:部门|单位|填报单位)\s*[（(]?\s*章?\s*[）)]?\s*[:：]\s*_*\s*(?P<name>[^_\s（(]+)")
_NOTE = re.compile(r"[（(][^）)]*[）)]")  # 新发现隐患内容（无隐患填“无”）: the form's note to whoever fills it in
# 1. 2. 3. (or 1、 ①) starting a cell, a line or a sentence; not 3号楼, not 1.05米
_ITEM = re.compile(r"(?m)(?:^|(?<=[\s；;。]))\s*(?:\d{1,2}\s*(?:[.．](?!\d)|[、)）])|[①-⑳])")
_NONE_WORDS = {"无", "没有", "无隐患", "/", "-", "—"}
_TOTAL_WORDS = {"合计", "小计", "总计"}
_DATE = re.compile(r"^\s*(?P<y>\d{4})\s*[-/.年]\s*(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?\s*$")


@dataclass(slots=True)
class Row:
    """One finding as read from the sheet (texts as written), with its line number in the sheet."""

    line: int
    values: dict[str, str]
    dates: dict[str, date | None] = field(default_factory=dict)
    item: int = 0  # the hazard's number among those its row lists (1. 2. 3. of a 汇总表 row); 0: the row is one

    @property
    def where(self) -> str:
        return f"第{self.line}行" + (f"第{self.item}项" if self.item else "")


@dataclass(slots=True)
class Sheet:
    layout: str  # "ledger" (seed 003 附件2), "list" or "summary" (seed 004 汇总表)
    rows: list[Row]
    unit: str | None = None  # the 部门（章） of a ledger sheet, the 填报单位 of a 汇总表
    notes: list[str] = field(default_factory=list)  # rows read as no hazard (a building without hazard: 无)


@dataclass(slots=True)
class ImportReport:
    layout: str
    filed: list[str] = field(default_factory=list)  # one line per hazard filed (or to be filed on a dry run)
    refused: list[str] = field(default_factory=list)  # one line per row not filed, saying why
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = {"ledger": "附件2台账格式", "summary": "回头看排查情况汇总表格式"}.get(self.layout, "简单清单格式")
        out = [f"读取：{head}，可登记{len(self.filed)}条，未登记{len(self.refused)}条"]
        return out + self.filed + self.notes + self.refused


class FindingsError(Exception):
    """The file cannot be read as findings at all (no header row, unknown format)."""


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _grid(path: Path) -> list[list[str]]:
    """The first sheet (or the CSV) as rows of cell texts."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        text = path.read_bytes().decode("utf-8-sig")
        return [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text))]
    if suffix in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        book = load_workbook(path, read_only=True, data_only=True)
        try:
            sheet = book.worksheets[0]
            return [[_cell_text(value) for value in row] for row in sheet.iter_rows(values_only=True)]
        finally:
            book.close()
    raise FindingsError(f"不认识的文件类型「{path.suffix}」：请用 .xlsx 或 .csv（UTF-8）")


def _header_name(cell: str) -> str:
    """A header cell as its name: no spaces or line breaks, no note in brackets (（无隐患填“无”）)."""
    return _NOTE.sub("", re.sub(r"\s+", "", cell))


def _one_row_header(cells: list[str]) -> dict[str, int]:
    names = [_header_name(c) for c in cells]
    return {_HEADER_WORDS[name]: i for i, name in enumerate(names) if name in _HEADER_WORDS}


def _two_row_header(top: list[str], below: list[str]) -> dict[str, int]:
    """The columns of a header over two rows: a merged cell above names the cells under it (its value is in
    its first column, the others read empty), and a cell merged down is named by the row above alone."""
    columns: dict[str, int] = {}
    parent = ""  # the merged cell above the current column
    for i in range(max(len(top), len(below))):
        upper = _header_name(top[i]) if i < len(top) else ""
        lower = _header_name(below[i]) if i < len(below) else ""
        if upper or not lower:
            parent = upper  # a new cell above (or a column neither row names, which ends the merged one)
        if lower:
            key = COMBINED.get(parent + lower) or _HEADER_WORDS.get(lower)
        else:
            key = _HEADER_WORDS.get(upper)
        if key is not None and key not in columns:
            columns[key] = i
    return columns


def _items(text: str) -> list[str]:
    """The hazards a 汇总表 cell lists (1.灭火器过期 2.应急灯不亮), without the form's empty 1. 2. 3."""
    parts = [part.strip(" ；;，,。\n") for part in _ITEM.split(text)]
    return [part for part in parts if part and not re.fullmatch(r"[.。…·]+", part)]


def _summary_rows(number: int, values: dict[str, str], notes: list[str]) -> list[Row]:
    """The hazards of one building's 汇总表 row, one Row each; none for a building without hazard (无)."""
    problem, location = values.get("problem", "").strip(), values.get("location", "").strip()
    if problem in _NONE_WORDS:
        if location:
            notes.append(f"第{number}行 {location}：无隐患，不登记")
        return []
    items = _items(problem)
    if not items:
        if location and not re.fullmatch(r"[.。…·]+", location):
            # A building named with nothing under it is refused by import_findings (no problem), not dropped.
            return [Row(number, {**values, "problem": ""})]
        return []  # the form's unfilled 1. 2. 3. and … lines
    if len(items) == 1:
        return [Row(number, {**values, "problem": items[0]})]
    return [Row(number, {**values, "problem": item}, item=k) for k, item in enumerate(items, start=1)]


def read_sheet(path: Path) -> Sheet:
    """Find the header row (or two), tell the layout from it, and read every non-empty row below it."""
    grid = _grid(path)
    unit: str | None = None
    for index, cells in enumerate(grid):
        for cell in cells:
            match = _UNIT_LINE.search(cell)
            if match and unit is None:
                unit = match.group("name")
        columns, skip = _one_row_header(cells), 1
        if index + 1 < len(grid) and not {"location", "problem"} <= _one_row_header(grid[index + 1]).keys():
            # A header over two rows names more columns together than its first row alone (a row above a
            # header that is complete by itself is no part of it).
            combined = _two_row_header(cells, grid[index + 1])
            if {"location", "problem"} <= combined.keys() and len(combined) > len(columns):
                columns, skip = combined, 2
        if {"location", "problem"} <= columns.keys():
            if skip == 2:
                layout = "summary"
            else:
                layout = "list" if "origin" in columns or "unit" in columns else "ledger"
            rows: list[Row] = []
            notes: list[str] = []
            for number, line in enumerate(grid[index + skip:], start=index + skip + 1):
                values = {key: (line[i].strip() if i < len(line) else "") for key, i in columns.items()}
                if values.get("seq", "").replace(" ", "") in _TOTAL_WORDS:
                    continue  # the 合计 line counts buildings, it is no finding
                if layout == "summary":
                    rows += _summary_rows(number, values, notes)
                    continue
                if not values.get("location") and not values.get("problem"):
                    continue  # an empty numbered line of the form, or the signature lines below it
                rows.append(Row(number, values))
            return Sheet(layout, rows, unit, notes)
    raise FindingsError("没有找到表头：需要「部位」和「问题」（或「存在隐患问题」）两列，"
                        "例如：来源,单位,部位,问题,发现日期,期限")


def _read_date(text: str) -> date | None:
    match = _DATE.match(text)
    if match is None:
        return None
    try:
        return date(int(match["y"]), int(match["m"]), int(match["d"]))
    except ValueError:
        return None


def _campaign_units(session: Session, campaign_units: list[str] | None) -> set[str] | None:
    return None if not campaign_units else descendants(session, campaign_units)


def _unit_labels(session: Session, among: set[str] | None) -> dict[str, UnitRow]:
    """The campaign's active units by exact name, alias and id (first wins): an import never guesses from a part."""
    labels: dict[str, UnitRow] = {}
    for unit in sorted(active_units(session), key=lambda unit: unit.seq):
        if among is None or unit.id in among:
            for label in (unit.name, unit.id, *unit.aliases.split("|")):
                if label:
                    labels.setdefault(label, unit)
    return labels


def import_findings(
    session: Session,
    sheet: Sheet,
    *,
    campaign: CampaignRow,
    campaign_units: list[str] | None,
    reporter: PersonRow,
    policy: Policy,
    now: datetime,
    default_origin: str = "自查",
    dry_run: bool = False,
) -> ImportReport:
    """File each readable row as a hazard of `campaign`; report the others. Nothing is written on a dry run."""
    report = ImportReport(sheet.layout)
    allowed = _campaign_units(session, campaign_units)
    labels = _unit_labels(session, allowed)
    trees: dict[str, set[str]] = {}  # each unit's subtree, for its 责任人
    today = now.date()
    report.notes += sheet.notes
    for row in sheet.rows:
        values = row.values
        where = row.where
        unit_text = values.get("unit") or sheet.unit or ""
        if not unit_text:
            above = "填报单位：单位名称" if sheet.layout == "summary" else "部门（章）：单位名称"
            report.refused.append(f"{where} 未登记：没有写单位（请加「单位」列，或在表头上方写「{above}」）")
            continue
        if not (values.get("problem") or "").strip():
            blank = "，没有隐患请填「无」" if sheet.layout == "summary" else ""
            report.refused.append(f"{where} 未登记：「{values.get('location') or ''}」没有写隐患问题{blank}")
            continue
        if sheet.layout == "summary":  # what the 汇总表 says of the fix, kept as written with its 备注
            said = [f"{label}：{values[key]}" for key, label in (("immediate", "是否能立即整改"), ("stopped", "是否停用"))
                    if values.get(key)]
            values = {**values, "remark": "；".join([*said, *([values["remark"]] if values.get("remark") else [])])}
        unit = labels.get(unit_text)
        if unit is None:
            near = find_unit(session, unit_text, among=allowed)
            hint = f"，是不是「{near.name}」？请改成完整名称" if near is not None else "，请写本次回头看单位的全称或简称"
            report.refused.append(f"{where} 未登记：单位「{unit_text}」不在本次回头看的单位中{hint}")
            continue
        origin_text = values.get("origin") or ""
        if not origin_text and sheet.layout == "ledger":
            origin_text = normalize_origin(values.get("remark") or "") or default_origin
        origin = normalize_origin(origin_text or default_origin)
        if origin is None:
            report.refused.append(f"{where} 未登记：来源「{origin_text}」看不懂，请写其中之一：{'、'.join(ORIGINS)}")
            continue
        found_text = values.get("found_on") or ""
        found_on = _read_date(found_text) if found_text else None
        if found_text and found_on is None:
            report.refused.append(f"{where} 未登记：发现日期「{found_text}」看不懂，请写成 2023-11-28")
            continue
        if found_on is not None and found_on > today:
            report.refused.append(f"{where} 未登记：发现日期 {found_on.isoformat()} 在今天之后，请核对")
            continue
        closed_text = values.get("closed_on") or ""
        closed_on = _read_date(closed_text) if closed_text else None
        if closed_text and closed_on is None:
            report.refused.append(f"{where} 未登记：销号时间「{closed_text}」看不懂，请写成 2023-12-10")
            continue
        deadline_text = values.get("deadline") or ""
        if deadline_text:
            deadline = _read_date(deadline_text) or resolve_deadline(deadline_text, today=today)
            if deadline is None:
                report.refused.append(f"{where} 未登记：期限「{deadline_text}」看不懂，请写成 {today.isoformat()} 之后的日期")
                continue
            if closed_on is None and deadline < today:
                report.refused.append(f"{where} 未登记：期限 {deadline.isoformat()} 已经过去，请改为今天以后的日期，或留空按默认期限")
                continue
            if closed_on is None and deadline > campaign.end:
                report.refused.append(f"{where} 未登记：期限 {deadline.isoformat()} 在本次回头看结束（{campaign.end.isoformat()}）之后")
                continue
        else:
            deadline = min(today + timedelta(days=policy.general_deadline_days), max(campaign.end, today))
        problem = values.get("problem") or ""
        location = values.get("location") or ""
        responsible_text = (values.get("responsible") or "").strip()
        responsible = None
        if responsible_text:
            unit_tree = trees.get(unit.id) or trees.setdefault(unit.id, descendants(session, [unit.id]))
            candidates = [p for p in find_people(session, responsible_text) if p.unit_id in (allowed or unit_tree)]
            responsible = pick_person(candidates, prefer_units=unit_tree)
            if responsible is None:
                report.notes.append(f"{where} 提示：责任人「{responsible_text}」不在名单中，已只记下名字，请用「转交 #编号 姓名」指定")
        when = f"（{found_on.isoformat()}）" if found_on else ""
        summary = f"{unit.name} {location} {problem} 来源：{origin}{when}" + ("，已销号" if closed_on else "")
        if dry_run:
            report.filed.append(f"{where} → 将登记：{summary}")
            continue
        building = find_building(session, location, policy.buildings, unit_id=unit.id)
        hazard = _file(
            session, campaign=campaign, unit_id=unit.id, values=values, origin=origin, found_on=found_on,
            closed_on=closed_on, deadline=deadline, responsible=responsible, responsible_text=responsible_text,
            reporter=reporter, building=building, policy=policy, now=now, line=row.line,
        )
        report.filed.append(f"{where} → #{hazard.number} {summary}")
    return report


def _file(
    session: Session, *, campaign: CampaignRow, unit_id: str, values: dict[str, str], origin: str,
    found_on: date | None, closed_on: date | None, deadline: date, responsible: PersonRow | None,
    responsible_text: str, reporter: PersonRow, building: BuildingRef | None, policy: Policy, now: datetime, line: int,
) -> Hazard:
    problem = values.get("problem") or ""
    closed_at = datetime.combine(closed_on, time(12, 0), tzinfo=now.tzinfo) if closed_on else None
    # Numbers are per school within the campaign, as for reports made in chat.
    school_id = school_of(session, unit_id, {b.unit_id for b in policy.buildings})
    hazard = Hazard(
        campaign_id=campaign.id,
        number=next_hazard_number(session, campaign.id, school_id),
        school_id=school_id,
        unit_id=unit_id,
        location=values.get("location") or "",
        check_item=values.get("check_item") or "",
        problem=problem,
        measure=values.get("measure") or "",
        completion=values.get("completion") or "",
        responsible_name=responsible.name if responsible else responsible_text,
        responsible_id=responsible.id if responsible else None,
        reporter_id=reporter.id,
        category=(infer_category(problem, values.get("location"), policy.categories) if policy.categories
                  else infer_category(problem, values.get("location"))) or "其他",
        building_id=building.id if building else None,
        deadline=deadline,
        status=HazardStatus.CLOSED.value if closed_at else HazardStatus.RECTIFYING.value,
        found_at=now,
        rectified_at=closed_at,
        closed_at=closed_at,
        remark=values.get("remark") or "",
        origin=origin,
        origin_date=found_on,
        missed_by_school=origin in MISSED_ORIGINS,
    )
    session.add(hazard)
    session.flush()
    when = found_on.isoformat() if found_on else "日期不详"
    record_event(session, hazard=hazard, actor_id=reporter.id, action="import", at=now,
                 detail=f"导入：来源 {origin}（{when}），第{line}行")
    return hazard
