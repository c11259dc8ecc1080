"""台账 export: the ledger in the exact columns of seed 003 附件2, ready to print and sign."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from io import BytesIO
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from sqlmodel import Session, select

from handlers.context import Context
from handlers.directory import unit_names
from handlers.messages import Reply
from models.tables import CampaignRow, Hazard, HazardStatus

LEDGER_COLUMNS: tuple[tuple[str, int], ...] = (
    ("序号", 6), ("部位", 18), ("检查内容", 16), ("存在隐患问题", 30), ("整改措施", 22),
    ("整改完成情况", 18), ("责任人", 10), ("检查时间", 12), ("销号时间", 12), ("备注", 16),
)

_THIN = Side(style="thin", color="000000")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_WRAP = Alignment(wrap_text=True, vertical="center")
_CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)


def ledger_hazards(session: Session, *, campaign_id: str, unit_ids: Iterable[str] | None) -> list[Hazard]:
    """Ledger rows in number order; withdrawn reports are left out."""
    statement = select(Hazard).where(
        Hazard.campaign_id == campaign_id, Hazard.status != HazardStatus.WITHDRAWN.value
    )
    if unit_ids is not None:
        statement = statement.where(Hazard.unit_id.in_(set(unit_ids)))  # type: ignore[attr-defined]
    return list(session.exec(statement.order_by(Hazard.number)))


def _print_setup(sheet: Worksheet, header_row: int) -> None:
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.print_title_rows = f"{header_row}:{header_row}"
    sheet.page_margins.left = sheet.page_margins.right = 0.4
    sheet.freeze_panes = sheet.cell(row=header_row + 1, column=1)


def ledger_workbook(
    hazards: Sequence[Hazard], *, title: str, unit_name: str, on: date, tz: ZoneInfo
) -> bytes:
    """Build the 问题隐患自查整改清单 workbook and return its bytes."""
    book = Workbook()
    sheet = book.active
    sheet.title = "隐患台账"
    width = len(LEDGER_COLUMNS)
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    sheet["A1"] = title
    sheet["A1"].font = Font(size=16, bold=True)
    sheet["A1"].alignment = _CENTER
    sheet.row_dimensions[1].height = 30
    sheet.merge_cells(start_row=2, start_column=1, end_row=2, end_column=width)
    sheet["A2"] = (
        f"填报单位（章）：{unit_name}　　主要负责人：__________　　"
        f"日期：{on.year}年{on.month}月{on.day}日"
    )
    sheet["A2"].alignment = Alignment(vertical="center")
    header_row = 3
    for column, (name, col_width) in enumerate(LEDGER_COLUMNS, start=1):
        cell = sheet.cell(row=header_row, column=column, value=name)
        cell.font = Font(bold=True)
        cell.alignment = _CENTER
        cell.border = _BORDER
        sheet.column_dimensions[get_column_letter(column)].width = col_width
    for offset, hazard in enumerate(hazards, start=1):
        closed = hazard.closed_at.astimezone(tz).strftime("%Y-%m-%d") if hazard.closed_at else ""
        values = (
            hazard.number, hazard.location, hazard.check_item, hazard.problem, hazard.measure,
            hazard.completion or hazard.status_label_for_ledger(), hazard.responsible_name,
            hazard.found_at.astimezone(tz).strftime("%Y-%m-%d"), closed, _remark(hazard),
        )
        row = header_row + offset
        for column, value in enumerate(values, start=1):
            cell = sheet.cell(row=row, column=column, value=value)
            cell.alignment = _CENTER if column in (1, 7, 8, 9) else _WRAP
            cell.border = _BORDER
    footer = header_row + len(hazards) + 2
    sheet.cell(row=footer, column=1, value="上报人：__________　　联系方式：__________")
    _print_setup(sheet, header_row)
    buffer = BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _remark(hazard: Hazard) -> str:
    parts = []
    if hazard.level == "重大":
        parts.append("重大隐患")
    if hazard.status != HazardStatus.CLOSED.value:
        parts.append(f"期限{hazard.deadline:%m-%d}")
    if hazard.remark:
        parts.append(hazard.remark)
    return "；".join(parts)


def ledger_file_name(campaign: CampaignRow, on: date) -> str:
    return f"隐患台账_{campaign.id}_{on:%Y%m%d}.xlsx"


def ledger_reply(context: Context, unit_ids: set[str] | None) -> Reply:
    """Reply with the ledger XLSX of the given units."""
    session = context.session
    hazards = ledger_hazards(session, campaign_id=context.campaign.id, unit_ids=unit_ids)
    root = context.group_unit_ids and sorted(context.group_unit_ids)[0]
    unit_name = unit_names(session, [root]).get(root, "") if root else ""
    data = ledger_workbook(
        hazards,
        title=f"{unit_name}安全隐患自查整改清单",
        unit_name=unit_name,
        on=context.today,
        tz=context.now.tzinfo,  # type: ignore[arg-type]
    )
    closed = sum(1 for h in hazards if h.status == HazardStatus.CLOSED.value)
    return Reply(
        f"隐患台账已导出：共{len(hazards)}条（已销号{closed}条，未销号{len(hazards) - closed}条）。",
        file_name=ledger_file_name(context.campaign, context.today),
        file_data=data,
    )


