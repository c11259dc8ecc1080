"""The admin's config: the example file, every class of problem by its TOML key, and `safetybot check-config`."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from datetime import date, time
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.config import Config, ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"
Data = dict[str, Any]


@pytest.fixture(scope="module")
def example() -> Config:
    """The example config, loaded once."""
    return load_config(EXAMPLE)


def _data() -> Data:
    """A fresh, mutable copy of the example config as parsed TOML."""
    return copy.deepcopy(_EXAMPLE_DATA)


_EXAMPLE_DATA: Data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))


def _problems(data: Data) -> list[str]:
    """The problems parse_config reports (fails if there are none)."""
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value.problems


def _enable_platform_examples(text: str) -> str:
    """Uncomment the commented-out `# [[groups]]` blocks, as the example tells the admin to."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        if line == "# [[groups]]":
            inside = True
        elif not line.startswith("# "):
            inside = False
        out.append(line[2:] if inside else line)
    return "\n".join(out)


# -- the example file ----------------------------------------------------------------------


def test_example_config_is_valid(example: Config) -> None:
    assert example.timezone == "Asia/Shanghai"
    assert example.database.url == "sqlite:///data/safetybot.db"
    assert example.server.port == 8000
    assert example.policy.withdraw_minutes == 30
    assert (example.deadlines.general_days, example.deadlines.major_days) == (7, 30)


def test_example_carries_the_seed_002_campaign_as_design_section_5_says(example: Config) -> None:
    campaign = next(c for c in example.campaigns if c.id == "winter-2018")
    assert campaign.name == "冬春安全整治大会战"
    assert (campaign.start, campaign.end) == (date(2018, 11, 21), date(2019, 5, 10))
    assert [(p.start, p.end) for p in campaign.phases] == [
        (date(2018, 11, 21), date(2018, 11, 26)),
        (date(2018, 11, 26), date(2019, 4, 20)),
        (date(2019, 4, 21), date(2019, 5, 10)),
    ]
    assert all(p.deliverable for p in campaign.phases)
    assert campaign.reporting is not None
    assert (campaign.reporting.every_days, campaign.reporting.first, campaign.reporting.at) == (
        10, date(2018, 11, 26), time(17, 0),
    )
    milestones = [(m.date, m.name) for m in campaign.milestones]
    assert [d for d, _ in milestones] == [
        date(2018, 11, 26), date(2018, 12, 19), date(2019, 3, 20), date(2019, 4, 22),
    ]
    assert "方案" in milestones[0][1]
    assert "阶段性情况" in milestones[1][1] and "阶段性情况" in milestones[2][1]
    assert "总结" in milestones[3][1]
    assert campaign.nudge_days_before == [3, 1, 0]


def test_example_has_a_current_campaign_that_every_group_uses(example: Config) -> None:
    campaign = next(c for c in example.campaigns if c.id == "winter-2026")
    assert campaign.start <= date(2026, 11, 23) <= campaign.end
    assert (campaign.start, campaign.end) == (date(2026, 11, 16), date(2027, 5, 10))
    assert campaign.reporting is not None and campaign.reporting.first == date(2026, 11, 20)
    assert campaign.reporting.every_days == 10
    assert len(campaign.phases) == 3
    assert {g.campaign for g in example.groups} == {"winter-2026"}


def test_example_units_nest_county_school_department(example: Config) -> None:
    parents = {u.id: u.parent for u in example.units}
    assert parents["bureau"] is None
    assert parents["school"] == parents["school2"] == "bureau"
    for department in ("security", "logistics", "student_affairs", "teaching", "canteen"):
        assert parents[department] == "school"
    aliases = {u.id: u.aliases for u in example.units}
    assert "保卫处" in aliases["security"] and "总务处" in aliases["logistics"] and "后勤" in aliases["logistics"]


def test_example_people_have_the_agreed_ids_units_and_roles(example: Config) -> None:
    people = {p.id: p for p in example.people}
    expected = {
        "zhang_wei": ("张伟", "teaching", "teacher"),
        "wang_jianguo": ("王建国", "logistics", "unit_head"),
        "li_na": ("李娜", "security", "safety_officer"),
        "zhao_min": ("赵敏", "school", "leader"),
        "liu_yang": ("刘洋", "school", "admin"),
        "chen_jing": ("陈静", "student_affairs", "teacher"),
        "sun_li": ("孙丽", "school2", "unit_head"),
        "zhou_tao": ("周涛", "school2", "teacher"),
    }
    for person_id, (name, unit, role) in expected.items():
        person = people[person_id]
        assert (person.name, person.unit) == (name, unit)
        assert role in person.roles
        assert person.wecom_userid and person.dingtalk_staff_id
        assert person.mobile is not None and len(person.mobile) == 11
    assert people["zhang_wei"].wecom_userid == "ZhangWei"


def test_example_groups(example: Config) -> None:
    groups = {g.id: g for g in example.groups}
    assert (groups["staff"].platform, groups["staff"].kind, groups["staff"].units) == ("console", "staff", ["school"])
    assert groups["staff"].name == "一中安全工作群"
    assert (groups["leaders"].kind, groups["leaders"].name) == ("leaders", "一中安全领导群")
    assert groups["school2-staff"].units == ["school2"]


def test_example_wecom_and_dingtalk_groups_are_valid_once_uncommented() -> None:
    config = parse_config(tomllib.loads(_enable_platform_examples(EXAMPLE.read_text(encoding="utf-8"))))
    platforms = {g.platform: g for g in config.groups}
    assert set(platforms["wecom"].credentials) == {"webhook_key", "token", "encoding_aes_key"}
    assert set(platforms["dingtalk"].credentials) == {
        "app_key", "app_secret", "robot_code", "webhook_token", "webhook_secret",
    }
    for group in (platforms["wecom"], platforms["dingtalk"]):
        assert all(name.startswith("SAFETYBOT_") for name in group.credentials.values())


def test_example_categories(example: Config) -> None:
    names = [c.name for c in example.categories]
    assert names == ["消防", "用电", "建筑", "食品", "交通", "实验室", "设施设备", "校园安防", "燃气", "特种设备", "其他"]
    fire = next(c for c in example.categories if c.name == "消防")
    assert {"灭火器", "消防通道", "应急灯"} <= set(fire.keywords)


def test_example_checklist_is_all_of_seed_003_attachment_1(example: Config) -> None:
    rows = [(item.project, item.seq) for item in example.checklist]
    assert rows == (
        [("消防安全", n) for n in range(1, 6)]
        + [("冬季易发安全隐患", n) for n in range(1, 5)]
        + [("校园安防", n) for n in range(1, 6)]
    )
    first = example.checklist[0]
    assert "消防安全检查日" in first.content and first.departments == ["security"]
    assert example.checklist[1].departments == ["security", "logistics"]
    traffic = example.checklist[5]
    assert "交通安全教育" in traffic.content and traffic.departments == ["security", "student_affairs"]
    assert all(item.method and item.departments for item in example.checklist)


def test_example_buildings(example: Config) -> None:
    by_unit = {unit: [b for b in example.buildings if b.unit == unit] for unit in ("school", "school2")}
    assert 6 <= len(by_unit["school"]) <= 10
    assert len(by_unit["school2"]) == 2
    teaching = next(b for b in example.buildings if b.name == "1号教学楼")
    assert "一号教学楼" in teaching.aliases and teaching.built_year is not None


# -- every class of problem, named by its key ----------------------------------------------


def _set(path: str, value: Any) -> Callable[[Data], None]:
    """A mutation that sets data[path] (path like 'campaigns.0.phases.1.end')."""

    def mutate(data: Data) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


def _append(table: str, row: Data) -> Callable[[Data], None]:
    """A mutation that appends a row to a table."""
    return lambda data: data[table].append(row)


_WECOM_GROUP: Data = {
    "id": "wecom-staff", "name": "企业微信群", "platform": "wecom", "units": ["school"],
    "chat_id": "wrkSFfCgAA0001", "credentials": {"webhook_key": "SAFETYBOT_WECOM_STAFF_WEBHOOK_KEY"},
}

CASES: list[tuple[str, Callable[[Data], None], str]] = [
    # dates in order
    ("phase end before start", _set("campaigns.0.phases.1.end", date(2018, 11, 25)),
     "campaigns「冬春安全整治大会战」(winter-2018).phases「第二阶段：自查自改、深入检查、全面整治」.end: before start"),
    ("campaign end before start", _set("campaigns.1.end", date(2026, 1, 1)), "campaigns「2026—2027学年冬春校园安全隐患排查整治」(winter-2026).end: before start"),
    ("phase after the campaign", _set("campaigns.1.phases.2.end", date(2027, 6, 1)),
     "campaigns「2026—2027学年冬春校园安全隐患排查整治」(winter-2026).phases「第三阶段：总结提高」.end: 2027-06-01 is outside the campaign"),
    ("phase before the campaign", _set("campaigns.1.phases.0.start", date(2026, 11, 1)),
     "campaigns「2026—2027学年冬春校园安全隐患排查整治」(winter-2026).phases「第一阶段：动员部署」.start: 2026-11-01 is outside the campaign"),
    ("milestone outside", _set("campaigns.0.milestones.3.date", date(2019, 6, 1)),
     "campaigns「冬春安全整治大会战」(winter-2018).milestones「报送冬春安全整治大会战工作总结」.date: 2019-06-01 is outside the campaign"),
    ("reporting.first outside", _set("campaigns.1.reporting.first", date(2026, 10, 1)),
     "campaigns「2026—2027学年冬春校园安全隐患排查整治」(winter-2026).reporting.first: 2026-10-01 is outside the campaign"),
    ("bad reporting time", _set("campaigns.1.reporting.at", "25:00"),
     "campaigns「2026—2027学年冬春校园安全隐患排查整治」(winter-2026).reporting.at: '25:00' is not a time"),
    ("bad date", _set("campaigns.1.start", "2026-13-01"), "campaigns「2026—2027学年冬春校园安全隐患排查整治」(winter-2026).start: Input should be a valid date"),
    ("missing key", lambda d: d["campaigns"][0].pop("start"), "campaigns「冬春安全整治大会战」(winter-2018).start: missing"),
    ("negative nudge", _set("campaigns.1.nudge_days_before", [3, -1]),
     "campaigns「2026—2027学年冬春校园安全隐患排查整治」(winter-2026).nudge_days_before[1]: -1 is negative"),
    # references
    ("unknown person unit", _set("people.0.unit", "math"), "people「张伟」(zhang_wei).unit: unknown unit 'math'"),
    ("unknown parent", _set("units.2.parent", "schol"), "units「安全保卫处」(security).parent: unknown unit 'schol'"),
    ("unit cycle", _set("units.0.parent", "security"), "units「县教育局」(bureau).parent: cycle bureau → security → school → bureau"),
    ("unit is its own parent", _set("units.2.parent", "security"), "units「安全保卫处」(security).parent: cycle security → security"),
    ("unknown group unit", _set("groups.0.units", ["school", "school3"]),
     "groups「一中安全工作群」(staff).units[1]: unknown unit 'school3'"),
    ("unknown campaign unit", _set("campaigns.1.units", ["nowhere"]), "campaigns「2026—2027学年冬春校园安全隐患排查整治」(winter-2026).units[0]: unknown unit 'nowhere'"),
    ("unknown campaign", _set("groups.1.campaign", "winter-2025"),
     "groups「一中安全领导群」(leaders).campaign: unknown campaign 'winter-2025'"),
    ("unknown checklist department", _set("checklist.3.departments", ["security", "hospital"]),
     "checklist「消防安全 4」.departments[1]: unknown unit 'hospital'"),
    ("unknown building unit", _set("buildings.0.unit", "school9"), "buildings「1号教学楼」(s1-teach1).unit: unknown unit 'school9'"),
    # duplicates
    ("duplicate unit id", _set("units.7.id", "school"), "units「城南小学」(school).id: duplicate id 'school' (also units「城关第一中学」(school))"),
    ("duplicate person id", _set("people.1.id", "zhang_wei"), "people「王建国」(zhang_wei).id: duplicate id 'zhang_wei' (also people「张伟」(zhang_wei))"),
    ("duplicate group id", _set("groups.2.id", "staff"), "groups「城南小学安全工作群」(staff).id: duplicate id 'staff'"),
    ("duplicate campaign id", _set("campaigns.1.id", "winter-2018"), "campaigns「2026—2027学年冬春校园安全隐患排查整治」(winter-2018).id: duplicate id 'winter-2018'"),
    ("duplicate building id", _set("buildings.1.id", "s1-teach1"), "buildings「2号教学楼」(s1-teach1).id: duplicate id 's1-teach1'"),
    ("duplicate name in one group", _set("people.5.name", "张伟"), "people「张伟」(chen_jing).name: '张伟' is also people「张伟」(zhang_wei) in group 'staff'"),
    ("duplicate wecom userid", _set("people.3.wecom_userid", "ZhangWei"),
     "people「赵敏」(zhao_min).wecom_userid: 'ZhangWei' is also people「张伟」(zhang_wei).wecom_userid"),
    ("duplicate dingtalk id", _set("people.3.dingtalk_staff_id", "0135210001"),
     "people「赵敏」(zhao_min).dingtalk_staff_id: '0135210001' is also people「张伟」(zhang_wei).dingtalk_staff_id"),
    ("duplicate mobile", _set("people.3.mobile", "138 0000 0001"),
     "people「赵敏」(zhao_min).mobile: '13800000001' is also people「张伟」(zhang_wei).mobile"),
    ("unit alias clash", lambda d: d["units"][3]["aliases"].insert(0, "保卫处"),
     "units「总务基建处」(logistics).aliases[0]: '保卫处' also names units「安全保卫处」(security) in group 'staff'"),
    ("building alias clash", lambda d: d["buildings"][1]["aliases"].insert(0, "一教"),
     "buildings「2号教学楼」(s1-teach2).aliases[0]: '一教' also names buildings「1号教学楼」(s1-teach1)"),
    ("duplicate category", _set("categories.1.name", "消防"), "categories「消防」.name: duplicate category '消防'"),
    ("keyword in two categories", lambda d: d["categories"][1]["keywords"].insert(0, "灭火器"),
     "categories「用电」.keywords[0]: '灭火器' is also a keyword of categories「消防」"),
    ("duplicate checklist row", _set("checklist.1.seq", 1), "checklist「消防安全 1」.seq: 消防安全 1 is also checklist row 1"),
    ("duplicate chat id", lambda d: d["groups"].extend([_WECOM_GROUP, {**_WECOM_GROUP, "id": "w2"}]),
     "groups「企业微信群」(w2).chat_id: 'wrkSFfCgAA0001' is also groups「企业微信群」(wecom-staff).chat_id"),
    # people
    ("unknown role", _set("people.0.roles", ["teacher", "principal"]), "people「张伟」(zhang_wei).roles[1]: unknown value 'principal'"),
    ("no roles", _set("people.0.roles", []), "people「张伟」(zhang_wei).roles: give at least one role"),
    ("no admin", _set("people.4.roles", ["leader"]), "people: nobody has the admin role"),
    ("short mobile", _set("people.0.mobile", "1380000001"), "people「张伟」(zhang_wei).mobile: '1380000001' is not an 11-digit mobile"),
    ("bad id", _set("people.0.id", "张伟"), "people「张伟」(张伟).id: '张伟' is not a valid id"),
    # top level, groups, database
    ("bad time zone", _set("timezone", "Asia/Beijing"), "timezone: unknown time zone 'Asia/Beijing'"),
    ("bad platform", _set("groups.0.platform", "wechat"), "groups「一中安全工作群」(staff).platform: unknown value 'wechat'"),
    ("bad kind", _set("groups.0.kind", "teachers"), "groups「一中安全工作群」(staff).kind: unknown value 'teachers'"),
    ("platform group without credentials", _append("groups", {**_WECOM_GROUP, "credentials": {}}),
     "groups「企业微信群」(wecom-staff).credentials: a wecom group needs credentials"),
    ("lowercase env name", _append("groups", {**_WECOM_GROUP, "credentials": {"token": "safetybot_token"}}),
     "groups「企业微信群」(wecom-staff).credentials.token: 'safetybot_token' is not an environment variable name"),
    ("unknown key", _set("units.1.parnet", "bureau"), "units「城关第一中学」(school).parnet: unknown key; did you mean 'parent'?"),
    ("unknown table", _set("calender", {}), "calender: unknown key"),
    ("bad port", _set("server.port", 70000), "server.port: Input should be less than or equal to 65535"),
    ("bad database url", _set("database.url", "postgres://bot@db/safetybot"),
     "database.url: unknown database kind 'postgres'"),
    ("not a database url", _set("database.url", "safetybot.db"), "database.url: not a SQLAlchemy database URL"),
]


@pytest.mark.parametrize(("mutate", "expected"), [(m, e) for _, m, e in CASES], ids=[name for name, _, _ in CASES])
def test_problem_is_reported_by_its_key(mutate: Callable[[Data], None], expected: str) -> None:
    data = _data()
    mutate(data)
    problems = _problems(data)
    assert any(problem.startswith(expected) for problem in problems), problems


@pytest.mark.parametrize(
    "secret",
    [
        "693a91f6-7d1b-4bc4-97a0-0ec2a1fa5aaa",  # a WeCom webhook key
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6",  # a pasted webhook URL
        "SEC3f1e0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f",  # a DingTalk signing secret
        "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",  # a WeCom EncodingAESKey
        "0123456789abcdef0123456789abcdef",  # a hex access token
    ],
)
def test_secret_in_credentials_is_refused_and_not_echoed(secret: str) -> None:
    data = _data()
    data["groups"].append({**_WECOM_GROUP, "credentials": {"webhook_key": secret}})
    problems = _problems(data)
    assert problems == [
        f"groups「企业微信群」(wecom-staff).credentials.webhook_key: this looks like a secret ({secret[:4]}…), not an environment "
        "variable name: put the secret in an environment variable and write its NAME here, "
        "e.g. SAFETYBOT_WECOM_WEBHOOK_KEY"
    ]
    assert secret not in "\n".join(problems)


def test_mobile_is_normalized() -> None:
    data = _data()
    data["people"][0]["mobile"] = 13800000001  # unquoted in TOML
    data["people"][1]["mobile"] = "138-0000-0002"
    data["people"][2]["mobile"] = "+86 138 0000 0003"
    config = parse_config(data)
    assert [p.mobile for p in config.people[:3]] == ["13800000001", "13800000002", "13800000003"]


def test_same_name_in_two_schools_is_fine() -> None:
    data = _data()
    data["people"][7]["name"] = "张伟"  # 周涛 of school2 renamed: a different group, so no ambiguity
    assert parse_config(data).people[7].name == "张伟"


def test_reporting_time_accepts_toml_local_time() -> None:
    data = _data()
    data["campaigns"][1]["reporting"]["at"] = time(16, 30)
    campaign = parse_config(data).campaigns[1]
    assert campaign.reporting is not None and campaign.reporting.at == time(16, 30)


def test_every_problem_is_listed_at_once() -> None:
    data = _data()
    data["timezone"] = "Mars/Olympus"
    data["campaigns"][0]["phases"][0]["start"] = "2018-13-01"  # a pydantic error in the same campaign ...
    data["campaigns"][0]["phases"][1]["end"] = date(2018, 11, 25)  # ... does not hide this date problem
    data["people"][0]["roles"] = ["principal"]
    data["people"][1]["unit"] = "math"
    data["groups"][0]["platform"] = "wechat"
    data["groups"][1]["campaign"] = "winter-2025"
    data["buildings"][0]["unit"] = "school9"
    problems = _problems(data)
    for expected in (
        "timezone: unknown time zone 'Mars/Olympus'",
        "campaigns「冬春安全整治大会战」(winter-2018).phases「第一阶段：制定方案、全面部署、广泛动员」.start: Input should be a valid date",
        "campaigns「冬春安全整治大会战」(winter-2018).phases「第二阶段：自查自改、深入检查、全面整治」.end: before start",
        "people「张伟」(zhang_wei).roles[0]: unknown value 'principal'",
        "people「王建国」(wang_jianguo).unit: unknown unit 'math'",
        "groups「一中安全工作群」(staff).platform: unknown value 'wechat'",
        "groups「一中安全领导群」(leaders).campaign: unknown campaign 'winter-2025'",
        "buildings「1号教学楼」(s1-teach1).unit: unknown unit 'school9'",
    ):
        assert any(problem.startswith(expected) for problem in problems), (expected, problems)
    # listed table by table, in the order of the file
    assert problems[0].startswith("timezone:") and problems[-1].startswith("buildings「1号教学楼」")


def test_a_unit_cycle_is_reported_once() -> None:
    data = _data()
    data["units"][0]["parent"] = "security"  # every unit now hangs below the cycle
    assert _problems(data) == ["units「县教育局」(bureau).parent: cycle bureau → security → school → bureau (units must form a tree)"]


def test_a_row_that_fails_validation_still_counts_as_defined() -> None:
    data = _data()
    data["units"][2]["name"] = ""  # security is broken, but people in it must not be "unknown unit"
    problems = _problems(data)
    assert problems == ["units(security).name: String should have at least 1 character (got '')"]


# -- load_config and `safetybot check-config` ----------------------------------------------


def test_load_config_reports_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        load_config(tmp_path / "nope.toml")
    assert missing.value.problems[0].startswith("(file):") and "does not exist" in missing.value.problems[0]
    bad = tmp_path / "bad.toml"
    bad.write_text('timezone = "Asia/Shanghai\n', encoding="utf-8")
    with pytest.raises(ConfigError) as malformed:
        load_config(bad)
    assert malformed.value.problems[0].startswith("(file): not valid TOML")


def test_check_config_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 0
    out, err = capsys.readouterr()
    assert "OK，配置正确（3 个活动、8 个单位、9 人、3 个群）" in out
    assert err == ""
    assert main(["check-config", str(EXAMPLE), "--lang", "en"]) == 0
    assert "OK (3 campaigns, 8 units, 9 people, 3 groups)" in capsys.readouterr().out


def _broken_example(tmp_path: Path) -> Path:
    """The example with four mistakes: a time zone, a platform, a person's unit, a pasted secret."""
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace('timezone = "Asia/Shanghai"', 'timezone = "Asia/Peking"', 1)
    text = text.replace('platform = "console"\nkind = "leaders"', 'platform = "wechat"\nkind = "leaders"', 1)
    text = text.replace('name = "周涛"\nunit = "school2"', 'name = "周涛"\nunit = "school3"', 1)
    text += (
        '\n[[groups]]\nid = "w"\nname = "w"\nplatform = "wecom"\n'
        'credentials = { webhook_key = "693a91f6-7d1b-4bc4-97a0-0ec2a1fa5aaa" }\n'
    )
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_check_config_lists_every_problem_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _broken_example(tmp_path)
    assert main(["check-config", str(path), "--lang", "en"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == "timezone: unknown time zone 'Asia/Peking'; use an IANA name such as Asia/Shanghai"
    assert "people「周涛」(zhou_tao).unit: unknown unit 'school3'; did you mean 'school'?" in lines
    assert any(line.startswith("groups「一中安全领导群」(leaders).platform: unknown value 'wechat'") for line in lines)
    assert any(line.startswith("groups「w」(w).credentials.webhook_key: this looks like a secret") for line in lines)
    assert "693a91f6-7d1b" not in err
    assert lines[-1] == f"{path}: 4 problem(s)"


def test_check_config_speaks_chinese_by_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _broken_example(tmp_path)
    assert main(["check-config", str(path)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "timezone: 未知时区 'Asia/Peking'；请写 IANA 时区名，例如 Asia/Shanghai"
    assert (
        "people「周涛」(zhou_tao).unit: 没有 id 为 'school3' 的单位；请写 [[units]] 里已有的 id；您是不是想写 school？"
        in lines
    )
    assert any(line.startswith("groups「一中安全领导群」(leaders).platform: 不认识的取值 'wechat'") for line in lines)
    assert any(line.startswith("groups「w」(w).credentials.webhook_key: 这看起来是密钥（693a…）") for line in lines)
    assert "693a91f6-7d1b" not in "\n".join(lines)
    assert lines[-1].startswith(f"{path}：共 4 个问题")


def test_a_typo_in_a_reference_gets_the_closest_id() -> None:
    data = _data()
    data["people"][1]["unit"] = "logistic"  # 王建国 of logistics
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert caught.value.lines("zh") == [
        "people「王建国」(wang_jianguo).unit: 没有 id 为 'logistic' 的单位；请写 [[units]] 里已有的 id；"
        "您是不是想写 logistics？"
    ]
    assert caught.value.lines("en") == [
        "people「王建国」(wang_jianguo).unit: unknown unit 'logistic'; did you mean 'logistics'?"
    ]


def test_nothing_close_means_no_suggestion() -> None:
    data = _data()
    data["groups"][1]["campaign"] = "spring-drill"
    assert _problems(data) == ["groups「一中安全领导群」(leaders).campaign: unknown campaign 'spring-drill'"]


def test_entries_are_named_by_name_and_id_or_by_what_they_have(tmp_path: Path) -> None:
    data = _data()
    data["people"][5]["unit"] = "nowhere"  # a row with a name and an id
    data["categories"][2]["keywords"] = "墙体"  # a row with a name only
    data["checklist"][0]["method"] = 3  # a checklist row: 督查项目 and 序号
    data["campaigns"][1]["phases"][0]["name"] = ""  # a nested row whose name is the problem: its position
    problems = _problems(data)
    assert "people「陈静」(chen_jing).unit: unknown unit 'nowhere'" in problems
    assert any(p.startswith("categories「建筑」.keywords: Input should be a valid list") for p in problems), problems
    assert any(p.startswith("checklist「消防安全 1」.method: Input should be a valid string") for p in problems)
    assert any(p.startswith("campaigns「2026—2027学年冬春校园安全隐患排查整治」(winter-2026).phases[0].name:")
               for p in problems)
    assert not any("people[5]" in p for p in problems)


def test_pydantic_type_errors_are_rendered_in_chinese_with_the_entry() -> None:
    data = _data()
    data["campaigns"][1]["start"] = "2026-13-01"
    data["server"]["port"] = 70000
    data["units"][1]["parnet"] = "bureau"
    data["people"][0]["roles"] = "teacher"
    data["people"][1]["name"] = ""
    data["scheduler"]["enabled"] = "yes please"
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    lines = caught.value.lines("zh")
    for expected in (
        "server.port: 应不大于 65535（现在是 70000）",
        "campaigns「2026—2027学年冬春校园安全隐患排查整治」(winter-2026).start: 不是有效的日期（现在是 '2026-13-01'）；"
        "请写成 2026-11-20",
        "units「城关第一中学」(school).parnet: 不认识的键；您是不是想写 parent？",
        "people「张伟」(zhang_wei).roles: 应为列表（现在是 'teacher'），例如 [\"school\"]",
        "people(wang_jianguo).name: 不能为空（现在是 ''）；请填写内容",
        "scheduler.enabled: 应为 true 或 false（现在是 'yes please'）",
    ):
        assert expected in lines, (expected, lines)
    assert not any("Input should" in line for line in lines)


def test_every_problem_code_has_both_languages() -> None:
    from models.config_problems import MESSAGES

    for code, (zh, en) in MESSAGES.items():
        assert zh and en, code
        assert code == "text" or zh != en, code


def test_check_config_on_a_missing_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "missing.toml")]) == 1
    assert "找不到文件" in capsys.readouterr().err
    assert main(["check-config", str(tmp_path / "missing.toml"), "--lang", "en"]) == 1
    assert "does not exist" in capsys.readouterr().err
