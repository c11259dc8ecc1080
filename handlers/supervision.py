"""挂牌督办: the 督办单 of a 重大 hazard as XLSX (openpyxl, like handlers/exports.py), sent to the leaders' groups.

The sheet carries the hazard as reported and the 五到位 left for the leaders to fill in and sign:
整改措施、整改资金、整改期限、整改责任人、应急预案 (seed 002: 落实整改责任、措施、资金、时限、预案).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from io import BytesIO

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side

FIVE_IN_PLACE: tuple[tuple[str, str], ...] = (
    ("整改措施", "（写明具体措施）"),
    ("整改资金", "（金额及来源）"),
    ("整改期限", ""),
    ("整改责任人", ""),
    ("应急预案", "（整改完成前的防范和应急措施）"),
)


@dataclass(frozen=True, slots=True)
class SupervisionSheet:
    """What a 督办单 shows of one hazard."""

    campaign: str
    number: int
    school: str
    unit: str
    location: str
    problem: str
    category: str
    responsible: str
    reporter: str
    found_at: datetime  # local time
    deadline: date
    measure: str = ""
    every_days: int = 10


def supervision_file_name(sheet: SupervisionSheet) -> str:
    return f"督办单_#{sheet.number}_{sheet.found_at:%Y%m%d}.xlsx"


def supervision_workbook(sheet: SupervisionSheet) -> bytes:
    """The 重大隐患挂牌督办单 as an XLSX file, one A4 portrait page."""
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.title = "督办单"
    thin = Side(style="thin")
    box = Border(left=thin, right=thin, top=thin, bottom=thin)
    wrap = Alignment(wrap_text=True, vertical="center")
    ws.column_dimensions["A"].width = 16
    ws.column_dimensions["B"].width = 60
    ws.merge_cells("A1:B1")
    ws["A1"] = "重大隐患挂牌督办单"
    ws["A1"].font = Font(size=16, bold=True)
    ws["A1"].alignment = Alignment(horizontal="center")
    ws.merge_cells("A2:B2")
    ws["A2"] = f"{sheet.campaign}　督办编号：#{sheet.number}　挂牌日期：{sheet.found_at:%Y年%m月%d日}"
    rows: list[tuple[str, str]] = [
        ("学校", sheet.school),
        ("责任单位", sheet.unit),
        ("隐患部位", sheet.location),
        ("存在隐患问题", sheet.problem),
        ("类别", f"{sheet.category}（重大）"),
        ("发现人 / 时间", f"{sheet.reporter}　{sheet.found_at:%Y-%m-%d %H:%M}"),
        ("责任人", sheet.responsible or "未指定"),
        ("整改期限", f"{sheet.deadline:%Y年%m月%d日}"),
    ]
    rows += [(f"五到位·{name}", sheet.measure if name == "整改措施" and sheet.measure else hint)
             for name, hint in FIVE_IN_PLACE]
    rows += [
        ("督办要求", f"整改完成前每{sheet.every_days}天复查一次；整改完成后在群里发「整改 #{sheet.number}」"
                     "并附照片，验收合格后销号。"),
        ("分管领导签字", ""),
        ("主要负责人签字", ""),
    ]
    for offset, (label, value) in enumerate(rows, start=3):
        ws.cell(row=offset, column=1, value=label).font = Font(bold=True)
        ws.cell(row=offset, column=2, value=value)
        for column in (1, 2):
            ws.cell(row=offset, column=column).border = box
            ws.cell(row=offset, column=column).alignment = wrap
        ws.row_dimensions[offset].height = 36 if label.startswith(("五到位", "存在", "督办", "分管", "主要")) else 22
    ws.page_setup.orientation = "portrait"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    buffer = BytesIO()
    book.save(buffer)
    return buffer.getvalue()
