"""回头看 (issue 16): the 复查 sample, 合格 and 反弹, coverage, supervisors' findings, 清零 and the archive check,
driven as chats through the real engine with a fixed clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from handlers.messages import Attachment
from models.lookback import draw_sample
from models.tables import Hazard, RecheckItem
from tests.school import TWO_SCHOOLS, TZ, Chat, parse_config, start_engine

PHOTO = Attachment("fix.jpg", "image/jpeg", b"\xff\xd8 a photo of the place")

LOOKBACK = {
    **TWO_SCHOOLS,
    "campaigns": [
        *TWO_SCHOOLS["campaigns"],  # type: ignore[misc]
        {
            "id": "lb", "name": "回头看", "kind": "lookback", "looks_back_on": ["c1"], "recheck_share": 0.5,
            "start": "2024-03-01", "end": "2024-06-15",
            "phases": [
                {"name": "自查", "start": "2024-03-01", "end": "2024-03-31"},
                {"name": "整改", "start": "2024-04-01", "end": "2024-05-31"},
                {"name": "督查", "start": "2024-06-01", "end": "2024-06-15"},
            ],
        },
    ],
    "people": [
        *TWO_SCHOOLS["people"],  # type: ignore[misc]
        {"id": "zheng_gang", "name": "郑刚", "unit": "bureau", "roles": ["supervisor"]},
    ],
    "groups": [
        *TWO_SCHOOLS["groups"],  # type: ignore[misc]
        {"id": "lb_county", "name": "县回头看领导群", "platform": "console", "kind": "leaders", "units": ["bureau"],
         "campaign": "lb"},
        {"id": "lb_s1", "name": "一中回头看群", "platform": "console", "units": ["school"], "campaign": "lb"},
        {"id": "lb_s2", "name": "城南回头看群", "platform": "console", "units": ["school2"], "campaign": "lb"},
    ],
}
IN_C1 = datetime(2023, 12, 5, 10, 0, tzinfo=TZ)
IN_LOOKBACK = datetime(2024, 3, 5, 10, 0, tzinfo=TZ)


@pytest.fixture
def county(tmp_path: Path) -> Iterator[Chat]:
    engine = start_engine(parse_config(LOOKBACK), tmp_path)
    yield Chat(engine, IN_C1)
    engine.db.dispose()


def closed_hazard(chat: Chat, *, group: str, reporter: str, closer: str, text: str, photo: bool = True) -> int:
    """Report, fix and close a hazard in campaign c1 through the chat; returns its number."""
    reply = chat.say(reporter, f"隐患\n{text}", group=group)
    number = int(reply.split("#")[1].split("（")[0])
    photos = (PHOTO,) if photo else ()
    assert "整改" in chat.say(reporter, f"整改 #{number} 已处理", group=group, photos=photos)
    assert "销号" in chat.say(closer, f"销号 #{number}", group=group)
    return number


def c1_history(chat: Chat) -> None:
    """Campaign c1 closes four 一般 and one 重大 hazard in 城关一中 and two 一般 in 城南小学."""
    for place in ("3号教学楼一楼", "3号教学楼二楼", "3号教学楼三楼", "3号教学楼四楼"):
        closed_hazard(chat, group="staff", reporter="zhang_wei", closer="li_na",
                      text=f"部位：{place}\n问题：灭火器过期\n单位：教务处\n期限：12月10日")
    closed_hazard(chat, group="staff", reporter="zhang_wei", closer="li_na",
                  text="部位：食堂\n问题：燃气管道老化\n等级：重大\n单位：教务处\n期限：12月20日")
    for place in ("3号教学楼", "食堂"):
        closed_hazard(chat, group="s2", reporter="qian_hong", closer="ma_li",
                      text=f"部位：{place}\n问题：应急灯不亮\n期限：12月10日")
    chat.now = IN_LOOKBACK


def items(chat: Chat) -> list[tuple[RecheckItem, Hazard]]:
    with chat.session() as session:
        return [(item, hazard) for item, hazard in session.exec(
            select(RecheckItem, Hazard).join(Hazard, Hazard.id == RecheckItem.hazard_id).order_by(RecheckItem.number)
        )]


def test_recheck_sample_takes_every_major_and_a_reproducible_share(county: Chat) -> None:
    c1_history(county)
    listing = county.say("wu_ju", "复查", group="lb_county")
    assert "【回头看复查】共4项，已复查0项，待复查4项" in listing  # 1 重大 + ceil(0.5 × 6 一般)
    drawn = items(county)
    assert [h.level for _, h in drawn].count("重大") == 1
    with county.session() as session:
        closed = list(session.exec(select(Hazard).where(Hazard.campaign_id == "c1").order_by(Hazard.number)))
    again = draw_sample(closed, share=0.5, seed="lb")
    assert [h.number for h in again] == sorted(h.number for _, h in drawn)  # same draw from the same seed
    assert county.say("wu_ju", "复查", group="lb_county") == listing  # drawn once, not again
    # Each school's group sees its own items only.
    s2 = county.say("sun_li", "复查", group="lb_s2")
    s2_count = sum(1 for item, _ in drawn if item.unit_id.startswith("s2_") or item.unit_id == "school2")
    assert (f"共{s2_count}项" if s2_count else "没有需要复查的项目") in s2 and "教务处" not in s2


def test_recheck_passed_needs_a_photo(county: Chat) -> None:
    c1_history(county)
    county.say("wu_ju", "复查", group="lb_county")
    item, old = next((i, h) for i, h in items(county) if i.unit_id == "teaching")
    refused = county.say("li_na", f"复查 #{item.number} 合格", group="lb_s1")
    assert "需附现场照片" in refused and "没有记录" in refused
    assert county.say("zhang_wei", f"复查 #{item.number} 合格", group="lb_s1", photos=(PHOTO,)).startswith("复查结论由")
    passed = county.say("li_na", f"复查 #{item.number} 合格 灭火器在有效期内", group="lb_s1", photos=(PHOTO,))
    assert passed.startswith(f"已记录：复查 #{item.number} 合格（{old.location}")
    assert "已复查1项" in county.say("li_na", "复查", group="lb_s1")
    assert "无需再复查" in county.say("li_na", f"复查 #{item.number} 合格", group="lb_s1", photos=(PHOTO,))
    assert "回头看复查合格" in county.say("li_na", f"#{old.number}", group="staff")  # in the old hazard's history


def test_rebound_opens_a_new_hazard_linked_to_the_old_one(county: Chat) -> None:
    c1_history(county)
    county.say("wu_ju", "复查", group="lb_county")
    item, old = next((i, h) for i, h in items(county) if i.unit_id == "teaching")
    assert "请写明反弹的情况" in county.say("li_na", f"复查 #{item.number} 反弹", group="lb_s1")
    reply = county.say("li_na", f"复查 #{item.number} 反弹 灭火器又过期了", group="lb_s1")
    assert f"复查 #{item.number} 反弹：已登记为新隐患 #1" in reply and f"关联原隐患 「冬春安全整治大会战」#{old.number}" in reply
    with county.session() as session:
        new = session.exec(select(Hazard).where(Hazard.campaign_id == "lb", Hazard.number == 1)).one()
        assert (new.linked_hazard_id, new.origin, new.unit_id, new.problem) == (old.id, "复查", "teaching", "灭火器又过期了")
        assert new.location == old.location and new.status == "rectifying"
        row = session.exec(select(RecheckItem).where(RecheckItem.id == item.id)).one()
        assert (row.status, row.new_hazard_id, row.checked_by) == ("rebound", new.id, "li_na")
    assert "灭火器又过期了" in county.say("li_na", "清单", group="lb_s1")  # a hazard of the look-back like any other


def test_a_rebound_filed_in_the_county_names_the_schools(county: Chat) -> None:
    """In the county's chat both the new hazard and the old one are named with their school (numbers are per school)."""
    c1_history(county)
    county.say("wu_ju", "复查", group="lb_county")
    item, old = next((i, h) for i, h in items(county) if i.unit_id == "teaching")
    reply = county.say("wu_ju", f"复查 #{item.number} 反弹 灭火器又过期了", group="lb_county")
    assert reply.splitlines()[0] == (
        f"复查 #{item.number} 反弹：已登记为新隐患 城关一中#1（一般），关联原隐患 「冬春安全整治大会战」城关一中#{old.number}"
    ), reply
    assert "「整改 城关一中#1 说明」" in reply, reply
    shown = county.say("wu_ju", "查看 城关一中#1", group="lb_county")
    assert f"关联：复查反弹，原隐患 「冬春安全整治大会战」城关一中#{old.number}（" in shown, shown
    # The school's own group keeps the bare numbers.
    assert f"原隐患 「冬春安全整治大会战」#{old.number}（" in county.say("li_na", "查看 #1", group="lb_s1")


def test_a_campaign_that_is_no_lookback_has_no_rechecks(county: Chat) -> None:
    assert "不是回头看活动" in county.say("li_na", "复查", group="staff")


def test_coverage_lists_the_unchecked_school_and_buildings(county: Chat) -> None:
    county.now = IN_LOOKBACK
    assert "已记录" in county.say("li_na", "检查 部位：3号教学楼 结果：无隐患", group="lb_s1")
    reply = county.say("wu_ju", "覆盖", group="lb_county")
    assert "学校：已检查1/2；建筑单体：已检查1/4" in reply
    assert "未检查的学校：城南小学" in reply
    assert "未检查的建筑（城关一中）：食堂" in reply
    assert "未检查的建筑（城南小学）：3号教学楼、食堂" in reply
    # A hazard found in a building covers it too; the school's own group sees its school only.
    county.say("qian_hong", "隐患 部位：食堂后厨 问题：灭火器过期 期限：3月20日", group="lb_s2")
    county.say("qian_hong", "检查 部位：3号教学楼 结果：无隐患", group="lb_s2")
    assert "未检查的学校" not in county.say("wu_ju", "覆盖", group="lb_county")
    s2 = county.say("sun_li", "覆盖", group="lb_s2")
    assert "学校：已检查1/1；建筑单体：已检查2/2" in s2 and "所有学校和建筑单体都已检查" in s2


def test_a_supervisors_finding_counts_against_the_school(county: Chat) -> None:
    county.now = IN_LOOKBACK
    reply = county.say("zheng_gang", "隐患 部位：食堂 问题：灭火器过期 期限：3月20日", group="lb_s2")
    assert "已登记隐患 #1" in reply and "来源：督查（学校自查未查出，计入本校）" in reply
    county.say("zheng_gang", "隐患 部位：3号教学楼 问题：疏散指示灯不亮 来源：省督查 期限：3月20日", group="lb_s2")
    county.say("qian_hong", "隐患 部位：3号教学楼 问题：插座松动 期限：3月20日", group="lb_s2")
    assert "看不懂" in county.say("zheng_gang", "隐患 部位：食堂 问题：x 来源：路人", group="lb_s2")
    # In the county's group the supervisor's own office is no place for a hazard: the bot asks for the school.
    assert county.say("zheng_gang", "隐患 部位：食堂 问题：灭火器过期 期限：3月20日", group="lb_county") == (
        "请写明是哪所学校的隐患，这条隐患没有登记。例如：单位：城关一中"
    )
    assert "由督导组" in county.say("qian_hong", "隐患 部位：食堂 问题：插座松动 来源：督查", group="lb_s2")
    with county.session() as session:
        rows = list(session.exec(select(Hazard).where(Hazard.campaign_id == "lb").order_by(Hazard.number)))
    assert [(h.unit_id, h.origin, h.missed_by_school) for h in rows] == [
        ("school2", "督查", True), ("school2", "省督查", True), ("s2_logistics", "自查", False),
    ]
    zero = county.say("wu_ju", "清零", group="lb_county")
    assert "未销号3项（本次共登记3项" in zero
    assert "· 城南小学 2：省督查1、督查1" in zero and "· 城南小学后勤处 1：自查1" in zero
    assert "督查发现、自查未查出：城南小学2项" in zero
    [text, chart] = county.last  # the 动态清零 chart comes with it
    assert chart.image_png is not None and chart.image_png.startswith(b"\x89PNG") and text.image_png is None


def test_archive_check_finds_each_gap(county: Chat) -> None:
    full = int(county.say("zhang_wei", "隐患 部位：3号教学楼 问题：插座松动 单位：教务处 期限：12月10日", group="staff",
                          photos=(PHOTO,)).split("#")[1].split("（")[0])
    county.say("zhang_wei", f"整改 #{full} 已紧固", group="staff", photos=(PHOTO,))
    county.say("li_na", f"销号 #{full}", group="staff")
    no_after = closed_hazard(county, group="staff", reporter="zhang_wei", closer="li_na", photo=False,
                             text="部位：食堂\n问题：插座松动\n单位：教务处\n期限：12月10日")
    own = int(county.say("zhao_min", "隐患 部位：3号教学楼 问题：吊顶渗水 期限：12月10日", group="staff")
              .split("#")[1].split("（")[0])
    county.say("zhao_min", f"整改 #{own} 已修补", group="staff", photos=(PHOTO,))
    assert "领导直接销号" in county.say("zhao_min", f"销号 #{own}", group="staff")
    other = closed_hazard(county, group="s2", reporter="qian_hong", closer="ma_li", photo=False,
                          text="部位：食堂\n问题：应急灯不亮\n期限：12月10日")
    county.now = IN_LOOKBACK
    assert county.say("zhang_wei", "档案", group="lb_s1").startswith("档案检查由")
    reply = county.say("zhao_min", "档案", group="lb_s1")
    assert f"c1 #{full} " not in reply
    assert f"c1 #{no_after} 食堂 插座松动：无整改前照片、无整改后照片" in reply
    assert f"c1 #{own} 3号教学楼 吊顶渗水：无整改前照片、整改人自己验收销号" in reply
    assert "城南小学" not in reply  # the school's own list keeps bare numbers
    # The county's list spans both schools: each number is named with its school.
    both = county.say("wu_ju", "档案", group="lb_county")
    assert f"c1 城关一中#{no_after} 食堂 插座松动：无整改前照片、无整改后照片" in both, both
    assert f"c1 城南小学#{other} 食堂 应急灯不亮：" in both, both
    assert date(2024, 3, 5) == county.now.date()


def test_each_school_answers_the_three_looks_once(county: Chat) -> None:
    county.now = IN_LOOKBACK
    listing = county.say("li_na", "三看", group="lb_s1")
    assert listing.startswith("【三看】城关一中（已回答0/3项）")
    assert "1. 安全工作责任是否落实到位：未回答" in listing
    assert "请写上说明" in county.say("li_na", "三看 1 是", group="lb_s1")
    assert "第1到第3项" in county.say("li_na", "三看 4 是 好", group="lb_s1")
    assert "请回答「是」或「否」" in county.say("li_na", "三看 1 还行", group="lb_s1")
    assert county.say("zhang_wei", "三看 1 是 已明确", group="lb_s1").startswith("三看由本校")
    reply = county.say("li_na", "三看 1 是 已明确各部门安全责任", group="lb_s1")
    assert reply == "已记录：城关一中 三看第1项「安全工作责任是否落实到位」：是，已明确各部门安全责任。本校已回答1/3项。"
    assert county.say("zhao_min", "三看 1 否 还缺食堂的责任书", group="lb_s1").startswith("已更正：城关一中 三看第1项")
    assert "1. 安全工作责任是否落实到位：否，还缺食堂的责任书" in county.say("li_na", "三看", group="lb_s1")
    assert "【三看】城南小学（已回答0/3项）" in county.say("ma_li", "三看", group="lb_s2")  # each school its own
    assert "没有设置三看项目" in county.say("li_na", "三看", group="staff")


def test_the_forms_show_each_finding_s_source_and_the_self_check_misses(county: Chat) -> None:
    """Issue 16: ledger 备注 names the source; the statistics count per school what its self-check missed."""
    from tests.handlers.test_forms_from_chat import rows, statistics_table, workbook

    county.now = IN_LOOKBACK
    county.say("zheng_gang", "隐患 部位：食堂 问题：灭火器过期 期限：3月20日", group="lb_s2")
    county.say("zheng_gang", "隐患 部位：3号教学楼 问题：疏散指示灯不亮 来源：省督查 期限：3月20日", group="lb_s2")
    county.say("qian_hong", "隐患 部位：3号教学楼 问题：插座松动 期限：3月20日", group="lb_s2")
    county.say("li_na", "隐患 部位：食堂 问题：排风扇异响 单位：总务基建处 期限：3月20日", group="lb_s1")
    book = workbook(county, "wu_ju", "台账", "lb_county")
    remarks = [row[9] for row in rows(book["台账-城南小学"], 4)]
    assert remarks[0].startswith("城南小学#1；来源：督查，自查未查出；期限"), remarks
    assert remarks[1].startswith("城南小学#2；来源：省督查，自查未查出；期限"), remarks
    assert remarks[2].startswith("城南小学#3；期限"), remarks  # the school's own 自查 names no source
    statistics = book["销号统计表"]
    assert [cell.value for cell in statistics[3]][-2:] == ["其中自查\n未查出", "备注"]
    table = statistics_table(statistics)
    assert [(row[1], row[-2]) for row in table] == [("城关一中", 0), ("城南小学", 2), ("合计", 2)]
    # A campaign that is no look-back keeps the form of seed 002.
    plain = workbook(county, "wu_ju", "导出 统计表", "county")
    assert "其中自查\n未查出" not in [cell.value for cell in plain["销号统计表"][3]]


def test_lists_show_the_open_rechecks_after_the_hazards(county: Chat) -> None:
    """Issue 16: 清单 and 我的 list a unit's open 复查 items after its hazards, marked 复查."""
    c1_history(county)
    county.say("li_na", "隐患 部位：食堂 问题：排风扇异响 单位：总务基建处 期限：3月20日", group="lb_s1")
    listed = county.say("li_na", "清单", group="lb_s1").splitlines()  # draws the 复查 sample on first use
    drawn = items(county)
    school1 = [item.number for item, _ in drawn if item.unit_id == "teaching"]
    assert listed[1].startswith("#1 ") and "排风扇异响" in listed[1], listed  # the hazards come first
    assert listed.index(f"待复查{len(school1)}项（前期已销号，回头看复查）：") > 1, listed
    rechecked = [line for line in listed if line.startswith("复查 #")]
    assert [int(line.split("#")[1].split(" ")[0]) for line in rechecked] == school1
    assert all("教务处" in line and "销号）" in line for line in rechecked)
    assert listed[-1].startswith(f"现场复查后请发：复查 #{school1[0]} 合格")
    # The county sees every school's items; a teacher's 我的 has none to answer, a safety officer's has them.
    assert f"待复查{len(drawn)}项" in county.say("wu_ju", "清单", group="lb_county")
    assert "复查" not in county.say("zhang_wei", "我的", group="lb_s1")
    assert f"待复查{len(school1)}项" in county.say("li_na", "我的", group="lb_s1")
    assert "复查" not in county.say("li_na", "清单 逾期", group="lb_s1")  # 逾期 lists hazards past due only
    done = county.say("li_na", f"复查 #{school1[0]} 合格", group="lb_s1", photos=(PHOTO,))
    assert done.startswith("已记录")
    after = county.say("li_na", "清单", group="lb_s1")
    assert f"复查 #{school1[0]} " not in after and (f"待复查{len(school1) - 1}项" in after or len(school1) == 1)
    assert "待复查" not in county.say("li_na", "清单", group="staff")  # campaign c1 is no look-back
