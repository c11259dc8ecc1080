"""Property: nothing of one school reaches the other school's chats, and no command there changes it.

Hypothesis draws a county directory (two schools, each with departments, people of every role — namesakes
across the schools included —, a staff and a leaders' group, and buildings of the same names in both) and a
run of commands from anyone in any group or private chat. Each command goes through the real engine; after
each one the ledger is compared with the one before and the replies (text and XLSX cells) are searched for
the other school's hazards.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from sqlmodel import select

from bot.config import parse_config
from models.tables import CheckRecord, DuePush, Hazard, HazardEvent, Submission
from tests.school import SCHOOL, TZ, Chat, start_engine

SCHOOLS = {"a": "甲中学", "b": "乙小学"}
DEPARTMENTS = (("logistics", "总务处"), ("security", "保卫处"), ("teaching", "教务处"))
NAMES = ("王芳", "李强", "张伟", "陈静", "赵敏")
ROLES = (["teacher"], ["unit_head"], ["safety_officer"], ["leader"], ["admin"], ["admin", "leader"])
PLACES = ("食堂", "教学楼", "实验楼", "操场")
NUMBERED = ("查看 #{n}", "#{n}", "整改 #{n} 已处理", "进展 #{n} 已联系", "销号 #{n}", "退回 #{n} 未整改完",
            "延期 #{n} 12月30日 等配件", "撤销 #{n}", "重开 #{n} 误销号")
PLAIN = ("我的", "清单", "统计", "台账", "进度", "报送", "帮助")
PRIVATE = "dm"
COUNTY = None  # the school of a county unit, chat or person: none, it sees both schools


@dataclass(frozen=True)
class Directory:
    config: dict[str, Any]
    school_of_unit: dict[str, str | None]  # unit id → "a" / "b" / COUNTY
    school_of_group: dict[str, str | None]
    people: list[tuple[str, str, str]]  # (id, name, unit id)
    unit_labels: list[str]  # every name and alias people may type after 单位：
    building_school: dict[str, str]  # building id → school


@st.composite
def directories(draw: st.DrawFn) -> Directory:
    units: list[dict[str, Any]] = [{"id": "bureau", "name": "县教育局"}]
    people: list[dict[str, Any]] = [{"id": "county_admin", "name": "吴菊", "unit": "bureau", "roles": ["admin"]}]
    groups: list[dict[str, Any]] = [
        {"id": "county", "name": "县局群", "platform": "console", "kind": "leaders", "units": ["bureau"], "campaign": "c1"}
    ]
    buildings: list[dict[str, Any]] = []
    school_of_unit: dict[str, str | None] = {"bureau": COUNTY}
    for key, school_name in SCHOOLS.items():
        units.append({"id": key, "name": school_name, "parent": "bureau"})
        school_of_unit[key] = key
        departments = draw(st.lists(st.sampled_from(DEPARTMENTS), min_size=1, max_size=3, unique=True))
        for dept_id, dept_name in departments:
            units.append({"id": f"{key}_{dept_id}", "name": f"{school_name}{dept_name}", "parent": key,
                          "aliases": [dept_name]})  # the same short name in both schools
            school_of_unit[f"{key}_{dept_id}"] = key
        school_units = [key, *(f"{key}_{dept_id}" for dept_id, _ in departments)]
        # Every school has an admin, a leader and a safety officer, plus a few more people of any role.
        staff = [(["admin"], key), (["leader"], key), (["safety_officer"], school_units[-1])]
        staff += draw(st.lists(st.tuples(st.sampled_from(ROLES), st.sampled_from(school_units)), max_size=2))
        names = draw(st.permutations(NAMES))
        for i, (roles, unit) in enumerate(staff):
            people.append({"id": f"{key}_p{i}", "name": names[i], "unit": unit, "roles": roles})
        groups += [
            {"id": f"{key}_staff", "name": f"{school_name}工作群", "platform": "console", "units": [key], "campaign": "c1"},
            {"id": f"{key}_leaders", "name": f"{school_name}领导群", "platform": "console", "kind": "leaders",
             "units": [key], "campaign": "c1"},
        ]
        for place in draw(st.lists(st.sampled_from(PLACES[:3]), min_size=1, max_size=3, unique=True)):
            buildings.append({"id": f"{key}_{PLACES.index(place)}", "name": place, "unit": key})
    config = {**SCHOOL, "units": units, "people": people, "groups": groups, "buildings": buildings}
    labels = sorted({unit["name"] for unit in units} | {alias for unit in units for alias in unit.get("aliases", ())})
    return Directory(
        config=config,
        school_of_unit=school_of_unit,
        school_of_group={group["id"]: school_of_unit[group["units"][0]] for group in groups},
        people=[(person["id"], person["name"], person["unit"]) for person in people],
        unit_labels=labels,
        building_school={building["id"]: building["unit"] for building in buildings},
    )


def commands(directory: Directory) -> st.SearchStrategy[tuple[str, str, Any]]:
    """(sender id, chat id, command spec); the text is written at run time so its hazard text is unique."""
    senders = st.sampled_from([person_id for person_id, _, _ in directory.people])
    chats = st.sampled_from([PRIVATE, *directory.school_of_group])
    maybe_unit = st.none() | st.sampled_from(directory.unit_labels)
    maybe_person = st.none() | st.sampled_from(sorted({name for _, name, _ in directory.people}))
    report = st.tuples(
        st.just("report"), st.sampled_from(PLACES), maybe_unit, maybe_person, st.sampled_from(["一般", "重大"])
    )
    numbered = st.tuples(st.just("numbered"), st.sampled_from(NUMBERED), st.integers(1, 20))
    spec = st.one_of(  # reports and #N commands twice as often: they give the other commands something to leak
        report, report, numbered, numbered,
        st.tuples(st.just("check"), st.sampled_from(PLACES), maybe_unit),
        st.tuples(st.just("plain"), st.sampled_from(PLAIN)),
        st.tuples(st.just("list_unit"), st.sampled_from(directory.unit_labels)),
    )
    return st.tuples(senders, chats, spec)


def command_text(spec: Any, step: int) -> str:
    kind = spec[0]
    if kind == "report":
        _, place, unit, person, level = spec
        lines = ["隐患", f"部位：{place}{step % 5 + 1}楼位{step}号", f"问题：问题{step}号隐患", f"等级：{level}"]
        lines += [f"单位：{unit}"] * (unit is not None) + [f"责任人：{person}"] * (person is not None)
        return "\n".join(lines)
    if kind == "check":
        _, place, unit = spec
        return "\n".join(["检查", f"部位：{place}查{step}号", "结果：无隐患"] + [f"单位：{unit}"] * (unit is not None))
    if kind == "numbered":
        return spec[1].format(n=spec[2])
    if kind == "list_unit":
        return f"清单 单位：{spec[1]}"
    return spec[1]


@dataclass(frozen=True)
class Ledger:
    hazards: dict[int, tuple[Any, ...]]  # id → everything a command could change, with its event count
    rows: list[Hazard]
    checks: list[tuple[str, str | None]]  # (unit, building) of every check record
    submissions: list[str]
    alerted_groups: list[str]


def snapshot(chat: Chat) -> Ledger:
    with chat.session() as session:
        rows = list(session.exec(select(Hazard).order_by(Hazard.number)))
        events: dict[int, int] = {}
        for event in session.exec(select(HazardEvent)):
            events[event.hazard_id] = events.get(event.hazard_id, 0) + 1
        return Ledger(
            hazards={
                h.id: (h.unit_id, h.status, h.deadline, h.completion, h.responsible_id, h.closed_at, events.get(h.id, 0))
                for h in rows if h.id is not None
            },
            rows=rows,
            checks=[(r.unit_id, r.building_id) for r in session.exec(select(CheckRecord).order_by(CheckRecord.id))],
            submissions=[s.unit_id for s in session.exec(select(Submission).order_by(Submission.id))],
            alerted_groups=[p.group_id for p in session.exec(select(DuePush).order_by(DuePush.id))],
        )


def reply_text(chat: Chat) -> str:
    """What the last replies showed: their text and every cell of an attached workbook."""
    parts = [reply.text for reply in chat.last]
    for reply in chat.last:
        if reply.file_data:
            book = load_workbook(BytesIO(reply.file_data))
            parts += [str(v) for sheet in book for row in sheet.iter_rows(values_only=True) for v in row if v is not None]
    return "\n".join(parts)


def chat_school(directory: Directory, chat_id: str, sender: str) -> str | None:
    if chat_id == PRIVATE:
        unit = next(unit for person_id, _, unit in directory.people if person_id == sender)
        return directory.school_of_unit[unit]
    return directory.school_of_group[chat_id]


def assert_closed_doors(directory: Directory, school: str, text: str, command: str, before: Ledger, after: Ledger) -> None:
    """Nothing of the other school in the reply, and nothing of it created or changed by the command."""
    other = "b" if school == "a" else "a"
    school_of = directory.school_of_unit
    theirs = [h for h in after.rows if school_of[h.unit_id] == other]
    for hazard in theirs:
        assert hazard.location not in text and hazard.problem not in text, (command, hazard.number, text)
    typed = {int(n) for n in re.findall(r"#(\d+)", command)}
    shown = {int(n) for n in re.findall(r"#(\d+)", text)}
    # Numbers are per school: a number shown here that the own school also has is the own school's hazard
    # (a leak of the other one's would show its location or problem, checked above).
    ours = {h.number for h in after.rows if school_of[h.unit_id] == school}
    assert not (shown - typed - ours) & {h.number for h in theirs}, (command, text)
    if SCHOOLS[other] not in command:
        assert SCHOOLS[other] not in text, (command, text)
    changed = {hid for hid, state in after.hazards.items() if before.hazards.get(hid) != state}
    assert all(school_of[after.hazards[hid][0]] == school for hid in changed), (command, changed)
    assert all(school_of[unit] == school for unit, _ in after.checks[len(before.checks):]), command
    assert all(school_of[unit] == school for unit in after.submissions[len(before.submissions):]), command
    new_alerts = after.alerted_groups[len(before.alerted_groups):]
    assert all(directory.school_of_group[group] in (school, COUNTY) for group in new_alerts), command
    mine = sum(1 for h in after.rows if school_of[h.unit_id] == school and h.status != "withdrawn")
    for found in re.findall(r"累计发现(\d+)条|发现(\d+)｜", text):
        assert int(found[0] or found[1]) <= mine, (command, text)


def assert_buildings_in_own_school(directory: Directory, ledger: Ledger) -> None:
    for hazard in ledger.rows:
        if hazard.building_id is not None:
            assert directory.building_school[hazard.building_id] == directory.school_of_unit[hazard.unit_id], hazard
    for unit, building in ledger.checks:
        if building is not None:
            assert directory.building_school[building] == directory.school_of_unit[unit], (unit, building)


def _count_other(directory: Directory, school: str, ledger: Ledger) -> int:
    return sum(1 for h in ledger.rows if directory.school_of_unit[h.unit_id] not in (school, COUNTY))


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_school_sees_or_touches_the_other_schools_hazards(data: st.DataObject) -> None:
    directory = data.draw(directories(), label="directory")
    run = data.draw(st.lists(commands(directory), min_size=3, max_size=18), label="commands")
    with tempfile.TemporaryDirectory() as tmp:
        engine = start_engine(parse_config(directory.config), Path(tmp))
        try:
            chat = Chat(engine, datetime(2023, 12, 5, 10, 0, tzinfo=TZ))
            # Each school's admin files one hazard in its own group first, so every run has something to leak.
            seeds = [(f"{key}_p0", f"{key}_staff", ("report", "食堂", None, None, "一般")) for key in SCHOOLS]
            before = snapshot(chat)
            for step, (sender, chat_id, spec) in enumerate(seeds + run, start=1):
                command = command_text(spec, step)
                chat.say(sender, command, group=chat_id)
                after = snapshot(chat)
                assert step > len(seeds) or len(after.rows) == step, chat.last
                school = chat_school(directory, chat_id, sender)
                if school is not COUNTY:
                    assert_closed_doors(directory, school, reply_text(chat), command, before, after)
                    other_has = "has hazards" if _count_other(directory, school, after) else "has none"
                    event(f"a school's chat spoke while the other school {other_has}")
                if len(after.rows) > len(before.rows):
                    event("a hazard was filed")
                assert_buildings_in_own_school(directory, after)
                before = after
                chat.advance(minutes=7)
        finally:
            engine.db.dispose()
