"""台账 exports: the seeds' paper forms as XLSX, ready to print on A4 landscape and sign.

- ledger: 问题隐患自查整改清单 in the exact columns of seed 003 附件2;
- buildings: 排查情况汇总表 of seed 004 附件, one row per 建筑单体 and its 合计 line;
- statistics: 隐患排查整改销号统计表 of seed 002 附件1, one row per school (departments rolled up) and a 合计 row,
  for the campaign so far or for one 10-day reporting period with what each school submitted with 报送;
- checklist: 项目清单 of seed 003 附件1 (督查项目 / 序号 / 督查内容 / 督查方法 / 责任部门) from the config.

A county's ledger and building summary have one sheet per school (each school fills in its own form; 序号 is
the row number within it). Every cell is set in 宋体, the font the paper forms use.

Sheets are written in openpyxl's write-only mode (rows stream out as they are appended), so a ledger of
100,000 hazards needs little memory; the header block, widths, wrapping, frozen header, print titles and
page set-up are all set before the rows are written, as write-only mode requires.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from io import BytesIO
from typing import Any, Literal
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from sqlmodel import Session

from handlers.command import Command, CommandSpec
from handlers.context import ChecklistRef, Context
from handlers.messages import Reply
from handlers.periods import report_days
from handlers.stats import report_units, reporting_unit_name
from models.ledger import UnitFigures, total_figures
from models.queries_directory import unit_names
from models.reports import (
    FIGURE_KEYS,
    LEDGER_STATUS_TEXT,
    BuildingInfo,
    BuildingRow,
    BuildingSummary,
    LedgerLine,
    PeriodBounds,
    ReportUnit,
    StatisticsRow,
    building_summary,
    ledger_counts,
    ledger_lines,
    statistics_rows,
)
from models.reports import report_units as form_units
from models.tables import CampaignRow, HazardStatus

Form = Literal["ledger", "buildings", "statistics", "checklist"]
FORMS: tuple[Form, ...] = ("ledger", "buildings", "statistics", "checklist")

LEDGER_COLUMNS: tuple[tuple[str, float], ...] = (
    ("序号", 6), ("部位", 18), ("检查内容", 16), ("存在隐患问题", 30), ("整改措施", 22),
    ("整改完成情况", 16), ("责任人", 10), ("检查时间", 12), ("销号时间", 12), ("备注", 18),
)
BUILDING_COLUMNS: tuple[tuple[str, float], ...] = (
    ("序号", 6), ("建筑物名称", 18), ("新发现隐患内容\n（无隐患填“无”）", 50), ("是否能立即整改", 10),
    ("计划完成日期", 13), ("具体\n责任人", 12), ("是否停用", 8), ("备注", 20),
)
STATISTICS_COLUMNS: tuple[tuple[str, float], ...] = (
    ("序号", 6), ("单位", 26), ("发现隐患数", 11), ("已整改数", 11), ("已销号数", 11), ("未销号数", 11),
    ("其中逾期", 11), ("重大隐患\n（未销号）", 12), ("备注", 20),
)
# 回头看 (a look-back campaign): the findings of inspections from above that the school's own self-check missed.
MISSED_COLUMN: tuple[str, float] = ("其中自查\n未查出", 11)
# With a reporting period: what the school submitted with 报送, and whether it matches the ledger.
PERIOD_COLUMNS: tuple[tuple[str, float], ...] = (
    ("报送数\n（发现/整改/销号/\n未销号/逾期/重大）", 22), ("报送时间", 12), ("与台账核对", 18),
)
CHECKLIST_COLUMNS: tuple[tuple[str, float], ...] = (
    ("督查项目", 14), ("序号", 6), ("督查内容", 56), ("督查方法", 14), ("责任部门", 26),
)
SHEET_NAMES: dict[Form, str] = {
    "ledger": "隐患台账", "buildings": "建筑单体汇总", "statistics": "销号统计表", "checklist": "项目清单",
}
FORM_LABELS: dict[Form, str] = {
    "ledger": "问题隐患自查整改清单",
    "buildings": "排查情况汇总表（建筑单体）",
    "statistics": "隐患排查整改销号统计表",
    "checklist": "项目清单",
}
BLANK_ROWS = 10  # an empty ledger is the seed's blank form: rows numbered 1–10 to fill in by hand
FONT = "宋体"  # SimSun: the paper forms' typeface, on every Chinese Windows and in WPS

SIGNATURES = "主要负责人签字：__________　　　填表人签字：__________　　　联系电话：__________"  # seed 004

_THIN = Side(style="thin", color="000000")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_HEAD_FILL = PatternFill("solid", start_color="F2F2F2", end_color="F2F2F2")
_PLAIN = Font(name=FONT, size=11)
_BOLD = Font(name=FONT, size=11, bold=True)
_TITLE = {"font": Font(name=FONT, size=16, bold=True), "alignment": Alignment(horizontal="center", vertical="center")}
_INFO = {"font": _PLAIN, "alignment": Alignment(horizontal="left", vertical="center")}
_HEAD = {
    "font": _BOLD,
    "alignment": Alignment(horizontal="center", vertical="center", wrap_text=True),
    "border": _BORDER,
    "fill": _HEAD_FILL,
}
_WRAP = {"font": _PLAIN, "alignment": Alignment(horizontal="left", vertical="center", wrap_text=True),
         "border": _BORDER}
_CENTER = {"font": _PLAIN, "alignment": Alignment(horizontal="center", vertical="center", wrap_text=True),
           "border": _BORDER}
_NOTE = {"font": Font(name=FONT, size=10), "alignment": Alignment(wrap_text=True, vertical="center")}
_TOTAL = {
    "font": _BOLD,
    "alignment": Alignment(horizontal="center", vertical="center", wrap_text=True),
    "border": _BORDER,
}
_TOTAL_TEXT = {
    "font": _BOLD,
    "alignment": Alignment(horizontal="left", vertical="center", wrap_text=True),
    "border": _BORDER,
}
_MAX_CELL = 32000  # Excel refuses cells over 32,767 characters


@dataclass(frozen=True, slots=True)
class FormHeader:
    """The header block every form starts with."""

    title: str
    unit_name: str  # 填报单位
    on: date  # 日期

    @property
    def date_text(self) -> str:
        return f"{self.on.year}年{self.on.month}月{self.on.day}日"


def form_title(name: str, *words: str) -> str:
    """A form's title after the campaign's name, leaving out leading words the name already says.

    "…安全隐患排查整治" + "排查", "情况汇总表" is "…安全隐患排查整治情况汇总表", not "…排查整治排查情况汇总表".
    The last word (the form's own name) always stays.
    """
    kept = list(words)
    while len(kept) > 1 and kept[0] in name:
        kept.pop(0)
    return name + "".join(kept)


def _sheet_title(base: str, name: str, taken: set[str]) -> str:
    """A unique sheet name (Excel: at most 31 characters, none of []:*?/\\)."""
    cleaned = "".join(ch for ch in name if ch not in "[]:*?/\\")
    title = f"{base}-{cleaned}"[:31] if cleaned else base
    candidate, n = title, 2
    while candidate in taken:
        suffix = f"({n})"
        candidate, n = title[: 31 - len(suffix)] + suffix, n + 1
    taken.add(candidate)
    return candidate


def _text(value: str | None) -> str | None:
    """Cell-safe text: no control characters Excel rejects, not too long."""
    if not value:
        return None
    value = ILLEGAL_CHARACTERS_RE.sub("", value)
    return value if len(value) <= _MAX_CELL else value[: _MAX_CELL - 1] + "…"


def _cell(sheet: WriteOnlyWorksheet, value: Any, style: dict[str, Any]) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet)
    for name, item in style.items():
        setattr(cell, name, item)
    _set(cell, value)
    return cell


def _set(cell: WriteOnlyCell, value: Any) -> None:
    """Assign a value; text is always text (a report starting with '=' must not become a formula)."""
    if isinstance(value, str):
        value = _text(value)
    cell.value = value
    if isinstance(value, str):
        cell.data_type = "s"


class _Rows:
    """Reusable styled cells for a table body: write-only sheets serialise each row as it is appended."""

    def __init__(self, sheet: WriteOnlyWorksheet, styles: Sequence[dict[str, Any]]) -> None:
        self.sheet = sheet
        self.cells = [_cell(sheet, None, style) for style in styles]

    def append(self, values: Sequence[Any]) -> None:
        for cell, value in zip(self.cells, values):
            _set(cell, value)
        self.sheet.append(self.cells)


def _new_sheet(
    book: Workbook, form: Form, columns: Sequence[tuple[str, float]], *, header_rows: tuple[int, int],
    title: str | None = None,
) -> WriteOnlyWorksheet:
    """A sheet with widths, print set-up (A4 landscape, fit to width, repeated header) and a frozen header."""
    sheet: WriteOnlyWorksheet = book.create_sheet(title or SHEET_NAMES[form])
    for column, (_, width) in enumerate(columns, start=1):
        sheet.column_dimensions[get_column_letter(column)].width = width
    first, last = header_rows
    sheet.freeze_panes = f"A{last + 1}"
    sheet.print_title_rows = f"{first}:{last}"
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = "9"  # A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0  # as many pages as the rows need
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.print_options.horizontalCentered = True
    sheet.page_margins.left = sheet.page_margins.right = 0.4
    sheet.page_margins.top = sheet.page_margins.bottom = 0.6
    sheet.oddFooter.center.text = "第 &P 页，共 &N 页"
    sheet.row_dimensions[1].height = 32
    sheet.row_dimensions[2].height = 22
    return sheet


def _merge(sheet: WriteOnlyWorksheet, row: int, first: int, last: int, end_row: int | None = None) -> None:
    sheet.merged_cells.add(f"{get_column_letter(first)}{row}:{get_column_letter(last)}{end_row or row}")


def _header_block(sheet: WriteOnlyWorksheet, header: FormHeader, width: int, info: str) -> None:
    """Row 1: the title; row 2: 填报单位 and 日期 (both merged across the table)."""
    sheet.append([_cell(sheet, header.title, _TITLE)])
    _merge(sheet, 1, 1, width)
    sheet.append([_cell(sheet, info, _INFO)])
    _merge(sheet, 2, 1, width)


def _line(sheet: WriteOnlyWorksheet, row: int, width: int, text: str, style: dict[str, Any] = _INFO) -> None:
    sheet.append([_cell(sheet, text, style)])
    _merge(sheet, row, 1, width)


def _heading_row(sheet: WriteOnlyWorksheet, names: Sequence[str | None]) -> None:
    sheet.append([_cell(sheet, name, _HEAD) for name in names])


# -- ledger (seed 003 附件2) ---------------------------------------------------------------------------


def _remark(
    line: LedgerLine, today: date, school_names: Mapping[str, str] | None = None, found_on: date | None = None
) -> str:
    """备注: the hazard's number in the chat (#N; 城南小学#N in a county's export, where numbers repeat per school),
    its source when not the school's own 自查, 重大, the deadline of an open one, and the reporter's remark."""
    school = school_names.get(line.school_id, "") if school_names and line.school_id else ""
    parts = [f"{school}#{line.number}"]
    if line.origin != "自查":  # 回头看: a finding of an inspection (来源：县普查，2026-10-12发现，自查未查出)
        earlier = line.origin_date if line.origin_date and line.origin_date != found_on else None
        when = f"，{earlier:%Y-%m-%d}发现" if earlier else ""  # an imported finding: 检查时间 is its import
        parts.append(f"来源：{line.origin}{when}" + ("，自查未查出" if line.missed_by_school else ""))
    if line.level == "重大":
        parts.append("重大隐患")
    if line.status in (HazardStatus.RECTIFYING.value, HazardStatus.RECTIFIED.value):
        overdue = "（已逾期）" if line.status == HazardStatus.RECTIFYING.value and line.deadline < today else ""
        parts.append(f"期限{line.deadline:%Y-%m-%d}{overdue}")
    if line.remark and line.remark.strip() != line.origin:  # an imported 备注 that only named the source
        parts.append(line.remark)
    return "；".join(parts)


def completion_text(line: LedgerLine) -> str:
    """整改完成情况 as the hazard stands now.

    整改中: the fix is not done, also after a 退回 (whose rejected fix note is no completion any more);
    待验收: the fix note, marked as awaiting verification so that it does not read as closed;
    已销号: the fix note (or 已整改).
    """
    if line.status == HazardStatus.RECTIFYING.value:
        return LEDGER_STATUS_TEXT["rectifying"]
    if line.status == HazardStatus.RECTIFIED.value:
        return f"{line.completion}（待验收）" if line.completion else LEDGER_STATUS_TEXT["rectified"]
    return line.completion_text


def write_ledger_sheet(
    book: Workbook, lines: Iterable[LedgerLine], header: FormHeader, tz: ZoneInfo, *, title: str | None = None,
    school_names: Mapping[str, str] | None = None,
) -> int:
    """Add the 问题隐患自查整改清单 sheet; returns the number of hazard rows written.

    序号 is the row number within the form (1, 2, 3 …, no gaps after 撤销); the hazard's own number (#N, as
    used in the chat; 城南小学#N with `school_names`, in a county's export) is the first thing in 备注. An empty
    form gets BLANK_ROWS numbered rows to fill in by hand.
    """
    width = len(LEDGER_COLUMNS)
    sheet = _new_sheet(book, "ledger", LEDGER_COLUMNS, header_rows=(3, 3), title=title)
    _header_block(
        sheet, header, width,
        f"填报单位（章）：{header.unit_name}　　　主要负责人：__________　　　日期：{header.date_text}",
    )
    _heading_row(sheet, [name for name, _ in LEDGER_COLUMNS])
    rows = _Rows(sheet, [_CENTER, _WRAP, _WRAP, _WRAP, _WRAP, _WRAP, _CENTER, _CENTER, _CENTER, _WRAP])
    count = 0
    for line in lines:
        count += 1
        closed = line.closed_at.astimezone(tz).strftime("%Y-%m-%d") if line.closed_at else None
        found_on = line.found_at.astimezone(tz).date()
        rows.append((
            count, line.location, line.check_item, line.problem, line.measure, completion_text(line),
            line.responsible_name, f"{found_on:%Y-%m-%d}", closed,
            _remark(line, header.on, school_names, found_on),
        ))
    blank = 0 if count else BLANK_ROWS
    for seq in range(1, blank + 1):
        rows.append((seq, *([None] * (width - 1))))
    footer = 3 + count + blank + 2
    sheet.append([])
    _line(sheet, footer, width, "上报人：__________　　　联系方式：__________")
    return count


# -- buildings (seed 004 附件) ------------------------------------------------------------------------


def _building_remark(row: BuildingRow) -> str:
    parts = []
    if not row.checked:
        parts.append("尚未检查")
    year = row.building.built_year
    if year:
        parts.append(f"{year}年建" + ("（1998年以前建筑）" if year < 1998 else ""))
    if row.hazards:
        parts.append(f"隐患{row.hazards}项，已销号{row.closed}项")
    return "；".join(parts)


def totals_text(summary: BuildingSummary) -> str:
    """The 合计 line exactly as seed 004 words it."""
    t = summary.totals
    return (
        f"校内建筑单体数：（{t.buildings}）栋；发现隐患单体数：（{t.with_hazards}）栋，"
        f"能立即整改单体数：（{t.immediate}）栋，短期内难以整改单体数：（{t.hard_to_fix}）栋，"
        f"停用的单体数：（{t.stopped}）栋。"
    )


def write_buildings_sheet(
    book: Workbook, summary: BuildingSummary, header: FormHeader, *, title: str | None = None
) -> None:
    """Add the 排查情况汇总表 sheet: a two-row header, one row per building, and the 合计 line.

    A building without hazards reads 无 only when somebody checked it (a 检查 record); else 未检查.
    """
    width = len(BUILDING_COLUMNS)
    sheet = _new_sheet(book, "buildings", BUILDING_COLUMNS, header_rows=(3, 4), title=title)
    _header_block(sheet, header, width, f"填报单位：{header.unit_name}（盖章）　　　日期：{header.date_text}")
    names = [name for name, _ in BUILDING_COLUMNS]
    # Row 3: 不能立即整改的隐患 spans its three sub-columns; the other headings span rows 3–4.
    _heading_row(sheet, [*names[:4], "不能立即整改的隐患", None, None, names[7]])
    _heading_row(sheet, [None, None, None, None, *names[4:7], None])
    for column in (1, 2, 3, 4, 8):
        _merge(sheet, 3, column, column, end_row=4)
    _merge(sheet, 3, 5, 7)
    rows = _Rows(sheet, [_CENTER, _WRAP, _WRAP, _CENTER, _CENTER, _CENTER, _CENTER, _WRAP])
    for seq, row in enumerate(summary.rows, start=1):
        if row.has_hazards:
            problems = [f"{i}.{text}" for i, text in enumerate(row.problems, start=1)]
            if row.hazards > len(row.problems):
                problems.append(f"……共{row.hazards}项，详见隐患台账")
            content = "\n".join(problems)
        else:
            content = "无" if row.checked else "未检查"
        hard = row.hard_to_fix
        rows.append((
            seq,
            row.building.name,
            content,
            ("是" if row.all_immediate else "否") if row.has_hazards else None,
            f"{row.plan_date:%Y-%m-%d}" if hard and row.plan_date else None,
            "、".join(row.responsible) if hard else None,
            ("是" if row.stopped else "否") if row.has_hazards else None,
            _building_remark(row),
        ))
    total_row = 5 + len(summary.rows)
    sheet.row_dimensions[total_row].height = 36
    sheet.append([_cell(sheet, "合计", _TOTAL), _cell(sheet, totals_text(summary), _TOTAL_TEXT),
                  *(_cell(sheet, None, _TOTAL_TEXT) for _ in range(width - 2))])
    _merge(sheet, total_row, 2, width)
    next_row = total_row + 1
    if summary.totals.unchecked:
        _line(sheet, next_row, width, f"注：{summary.totals.unchecked}栋尚未检查（无隐患也请发「检查」记录）。")
        next_row += 1
    if summary.unassigned:
        _line(sheet, next_row, width, f"注：另有{summary.unassigned}项隐患未关联建筑单体，见隐患台账。")
        next_row += 1
    sheet.append([])
    _line(sheet, next_row + 1, width, SIGNATURES)


# -- statistics (seed 002 附件1) ---------------------------------------------------------------------


def _figures(f: UnitFigures) -> tuple[int, ...]:
    return tuple(getattr(f, key) for key in FIGURE_KEYS)


def _check_text(row: StatisticsRow) -> str:
    """与台账核对: whether what the school submitted with 报送 is what the ledger says for the period."""
    if row.submitted is None:
        return "未报送"
    names = ("发现", "整改", "销号", "未销号", "逾期", "重大")
    differ = [
        f"{name}报{sent}/台账{ledger}"
        for name, sent, ledger in zip(names, _figures(row.submitted), _figures(row.figures))
        if sent != ledger
    ]
    return "一致" if not differ else "不一致：" + "，".join(differ)


def write_statistics_sheet(
    book: Workbook, rows: Sequence[StatisticsRow], header: FormHeader, *, period: str,
    with_submissions: bool = False, tz: ZoneInfo | None = None, with_missed: bool = False,
) -> None:
    """Add the 隐患排查整改销号统计表 sheet: one row per school, its 其中 departments, and the 合计 row.

    With submissions (a reporting period), three columns beside the ledger's figures show what each school
    sent with 报送, when, and whether it matches. With `with_missed` (回头看), a column before 备注 counts the
    findings the school's own self-check missed (`StatisticsRow.missed`).
    """
    columns = [*STATISTICS_COLUMNS[:-1], *(PERIOD_COLUMNS if with_submissions else ()),
               *((MISSED_COLUMN,) if with_missed else ()), STATISTICS_COLUMNS[-1]]
    width = len(columns)
    sheet = _new_sheet(book, "statistics", columns, header_rows=(3, 3))
    _header_block(
        sheet, header, width,
        f"填报单位（盖章）：{header.unit_name}　　　统计时段：{period}　　　填报日期：{header.date_text}",
    )
    _heading_row(sheet, [name for name, _ in columns])
    extra = ([_CENTER, _CENTER, _WRAP] if with_submissions else []) + ([_CENTER] if with_missed else [])
    body = _Rows(sheet, [_CENTER, _WRAP, *([_CENTER] * 6), *extra, _WRAP])
    seq = 0
    for row in rows:
        if row.depth == 0:
            seq += 1
            number: int | None = seq
            name = row.name
        else:
            number, name = None, "　" * row.depth + "其中：" + row.name
        sent: tuple[Any, ...] = ()
        if with_submissions and row.depth == 0:
            at = row.submitted_at.astimezone(tz).strftime("%m-%d %H:%M") if row.submitted_at and tz else None
            figures = "/".join(str(v) for v in _figures(row.submitted)) if row.submitted else None
            sent = (figures, at, _check_text(row))
        elif with_submissions:
            sent = (None, None, None)
        missed: tuple[Any, ...] = (row.missed,) if with_missed else ()
        body.append((number, name, *_figures(row.figures), *sent, *missed, None))
    total = total_figures(row.figures for row in rows if row.depth == 0)
    missed_total = sum(row.missed for row in rows if row.depth == 0)
    sheet.append([
        _cell(sheet, None, _TOTAL), _cell(sheet, "合计", _TOTAL),
        *(_cell(sheet, value, _TOTAL) for value in _figures(total)),
        *(_cell(sheet, None, _TOTAL) for _ in range(len(PERIOD_COLUMNS) if with_submissions else 0)),
        *((_cell(sheet, missed_total, _TOTAL),) if with_missed else ()),
        _cell(sheet, None, _TOTAL),
    ])
    note_row = 3 + len(rows) + 2
    sheet.row_dimensions[note_row].height = 32
    _line(sheet, note_row, width,
          "注：每所学校（幼儿园）一行，含其各部门的隐患；“其中”行为部门明细，不计入合计。已整改数含已销号；"
          "未销号数＝整改中＋已整改待验收；其中逾期指超过整改期限仍未整改；重大隐患为尚未销号的重大隐患。", _NOTE)
    sheet.append([])
    _line(sheet, note_row + 2, width, SIGNATURES)


# -- checklist (seed 003 附件1) ------------------------------------------------------------------------


def write_checklist_sheet(
    book: Workbook, items: Sequence[ChecklistRef], header: FormHeader, unit_names: dict[str, str]
) -> None:
    """Add the 项目清单 sheet: 督查项目 (merged over its rows), 序号, 督查内容, 督查方法, 责任部门, and the
    seed's last line 备注（问题隐患补充）left blank to fill in by hand."""
    width = len(CHECKLIST_COLUMNS)
    sheet = _new_sheet(book, "checklist", CHECKLIST_COLUMNS, header_rows=(3, 3))
    _header_block(sheet, header, width, f"填报单位：{header.unit_name}　　　日期：{header.date_text}")
    _heading_row(sheet, [name for name, _ in CHECKLIST_COLUMNS])
    rows = _Rows(sheet, [_CENTER, _CENTER, _WRAP, _CENTER, _WRAP])
    row_number = 4
    first_of_project = row_number
    for i, item in enumerate(items):
        departments = "、".join(unit_names.get(unit, unit) for unit in item.departments)
        starts = i == 0 or items[i - 1].project != item.project
        rows.append((item.project if starts else None, item.seq, item.content, item.method, departments))
        ends = i == len(items) - 1 or items[i + 1].project != item.project
        if starts:
            first_of_project = row_number
        if ends and row_number > first_of_project:
            _merge(sheet, first_of_project, 1, 1, end_row=row_number)
        row_number += 1
    sheet.row_dimensions[row_number].height = 60
    sheet.append([_cell(sheet, "备注\n（问题隐患补充）", _CENTER), *(_cell(sheet, None, _WRAP) for _ in range(width - 1))])
    _merge(sheet, row_number, 2, width)


# -- putting forms together -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportResult:
    data: bytes
    sheets: tuple[Form, ...]
    ledger_rows: int = 0


@dataclass(frozen=True, slots=True)
class ReportingPeriodForm:
    """Which 报送 period a statistics form covers: its number (第N期) and days."""

    number: int
    bounds: PeriodBounds
    start: date


def _school_forms(
    session: Session, scope: set[str] | None, schools: set[str], unit_name: str
) -> list[tuple[ReportUnit, set[str], str]]:
    """The schools a per-school form is written for: each with its units and the name it is filed under.

    A unit above the schools (a bureau) gets a form only for hazards of its own; `export_workbook` drops it
    when it has none.
    """
    heads = form_units(session, unit_ids=scope, schools=schools)
    forms = [(head, {head.unit_id} if head.own_level else set(head.units), head.label) for head in heads]
    if len(forms) == 1 and scope is not None:
        head, units, _ = forms[0]
        return [(head, units, unit_name)]
    return forms


def export_workbook(
    session: Session,
    *,
    campaign: CampaignRow,
    forms: Sequence[Form],
    unit_ids: Iterable[str] | None,
    unit_name: str,
    on: date,
    buildings: Sequence[BuildingInfo] = (),
    problem_limit: int = 10,
    checklist: Sequence[ChecklistRef] = (),
    period: ReportingPeriodForm | None = None,
) -> ExportResult:
    """Write the requested forms for the given units (None: all) into one XLSX.

    The ledger and the building summary get one sheet per school in scope; the statistics and the checklist
    one sheet each. With a `period`, the statistics cover that reporting period and show each school's 报送.
    """
    tz = ZoneInfo(campaign.timezone)
    scope = None if unit_ids is None else set(unit_ids)
    schools = {building.unit_id for building in buildings}
    book = Workbook(write_only=True)
    written: list[Form] = []
    ledger_rows = 0
    taken: set[str] = set()
    for form in forms:
        if form == "ledger":
            per_school = [
                (head, units, name) for head, units, name in _school_forms(session, scope, schools, unit_name)
                if (head.active and not head.own_level)
                or ledger_counts(session, campaign_id=campaign.id, unit_ids=units).total
            ] or [(ReportUnit("", unit_name, frozenset()), set(), unit_name)]  # nothing in scope: the blank form
            county = len(per_school) > 1 or len(schools if scope is None else schools & scope) > 1
            school_names = unit_names(session, schools) if county else None  # 城南小学#12 in 备注
            for head, units, name in per_school:
                title = SHEET_NAMES["ledger"] if len(per_school) == 1 else _sheet_title("台账", name, taken)
                header = FormHeader(f"{name}安全隐患自查整改清单", name, on)
                ledger_rows += write_ledger_sheet(
                    book, ledger_lines(session, campaign_id=campaign.id, unit_ids=units), header, tz, title=title,
                    school_names=school_names,
                )
        elif form == "buildings":
            owned = [(head, units, name) for head, units, name in _school_forms(session, scope, schools, unit_name)
                     if head.unit_id in schools]
            if not owned:  # no school in scope has buildings: the form is still filed, with its 合计 of 0
                owned = [(ReportUnit("", unit_name, frozenset()), scope or set(), unit_name)]
            for head, units, name in owned:
                summary = building_summary(
                    session, campaign_id=campaign.id, buildings=[b for b in buildings if b.unit_id == head.unit_id],
                    unit_ids=units, problem_limit=problem_limit, tz=tz, school=head if head.unit_id else None,
                )
                title = SHEET_NAMES["buildings"] if len(owned) == 1 else _sheet_title("汇总表", name, taken)
                header = FormHeader(form_title(campaign.name, "排查", "情况汇总表"), name, on)
                write_buildings_sheet(book, summary, header, title=title)
        elif form == "statistics":
            header = FormHeader(form_title(campaign.name, "隐患", "排查", "整改销号统计表"), unit_name, on)
            lookback = campaign.kind == "lookback"  # 回头看: count what each school's self-check missed
            if period is None:
                rows = statistics_rows(session, campaign_id=campaign.id, unit_ids=scope, today=on, schools=schools,
                                       with_missed=lookback)
                text = f"{campaign.start:%Y-%m-%d} 至 {min(on, campaign.end):%Y-%m-%d}"
            else:
                rows = statistics_rows(session, campaign_id=campaign.id, unit_ids=scope, today=on, schools=schools,
                                       period=period.bounds, with_missed=lookback)
                text = f"第{period.number}期 {period.start:%Y-%m-%d} 至 {period.bounds.due:%Y-%m-%d}"
            write_statistics_sheet(book, rows, header, period=text, with_submissions=period is not None, tz=tz,
                                   with_missed=lookback)
        elif form == "checklist":
            departments = {unit for item in checklist for unit in item.departments}
            names = unit_names(session, departments)
            header = FormHeader(f"{campaign.name}项目清单", unit_name, on)
            write_checklist_sheet(book, checklist, header, names)
        else:
            raise ValueError(f"unknown form {form!r}; use one of {', '.join(FORMS)}")
        written.append(form)
    buffer = BytesIO()
    book.save(buffer)
    return ExportResult(buffer.getvalue(), tuple(written), ledger_rows)


def context_buildings(context: Context) -> list[BuildingInfo]:
    """The configured buildings as the reports need them."""
    return [
        BuildingInfo(b.id, b.names[0] if b.names else b.id, b.unit_id, b.built_year) for b in context.policy.buildings
    ]


def ledger_file_name(campaign: CampaignRow, on: date) -> str:
    return f"隐患台账_{campaign.id}_{on:%Y%m%d}.xlsx"


# What may follow 台账 / 导出 to pick one form (nothing: all of them).
FORM_WORDS: dict[str, Form] = {
    "台账": "ledger", "隐患台账": "ledger", "整改清单": "ledger", "自查整改清单": "ledger",
    "汇总表": "buildings", "排查情况汇总表": "buildings", "建筑": "buildings", "建筑单体": "buildings",
    "统计表": "statistics", "销号统计表": "statistics",
    "清单表": "checklist", "项目清单": "checklist", "检查清单": "checklist", "督查清单": "checklist",
}
FORM_CHOICES = "台账、汇总表、统计表、清单表"


_PERIOD_WORD = re.compile(r"第?(\d{1,3})期")


def forms_asked(note: str | None) -> tuple[list[Form], int | None] | None:
    """The forms named after 导出, and a 报送 period (第N期) for the statistics; None: a word that names neither."""
    words = [word for word in (note or "").replace("、", " ").replace("，", " ").split() if word]
    forms: list[Form] = []
    period: int | None = None
    for word in words:
        if (match := _PERIOD_WORD.fullmatch(word)) is not None:
            period = int(match.group(1))
            continue
        form = FORM_WORDS.get(word.strip("《》"))
        if form is None:
            return None
        if form not in forms:
            forms.append(form)
    if period is not None and not forms:
        forms = ["statistics"]
    return forms, period


def reporting_period_form(campaign: CampaignRow, number: int) -> ReportingPeriodForm | None:
    """The campaign's `number`-th 报送 period (1: the first), or None when it has no such period."""
    days = report_days(campaign)
    if not 1 <= number <= len(days):
        return None
    start = campaign.start if number == 1 else days[number - 2] + timedelta(days=1)
    due = days[number - 1]
    tz = ZoneInfo(campaign.timezone)
    since = datetime.combine(start, time.min, tz)
    bounds = PeriodBounds(since, datetime.combine(due + timedelta(days=1), time.min, tz), due)
    return ReportingPeriodForm(number, bounds, start)


def ledger_reply(
    context: Context, unit_ids: set[str] | None, forms: Sequence[Form] = (), period: ReportingPeriodForm | None = None
) -> Reply:
    """Reply with one XLSX: the asked forms, else the ledger, the building summary (when the scope's schools have
    buildings), the statistics and the checklist (when one is configured)."""
    session = context.session
    buildings = context_buildings(context)
    in_scope = [b for b in buildings if unit_ids is None or b.unit_id in unit_ids]
    if not forms:
        every: list[Form] = ["ledger", "buildings", "statistics", "checklist"]
        skip = {*([] if in_scope else ["buildings"]), *([] if context.policy.checklist else ["checklist"])}
        forms = [form for form in every if form not in skip]
    if "checklist" in forms and not context.policy.checklist:
        return Reply("配置中还没有项目清单（[[checklist]]），请管理员在配置文件中添加后再导出清单表。")
    result = export_workbook(
        session,
        campaign=context.campaign,
        forms=forms,
        unit_ids=unit_ids,
        unit_name=reporting_unit_name(context),
        on=context.today,
        buildings=buildings,
        checklist=context.policy.checklist,
        period=period,
    )
    counts = ledger_counts(session, campaign_id=context.campaign.id, unit_ids=unit_ids)
    sheets = "、".join(f"《{FORM_LABELS[form]}》" for form in result.sheets)
    return Reply(
        f"隐患台账已导出：共{counts.total}条（已销号{counts.closed}条，未销号{counts.open}条）。\n"
        f"文件内含{sheets}，A4横向，可直接打印签字。",
        file_name=ledger_file_name(context.campaign, context.today),
        file_data=result.data,
    )


HELP_EXPORT = (
    "导出隐患台账（Excel，含《问题隐患自查整改清单》、建筑单体汇总表、销号统计表、项目清单）：台账\n"
    f"只导出其中一张表：导出 统计表（可选：{FORM_CHOICES}）\n"
    "某一期报送的统计表（与各校报送数核对）：导出 统计表 第3期"
)


def handle_export(command: Command, context: Context) -> list[Reply]:
    """台账 / 导出 [表名]: the official forms as one XLSX in the seeds' layouts."""
    asked = forms_asked(command.note)
    if asked is None:
        return [Reply(f"没有「{command.note}」这张表。可以导出：{FORM_CHOICES}，例如：导出 统计表；只发「台账」导出全部。")]
    forms, number = asked
    period = None
    if number is not None:
        period = reporting_period_form(context.campaign, number)
        count = len(report_days(context.campaign))
        if period is None or forms != ["statistics"]:
            why = f"本活动共{count}期报送" if period is None else "按期导出只适用于统计表"
            return [Reply(f"{why}，请改为例如：导出 统计表 第{min(max(number, 1), count) or 1}期")]
    return [ledger_reply(context, report_units(context), forms, period)]


EXPORT = CommandSpec(
    "export", ("台账", "导出", "导出台账"), handle_export, usage="台账", summary="导出隐患台账（Excel）",
    help=HELP_EXPORT,
)
