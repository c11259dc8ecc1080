"""The platform directory sync: fake WeCom/DingTalk organisations become units and people."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.cli import main
from bot.config import Config, ConfigError, parse_config
from bot.directory import Department, Member, Snapshot, apply_snapshot
from bot.directory.calls import DirectoryRefused
from bot.directory.service import sync_directory, sync_logged
from bot.engine import Engine as BotEngine
from bot.secrets import Secrets
from bot.sync import sync_config
from models.platform_usage import month_of, usage_of_month
from models.db import make_engine, upgrade
from models.tables import CampaignRow, Hazard, PersonRow, UnitRow
from tests.fakes.contacts import FakeOrg, build_org
from tests.fakes.dingtalk_server import FakeDingTalk
from tests.fakes.wecom_server import FakeWeCom
from tests.models.conftest import postgres_engine  # noqa: F401  (a fixture this module shares)
from tests.conftest import campaign_clock

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=TZ)
LATER = datetime(2026, 3, 3, 9, 0, tzinfo=TZ)
ENV = {
    "WC_CORP": "ww-test-corp", "WC_SECRET": "wecom-contacts-secret",
    "DT_KEY": "ding-app-key", "DT_SECRET": "ding-app-secret",
}
SECRETS = Secrets(environ=ENV)


def directory_config(platform: str, base_url: str, schools: dict[int, str], **directory: Any) -> Config:
    """A config whose units are the schools only; everyone else comes from the directory."""
    credentials = (
        {"corp_id": "WC_CORP", "secret": "WC_SECRET"} if platform == "wecom"
        else {"app_key": "DT_KEY", "app_secret": "DT_SECRET"}
    )
    data: dict[str, Any] = {
        "units": [{"id": "county", "name": "县教育局"}]
        + [{"id": unit, "name": f"学校{unit}", "parent": "county"} for unit in schools.values()],
        "people": [{"id": "admin", "name": "管理员", "unit": "county", "roles": ["admin"]}],
        "wecom": {"api_base": base_url},
        "dingtalk": {"api_base": base_url, "oapi_base": base_url},
        "directory": {
            "platform": platform, "credentials": credentials,
            "schools": {str(dept): unit for dept, unit in schools.items()},
            "calls_per_second": 1000, "max_concurrency": 8, **directory,
        },
    }
    return parse_config(data)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'directory.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_db(postgres_engine: Engine) -> Engine:
    upgrade(postgres_engine)
    return postgres_engine


@pytest.fixture
def wecom() -> Iterator[FakeWeCom]:
    with FakeWeCom() as fake:
        fake.add_corp(ENV["WC_CORP"], ENV["WC_SECRET"])
        yield fake


@pytest.fixture
def dingtalk() -> Iterator[FakeDingTalk]:
    with FakeDingTalk() as fake:
        fake.add_app(ENV["DT_KEY"], ENV["DT_SECRET"])
        yield fake


def sync(config: Config, db: Engine, now: datetime = NOW, *, dry_run: bool = False) -> Any:
    """Load the TOML's rows (as `serve` does at start), then one directory sync."""
    with Session(db) as session:
        sync_config(session, config)

    async def run() -> Any:
        async with httpx.AsyncClient(timeout=10) as http:
            return await sync_directory(config, db, SECRETS, now, http=http, dry_run=dry_run)

    return anyio.run(run)


def person(db: Engine, platform: str, user_id: str) -> PersonRow:
    column = PersonRow.wecom_userid if platform == "wecom" else PersonRow.dingtalk_staff_id
    with Session(db) as session:
        return session.exec(select(PersonRow).where(column == user_id)).one()


def unit_of_dept(db: Engine, dept_id: int) -> UnitRow:
    with Session(db) as session:
        return session.exec(select(UnitRow).where(UnitRow.platform_dept_id == str(dept_id))).one()


def small_org() -> tuple[FakeOrg, dict[int, str]]:
    """Two schools of three departments and twelve members each."""
    return build_org(schools=2, departments_per_school=3, members_per_school=12)


# -- a whole county ------------------------------------------------------------------------------


def test_a_county_of_50_schools_of_100_members_becomes_units_and_people(wecom: FakeWeCom, db: Engine) -> None:
    wecom.org, schools = build_org(schools=50, departments_per_school=3, members_per_school=100)
    config = directory_config("wecom", wecom.base_url, schools)

    report = sync(config, db)

    assert (report.units.added, report.people.added) == (150, 5000)
    assert report.problems == []
    with Session(db) as session:
        people = session.exec(select(PersonRow).where(PersonRow.source == "platform")).all()
        units = {u.id: u for u in session.exec(select(UnitRow))}
    assert len(people) == 5000 and all(p.active and p.wecom_userid for p in people)
    assert all(p.mobile is None for p in people)  # minimum personal data: no role entry asked for one
    # Every platform unit hangs, through its parents, under its school's configured unit.
    school_units = set(schools.values())
    for unit in units.values():
        if unit.source == "platform":
            cursor = unit
            while cursor.id not in school_units:
                cursor = units[cursor.parent_id or ""]
    nested = unit_of_dept(db, 1003)  # school 1's third department sits under its first
    assert nested.parent_id == "wecom-dept-1001" and nested.id == "wecom-dept-1003"
    assert report.api_calls == 1 + 50 + 200 + 200  # token, simplelist per school, get and user/list per dept

    again = sync(config, db, LATER)
    assert (again.people.unchanged, again.people.added, again.people.deactivated) == (5000, 0, 0)


# -- the next sync -------------------------------------------------------------------------------


def test_a_changed_moved_and_removed_member_shows_on_the_next_sync(wecom: FakeWeCom, db: Engine) -> None:
    wecom.org, schools = small_org()
    config = directory_config("wecom", wecom.base_url, schools)
    sync(config, db)
    leaver = person(db, "wecom", "s1u9")
    with Session(db) as session:  # the leaver reported a hazard: it must keep pointing at them
        session.add(CampaignRow(id="c", name="排查", start=date(2026, 3, 1), end=date(2026, 4, 30)))
        session.add(Hazard(campaign_id="c", number=1, unit_id=leaver.unit_id, location="1号楼", problem="灭火器过期",
                           reporter_id=leaver.id, deadline=date(2026, 3, 9), found_at=NOW))
        session.commit()

    wecom.org.members["s1u5"].name = "王芳"  # renamed
    wecom.org.members["s1u6"].departments = [1002]  # moved to another department
    wecom.org.remove_member("s1u9")  # left the school
    wecom.org.departments[1003].name = "总务处"
    report = sync(config, db, LATER)

    assert (report.people.changed, report.people.moved, report.people.deactivated) == (1, 1, 1)
    assert report.units.changed == 1 and unit_of_dept(db, 1003).name == "总务处"
    assert person(db, "wecom", "s1u5").name == "王芳"
    assert person(db, "wecom", "s1u6").unit_id == "wecom-dept-1002"
    gone = person(db, "wecom", "s1u9")
    assert (gone.active, gone.left_at) == (False, LATER)
    with Session(db) as session:
        assert session.exec(select(Hazard)).one().reporter_id == gone.id  # history kept
        # The bot knows a synced member by their WeCom userid, and no longer knows the leaver.
        assert BotEngine.find_person(session, "wecom", "s1u5").name == "王芳"
        assert BotEngine.find_person(session, "wecom", "s1u9") is None

    wecom.org.add_member("s1u9", "教师1-9", [1001])  # came back
    back = sync(config, db, LATER)
    assert back.people.added == 1 and person(db, "wecom", "s1u9").active
    assert person(db, "wecom", "s1u9").left_at is None


def test_a_sync_and_a_resync_on_postgres(wecom: FakeWeCom, postgres_db: Engine) -> None:
    wecom.org, schools = small_org()
    config = directory_config("wecom", wecom.base_url, schools)
    assert sync(config, postgres_db).people.added == 24
    wecom.org.remove_member("s2u2")
    wecom.org.members["s2u5"].departments = [1005]

    report = sync(config, postgres_db, LATER)

    assert (report.people.deactivated, report.people.moved, report.people.unchanged) == (1, 1, 22)
    assert person(postgres_db, "wecom", "s2u2").left_at == LATER


def test_a_removed_department_deactivates_its_unit_and_a_disabled_member_leaves(wecom: FakeWeCom, db: Engine) -> None:
    wecom.org, schools = small_org()
    config = directory_config("wecom", wecom.base_url, schools)
    sync(config, db)
    for member in wecom.org.members_of(1003):
        member.departments = [1001]
    del wecom.org.departments[1003]
    wecom.org.members["s1u2"].status = 5  # WeCom: left the organisation

    report = sync(config, db, LATER)

    assert report.units.deactivated == 1 and not unit_of_dept(db, 1003).active
    assert not person(db, "wecom", "s1u2").active


# -- roles ---------------------------------------------------------------------------------------


def test_department_leaders_become_unit_heads(dingtalk: FakeDingTalk, db: Engine) -> None:
    dingtalk.org, schools = small_org()
    config = directory_config("dingtalk", dingtalk.base_url, schools)

    report = sync(config, db)

    assert report.people.added == 24 and report.units.added == 6
    principal = person(db, "dingtalk", "s1u1")  # heads the school department itself
    assert (principal.unit_id, principal.role_set) == ("school-1", {"unit_head"})
    head = person(db, "dingtalk", "s1u2")
    assert (head.unit_id, head.role_set) == ("dingtalk-dept-1001", {"unit_head"})
    assert person(db, "dingtalk", "s1u6").role_set == {"teacher"}
    with Session(db) as session:  # every call of the sync counted against the month's API budget
        [usage] = usage_of_month(session, month_of(NOW, config.tz))
    assert (usage.platform, usage.kind, usage.calls) == ("dingtalk", "directory", len(dingtalk.requests))


def test_a_leader_of_a_second_department_is_placed_in_the_one_they_head(dingtalk: FakeDingTalk, db: Engine) -> None:
    dingtalk.org, schools = small_org()
    dingtalk.org.members["s1u6"].departments = [1001, 1002]
    dingtalk.org.departments[1002].leaders.append("s1u6")
    config = directory_config("dingtalk", dingtalk.base_url, schools)

    sync(config, db)

    assert (person(db, "dingtalk", "s1u6").unit_id, person(db, "dingtalk", "s1u6").role_set) == (
        "dingtalk-dept-1002", {"unit_head"},
    )


def test_toml_role_holders_by_name_mobile_and_user_id_get_their_roles(wecom: FakeWeCom, db: Engine) -> None:
    wecom.org, schools = small_org()
    wecom.org.members["s1u7"].mobile = "13800000007"
    wecom.org.members["s1u8"].mobile = "13800000008"
    wecom.org.members["s2u7"].name = wecom.org.members["s2u8"].name = "李雷"  # two of them
    roles = [
        {"who": "教师1-5", "roles": ["safety_officer"]},
        {"who": 13800000007, "roles": ["leader"]},  # an unquoted mobile
        {"who": "s1u1", "roles": ["admin", "unit_head"]},  # the principal: the TOML says otherwise
        {"who": "李雷", "roles": ["leader"]},
        {"who": "不存在", "roles": ["leader"]},
    ]
    config = directory_config("wecom", wecom.base_url, schools, roles=roles)

    report = sync(config, db)

    assert person(db, "wecom", "s1u5").role_set == {"safety_officer"}
    by_mobile = person(db, "wecom", "s1u7")
    assert (by_mobile.role_set, by_mobile.mobile) == ({"leader"}, "13800000007")
    assert person(db, "wecom", "s1u8").mobile is None  # no entry needs it: not stored
    assert person(db, "wecom", "s1u1").role_set == {"admin", "unit_head"}
    assert person(db, "wecom", "s2u7").role_set == {"teacher"}  # ambiguous name: nobody gets the role
    assert report.problems == [
        "directory.roles[3].who: '李雷' names 2 members; give the user id instead",
        "directory.roles[4].who: '不存在' is no member of the schools' departments (give a user id, name or mobile)",
    ]


def test_a_mobile_wecom_does_not_list_is_looked_up_for_its_role_entry(wecom: FakeWeCom, db: Engine) -> None:
    wecom.org, schools = small_org()
    wecom.org.hide_mobiles = True  # an app created after 2022-06-20
    wecom.org.members["s2u6"].mobile = "13900000006"
    wecom.org.members["s2u9"].mobile = "13900000009"
    roles = [{"who": "13900000006", "roles": ["safety_officer"]}, {"who": "13700000000", "roles": ["leader"]}]
    config = directory_config("wecom", wecom.base_url, schools, roles=roles)

    report = sync(config, db)

    found = person(db, "wecom", "s2u6")
    assert (found.role_set, found.mobile) == ({"safety_officer"}, "13900000006")
    assert person(db, "wecom", "s2u9").mobile is None
    assert wecom.org.calls["/cgi-bin/user/getuserid"] == 2  # only the role entries' mobiles
    assert report.problems == [
        "directory.roles[1].who: '13700000000' is no member of the schools' departments (give a user id, name or mobile)"
    ]


def test_dingtalk_looks_up_only_mobiles_the_listing_did_not_show(dingtalk: FakeDingTalk, db: Engine) -> None:
    dingtalk.org, schools = small_org()
    dingtalk.org.members["s1u7"].mobile = "13800000007"
    roles = [{"who": "13800000007", "roles": ["leader"]}, {"who": "13700000000", "roles": ["leader"]}]
    config = directory_config("dingtalk", dingtalk.base_url, schools, roles=roles)

    report = sync(config, db)

    assert person(db, "dingtalk", "s1u7").role_set == {"leader"}
    assert dingtalk.org.calls["/topapi/v2/user/getbymobile"] == 1  # the unknown one
    assert len(report.problems) == 1 and report.problems[0].startswith("directory.roles[1].who")


def test_a_member_typed_in_people_keeps_the_toml_entry(wecom: FakeWeCom, db: Engine) -> None:
    wecom.org, schools = small_org()
    config = directory_config("wecom", wecom.base_url, schools)
    data = config.model_dump(mode="json", exclude_none=True)
    data["people"].append({"id": "zhang", "name": "张主任", "unit": "school-1", "roles": ["leader"],
                           "wecom_userid": "s1u4"})
    config = parse_config(data)

    report = sync(config, db)

    assert report.skipped_config_people == 1 and report.people.added == 23
    assert person(db, "wecom", "s1u4").id == "zhang"


# -- refusals and dry runs -----------------------------------------------------------------------


@pytest.mark.parametrize("code", [48009, 60011])
def test_wecom_permission_refused_keeps_the_old_directory(
    wecom: FakeWeCom, db: Engine, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    wecom.org, schools = small_org()
    config = directory_config("wecom", wecom.base_url, schools)
    sync(config, db)
    wecom.org.remove_member("s1u9")
    wecom.org.refuse = code

    with pytest.raises(DirectoryRefused) as refused:
        sync(config, db, LATER)
    assert refused.value.code == code
    assert person(db, "wecom", "s1u9").active  # nothing changed

    caplog.set_level(logging.INFO)

    async def periodic() -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            await sync_logged(config, db, SECRETS, LATER, http=http)

    anyio.run(periodic)
    logged = caplog.text
    assert "keeping the current directory" in logged and ("通讯录" in logged or "可见范围" in logged)
    assert "教师" not in logged and "s1u" not in logged  # nothing of the directory in the logs


def test_a_school_outside_the_visible_range_is_refused(wecom: FakeWeCom, db: Engine) -> None:
    wecom.org, schools = small_org()
    wecom.org.visible = {1000}  # only the first school
    config = directory_config("wecom", wecom.base_url, schools)

    with pytest.raises(DirectoryRefused, match="可见范围"):
        sync(config, db)


def test_dingtalk_permission_refused_keeps_the_old_directory(dingtalk: FakeDingTalk, db: Engine) -> None:
    dingtalk.org, schools = small_org()
    config = directory_config("dingtalk", dingtalk.base_url, schools)
    sync(config, db)
    dingtalk.org.remove_member("s2u3")
    dingtalk.org.refuse = 60011

    with pytest.raises(DirectoryRefused, match="成员信息读权限"):
        sync(config, db, LATER)
    assert person(db, "dingtalk", "s2u3").active


def test_dingtalk_pages_members_by_cursor(dingtalk: FakeDingTalk, db: Engine) -> None:
    dingtalk.org, schools = build_org(schools=1, departments_per_school=1, members_per_school=250)
    config = directory_config("dingtalk", dingtalk.base_url, schools)

    report = sync(config, db)

    assert report.people.added == 250
    assert dingtalk.org.calls["/topapi/v2/user/list"] == 2 + 2  # 125 in the school, 125 below: two pages each


def test_wrong_credentials_are_refused(wecom: FakeWeCom, db: Engine) -> None:
    wecom.org, schools = small_org()
    wecom.corps[ENV["WC_CORP"]] = "another-secret"
    config = directory_config("wecom", wecom.base_url, schools)

    with pytest.raises(DirectoryRefused, match="secret"):
        sync(config, db)


def test_a_dry_run_writes_nothing(wecom: FakeWeCom, db: Engine) -> None:
    wecom.org, schools = small_org()
    config = directory_config("wecom", wecom.base_url, schools)

    report = sync(config, db, dry_run=True)

    assert report.people.added == 24
    with Session(db) as session:
        assert session.exec(select(PersonRow).where(PersonRow.source == "platform")).all() == []


def test_a_dry_run_names_what_would_change_the_first_20_of_each_kind(wecom: FakeWeCom, db: Engine) -> None:
    wecom.org, schools = small_org()
    config = directory_config("wecom", wecom.base_url, schools)

    [added] = [line for line in sync(config, db, dry_run=True).name_lines() if line.startswith("people added")]
    names, more = added.removeprefix("people added (24): ").split(" … ")
    assert len(names.split("、")) == 20 and more == "and 4 more"

    sync(config, db)
    leaver, renamed = list(wecom.org.members.values())[:2]
    wecom.org.remove_member(leaver.user_id)
    old, renamed.name = renamed.name, "改名后"
    lines = sync(config, db, dry_run=True).name_lines()
    assert f"people deactivated (1): {leaver.name}" in lines
    assert f"people changed (1): {old}→改名后" in lines
    assert person(db, "wecom", leaver.user_id).active  # a dry run


# -- the config sync and the snapshot interface --------------------------------------------------


def test_the_config_sync_no_longer_deactivates_platform_people(wecom: FakeWeCom, db: Engine) -> None:
    wecom.org, schools = small_org()
    config = directory_config("wecom", wecom.base_url, schools)
    data = config.model_dump(mode="json", exclude_none=True)
    data["people"].append({"id": "old", "name": "旧教师", "unit": "school-1"})
    sync(parse_config(data), db)

    with Session(db) as session:  # the TOML loses "old"; the platform rows are not the TOML's business
        sync_config(session, config)
    with Session(db) as session:
        platform_people = session.exec(select(PersonRow).where(PersonRow.source == "platform")).all()
        platform_units = session.exec(select(UnitRow).where(UnitRow.source == "platform")).all()
        old = session.get(PersonRow, "old")
    assert len(platform_people) == 24 and all(p.active for p in platform_people)
    assert len(platform_units) == 6 and all(u.active for u in platform_units)
    assert old is not None and not old.active


def test_apply_snapshot_takes_a_hand_built_snapshot(db: Engine) -> None:
    """The interface other sources (a console export, self-binding) build on: no network involved."""
    config = directory_config("wecom", "http://127.0.0.1:9", {7: "school-1"})
    snapshot = Snapshot(
        platform="wecom",
        departments=(Department("7", "一中", "1"), Department("8", "教务处", "7", order=1)),
        members=(Member("zhangsan", "张三", ("8",), leader_of=("8",)), Member("lisi", "李四", ("8", "7"))),
    )
    with Session(db) as session:
        sync_config(session, config)
        report = apply_snapshot(session, config, snapshot, NOW)
        session.commit()
    assert (report.units.added, report.people.added) == (1, 2)
    assert person(db, "wecom", "zhangsan").role_set == {"unit_head"}
    assert person(db, "wecom", "lisi").unit_id == "wecom-dept-8"


# -- config and command line ---------------------------------------------------------------------


def test_directory_settings_are_checked() -> None:
    data = {
        "units": [{"id": "county", "name": "县教育局"}],
        "directory": {"platform": "wecom", "credentials": {"corp_id": "WC_CORP"}, "schools": {"1": "nowhere"},
                      "roles": [{"who": "13800000000", "roles": ["admin"]}]},
    }
    with pytest.raises(ConfigError) as bad:
        parse_config(data)
    assert bad.value.problems == [
        "directory.schools.1: unknown unit 'nowhere'",
        'directory.credentials: missing secret; e.g. credentials = { corp_id = "SAFETYBOT_CORP_ID", '
        'secret = "SAFETYBOT_SECRET" }',
    ]  # and no "nobody has the admin role": the directory names one
    assert bad.value.lines("zh")[0] == "directory.schools.1: 没有 id 为 'nowhere' 的单位；请写 [[units]] 里已有的 id"


def test_cli_directory_sync_prints_what_changed(
    wecom: FakeWeCom, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wecom.org, _ = small_org()
    path = tmp_path / "config.toml"
    path.write_text(f"""
[database]
url = "sqlite:///{tmp_path / 'cli.db'}"

[wecom]
api_base = "{wecom.base_url}"

[[units]]
id = "school-1"
name = "第一学校"

[[units]]
id = "school-2"
name = "第二学校"

[directory]
platform = "wecom"
credentials = {{ corp_id = "WC_CORP", secret = "WC_SECRET" }}
schools = {{ 1000 = "school-1", 1004 = "school-2" }}
calls_per_second = 1000

[[directory.roles]]
who = "s1u1"
roles = ["admin"]
""", encoding="utf-8")
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)

    assert main(["directory", "sync", "--config", str(path), "--dry-run", "--now", "2026-03-02T09:00+08:00"]) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing was written" in out and "people: 24 added" in out
    assert main(["directory", "sync", "--config", str(path), "--now", "2026-03-02T09:00+08:00"]) == 0
    assert "people: 24 added" in capsys.readouterr().out
    assert main(["directory", "sync", "--config", str(path), "--now", "2026-03-02T10:00+08:00"]) == 0
    assert "people: 0 added, 0 changed, 0 moved, 0 deactivated, 24 unchanged" in capsys.readouterr().out

    wecom.org.refuse = 48009
    assert main(["directory", "sync", "--config", str(path), "--now", "2026-03-02T11:00+08:00"]) == 1
    assert "left as it was" in capsys.readouterr().err


def test_serve_syncs_the_directory_when_it_leads(wecom: FakeWeCom, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from bot.app import create_app

    wecom.org, schools = small_org()
    data = directory_config("wecom", wecom.base_url, schools).model_dump(mode="json", exclude_none=True)
    data["database"] = {"url": f"sqlite:///{tmp_path / 'serve.db'}"}
    data["server"] = {"data_dir": str(tmp_path / "data"), "handler_processes": 0}
    data["scheduler"] = {"enabled": False}  # without the campaign clock this one process leads
    config = parse_config(data)
    app = create_app(config, secrets=SECRETS, clock=campaign_clock())

    def platform_people() -> int:
        with Session(app.state.engine.db) as session:
            return len(session.exec(select(PersonRow).where(PersonRow.source == "platform")).all())

    with TestClient(app):
        deadline = time.monotonic() + 20  # waits for the sync to happen, not for an amount of time
        while platform_people() < 24 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert platform_people() == 24
    assert wecom.org.calls["/cgi-bin/gettoken"] == 1


def test_the_directory_secret_is_masked_in_logs() -> None:
    from bot.logging_setup import secret_values

    config = directory_config("wecom", "http://127.0.0.1:9", {7: "school-1"})
    assert ENV["WC_SECRET"] in secret_values(config, SECRETS)
