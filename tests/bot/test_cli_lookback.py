"""`safetybot findings import`, `safetybot lookback draw` and `safetybot audit` on the example config's 回头看
(lookback-2027), at a fixed time inside it."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlmodel import Session, select

from bot.cli import main
from models.db import make_engine
from models.tables import Hazard, HazardEvent

NOW = "2027-03-05T10:00+08:00"


def ledger_xlsx(path: Path) -> Path:
    """The seed 003 附件2 layout: title, 部门（章）, header, numbered rows (some empty), signature lines."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["枣庄科技职业学院安全隐患自查整改清单"])
    sheet.append(["部门（章）：总务基建处", None, None, "主要负责人：_____"])
    sheet.append(["日期： _____ 年 _____ 月 _____ 日"])
    sheet.append(["序号", "部位", "检查内容", "存在隐患问题", "整改措施", "整改完成情况", "责任人", "检查时间", "销号时间", "备注"])
    sheet.append([1, "1号教学楼三楼", "消防设施", "灭火器压力不足", "更换灭火器", None, "王建国", "2026-11-28", None, "县普查"])
    sheet.append([2, "食堂后厨", "燃气安全", "燃气报警器失灵", "更换报警器", "已整改", "王建国", "2026-12-02",
                  "2026-12-20", "市级抽查"])
    sheet.append([3, "行政楼", "用电", "配电箱未上锁", None, None, "李四", "2026年12月3日", None, None])
    sheet.append([4, None, None, None, None, None, None, None, None, None])
    sheet.append(["上报人： _____", None, "联系方式： _____"])
    path = path / "ledger.xlsx"
    book.save(path)
    return path


def summary_xlsx(path: Path) -> Path:
    """The seed 004 附件 (回头看排查情况汇总表) as the form is laid out: title, 填报单位, a header over two rows
    (不能立即整改的隐患 merged over 计划完成日期 · 具体责任人 · 是否停用; the other names merged down), one row per
    building with its hazards as 1. 2. 3., the form's unfilled lines, the 合计 line and the signatures."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["校园消防安全专项整治“回头看”排查情况汇总表"])
    sheet.append(["填报单位：城南小学", None, None, None, "（盖章）", None, "日期：2027年3月4日"])
    sheet.append(["序号", "建筑物名称", "新发现隐患内容\n（无隐患填“无”）", "是否能立即整改", "不能立即整改的隐患", None, None,
                  "备注"])
    sheet.append([None, None, None, None, "计划完成日期", "具体\n责任人", "是否停用", None])
    for column in "ABCDH":
        sheet.merge_cells(f"{column}3:{column}4")
    sheet.merge_cells("E3:G3")
    sheet.append([1, "教学楼", "1.三楼灭火器过期\n2.疏散指示标志不亮\n3.", "是", None, None, None, None])
    sheet.append([2, "食堂", "1.燃气管道老化\n2.\n3.", "否", "2027-04-30", "孙丽", "否", "已报教育局"])
    sheet.append([3, "图书室", "无", None, None, None, None, None])
    sheet.append([4, "操场看台", None, None, None, None, None, None])
    sheet.append(["...", None, "...", None, None, None, None, None])
    sheet.append([None, None, "1.\n2.\n3.", None, None, None, None, None])
    sheet.append(["合计", "校内建筑单体数：（4）栋；发现隐患单体数：（2）栋，能立即整改单体数：（1）栋。"])
    sheet.merge_cells("B11:H11")
    sheet.append(["主要负责人签字：", None, None, "填表人签字：", None, None, "联系电话："])
    path = path / "summary.xlsx"
    book.save(path)
    return path


def simple_csv(path: Path) -> Path:
    path = path / "findings.csv"
    path.write_text(
        "来源,单位,部位,问题,发现日期,期限\n"
        "省督查,城关第一中学,学生宿舍1号楼,疏散通道堆放杂物,2026-12-10,\n"
        "审计,城南小学,教学楼,消防栓无水,2026-12-11,2027-03-20\n"
        "市抽查,城关二中,教学楼,应急灯不亮,2026-12-12,\n"
        "县普查,城南,食堂,插座松动,2026-12-12,\n"
        "路人,城南小学,食堂,灭火器过期,2026-12-12,\n"
        "通报,城南小学,食堂,灭火器过期,12月的某天,\n"
        "通报,城南小学,食堂,灭火器过期,2026-12-12,2027-01-01\n",
        encoding="utf-8-sig",
    )
    return path


def hazards(config_path: Path) -> list[Hazard]:
    db = make_engine(f"sqlite:///{config_path.parent / 'safetybot.db'}")
    try:
        with Session(db) as session:
            return list(session.exec(
                select(Hazard).where(Hazard.campaign_id == "lookback-2027").order_by(Hazard.number)
            ))
    finally:
        db.dispose()


def test_import_of_the_seed_003_ledger_keeps_source_and_date(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = ledger_xlsx(tmp_path)
    args = ["findings", "import", str(sheet), "--config", str(config_path), "--campaign", "lookback-2027", "--now", NOW]
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing was written" in out and "读取：附件2台账格式，可登记3条，未登记0条" in out
    assert hazards(config_path) == []
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "第5行 → #1 总务基建处 1号教学楼三楼 灭火器压力不足 来源：县普查（2026-11-28）" in out
    assert "第6行 → #2 总务基建处 食堂后厨 燃气报警器失灵 来源：市抽查（2026-12-02），已销号" in out
    assert "第7行 提示：责任人「李四」不在名单中" in out
    rows = hazards(config_path)
    assert [(h.origin, h.origin_date.isoformat() if h.origin_date else None, h.status, h.missed_by_school)
            for h in rows] == [
        ("县普查", "2026-11-28", "rectifying", True),
        ("市抽查", "2026-12-02", "closed", True),
        ("自查", "2026-12-03", "rectifying", False),
    ]
    assert rows[0].unit_id == "logistics" and rows[0].responsible_id == "wang_jianguo"
    assert rows[0].building_id == "s1-teach1" and rows[0].deadline.isoformat() == "2027-03-12"
    assert rows[2].responsible_name == "李四" and rows[2].responsible_id is None
    # The imported closed finding has no photos and no verifier: the archive check says so.
    assert main(["audit", "--config", str(config_path), "--campaign", "lookback-2027", "--now", NOW]) == 0
    out = capsys.readouterr().out
    assert "#2 食堂后厨 燃气报警器失灵：无整改前照片、无整改后照片、无验收人" in out


def test_import_of_a_simple_list_reports_the_rows_it_cannot_match(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = simple_csv(tmp_path)
    args = ["findings", "import", str(sheet), "--config", str(config_path), "--campaign", "lookback-2027", "--now", NOW]
    assert main(args) == 1  # some rows were not filed
    out = capsys.readouterr().out
    assert "读取：简单清单格式，可登记2条，未登记5条" in out
    assert "第4行 未登记：单位「城关二中」不在本次回头看的单位中，请写本次回头看单位的全称或简称" in out
    assert "第5行 未登记：单位「城南」不在本次回头看的单位中，是不是「城南小学」？请改成完整名称" in out
    assert "第6行 未登记：来源「路人」看不懂" in out
    assert "第7行 未登记：发现日期「12月的某天」看不懂，请写成 2023-11-28" in out
    assert "第8行 未登记：期限 2027-01-01 已经过去" in out
    rows = hazards(config_path)
    assert [(h.unit_id, h.origin, h.location, h.missed_by_school) for h in rows] == [
        ("school", "省督查", "学生宿舍1号楼", True), ("school2", "审计", "教学楼", False),
    ]
    assert rows[1].deadline.isoformat() == "2027-03-20" and rows[1].building_id == "s2-teach"
    db = make_engine(f"sqlite:///{config_path.parent / 'safetybot.db'}")
    with Session(db) as session:
        event = session.exec(select(HazardEvent).where(HazardEvent.hazard_id == rows[0].id)).one()
    db.dispose()
    assert (event.action, event.actor_id, event.detail) == ("import", "liu_yang", "导入：来源 省督查（2026-12-10），第2行")


def test_import_of_the_seed_004_summary_with_its_two_row_header(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = summary_xlsx(tmp_path)
    args = ["findings", "import", str(sheet), "--config", str(config_path), "--campaign", "lookback-2027", "--now", NOW]
    assert main(args) == 1  # the building named without its hazards is refused, not guessed
    out = capsys.readouterr().out
    assert "读取：回头看排查情况汇总表格式，可登记3条，未登记1条" in out, out
    assert "第5行第1项 → #1 城南小学 教学楼 三楼灭火器过期 来源：自查" in out
    assert "第5行第2项 → #2 城南小学 教学楼 疏散指示标志不亮 来源：自查" in out
    assert "第6行 → #3 城南小学 食堂 燃气管道老化 来源：自查" in out
    assert "第7行 图书室：无隐患，不登记" in out
    assert "第8行 未登记：「操场看台」没有写隐患问题，没有隐患请填「无」" in out
    assert "合计" not in out and "校内建筑单体数" not in out
    rows = hazards(config_path)
    assert [(h.unit_id, h.location, h.problem, h.building_id) for h in rows] == [
        ("school2", "教学楼", "三楼灭火器过期", "s2-teach"),
        ("school2", "教学楼", "疏散指示标志不亮", "s2-teach"),
        ("school2", "食堂", "燃气管道老化", "s2-canteen"),
    ]
    canteen = rows[2]
    assert canteen.deadline.isoformat() == "2027-04-30"  # 不能立即整改的隐患 · 计划完成日期
    assert (canteen.responsible_id, canteen.responsible_name) == ("sun_li", "孙丽")  # · 具体责任人
    assert canteen.remark == "是否能立即整改：否；是否停用：否；已报教育局"
    assert rows[0].remark == "是否能立即整改：是" and rows[0].deadline.isoformat() == "2027-03-12"  # the default


def test_a_file_without_a_header_is_refused(config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sheet = tmp_path / "x.csv"
    sheet.write_text("a,b\n1,2\n", encoding="utf-8")
    assert main(["findings", "import", str(sheet), "--config", str(config_path), "--campaign", "lookback-2027"]) == 1
    assert "没有找到表头" in capsys.readouterr().err


def test_lookback_draw_on_a_campaign_with_nothing_closed(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lookback", "draw", "--config", str(config_path), "--campaign", "lookback-2027", "--now", NOW]) == 0
    assert "0 复查 items from winter-2026" in capsys.readouterr().out
    assert main(["lookback", "draw", "--config", str(config_path), "--campaign", "winter-2026", "--now", NOW]) == 2


def test_check_config_names_an_unknown_looked_back_campaign() -> None:
    import tomllib

    from bot.config import ConfigError, parse_config
    from tests.conftest import EXAMPLE_CONFIG

    data = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    lookback = next(c for c in data["campaigns"] if c["id"] == "lookback-2027")
    assert lookback["kind"] == "lookback" and [p["name"][:2] for p in lookback["phases"]] == ["自查", "整改", "督查"]
    lookback["looks_back_on"] = ["winter-2062", "lookback-2027"]
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    lines = error.value.lines("en")
    assert any("looks_back_on[0]" in line and "winter-2062" in line and "winter-2026" in line for line in lines), lines
    assert any("looks_back_on[1]" in line for line in lines)  # not itself


def test_a_summary_cell_is_split_only_at_its_item_numbers(tmp_path: Path) -> None:
    """1. 2. (or 1、 ①) start items; 3号楼 and 1.05米 inside a hazard's words do not."""
    from handlers.findings import read_sheet

    path = tmp_path / "summary.csv"
    path.write_text(
        "序号,建筑物名称,新发现隐患内容（无隐患填“无”）,是否能立即整改,不能立即整改的隐患,,,备注\n"
        ",,,,计划完成日期,具体责任人,是否停用,\n"
        "1,教学楼,\"1、3号楼梯栏杆高度1.05米不足 2、配电箱未上锁\",是,,,,\n"
        "2,食堂,①灭火器过期；②应急灯不亮,是,,,,\n"
        "3,宿舍楼,3号宿舍插座松动,否,2027-04-01,孙丽,是,\n",
        encoding="utf-8",
    )
    sheet = read_sheet(path)
    assert sheet.layout == "summary"
    assert [(row.where, row.values["problem"]) for row in sheet.rows] == [
        ("第3行第1项", "3号楼梯栏杆高度1.05米不足"), ("第3行第2项", "配电箱未上锁"),
        ("第4行第1项", "灭火器过期"), ("第4行第2项", "应急灯不亮"),
        ("第5行", "3号宿舍插座松动"),
    ]
    assert sheet.rows[-1].values == {
        "seq": "3", "location": "宿舍楼", "problem": "3号宿舍插座松动", "immediate": "否", "deadline": "2027-04-01",
        "responsible": "孙丽", "stopped": "是", "remark": "",
    }
