"""Escalation ladder, 挂牌督办 and 报送 reminders before the deadline, with a fixed clock (seed-002 campaign).

The example config's ladder: day 0 责任人 and +1 部门负责人 in the staff group, +3 分管领导 and +7 校长 in the
school's leaders' group, +10 教育局 in the county group (added here).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from bot.cli import main
from bot.config import Config, parse_config
from bot.engine import Engine
from models.config import find_problems
from models.db import make_engine
from scheduler.calendar import WorkCalendar
from scheduler.escalation import LadderHazard, supervision_due, targets, GroupReach
from scheduler.plan import PlanHazards, plan_window
from tests.conftest import EXAMPLE_CONFIG
from tests.scheduler.conftest import at, due_rows, new_ticker, outbox, seed002_data, start_engine
from tests.school import Chat

COUNTY = {"id": "county", "name": "县教育局安全群", "platform": "console", "kind": "leaders", "units": ["bureau"],
          "campaign": "winter-2018"}
REPORT_1 = "隐患\n部位：3号教学楼二楼东侧\n问题：消防通道堆放杂物\n责任人：王建国\n期限：明天"  # due 11-28 (Wed)
REPORT_2 = "隐患\n部位：食堂后厨\n问题：插座老化\n责任人：王建国\n期限：11月29日"  # due 11-29 (Thu)
MAJOR = "隐患\n部位：实验楼三楼\n问题：危化品柜未上锁\n等级：重大\n责任人：李娜\n期限：12月20日"


def ladder_data(**reporting: Any) -> dict[str, Any]:
    data = seed002_data()
    data["groups"].append(dict(COUNTY))
    if reporting:
        data["campaigns"][0]["reporting"] = {**data["campaigns"][0]["reporting"], **reporting}
    return data


@pytest.fixture
def config() -> Config:
    return parse_config(ladder_data())


@pytest.fixture
def engine(config: Config, tmp_path: Path) -> Iterator[Engine]:
    db = make_engine(f"sqlite:///{tmp_path / 'sched.db'}")
    yield start_engine(config, db, tmp_path / "data")
    db.dispose()


@pytest.fixture
def chat(engine: Engine) -> Chat:
    return Chat(engine, at("2018-11-27 10:00"))


def days(first: str, last: str) -> Iterator[str]:
    day, end = date.fromisoformat(first), date.fromisoformat(last)
    while day <= end:
        yield day.isoformat()
        day += timedelta(days=1)


def escalations(db: Any, kind: str = "escalation") -> dict[str, list[tuple[str, str, list[str]]]]:
    """Escalation messages by group: (due-push key, text, mentions)."""
    found: dict[str, list[tuple[str, str, list[str]]]] = {}
    for message in outbox(db):
        if message.dedupe_key.startswith(f"push:{kind}:"):
            payload = json.loads(message.payload)
            key = message.dedupe_key.removeprefix("push:").rsplit(":", 1)[0]
            found.setdefault(str(message.group_id), []).append((key, payload["text"], payload.get("mentions", [])))
    return found


def test_an_overdue_hazard_climbs_each_step_once_on_its_day(engine: Engine, chat: Chat, config: Config) -> None:
    chat.say("zhang_wei", REPORT_1)
    chat.say("chen_jing", REPORT_2)
    ticker = new_ticker(config, engine.db)
    for day in days("2018-11-28", "2018-12-11"):
        ticker.tick(at(f"{day} 08:45"))
        ticker.tick(at(f"{day} 08:46"))  # a second tick in the same minute sends nothing again
    sent = escalations(engine.db)
    assert [key for key, *_ in sent["staff"]] == [
        "escalation:winter-2018:staff:2018-11-29", "escalation:winter-2018:staff:2018-11-30",
        "escalation:winter-2018:staff:2018-12-03",
    ]
    _, first, mentions = sent["staff"][0]
    assert first.splitlines()[2:4] == ["→责任人（逾期第1天）1项：", "#1 3号教学楼二楼东侧 消防通道堆放杂物｜王建国｜11-28 已逾期1天"]
    assert mentions == ["wang_jianguo"]
    # 11-30: #1 reaches 部门负责人 and #2 its first step: one message, the higher step first.
    _, merged, _ = sent["staff"][1]
    lines = merged.splitlines()
    assert lines[2] == "→部门负责人（逾期第2天）1项：" and lines[3].startswith("#1 ")
    assert lines[4] == "→责任人（逾期第1天）1项：" and lines[5].startswith("#2 ")
    # #2 reaches 部门负责人 on Saturday 12-01: it climbs on Monday.
    assert "→部门负责人（逾期第2天）1项：\n#2 食堂后厨 插座老化｜王建国｜11-29 已逾期4天" in sent["staff"][2][1]
    # 分管领导 (+3): #1 on Sunday 12-02 climbs on Monday 12-03, with #2 whose day it is.
    assert [key for key, *_ in sent["leaders"]] == [
        "escalation:winter-2018:leaders:2018-12-03", "escalation:winter-2018:leaders:2018-12-06",
        "escalation:winter-2018:leaders:2018-12-07",
    ]
    _, leaders, mentions = sent["leaders"][0]
    assert "→分管领导（逾期第4天）2项：" in leaders and mentions == ["zhao_min"]
    assert "→校长（逾期第8天）1项：\n#1 " in sent["leaders"][1][1]
    assert "→校长（逾期第8天）1项：\n#2 " in sent["leaders"][2][1]
    # 教育局 (+10): #1 on Sunday 12-09 and #2 on Monday 12-10, in the county group only.
    assert [key for key, *_ in sent["county"]] == ["escalation:winter-2018:county:2018-12-10"]
    assert "→教育局（逾期第11天）2项：" in sent["county"][0][1]
    assert "school2-staff" not in sent
    # Nothing is planned on a weekend, and a restarted ticker sends nothing twice.
    assert not due_rows(engine.db, key="escalation:winter-2018:staff:2018-12-01")
    count = len(outbox(engine.db))
    again = new_ticker(config, engine.db)
    for day in days("2018-11-28", "2018-12-11"):
        again.tick(at(f"{day} 08:45"))
    assert len(outbox(engine.db)) == count


def test_steps_missed_while_the_bot_was_down_climb_in_the_next_message(
    engine: Engine, chat: Chat, config: Config
) -> None:
    chat.say("zhang_wei", REPORT_1)
    chat.say("chen_jing", REPORT_2)
    ticker = new_ticker(config, engine.db)
    ticker.tick(at("2018-11-28 08:45"))
    ticker.tick(at("2018-12-04 08:45"))  # down from 11-28 to 12-04: the pushes between were skipped as missed
    assert due_rows(engine.db, key="escalation:winter-2018:staff:2018-11-30")[0].reason.startswith("missed")
    sent = escalations(engine.db)
    [(key, staff, _)] = sent["staff"]
    assert key == "escalation:winter-2018:staff:2018-12-04"
    assert "→部门负责人（逾期第2天）2项：" in staff and "→责任人（逾期第1天）2项：" in staff
    [(_, leaders, _)] = sent["leaders"]
    assert "→分管领导（逾期第4天）2项：" in leaders
    ticker.tick(at("2018-12-05 08:45"))
    assert len(escalations(engine.db)["staff"]) == 1  # and they do not climb again


def test_a_rectified_hazard_stops_climbing(engine: Engine, chat: Chat, config: Config) -> None:
    chat.say("zhang_wei", REPORT_1)
    chat.say("chen_jing", REPORT_2)
    ticker = new_ticker(config, engine.db)
    for day in days("2018-11-28", "2018-12-05"):
        ticker.tick(at(f"{day} 08:45"))
    chat.now = at("2018-12-05 15:00")
    assert "#2" in chat.say("wang_jianguo", "整改 #2 已更换插座")
    for day in days("2018-12-06", "2018-12-07"):
        ticker.tick(at(f"{day} 08:45"))
    assert [key for key, *_ in escalations(engine.db)["leaders"]] == [
        "escalation:winter-2018:leaders:2018-12-03", "escalation:winter-2018:leaders:2018-12-06",
    ]
    [row] = due_rows(engine.db, key="escalation:winter-2018:leaders:2018-12-07")
    assert row.state == "skipped" and row.reason == "no overdue hazard reached an escalation step"


def test_plan_names_the_climbs_of_the_open_hazards(config: Config) -> None:
    hazards = PlanHazards((
        LadderHazard(1, 1, "winter-2018", ("logistics", "school", "bureau"), date(2018, 11, 28)),
        LadderHazard(2, 2, "winter-2018", ("logistics", "school", "bureau"), date(2018, 11, 29)),
        LadderHazard(3, 3, "winter-2018", ("school2", "bureau"), date(2018, 11, 29), status="rectified"),
    ))
    pushes = plan_window(config, WorkCalendar.from_config(config), first=date(2018, 11, 28), last=date(2018, 12, 11),
                         hazards=hazards)
    lines = [(f"{p.send_at:%m-%d %H:%M}", p.group_id, p.summary) for p in pushes if p.kind == "escalation"]
    assert lines == [
        ("11-29 08:45", "staff", "逾期升级：#1→责任人"),
        ("11-30 08:45", "staff", "逾期升级：#1→部门负责人、#2→责任人"),
        ("12-03 08:45", "leaders", "逾期升级：#1→分管领导、#2→分管领导"),
        ("12-03 08:45", "staff", "逾期升级：#2→部门负责人"),
        ("12-06 08:45", "leaders", "逾期升级：#1→校长"),
        ("12-07 08:45", "leaders", "逾期升级：#2→校长"),
        ("12-10 08:45", "county", "逾期升级：#1→教育局、#2→教育局"),
    ]
    # From the config alone: one slot per group and workday, said to be sent only when some hazard climbs.
    bare = plan_window(config, WorkCalendar.from_config(config), first=date(2018, 12, 3), last=date(2018, 12, 3))
    assert {p.group_id: p.summary for p in bare if p.kind == "escalation"} == {
        "staff": "逾期升级：责任人、部门负责人（当天到级的逾期隐患；无则不发）",
        "school2-staff": "逾期升级：责任人、部门负责人（当天到级的逾期隐患；无则不发）",
        "leaders": "逾期升级：分管领导、校长（当天到级的逾期隐患；无则不发）",
        # 城南小学 has no leaders' group of its own: the county group is its nearest one too.
        "county": "逾期升级：分管领导、校长、教育局（当天到级的逾期隐患；无则不发）",
    }


def test_plan_names_the_school_where_a_group_sees_several(config: Config) -> None:
    found = date(2018, 11, 27)
    hazards = PlanHazards((
        LadderHazard(1, 3, "winter-2018", ("security", "school", "bureau"), date(2018, 12, 20), "重大", found,
                     school="城关第一中学"),
        LadderHazard(2, 1, "winter-2018", ("school2", "bureau"), date(2018, 12, 20), "重大", found, school="城南小学"),
    ))
    pushes = plan_window(config, WorkCalendar.from_config(config), first=date(2018, 12, 7), last=date(2018, 12, 7),
                         hazards=hazards)
    assert {p.group_id: p.summary for p in pushes if p.kind == "supervision"} == {
        "leaders": "督办复查：#3第1次",
        "county": "督办复查：城关第一中学#3第1次、城南小学#1第1次",  # numbers are per school
    }


def test_cli_plan_reads_the_open_hazards_from_the_database(
    engine: Engine, chat: Chat, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chat.say("zhang_wei", REPORT_1)
    chat.say("chen_jing", REPORT_2)
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8").replace('campaign = "winter-2026"', 'campaign = "winter-2018"')
    text = text.replace('url = "sqlite:///data/safetybot.db"', f'url = "sqlite:///{tmp_path / "sched.db"}"')
    text += '\n[[groups]]\nid = "county"\nname = "县教育局安全群"\nplatform = "console"\nkind = "leaders"\n' \
            'units = ["bureau"]\ncampaign = "winter-2018"\n'
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    assert main(["plan", "--config", str(path), "--from", "2018-12-03", "--until", "2018-12-10"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "escalation" in line]
    assert lines == [
        "2018-12-03 08:45+08:00  escalation       winter-2018  leaders        逾期升级：#1→分管领导、#2→分管领导",
        "2018-12-03 08:45+08:00  escalation       winter-2018  staff          逾期升级：#2→部门负责人",
        "2018-12-06 08:45+08:00  escalation       winter-2018  leaders        逾期升级：#1→校长",
        "2018-12-07 08:45+08:00  escalation       winter-2018  leaders        逾期升级：#2→校长",
        "2018-12-10 08:45+08:00  escalation       winter-2018  county         逾期升级：#1→教育局、#2→教育局",
    ]


def test_targets_tell_the_school_leaders_from_the_county() -> None:
    groups = [
        GroupReach("staff", "staff", frozenset({"school"})), GroupReach("leaders", "leaders", frozenset({"school"})),
        GroupReach("county", "leaders", frozenset({"bureau"})), GroupReach("s2", "staff", frozenset({"school2"})),
    ]
    chain = ("logistics", "school", "bureau")
    assert targets("staff", chain, groups) == ["staff"]
    assert targets("leaders", chain, groups) == ["leaders"]
    assert targets("county", chain, groups) == ["county"]
    # A school without its own leaders' group: the county group is its nearest, and no one is above it.
    assert targets("leaders", ("school2", "bureau"), groups) == ["county"]
    assert targets("county", ("school2", "bureau"), groups) == []


def test_supervision_cadence() -> None:
    found = date(2018, 11, 27)
    assert supervision_due(found, 10, date(2018, 12, 7), date(2018, 12, 7)) == 1
    assert supervision_due(found, 10, date(2018, 12, 15), date(2018, 12, 17)) == 2  # 12-17 after a weekend
    assert supervision_due(found, 10, date(2018, 11, 27), date(2018, 12, 6)) is None  # not on the day itself


def test_a_major_hazard_is_supervised_with_a_sheet_and_a_check_every_ten_days(
    engine: Engine, chat: Chat, config: Config
) -> None:
    chat.say("zhang_wei", MAJOR)
    ticker = new_ticker(config, engine.db)
    ticker.tick(at("2018-11-27 10:01"))
    leaders = outbox(engine.db, "leaders")
    assert [m.kind for m in leaders] == ["text", "file"]
    assert "已挂牌督办" in json.loads(leaders[0].payload)["text"]
    sheet = leaders[1]
    assert json.loads(sheet.payload)["file_name"] == "督办单_#1_20181127.xlsx"
    assert sheet.blob is not None
    cells = {row[0]: row[1] for row in load_workbook(BytesIO(sheet.blob)).active.iter_rows(values_only=True)}
    assert cells["学校"] == "城关第一中学" and cells["存在隐患问题"] == "危化品柜未上锁"
    assert cells["责任人"] == "李娜" and cells["整改期限"] == "2018年12月20日"
    assert {"五到位·整改措施", "五到位·整改资金", "五到位·整改期限", "五到位·整改责任人", "五到位·应急预案"} <= set(cells)
    assert [m.kind for m in outbox(engine.db, "county")] == ["text", "file"]  # the county's leaders too

    for day in days("2018-12-06", "2018-12-07"):
        ticker.tick(at(f"{day} 09:00"))
    [(key, text, mentions)] = escalations(engine.db, "supervision")["leaders"]
    assert key == "supervision:winter-2018:leaders:2018-12-07"
    assert text.splitlines()[1] == "挂牌督办的重大隐患尚未销号（1项），请复查五到位（措施、资金、期限、责任人、预案）："
    assert "#1 【重大】实验楼三楼 危化品柜未上锁｜李娜｜12-20 还剩13天（第1次复查，督办10天）" in text
    assert mentions == ["li_na"]
    chat.now = at("2018-12-10 10:00")
    chat.say("liu_yang", "撤销 #1")  # an admin withdraws it: no more checks
    ticker.tick(at("2018-12-17 09:00"))
    [row] = due_rows(engine.db, key="supervision:winter-2018:leaders:2018-12-17")
    assert row.state == "skipped" and row.reason.startswith("no 督办 check due")


def test_report_reminders_come_before_the_deadline_and_a_department_counts_for_its_school(
    tmp_path: Path,
) -> None:
    config = parse_config(ladder_data(remind_before=["-1d 16:00", "0d 09:00"]))
    db = make_engine(f"sqlite:///{tmp_path / 'sched.db'}")
    engine = start_engine(config, db, tmp_path / "data")
    chat = Chat(engine, at("2018-11-27 10:00"))
    ticker = new_ticker(config, db)
    ticker.tick(at("2018-12-05 16:00"))
    [reminder] = [json.loads(m.payload)["text"] for m in outbox(db, "staff") if "报送提醒" in m.payload]
    assert "第2期（11-27至12-06）统计报表明天17:00截止（还有1天）" in reminder
    chat.now = at("2018-12-05 17:00")
    assert "已报送本期统计" in chat.say("wang_jianguo", "报送")  # 总务基建处 (a department) submits
    result = ticker.tick(at("2018-12-06 09:00"))
    assert "report_reminder:winter-2018:staff:2018-12-06:0d0900" in result.skipped  # the school counts as submitted
    assert "report_reminder:winter-2018:school2-staff:2018-12-06:0d0900" in result.sent
    assert not [k for k in result.sent + result.skipped if k.startswith("report_reminder") and "17" in k.split(":")[-1]]
    ticker.tick(at("2018-12-07 08:00"))
    digest = [json.loads(m.payload)["text"] for m in outbox(db, "leaders") if "领导日报" in m.payload][-1]
    assert digest.startswith("【领导日报】冬春安全整治大会战 12-07")
    assert "第2期（截至12-06）已全部报送" in digest.splitlines()  # 城关第一中学 is not listed as missing
    county = [json.loads(m.payload)["text"] for m in outbox(db, "county") if "领导日报" in m.payload][-1]
    assert "第2期（截至12-06）未报送：城南小学" in county.splitlines()
    db.dispose()


def test_check_config_explains_reminder_times_and_mentions_in_chinese() -> None:
    data = ladder_data(remind_before=["-1d 16:00", "明天"])
    data["escalation"]["steps"][0]["mention"] = ["responsible", "wang_jianguoo"]
    problems = find_problems(data, "zh")
    assert any(
        "reporting.remind_before[1]: '明天' 不是提醒时间；请写成 \"-1d 16:00\"" in line for line in problems
    ), problems
    assert any("mention[1]: 不认识 'wang_jianguoo'" in line and "您是不是想写 wang_jianguo？" in line for line in problems)
    late = find_problems(ladder_data(remind_before=["0d 17:30"]), "zh")
    assert any("'0d 17:30' 不在截止时间 17:00 之前" in line for line in late), late


def test_the_overdue_digest_leaves_what_the_ladder_announces_that_day(
    engine: Engine, chat: Chat, config: Config
) -> None:
    """Issue 14: with [escalation] steps, the daily overdue digest does not repeat the ladder's hazards of the day."""
    chat.say("zhang_wei", REPORT_1)  # due 11-28
    chat.say("chen_jing", REPORT_2)  # due 11-29
    ticker = new_ticker(config, engine.db)
    for day in days("2018-11-28", "2018-12-04"):
        ticker.tick(at(f"{day} 08:30"))
        ticker.tick(at(f"{day} 08:45"))
    digests = {key.rsplit(":", 1)[1]: text for key, text, _ in escalations(engine.db, "overdue_digest").get("staff", [])}
    # 11-29: #1 is overdue and climbs to 责任人 in the staff group; 11-30: #1 → 部门负责人 and #2 → 责任人.
    assert "2018-11-29" not in digests and "2018-11-30" not in digests, digests
    assert [row.reason for row in due_rows(engine.db, key="overdue_digest:winter-2018:staff:2018-11-29")] == [
        "every overdue hazard is in today's escalation message"
    ]
    # 12-03 (Mon): the ladder announces #2 → 部门负责人 here (#1 climbs in the leaders' group): the digest lists #1.
    monday = digests["2018-12-03"].splitlines()
    assert monday[0].startswith("【逾期隐患】截至12-03共1项") and monday[1] == "（另有1项今日逾期升级另行通报）"
    assert monday[2].startswith("#1 3号教学楼二楼东侧") and len(monday) == 3, monday
    # 12-04: no step falls that day in the staff group, so the digest lists both again.
    assert digests["2018-12-04"].startswith("【逾期隐患】截至12-04共2项")


def test_the_leader_digest_lists_escalated_hazards_under_the_step_they_reached(
    engine: Engine, chat: Chat, config: Config
) -> None:
    """The 领导日报 names overdue hazards by the ladder's steps heard in the group, each under the highest it reached."""
    chat.say("zhang_wei", REPORT_1)  # due 11-28
    chat.say("chen_jing", REPORT_2)  # due 11-29
    ticker = new_ticker(config, engine.db)
    for day in ("2018-12-03", "2018-12-06", "2018-12-10"):
        ticker.tick(at(f"{day} 08:00"))

    def digests(group: str) -> dict[str, list[str]]:
        return {key.rsplit(":", 1)[1]: text.splitlines() for key, text, _ in escalations(engine.db, "leader_digest")[group]}

    school, county = digests("leaders"), digests("county")
    # 12-03: #1 is 5 days overdue, #2 4: both reached 分管领导 (+3); nothing is 逾期满3天 outside the ladder.
    monday = school["2018-12-03"]
    start = monday.index("已升级至分管领导（逾期满4天，2项）：")
    assert [line[:3] for line in monday[start + 1:start + 3]] == ["#1 ", "#2 "]
    assert not [line for line in monday if line.startswith("逾期满")]
    # 12-06: #1 reached 校长 (+7, 8 days overdue) and is listed there only; #2 stays under 分管领导.
    thursday = school["2018-12-06"]
    assert thursday[thursday.index("已升级至校长（逾期满8天，1项）：") + 1].startswith("#1 3号教学楼二楼东侧")
    assert thursday[thursday.index("已升级至分管领导（逾期满4天，1项）：") + 1].startswith("#2 食堂后厨")
    # The county group hears 教育局 (+10) too: on 12-10 #1 (12 days) and #2 (11 days) are there.
    at_county = county["2018-12-10"]
    assert at_county[at_county.index("已升级至教育局（逾期满11天，2项）：") + 1].startswith("城关第一中学#1 ")  # serves 2 schools
    assert not [line for line in county["2018-12-10"] if line.startswith("已升级至校长")]
    assert "已升级至校长（逾期满8天，2项）：" in school["2018-12-10"]  # the school does not hear 教育局


def test_pushes_to_the_county_name_the_school_of_each_number(engine: Engine, chat: Chat, config: Config) -> None:
    """The county's group serves several schools: a 重大 alert and the escalations there say 城关第一中学#1,
    while the school's own leaders' group keeps #1 (numbers are per school)."""
    chat.say("zhang_wei", MAJOR)
    chat.say("zhang_wei", REPORT_1)  # due 11-28: 教育局 (+10) on Sunday 12-09, so in Monday's message
    ticker = new_ticker(config, engine.db)
    ticker.tick(at("2018-11-27 10:01"))
    alerts = {group: [text for _, text, _ in sent] for group, sent in escalations(engine.db, "major_alert").items()}
    assert alerts["county"][0].startswith("【重大隐患】城关第一中学#1 实验楼三楼"), alerts
    assert "查看详情发「查看 城关第一中学#1」" in alerts["county"][0]
    assert alerts["leaders"][0].startswith("【重大隐患】#1 实验楼三楼") and "「查看 #1」" in alerts["leaders"][0]
    ticker.tick(at("2018-12-10 08:45"))
    [(_, county, _)] = escalations(engine.db)["county"]
    assert "→教育局（逾期第11天）1项：\n城关第一中学#2 3号教学楼二楼东侧" in county, county
