"""台账 exports: the seeds' paper forms as XLSX, ready to print on A4 landscape and sign.

- ledger: 问题隐患自查整改清单 in the exact columns of seed 003 附件2;
- buildings: 排查情况汇总表 of seed 004 附件, one row per 建筑单体 and its 合计 line;
- statistics: 隐患排查整改销号统计表 of seed 002 附件1, one row per unit and a 合计 row.

Sheets are written in openpyxl's write-only mode (rows stream out as they are appended), so a ledger of
100,000 hazards needs little memory; the header block, widths, wrapping, frozen header, print titles and
page set-up are all set before the rows are written, as write-only mode requires.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
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
from handlers.context import Context
from handlers.messages import Reply
from handlers.stats import report_units, reporting_unit_name
from models.ledger import total_figures
from models.reports import (
    BuildingInfo,
    BuildingRow,
    BuildingSummary,
    LedgerLine,
    StatisticsRow,
    building_summary,
    ledger_counts,
    ledger_lines,
    statistics_rows,
)
from models.tables import CampaignRow, HazardStatus

Form = Literal["ledger", "buildings", "statistics"]
FORMS: tuple[Form, ...] = ("ledger", "buildings", "statistics")

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
SHEET_NAMES: dict[Form, str] = {"ledger": "隐患台账", "buildings": "建筑单体汇总", "statistics": "销号统计表"}
FORM_LABELS: dict[Form, str] = {
    "ledger": "问题隐患自查整改清单",
    "buildings": "排查情况汇总表（建筑单体）",
    "statistics": "隐患排查整改销号统计表",
}

SIGNATURES = "主要负责人签字：__________　　　填表人签字：__________　　　联系电话：__________"  # seed 004

_THIN = Side(style="thin", color="000000")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_HEAD_FILL = PatternFill("solid", start_color="F2F2F2", end_color="F2F2F2")
_TITLE = {"font": Font(size=16, bold=True), "alignment": Alignment(horizontal="center", vertical="center")}
_INFO = {"font": Font(size=11), "alignment": Alignment(horizontal="left", vertical="center")}
_HEAD = {
    "font": Font(bold=True),
    "alignment": Alignment(horizontal="center", vertical="center", wrap_text=True),
    "border": _BORDER,
    "fill": _HEAD_FILL,
}
_WRAP = {"alignment": Alignment(horizontal="left", vertical="center", wrap_text=True), "border": _BORDER}
_CENTER = {"alignment": Alignment(horizontal="center", vertical="center", wrap_text=True), "border": _BORDER}
_TOTAL = {
    "font": Font(bold=True),
    "alignment": Alignment(horizontal="center", vertical="center", wrap_text=True),
    "border": _BORDER,
}
_TOTAL_TEXT = {
    "font": Font(bold=True),
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
    book: Workbook, form: Form, columns: Sequence[tuple[str, float]], *, header_rows: tuple[int, int]
) -> WriteOnlyWorksheet:
    """A sheet with widths, print set-up (A4 landscape, fit to width, repeated header) and a frozen header."""
    sheet: WriteOnlyWorksheet = book.create_sheet(SHEET_NAMES[form])
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


def _remark(line: LedgerLine, today: date) -> str:
    parts = []
    if line.level == "重大":
        parts.append("重大隐患")
    if line.status in (HazardStatus.RECTIFYING.value, HazardStatus.RECTIFIED.value):
        overdue = "（已逾期）" if line.status == HazardStatus.RECTIFYING.value and line.deadline < today else ""
        parts.append(f"期限{line.deadline:%Y-%m-%d}{overdue}")
    if line.remark:
        parts.append(line.remark)
    return "；".join(parts)


def write_ledger_sheet(book: Workbook, lines: Iterable[LedgerLine], header: FormHeader, tz: ZoneInfo) -> int:
    """Add the 问题隐患自查整改清单 sheet; returns the number of hazard rows written."""
    width = len(LEDGER_COLUMNS)
    sheet = _new_sheet(book, "ledger", LEDGER_COLUMNS, header_rows=(3, 3))
    _header_block(
        sheet, header, width,
        f"填报单位（章）：{header.unit_name}　　　主要负责人：__________　　　日期：{header.date_text}",
    )
    _heading_row(sheet, [name for name, _ in LEDGER_COLUMNS])
    rows = _Rows(sheet, [_CENTER, _WRAP, _WRAP, _WRAP, _WRAP, _WRAP, _CENTER, _CENTER, _CENTER, _WRAP])
    count = 0
    for line in lines:
        closed = line.closed_at.astimezone(tz).strftime("%Y-%m-%d") if line.closed_at else None
        rows.append((
            line.number, line.location, line.check_item, line.problem, line.measure, line.completion_text,
            line.responsible_name, line.found_at.astimezone(tz).strftime("%Y-%m-%d"), closed,
            _remark(line, header.on),
        ))
        count += 1
    footer = 3 + count + 2
    sheet.append([])
    _line(sheet, footer, width, "上报人：__________　　　联系方式：__________")
    return count


# -- buildings (seed 004 附件) ------------------------------------------------------------------------


def _building_remark(row: BuildingRow) -> str:
    parts = []
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


def write_buildings_sheet(book: Workbook, summary: BuildingSummary, header: FormHeader) -> None:
    """Add the 排查情况汇总表 sheet: a two-row header, one row per building, and the 合计 line."""
    width = len(BUILDING_COLUMNS)
    sheet = _new_sheet(book, "buildings", BUILDING_COLUMNS, header_rows=(3, 4))
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
            content = "无"
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
    if summary.unassigned:
        _line(sheet, next_row, width, f"注：另有{summary.unassigned}项隐患未关联建筑单体，见隐患台账。")
        next_row += 1
    sheet.append([])
    _line(sheet, next_row + 1, width, SIGNATURES)


# -- statistics (seed 002 附件1) ---------------------------------------------------------------------


def write_statistics_sheet(
    book: Workbook, rows: Sequence[StatisticsRow], header: FormHeader, *, period: str
) -> None:
    """Add the 隐患排查整改销号统计表 sheet: one row per unit and the 合计 row."""
    width = len(STATISTICS_COLUMNS)
    sheet = _new_sheet(book, "statistics", STATISTICS_COLUMNS, header_rows=(3, 3))
    _header_block(
        sheet, header, width,
        f"填报单位（盖章）：{header.unit_name}　　　统计时段：{period}　　　填报日期：{header.date_text}",
    )
    _heading_row(sheet, [name for name, _ in STATISTICS_COLUMNS])
    body = _Rows(sheet, [_CENTER, _WRAP, *([_CENTER] * 6), _WRAP])
    for seq, row in enumerate(rows, start=1):
        f = row.figures
        body.append((seq, "　" * row.depth + row.name, f.found, f.rectified, f.closed, f.outstanding, f.overdue,
                     f.major, None))
    total = total_figures(row.figures for row in rows)
    sheet.append([
        _cell(sheet, None, _TOTAL), _cell(sheet, "合计", _TOTAL),
        *(_cell(sheet, value, _TOTAL) for value in (total.found, total.rectified, total.closed,
                                                     total.outstanding, total.overdue, total.major)),
        _cell(sheet, None, _TOTAL),
    ])
    note_row = 3 + len(rows) + 2
    sheet.row_dimensions[note_row].height = 32
    _line(sheet, note_row, width,
          "注：已整改数含已销号；未销号数＝整改中＋已整改待验收；其中逾期指超过整改期限仍未整改；"
          "重大隐患为尚未销号的重大隐患。", {"font": Font(size=10), "alignment": Alignment(wrap_text=True,
                                                                                     vertical="center")})
    sheet.append([])
    _line(sheet, note_row + 2, width, SIGNATURES)


# -- putting forms together -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportResult:
    data: bytes
    sheets: tuple[Form, ...]
    ledger_rows: int = 0


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
) -> ExportResult:
    """Write the requested forms (one sheet each) for the given units (None: all) into one XLSX."""
    tz = ZoneInfo(campaign.timezone)
    scope = None if unit_ids is None else set(unit_ids)
    book = Workbook(write_only=True)
    written: list[Form] = []
    ledger_rows = 0
    for form in forms:
        if form == "ledger":
            header = FormHeader(f"{unit_name}安全隐患自查整改清单", unit_name, on)
            ledger_rows = write_ledger_sheet(
                book, ledger_lines(session, campaign_id=campaign.id, unit_ids=scope), header, tz
            )
        elif form == "buildings":
            summary = building_summary(
                session, campaign_id=campaign.id, buildings=buildings, unit_ids=scope, problem_limit=problem_limit
            )
            header = FormHeader(f"{campaign.name}排查情况汇总表", unit_name, on)
            write_buildings_sheet(book, summary, header)
        elif form == "statistics":
            rows = statistics_rows(session, campaign_id=campaign.id, unit_ids=scope, today=on)
            header = FormHeader(f"{campaign.name}隐患排查整改销号统计表", unit_name, on)
            period = f"{campaign.start:%Y-%m-%d} 至 {min(on, campaign.end):%Y-%m-%d}"
            write_statistics_sheet(book, rows, header, period=period)
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


def ledger_reply(context: Context, unit_ids: set[str] | None) -> Reply:
    """Reply with one XLSX: the ledger, the building summary (when buildings are configured) and the statistics."""
    session = context.session
    buildings = context_buildings(context)
    in_scope = [b for b in buildings if unit_ids is None or b.unit_id in unit_ids]
    forms: list[Form] = ["ledger", "buildings", "statistics"] if in_scope else ["ledger", "statistics"]
    result = export_workbook(
        session,
        campaign=context.campaign,
        forms=forms,
        unit_ids=unit_ids,
        unit_name=reporting_unit_name(context),
        on=context.today,
        buildings=buildings,
    )
    counts = ledger_counts(session, campaign_id=context.campaign.id, unit_ids=unit_ids)
    sheets = "、".join(f"《{FORM_LABELS[form]}》" for form in result.sheets)
    return Reply(
        f"隐患台账已导出：共{counts.total}条（已销号{counts.closed}条，未销号{counts.open}条）。\n"
        f"文件内含{sheets}，A4横向，可直接打印签字。",
        file_name=ledger_file_name(context.campaign, context.today),
        file_data=result.data,
    )


HELP_EXPORT = "导出隐患台账（Excel，含《问题隐患自查整改清单》、建筑单体汇总表、销号统计表）：台账"


def handle_export(command: Command, context: Context) -> list[Reply]:
    """台账: the ledger, building summary and statistics as one XLSX in the official layouts."""
    return [ledger_reply(context, report_units(context))]


EXPORT = CommandSpec(
    "export", ("台账", "导出", "导出台账"), handle_export, usage="台账", summary="导出隐患台账（Excel）",
    help=HELP_EXPORT,
)
