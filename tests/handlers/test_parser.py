"""The chat command language: realistic messages as teachers type them, and what the parser makes of them."""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from datetime import date
from typing import Any

import pytest

from handlers.categories import DEFAULT_CATEGORIES, infer_category, normalize_category
from handlers.command import Command, HazardFields
from handlers.commands import COMMAND_NAMES
from handlers.parser import parse_message

TODAY = date(2023, 12, 5)  # a Tuesday
FIELD_NAMES = frozenset(f.name for f in dataclass_fields(HazardFields))


def ok(case_id: str, text: str, command: str, *, today: date = TODAY, **expected: Any) -> Any:
    """A message that must parse without errors into `command` with the `expected` attributes."""
    return pytest.param(text, today, command, expected, id=case_id)


def _actual(parsed: Command, key: str) -> Any:
    return getattr(parsed.fields, key) if key in FIELD_NAMES else getattr(parsed, key)


GOOD = [
    # --- report: the DESIGN example and the usual shapes -------------------------------------------------
    ok("report-design-example",
       "隐患\n部位：3号教学楼二楼东侧\n问题：消防通道堆放杂物\n类别：消防\n责任人：王建国\n期限：12月10日", "report",
       location="3号教学楼二楼东侧", problem="消防通道堆放杂物", category="消防", responsible="王建国",
       deadline=date(2023, 12, 10), level=None, hazard_no=None, note=None),
    ok("report-one-line-comma-inside-value-stays",
       "隐患 部位：3号教学楼二楼东侧，问题：消防通道堆放杂物，影响疏散，期限：本周五", "report",
       location="3号教学楼二楼东侧", problem="消防通道堆放杂物，影响疏散", deadline=date(2023, 12, 8)),
    ok("report-shangbao-synonym-keys-hao",
       "上报\n位置：图书馆三楼阅览室\n隐患：应急灯不亮\n期限：12月10号", "report",
       location="图书馆三楼阅览室", problem="应急灯不亮", category="消防", deadline=date(2023, 12, 10)),
    ok("report-baogao-half-width-colons-semicolons",
       "报告 地点:食堂后厨;描述:留样记录不全;时限:明天", "report",
       location="食堂后厨", problem="留样记录不全", category="食品", deadline=date(2023, 12, 6)),
    ok("report-major-level-immediately",
       "隐患 部位：实验楼二楼化学实验室 问题：危化品柜未上锁 等级：重大 期限：立即", "report",
       problem="危化品柜未上锁", category="实验室", level="重大", deadline=TODAY),
    ok("report-without-command-word-ledger-keys",
       "隐患部位：操场东侧\n存在问题：篮球架底座松动\n整改期限：两周内", "report",
       location="操场东侧", problem="篮球架底座松动", category="设施设备", deadline=date(2023, 12, 19)),
    ok("report-fields-only-fullwidth-semicolons",
       "部位：1号宿舍楼楼道；问题：电动车在楼道内充电；责任人：李娜；期限：马上", "report",
       location="1号宿舍楼楼道", problem="电动车在楼道内充电", category="用电", responsible="李娜", deadline=TODAY),
    ok("report-traditional-characters",
       "隱患\n部位：3號教學樓二樓東側\n問題：消防通道堆放雜物\n類別：消防\n責任人：王建國\n期限：12月10日", "report",
       location="3号教学楼二楼东侧", problem="消防通道堆放杂物", category="消防", responsible="王建国",
       deadline=date(2023, 12, 10)),
    ok("report-hash-prefix-3-tian-nei",
       "#隐患 部位：行政楼一楼配电房 问题：配电箱门未上锁 期限：3天内", "report",
       location="行政楼一楼配电房", category="用电", deadline=date(2023, 12, 8)),
    ok("report-slash-prefix-category-synonym",
       "/上报 部位：校门口 问题：一键报警按钮失灵 类别：安防 期限：后天", "report",
       category="校园安防", deadline=date(2023, 12, 7)),
    ok("report-category-with-anquan-suffix",
       "隐患 部位：教学楼顶楼 问题：屋面渗水 类别：房屋安全 期限：月底", "report",
       category="建筑", deadline=date(2023, 12, 31)),
    ok("report-category-first-keyword-wins-on-tie",
       "隐患 部位：锅炉房 问题：锅炉压力表过期未检 期限：一周内", "report",
       category="特种设备", deadline=date(2023, 12, 12)),
    ok("report-zhongda-yinhuan-command-sets-level-and-closed",
       "重大隐患 部位：2号楼 问题：外墙瓷砖大面积脱落 停用：是", "report",
       level="重大", closed_building=True, category="建筑"),
    ok("report-immediate-no-xiazhou",
       "隐患 部位：操场 问题：单杠松动 立即整改：否 期限：下周五", "report",
       immediate=False, deadline=date(2023, 12, 15), category="设施设备"),
    ok("report-immediate-neng",
       "隐患 部位：男生宿舍 问题：私拉乱接电线 立即整改：能", "report", immediate=True, category="用电"),
    ok("report-immediate-y-closed-n",
       "隐患 部位:A栋 问题:吊顶渗水 立即整改:Y 停用:否", "report", immediate=True, closed_building=False),
    ok("report-year-month-day",
       "隐患 部位:食堂 问题:冰柜内食材过期 期限:2023年12月15日", "report", category="食品", deadline=date(2023, 12, 15)),
    ok("report-iso-date",
       "隐患 部位：体育馆 问题：安全出口指示灯不亮 期限：2023-12-15", "report", category="消防",
       deadline=date(2023, 12, 15)),
    ok("report-year-slash-date",
       "隐患 部位：东门 问题：监控摄像头损坏 期限：2023/12/15", "report", category="校园安防",
       deadline=date(2023, 12, 15)),
    ok("report-month-slash-day",
       "隐患 部位：3号楼 问题：楼梯扶手松动 期限：12/15", "report", category="建筑", deadline=date(2023, 12, 15)),
    ok("report-month-dot-day",
       "隐患 部位：办公楼 问题：插座烧焦 期限：12.15", "report", category="用电", deadline=date(2023, 12, 15)),
    ok("report-month-dash-day",
       "隐患 部位：图书馆 问题：吊顶有裂缝 期限：12-15", "report", category="建筑", deadline=date(2023, 12, 15)),
    ok("report-chinese-numeral-date",
       "隐患 部位：幼儿园午睡室 问题：取暖器靠近被褥 期限：十二月十日", "report", category="用电",
       deadline=date(2023, 12, 10)),
    ok("report-jintian", "隐患 部位：车棚 问题：电线老化 期限：今天", "report", deadline=TODAY),
    ok("report-dangtian", "隐患 部位：二楼卫生间 问题：地面积水湿滑 期限：当天", "report", deadline=TODAY),
    ok("report-dahoutian", "隐患 部位：音乐教室 问题：窗户玻璃破裂 期限：大后天", "report",
       category="建筑", deadline=date(2023, 12, 8)),
    ok("report-zhezhou", "隐患 部位：实验楼 问题：洗眼器无水 期限：这周五", "report",
       category="实验室", deadline=date(2023, 12, 8)),
    ok("report-xiaxiazhou", "隐患 部位：校车停车场 问题：减速带损坏 期限：下下周一", "report",
       category="交通", deadline=date(2023, 12, 18)),
    ok("report-bare-zhou", "隐患 部位：1号楼 问题：消火栓无水带 期限：周五", "report",
       category="消防", deadline=date(2023, 12, 8)),
    ok("report-xingqi", "隐患 部位：2号楼 问题：灭火器压力不足 期限：星期五", "report", deadline=date(2023, 12, 8)),
    ok("report-libai-longest-keyword-wins", "隐患 部位：3号楼 问题：疏散指示标志脱落 期限：礼拜五", "report",
       category="消防", deadline=date(2023, 12, 8)),
    ok("report-zhouri", "隐患 部位：食堂 问题：燃气管道老化 期限：周日", "report",
       category="燃气", deadline=date(2023, 12, 10)),
    ok("report-zhoutian", "隐患 部位：校门口 问题：保安未配备防护装备 期限：周天", "report",
       category="校园安防", deadline=date(2023, 12, 10)),
    ok("report-san-tian-nei", "隐患 部位：西侧围墙 问题：围墙有一段倒塌 期限：三天内", "report",
       deadline=date(2023, 12, 8)),
    ok("report-3-ri-nei", "隐患 部位：化学实验室 问题：试剂过期未处理 期限：3日内", "report",
       category="实验室", deadline=date(2023, 12, 8)),
    ok("report-1-zhou-nei", "隐患 部位：教学楼 问题：电梯异响 期限：1周内", "report",
       category="特种设备", deadline=date(2023, 12, 12)),
    ok("report-half-month", "隐患 部位：旧礼堂 问题：墙体开裂 期限：半个月内", "report",
       category="建筑", deadline=date(2023, 12, 20)),
    ok("report-one-month", "隐患 部位：操场 问题：跑道破损 期限：一个月内", "report", deadline=date(2024, 1, 5)),
    ok("report-ben-yuedi", "隐患 部位：宿舍 问题：应急灯损坏 期限：本月底", "report", deadline=date(2023, 12, 31)),
    ok("report-xia-yuedi", "隐患 部位：行政楼 问题：防火门闭门器损坏 期限：下月底", "report",
       category="消防", deadline=date(2024, 1, 31)),
    ok("report-niandi", "隐患 部位：校园东侧 问题：围墙护栏锈蚀 期限：年底", "report",
       category="校园安防", deadline=date(2023, 12, 31)),
    ok("report-hao-qian", "隐患 部位：小卖部 问题：售卖过期食品 期限：12月10号前", "report",
       category="食品", deadline=date(2023, 12, 10)),
    ok("report-date-rolls-into-next-year", "隐患 部位：操场 问题：足球门固定不牢 期限：1月5日", "report",
       deadline=date(2024, 1, 5)),
    ok("report-every-separator-on-one-line",
       "隐患 部位：3号楼，问题：插座松动；类别：用电;期限：12月8日", "report",
       location="3号楼", problem="插座松动", category="用电", deadline=date(2023, 12, 8)),
    ok("report-sloppy-spaces-around-half-width-colons",
       "隐患   部位 : 3号楼东侧   问题 :  插座松动  ", "report", location="3号楼东侧", problem="插座松动"),
    ok("report-wecom-mention-fullwidth-space-and-digits",
       "@安全助手\u2005隐患\u3000部位：３号楼，问题：灭火器过期", "report",
       location="3号楼", problem="灭火器过期", category="消防"),
    ok("report-leading-mention-stripped",
       "@安全小助手 隐患 部位：2号楼 问题：烟感报警器不亮", "report", location="2号楼", category="消防"),
    ok("report-numbered-list-lines",
       "隐患\n1、部位：3号楼\n2、问题：电线私拉乱接\n3、期限：本周五", "report",
       location="3号楼", problem="电线私拉乱接", deadline=date(2023, 12, 8)),
    ok("report-bracketed-keys", "【部位】实验楼\n【问题】通风橱不工作", "report",
       location="实验楼", problem="通风橱不工作", category="实验室"),
    ok("report-free-text-becomes-problem",
       "上报：3号楼消防栓坏了\n部位：3号楼", "report", problem="3号楼消防栓坏了", location="3号楼"),
    ok("report-free-text-with-problem-becomes-note",
       "隐患 今天巡查发现 部位：3号楼 问题：灭火器过期", "report", problem="灭火器过期", note="今天巡查发现"),
    ok("report-unit-measure-check-item-general-level",
       "隐患\n部位：食堂操作间\n问题：燃气灶软管老化\n单位：总务处\n措施：更换软管\n检查内容：燃气设施\n等级：一般隐患",
       "report", unit="总务处", measure="更换软管", check_item="燃气设施", level="一般", category="燃气"),
    ok("report-unknown-category-kept-as-typed",
       "隐患 部位：操场 问题：树枝断裂悬挂 类别：绿化", "report", category="绿化"),
    ok("report-category-inferred-from-location",
       "隐患 部位：配电房 问题：门锁坏了", "report", category="用电"),
    ok("report-no-keyword-no-category", "隐患 部位：3号楼 问题：门口有积水", "report", category=None),
    ok("report-baogao-yinhuan-mixed-separators",
       "报告隐患，位置:操场东侧;描述:篮球架底座松动;时限:两周内", "report",
       location="操场东侧", problem="篮球架底座松动", deadline=date(2023, 12, 19)),
    ok("report-yinhuan-as-problem-key", "隐患：消防通道堆放杂物\n位置：3号楼", "report",
       problem="消防通道堆放杂物", location="3号楼"),
    ok("report-responsible-at-sign-dropped", "隐患 部位：车棚 问题：电线私拉乱接 责任人：@徐强", "report",
       responsible="徐强"),
    ok("report-fuzeren-and-bumen", "隐患 部位：车棚 问题：充电桩漏电 负责人：徐强 部门：后勤", "report",
       responsible="徐强", unit="后勤"),
    ok("report-zhenggairen-jiezhi", "隐患 部位：图书馆 问题：书架不稳 整改人：王建国 截止：12月20日", "report",
       responsible="王建国", deadline=date(2023, 12, 20)),
    ok("report-wancheng-shijian", "隐患 部位：车棚 问题：电线乱拉 完成时间：12月9日", "report",
       deadline=date(2023, 12, 9)),
    ok("report-multiline-value-continues",
       "隐患\n部位：3号楼\n问题：消防通道堆放杂物\n还有几个纸箱挡住安全出口", "report",
       problem="消防通道堆放杂物\n还有几个纸箱挡住安全出口"),
    ok("report-colon-inside-value-is-text", "问题：门口写着注意：小心地滑\n部位：大门", "report",
       problem="门口写着注意：小心地滑"),
    ok("report-comma-word-colon-inside-value-stays", "隐患 部位：3号楼 问题：插座外壳破损，注意：勿触碰", "report",
       problem="插座外壳破损，注意：勿触碰"),
    ok("report-beizhu-note", "隐患 部位：3号楼 问题：插座松动 备注：已临时断电", "report", note="已临时断电"),
    ok("report-typed-without-colons", "隐患 部位3号楼 问题插座坏了 期限 周五", "report",
       location="3号楼", problem="插座坏了", deadline=date(2023, 12, 8)),
    ok("report-fields-only-without-colons", "位置 2号楼东侧楼梯间 问题 堆放杂物", "report",
       location="2号楼东侧楼梯间", problem="堆放杂物", category="消防"),
    # --- rectify -------------------------------------------------------------------------------------------
    ok("rectify-with-note", "整改 #23 已清理通道", "rectify", hazard_no=23, note="已清理通道"),
    ok("rectify-no-space-no-note", "整改#23", "rectify", hazard_no=23, note=None),
    ok("rectify-yizhenggai-hao", "已整改 23号 灭火器已更换", "rectify", hazard_no=23, note="灭火器已更换"),
    ok("rectify-di-hao-shuoming-field", "整改 第23号\n说明：通道已清空，杂物已搬走", "rectify",
       hazard_no=23, note="通道已清空，杂物已搬走"),
    ok("rectify-number-at-the-end", "整改 已清理通道 #23", "rectify", hazard_no=23, note="已清理通道"),
    ok("rectify-measure-field", "整改完成 #7 措施：更换插座", "rectify", hazard_no=7, measure="更换插座"),
    ok("rectify-note-and-beizhu-joined", "整改 #23 已清理通道\n备注：后勤协助", "rectify",
       note="已清理通道；后勤协助"),
    ok("rectify-plain-number-glued", "整改23已清理", "rectify", hazard_no=23, note="已清理"),
    # --- progress ------------------------------------------------------------------------------------------
    ok("progress-with-note", "进展 #23 已联系后勤", "progress", hazard_no=23, note="已联系后勤"),
    ok("progress-plain-number", "进展 23 配件已下单", "progress", hazard_no=23, note="配件已下单"),
    ok("progress-note-field", "进展 #23\n情况说明：等待厂家上门", "progress", note="等待厂家上门"),
    # --- close -----------------------------------------------------------------------------------------------
    ok("close-xiaohao", "销号 #23", "close", hazard_no=23),
    ok("close-yanshou-hao", "验收 #23号", "close", hazard_no=23),
    ok("close-traditional-fullwidth-hash", "銷號 ＃23", "close", hazard_no=23),
    ok("close-slash-command", "/销号 23", "close", hazard_no=23),
    ok("close-hash-command", "#销号 #23", "close", hazard_no=23),
    ok("close-glued-number", "销号23", "close", hazard_no=23),
    ok("close-colon-after-command", "验收：23", "close", hazard_no=23),
    ok("close-di-hao", "销号 第5号", "close", hazard_no=5),
    ok("close-with-note", "销号 #23 现场已查看", "close", note="现场已查看"),
    ok("close-number-first", "#23 销号", "close", hazard_no=23),
    # --- reject ----------------------------------------------------------------------------------------------
    ok("reject-with-reason", "退回 #23 仍有纸箱", "reject", hazard_no=23, note="仍有纸箱"),
    ok("reject-bohui-reason-field", "驳回 #23 原因：插座仍未固定", "reject", note="插座仍未固定"),
    # --- transfer (a new 责任人) ---------------------------------------------------------------------------------
    ok("transfer-name", "转交 #12 王建国", "transfer", hazard_no=12, note="王建国"),
    ok("transfer-number-first-zhuangei", "#12 转给王建国", "transfer", hazard_no=12, note="王建国"),
    ok("transfer-number-then-owner-field", "#12 责任人：王建国", "transfer", hazard_no=12, responsible="王建国"),
    ok("transfer-owner-and-unit-fields", "转交 #12 责任人：王芳 单位：教务处", "transfer", responsible="王芳",
       unit="教务处"),
    # --- extend ----------------------------------------------------------------------------------------------
    ok("extend-date-then-reason", "延期 #23 12月20日 等待配件", "extend", hazard_no=23,
       deadline=date(2023, 12, 20), note="等待配件"),
    ok("extend-date-glued-to-reason", "延期 #23 12月20日等待配件", "extend", deadline=date(2023, 12, 20),
       note="等待配件"),
    ok("extend-xiazhou-qian", "延期 第23号 下周五前 配件没到", "extend", hazard_no=23,
       deadline=date(2023, 12, 15), note="配件没到"),
    ok("extend-fields", "延期 #23 期限：12月20日 原因：等待配件", "extend",
       deadline=date(2023, 12, 20), note="等待配件"),
    ok("extend-shenqing-yuedi", "申请延期 #23 月底 需要外请施工队", "extend",
       deadline=date(2023, 12, 31), note="需要外请施工队"),
    ok("extend-rolls-into-next-year", "延期 #23 1月10日，寒假施工", "extend",
       deadline=date(2024, 1, 10), note="寒假施工"),
    ok("extend-date-without-reason", "延期 #23 12月20日", "extend", deadline=date(2023, 12, 20), note=None),
    # --- withdraw / show ---------------------------------------------------------------------------------------
    ok("withdraw", "撤销 #23", "withdraw", hazard_no=23),
    ok("withdraw-traditional-with-reason", "撤銷 #23 报错了", "withdraw", hazard_no=23, note="报错了"),
    ok("withdraw-chehui", "撤回 #5", "withdraw", hazard_no=5),
    ok("reopen-with-reason", "重开 #23 销号时未见整改照片", "reopen", hazard_no=23, note="销号时未见整改照片"),
    ok("reopen-huifu-traditional", "恢復 #7 誤銷號", "reopen", hazard_no=7, note="误销号"),
    ok("show-chakan", "查看 #23", "show", hazard_no=23),
    ok("show-bare-hash", "#23", "show", hazard_no=23),
    ok("show-bare-fullwidth-hash", "＃23", "show", hazard_no=23),
    ok("show-bare-hash-hao", "#23号", "show", hazard_no=23),
    ok("show-bare-di-hao", "第23号", "show", hazard_no=23),
    ok("show-chaxun-plain-number", "查询 23", "show", hazard_no=23),
    # --- lists and reports ---------------------------------------------------------------------------------------
    ok("mine", "我的", "mine"),
    ok("mine-wode-yinhuan", "我的隐患", "mine"),
    ok("list-qingdan", "清单", "list", unit=None),
    ok("list-weizhenggai", "未整改", "list"),
    ok("list-unit-field", "清单 单位：教务处", "list", unit="教务处"),
    ok("list-unit-free-text", "未整改 教务处", "list", unit="教务处"),
    ok("list-yinhuan-qingdan-is-not-a-report", "隐患清单", "list"),
    ok("check-no-hazard", "检查 部位：实验楼一楼 结果：无隐患", "check", location="实验楼一楼", result="无隐患"),
    ok("check-glued-result-after-comma", "检查部位：3号楼，无隐患", "check", location="3号楼", result="无隐患"),
    ok("check-traditional", "檢查 部位：操場 結果：無隱患", "check", location="操场", result="无隐患"),
    ok("check-xuncha-with-item", "巡查 部位：食堂 检查内容：燃气设施 结果：正常", "check",
       location="食堂", check_item="燃气设施", result="正常"),
    ok("check-without-colons", "检查 部位3号楼 结果无隐患", "check", location="3号楼", result="无隐患"),
    ok("check-fields-only", "检查内容：消防器材\n部位：2号楼\n结果：无隐患", "check",
       location="2号楼", check_item="消防器材", result="无隐患"),
    ok("submit", "报送", "submit"),
    ok("submit-traditional", "報送", "submit"),
    ok("stats", "统计", "stats"),
    ok("stats-tubiao", "图表", "stats"),
    ok("stats-traditional", "統計", "stats"),
    ok("export-taizhang", "台账", "export"),
    ok("export-daochu", "导出", "export"),
    ok("export-traditional", "臺賬", "export"),
    ok("progress-report", "进度", "progress_report"),
    ok("progress-report-traditional", "進度", "progress_report"),
    # --- 回头看 (issue 16) -----------------------------------------------------------------------------------------
    ok("recheck-list", "复查", "recheck", note=None),
    ok("recheck-passed", "复查 #3 合格", "recheck", note="#3 合格"),
    ok("coverage", "覆盖", "coverage"),
    ok("zero", "清零", "zero"),
    ok("archive", "档案", "archive"),
    ok("three-looks", "三看 1 是 已明确", "three_looks", note="1 是 已明确"),
    ok("report-with-source", "隐患 部位：食堂 问题：灭火器过期 来源：督查", "report", source="督查", location="食堂"),
    # --- help ----------------------------------------------------------------------------------------------------
    ok("overdue", "逾期", "overdue"),
    ok("overdue-of-a-unit", "逾期 单位：教务处", "overdue", unit="教务处"),
    ok("help-topic-overdue", "帮助 逾期", "help", help_topic="overdue"),
    ok("help", "帮助", "help", help_topic=None),
    ok("help-topic-close", "帮助 销号", "help", help_topic="close"),
    ok("help-topic-traditional", "幫助 銷號", "help", help_topic="close"),
    ok("help-topic-extend", "帮助 延期", "help", help_topic="extend"),
    ok("help-topic-with-hash", "帮助 #整改", "help", help_topic="rectify"),
    ok("help-english", "help", "help"),
    ok("help-question-mark", "？", "help"),
    ok("chitchat-thanks", "谢谢！", "chat"),
    ok("plain-rectify-after-number", "#23 已清理", "rectify", hazard_no=23, note="已清理"),
    ok("plain-words-after-command", "隐患 3号楼问题严重", "report", location="3号楼", problem="问题严重", plain=True),
    # --- answers to a report the bot asked about (handlers/drafts.py) ----------------------------------------------
    ok("draft-confirm", "确认", "confirm"),
    ok("draft-confirm-shi", "是的。", "confirm"),
    ok("draft-cancel", "取消", "cancel"),
    ok("draft-new-after-duplicate", "新的", "new"),
    ok("draft-same-as-open-hazard", "同 #12", "same", hazard_no=12),
    ok("several-numbered-reports", "隐患\n1. 部位：3号楼；问题：插座松动\n2. 部位：食堂；问题：灯管松动", "report",
       location="3号楼", problem="插座松动"),
    # --- new people and groups bound in chat (handlers/join.py) -----------------------------------------------
    ok("join-unit", "我是 教务处", "join", note="教务处"),
    ok("join-unit-and-name-glued", "我是教务处 张三", "join", note="教务处 张三"),
    ok("approve-name", "同意 张三", "approve", note="张三"),
    ok("register-group", "登记本群 城关一中 安全工作群 教职工", "register_group", note="城关一中 安全工作群 教职工"),
    # --- other days ------------------------------------------------------------------------------------------------
    ok("saturday-bare-friday-is-next-week", "隐患 部位：3号楼 问题：插座松动 期限：周五", "report",
       today=date(2023, 12, 30), deadline=date(2024, 1, 5)),
    ok("saturday-xiazhou-crosses-new-year", "隐患 部位：3号楼 问题：插座松动 期限：下周一", "report",
       today=date(2023, 12, 30), deadline=date(2024, 1, 1)),
    ok("new-years-eve-mingtian", "隐患 部位：3号楼 问题：插座松动 期限：明天", "report",
       today=date(2023, 12, 31), deadline=date(2024, 1, 1)),
    ok("leap-year-month-end", "隐患 部位：3号楼 问题：插座松动 期限：月底", "report",
       today=date(2024, 2, 28), deadline=date(2024, 2, 29)),
    ok("sunday-benzhouri-is-today", "隐患 部位：3号楼 问题：插座松动 期限：本周日", "report",
       today=date(2023, 12, 10), deadline=date(2023, 12, 10)),
]


@pytest.mark.parametrize(("text", "today", "command", "expected"), GOOD)
def test_message_parses(text: str, today: date, command: str, expected: dict[str, Any]) -> None:
    parsed = parse_message(text, today=today)
    assert parsed.errors == []
    assert parsed.ok
    assert parsed.command == command
    for key, value in expected.items():
        assert _actual(parsed, key) == value, key


def test_good_cases_are_distinct_and_cover_every_command() -> None:
    texts = [case.values[0] for case in GOOD]
    assert len(set(texts)) == len(texts) >= 80
    assert {case.values[2] for case in GOOD} == set(COMMAND_NAMES)


def bad(case_id: str, text: str, command: str | None, error: str, *, today: date = TODAY) -> Any:
    """A message that must give an error containing `error` (and the command it was meant to be)."""
    return pytest.param(text, today, command, error, id=case_id)


BAD = [
    bad("empty", "", None, "消息是空的"),
    bad("only-whitespace", "   \n\u3000 ", None, "消息是空的"),
    bad("only-a-mention", "@安全助手 ", None, "消息是空的"),
    bad("greeting", "你好", None, "没看懂「你好」，消息要以命令开头"),
    bad("greeting-with-colon", "你好：请问怎么上报", None, "发送「帮助」查看全部命令"),
    bad("chat", "今天天气不错", None, "没看懂"),
    bad("typo-in-command", "消号 #23", None, "您是想写「销号」吗？例如：销号 #23"),
    bad("report-missing-location", "隐患 问题：插座坏了", "report",
        "缺少「部位」：请写明隐患所在位置，例如：部位：3号教学楼二楼东侧"),
    bad("report-missing-problem", "隐患 部位：3号楼", "report",
        "缺少「问题」：请写明存在什么隐患，例如：问题：消防通道堆放杂物"),
    bad("report-missing-both", "隐患", "report", "缺少「部位」"),
    bad("report-typo-in-key", "隐患 部位：3号楼\n问提：插座坏了", "report", "不认识的字段「问提」，您是想写「问题」吗？"),
    bad("report-typo-in-first-key", "部为：3号楼\n问题：插座坏了", "report", "不认识的字段「部为」，您是想写「部位」吗？"),
    bad("report-unknown-key", "隐患 部位：3号楼 问题：插座坏了 照片：见图", "report", "不认识的字段「照片」，可以写的字段有"),
    bad("report-bad-level", "隐患 部位：3号楼 问题：插座坏了 等级：较大", "report",
        "等级只能写「一般」或「重大」，您写的是「较大」"),
    bad("report-vague-deadline", "隐患 部位：3号楼 问题：插座坏了 期限：下个礼拜左右", "report",
        "没看懂期限「下个礼拜左右」，请写成具体日期，例如：期限：12月10日、本周五或3天内"),
    bad("report-asap-deadline", "隐患 部位：3号楼 问题：插座坏了 期限：尽快", "report", "没看懂期限「尽快」"),
    bad("report-impossible-date", "隐患 部位：3号楼 问题：插座坏了 期限：2月30日", "report", "没看懂期限「2月30日」"),
    bad("report-past-date-with-year", "隐患 部位：3号楼 问题：插座坏了 期限：2023年11月30日", "report",
        "期限「2023年11月30日」是2023-11-30，已经过去了"),
    bad("report-benzhou-monday-already-past", "隐患 部位：3号楼 问题：插座坏了 期限：本周一", "report",
        "期限「本周一」是2023-12-04，已经过去了"),
    bad("report-benzhou-friday-on-saturday", "隐患 部位：3号楼 问题：插座坏了 期限：本周五", "report",
        "已经过去了", today=date(2023, 12, 30)),
    bad("report-bad-immediate", "隐患 部位：3号楼 问题：插座坏了 立即整改：也许", "report",
        "「立即整改」只能写「是」或「否」，您写的是「也许」"),
    bad("report-bad-closed", "隐患 部位：3号楼 问题：插座坏了 停用：暂时", "report", "「停用」只能写「是」或「否」"),
    bad("report-key-twice", "隐患 部位：3号楼 部位：4号楼 问题：插座坏了", "report", "「部位」写了两次"),
    bad("close-without-number", "销号", "close", "请写上隐患编号，例如：销号 #23"),
    bad("close-yanshou-without-number", "验收", "close", "请写上隐患编号，例如：验收 #23"),
    bad("close-traditional-without-number", "銷號", "close", "请写上隐患编号，例如：销号 #23"),
    bad("close-huge-number", "销号 #12345678901", "close", "隐患编号「12345678901」不对"),
    # More digits than Python's int() accepts (4300) once made the parser raise.
    bad("close-4301-digits", "销号 #" + "9" * 4301, "close", "编号太长，请写清单里的编号，例如：销号 #23"),
    bad("close-4301-digits-with-di", "销号 第" + "9" * 4301 + "号", "close", "编号太长"),
    bad("close-4301-bare-digits", "销号 " + "1" * 4301, "close", "编号太长"),
    bad("show-4301-digits-alone", "#" + "9" * 4301, "show", "编号太长，请写清单里的编号，例如：查看 #23"),
    bad("close-after-4301-digits", "#" + "9" * 4301 + " 销号", "close", "编号太长"),
    bad("rectify-without-number", "整改 已清理通道", "rectify", "请写上隐患编号，例如：整改 #23 已清理通道"),
    bad("rectify-building-number-is-not-a-hazard-number", "整改 23号楼灭火器已更换", "rectify", "请写上隐患编号"),
    bad("withdraw-without-number", "撤销", "withdraw", "请写上隐患编号，例如：撤销 #23"),
    bad("reopen-without-reason", "重开 #23", "reopen", "请写上重开原因，例如：重开 #23 销号时未见整改照片"),
    bad("show-without-number", "查看", "show", "请写上隐患编号，例如：查看 #23"),
    bad("extend-without-date", "延期 #23", "extend", "请写上新的期限，例如：延期 #23 12月20日 等待配件"),
    bad("extend-reason-but-no-date", "延期 #23 等待配件", "extend", "请写上新的期限"),
    bad("extend-vague-date", "延期 #23 下个礼拜左右 等待配件", "extend",
        "没看懂期限「下个礼拜左右」，请写成具体日期，例如：延期 #23 12月20日 等待配件"),
    bad("extend-past-date", "延期 #23 2023年11月1日 配件", "extend", "已经过去了"),
    bad("extend-without-number", "延期 12月20日", "extend", "请写上隐患编号，例如：延期 #23 12月20日 等待配件"),
    bad("reject-without-reason", "退回 #23", "reject", "请写上退回原因，例如：退回 #23 仍有纸箱"),
    bad("progress-without-text", "进展 #23", "progress", "请写上进展情况，例如：进展 #23 已联系后勤"),
    bad("two-numbers-at-once", "销号 #23 #24", "close", "一次只能写一个隐患编号，请分开发送，例如：销号 #23"),
    bad("number-followed-by-text", "#23 明天再说", None, "请把命令写在前面，例如：整改 #23 已清理通道"),
    bad("check-without-location", "检查 结果：无隐患", "check", "缺少「部位」：请写明检查了哪里"),
]


@pytest.mark.parametrize(("text", "today", "command", "error"), BAD)
def test_bad_message_explains_what_to_fix(text: str, today: date, command: str | None, error: str) -> None:
    parsed = parse_message(text, today=today)
    assert not parsed.ok
    assert parsed.command == command
    assert any(error in message for message in parsed.errors), parsed.errors


def test_bad_cases_are_distinct_and_enough() -> None:
    texts = [case.values[0] for case in BAD]
    assert len(set(texts)) == len(texts) >= 20


def test_every_error_is_polite_chinese_with_an_example_or_a_suggestion() -> None:
    for case in BAD:
        for message in parse_message(case.values[0], today=case.values[1]).errors:
            assert "例如" in message or "您是想写" in message or "已经过去" in message, message


def test_typo_and_missing_field_are_not_both_reported() -> None:
    errors = parse_message("隐患 部位：3号楼\n问提：插座坏了", today=TODAY).errors
    assert errors == ["不认识的字段「问提」，您是想写「问题」吗？"]


def test_admin_categories_replace_the_defaults() -> None:
    table = [("绿化", ("树枝", "草坪")), ("消防安全", ("灭火器",))]
    assert parse_message("隐患 部位：操场 问题：树枝断裂悬挂", today=TODAY, categories=table).fields.category == "绿化"
    assert parse_message("隐患 部位：3号楼 问题：灭火器过期", today=TODAY, categories=table).fields.category == "消防安全"
    typed = parse_message("隐患 部位：3号楼 问题：插座坏了 类别：消防", today=TODAY, categories=table)
    assert typed.fields.category == "消防"  # 消防安全 is configured, but 消防 is not one of its names or synonyms


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("消防", "消防"), ("消防安全", "消防"), ("消防类", "消防"), ("电气", "用电"), ("用电安全", "用电"),
     ("治安", "校园安防"), ("电梯", "特种设备"), ("其它", "其他"), ("实验室安全隐患", "实验室"), ("绿化", "绿化")],
)
def test_typed_category_is_normalised(typed: str, expected: str) -> None:
    assert normalize_category(typed) == expected


@pytest.mark.parametrize(
    ("problem", "location", "expected"),
    [("灭火器过期", "食堂", "消防"), ("试剂过期", None, "实验室"), ("食堂灭火器过期", None, "消防"),
     ("门锁坏了", "配电房", "用电"), ("门锁坏了", "3号楼", None), (None, None, None)],
)
def test_category_inference(problem: str | None, location: str | None, expected: str | None) -> None:
    assert infer_category(problem, location) == expected


def test_default_keywords_belong_to_one_category_each() -> None:
    keywords = [keyword for _, words in DEFAULT_CATEGORIES for keyword in words]
    assert len(keywords) == len(set(keywords))  # bot.config rejects a keyword shared by two categories


@pytest.mark.parametrize(
    "text",
    ["\ud800隐患", "#", "/", "＃＃＃", "第号", "隐患：：：", "：", "延期 #23 ：", "部位：\n问题：", "【】", "@", "#0",
     "延期 #" + "9" * 50, "隐患 期限：" + "十" * 30, "检查部位：，无隐患", "\x00\x1b[31m", "？？", "隐患 " + "部位：a " * 200],
)
def test_odd_input_never_raises(text: str) -> None:
    parsed = parse_message(text, today=TODAY)
    assert parsed.command is not None or parsed.errors


def test_random_text_never_raises() -> None:
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    pieces = ["隐患", "整改", "销号", "延期", "#", "23", "号", "：", ":", "，", "；", "\n", " ", "部位", "问题", "期限",
              "等级", "重大", "12月10日", "本周五", "十二", "问提", "【", "】", "1、", "@", "检查", "结果", "隱患"]

    def check(text: str, today: date) -> None:
        parsed = parse_message(text, today=today)
        assert parsed.command is not None or parsed.errors
        if parsed.ok and parsed.command == "report" and not parsed.doubts:  # doubts are asked back, not stored
            assert parsed.fields.location and parsed.fields.problem
        if parsed.ok and not parsed.doubts and parsed.fields.deadline is not None and parsed.command in ("report", "extend"):
            assert parsed.fields.deadline >= today

    messages = st.lists(st.sampled_from(pieces) | st.text(max_size=3), max_size=12).map("".join)
    settings = hypothesis.settings(max_examples=300, deadline=None, database=None)
    settings(hypothesis.given(messages, st.dates())(check))()
