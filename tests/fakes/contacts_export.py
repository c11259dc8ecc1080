"""The contacts spreadsheet the WeCom / DingTalk admin consoles export (通讯录 → 导出), written from a `FakeOrg`.

The layouts follow the consoles: a title row above the header, the columns in the consoles' order and names,
departments as paths from the organisation's root (WeCom `/` and `;`, DingTalk `-` and `,`).
"""

from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook

from tests.fakes.contacts import FakeOrg

WECOM_HEADER = ["姓名", "账号", "别名", "职务", "部门", "性别", "手机", "座机", "个人邮箱", "地址", "企业邮箱",
                "激活状态", "禁用状态", "部门负责人"]
DINGTALK_HEADER = ["工号", "姓名", "UserID", "部门", "职位", "手机号", "分机号", "邮箱", "主管", "入职时间", "备注"]


def department_path(org: FakeOrg, dept_id: int, separator: str) -> str:
    names: list[str] = []
    cursor: int | None = dept_id
    while cursor is not None:
        names.append(org.departments[cursor].name)
        cursor = org.departments[cursor].parent_id
    return separator.join(reversed(names))


def write_wecom_export(org: FakeOrg, path: Path, *, header: list[str] | None = None) -> Path:
    book = Workbook()
    sheet = book.active
    sheet.append(["通讯录导出（某县教育局） 导出时间：2026-03-01 09:00"])
    sheet.append(header or WECOM_HEADER)
    for m in sorted(org.members.values(), key=lambda m: m.user_id):
        departments = ";".join(department_path(org, d, "/") for d in m.departments)
        leads = ";".join("是" if m.user_id in org.departments[d].leaders else "否" for d in m.departments)
        disabled = "禁用" if m.status in (2, 5) else "启用"
        row = {"姓名": m.name, "账号": m.user_id, "部门": departments, "性别": "女", "手机": m.mobile,
               "激活状态": "已激活", "禁用状态": disabled, "部门负责人": leads}
        sheet.append([row.get(column, "") for column in (header or WECOM_HEADER)])
    book.save(path)
    return path


def write_dingtalk_export(org: FakeOrg, path: Path) -> Path:
    book = Workbook()
    sheet = book.active
    sheet.append(["钉钉通讯录导出"])
    sheet.append(["说明：本表由管理后台导出，请勿修改表头"])
    sheet.append(DINGTALK_HEADER)
    for number, m in enumerate(sorted(org.members.values(), key=lambda m: m.user_id), start=1):
        departments = ",".join(department_path(org, d, "-") for d in m.departments)
        leads = ",".join("是" if m.user_id in org.departments[d].leaders else "否" for d in m.departments)
        row = {"工号": f"T{number:04d}", "姓名": m.name, "UserID": m.user_id, "部门": departments, "职位": "教师",
               "手机号": m.mobile, "主管": leads}
        sheet.append([row.get(column, "") for column in DINGTALK_HEADER])
    book.save(path)
    return path
