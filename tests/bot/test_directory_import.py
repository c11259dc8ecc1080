"""`safetybot directory import`: the admin console's contacts export gives the same directory as a sync."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.cli import main
from bot.config import Config, parse_config
from bot.directory.export_file import ExportFileError, read_export
from bot.directory.service import import_export, sync_directory
from bot.secrets import Secrets
from bot.sync import sync_config
from models.db import make_engine, upgrade
from models.tables import PersonRow, UnitRow
from tests.fakes.contacts import FakeOrg, build_org
from tests.fakes.contacts_export import write_dingtalk_export, write_wecom_export
from tests.fakes.dingtalk_server import FakeDingTalk
from tests.fakes.wecom_server import FakeWeCom

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=TZ)
LATER = datetime(2026, 3, 3, 9, 0, tzinfo=TZ)
ENV = {"WC_CORP": "ww-test-corp", "WC_SECRET": "wecom-secret", "DT_KEY": "ding-key", "DT_SECRET": "ding-secret"}


def config_data(platform: str, base_url: str, org: FakeOrg, schools: dict[int, str]) -> dict[str, Any]:
    """Schools keyed by department id (as for a sync), their units named as in the directory."""
    credentials = (
        {"corp_id": "WC_CORP", "secret": "WC_SECRET"} if platform == "wecom"
        else {"app_key": "DT_KEY", "app_secret": "DT_SECRET"}
    )
    return {
        "units": [{"id": "county", "name": "县教育局"}]
        + [{"id": unit, "name": org.departments[dept].name, "parent": "county"} for dept, unit in schools.items()],
        "people": [{"id": "admin", "name": "管理员", "unit": "county", "roles": ["admin"]}],
        "wecom": {"api_base": base_url},
        "dingtalk": {"api_base": base_url, "oapi_base": base_url},
        "directory": {
            "platform": platform, "credentials": credentials,
            "schools": {str(dept): unit for dept, unit in schools.items()},
            "calls_per_second": 1000,
        },
    }


def new_db(path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    return engine


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    synced, imported = new_db(tmp_path / "synced.db"), new_db(tmp_path / "imported.db")
    yield synced, imported
    synced.dispose()
    imported.dispose()


def load_toml(config: Config, db: Engine) -> None:
    with Session(db) as session:
        sync_config(session, config)


def sync(config: Config, db: Engine) -> Any:
    load_toml(config, db)

    async def run() -> Any:
        async with httpx.AsyncClient(timeout=10) as http:
            return await sync_directory(config, db, Secrets(environ=ENV), NOW, http=http)

    return anyio.run(run)


def directory_of(db: Engine) -> tuple[set[tuple[str, ...]], set[tuple[Any, ...]]]:
    """Units as their name paths, people as (user id, name, unit path, roles, active): ids of units aside."""
    with Session(db) as session:
        units = {u.id: u for u in session.exec(select(UnitRow))}
        people = session.exec(select(PersonRow).where(PersonRow.source == "platform")).all()

    def path(unit_id: str | None) -> tuple[str, ...]:
        names: list[str] = []
        while unit_id:
            names.append(units[unit_id].name)
            unit_id = units[unit_id].parent_id
        return tuple(reversed(names))

    unit_paths = {path(u.id) for u in units.values() if u.active}
    person_rows = {
        (p.wecom_userid or p.dingtalk_staff_id, p.name, path(p.unit_id), tuple(sorted(p.role_set)), p.active)
        for p in people
    }
    return unit_paths, person_rows


@pytest.mark.parametrize("platform", ["wecom", "dingtalk"])
def test_a_console_export_imports_to_the_same_directory_as_a_sync(
    platform: str, tmp_path: Path, engines: tuple[Engine, Engine]
) -> None:
    synced_db, imported_db = engines
    org, schools = build_org(schools=3, departments_per_school=4, members_per_school=10)
    org.add_member("both", "兼职教师", [1001, 1007])  # in two schools' departments: the first one counts
    org.departments[1002].leaders.append("s1u7")
    org.members["s1u7"].departments = [1001, 1002]  # leads their second department: placed there
    org.members["s1u3"].mobile = "13800000003"
    fake_cls = FakeWeCom if platform == "wecom" else FakeDingTalk
    with fake_cls() as fake:
        if isinstance(fake, FakeWeCom):
            fake.add_corp(ENV["WC_CORP"], ENV["WC_SECRET"])
        else:
            fake.add_app(ENV["DT_KEY"], ENV["DT_SECRET"])
        fake.org = org
        config = parse_config(config_data(platform, fake.base_url, org, schools))
        synced = sync(config, synced_db)
    write = write_wecom_export if platform == "wecom" else write_dingtalk_export
    export = write(org, tmp_path / f"{platform}.xlsx")

    load_toml(config, imported_db)
    imported = import_export(config, imported_db, export, platform, NOW)

    assert (imported.units.added, imported.people.added) == (synced.units.added, synced.people.added) == (12, 31)
    assert imported.api_calls == 0 and imported.problems == []
    assert directory_of(imported_db) == directory_of(synced_db)
    again = import_export(config, imported_db, export, platform, LATER)
    assert (again.people.unchanged, again.people.added, again.people.deactivated) == (31, 0, 0)


def test_the_next_export_moves_and_deactivates_like_a_sync(tmp_path: Path, engines: tuple[Engine, Engine]) -> None:
    _, db = engines
    org, schools = build_org(schools=2, departments_per_school=3, members_per_school=12)
    config = parse_config(config_data("wecom", "http://127.0.0.1:9", org, schools))
    load_toml(config, db)
    import_export(config, db, write_wecom_export(org, tmp_path / "first.xlsx"), "wecom", NOW)
    org.remove_member("s1u9")
    org.members["s1u6"].departments = [1002]
    org.members["s2u4"].status = 2  # disabled in the console

    report = import_export(config, db, write_wecom_export(org, tmp_path / "second.xlsx"), "wecom", LATER)

    assert (report.people.moved, report.people.deactivated) == (1, 2)
    with Session(db) as session:
        gone = session.exec(select(PersonRow).where(PersonRow.wecom_userid == "s1u9")).one()
    assert (gone.active, gone.left_at) == (False, LATER)


def test_schools_may_be_named_by_department_name_or_path(tmp_path: Path, engines: tuple[Engine, Engine]) -> None:
    _, db = engines
    org, schools = build_org(schools=2, departments_per_school=2, members_per_school=4)
    data = config_data("dingtalk", "http://127.0.0.1:9", org, schools)
    data["units"][1]["name"], data["units"][2]["name"] = "城关一中", "城关二中"  # not the directory's names
    data["directory"]["schools"] = {"第1学校": "school-1", "某县教育局-第2学校": "school-2"}
    data["directory"].pop("credentials")  # no contacts permission: the export is the only source
    config = parse_config(data)
    load_toml(config, db)

    report = import_export(config, db, write_dingtalk_export(org, tmp_path / "d.xlsx"), "dingtalk", NOW)

    assert (report.units.added, report.people.added) == (4, 8)
    with Session(db) as session:
        principal = session.exec(select(PersonRow).where(PersonRow.dingtalk_staff_id == "s2u1")).one()
    assert (principal.unit_id, principal.role_set) == ("school-2", {"unit_head"})


def test_a_school_missing_from_the_export_changes_nothing(tmp_path: Path, engines: tuple[Engine, Engine]) -> None:
    _, db = engines
    org, schools = build_org(schools=2, departments_per_school=2, members_per_school=4)
    data = config_data("wecom", "http://127.0.0.1:9", org, schools)
    data["units"][2]["name"] = "城关二中"
    config = parse_config(data)
    load_toml(config, db)

    with pytest.raises(ExportFileError) as raised:
        import_export(config, db, write_wecom_export(org, tmp_path / "w.xlsx"), "wecom", NOW)

    assert "directory.schools.1003" in str(raised.value) and "城关二中" in str(raised.value)
    assert "没有写入任何内容" in str(raised.value)
    with Session(db) as session:
        assert session.exec(select(PersonRow).where(PersonRow.source == "platform")).all() == []


def test_a_file_without_the_user_id_column_names_it(tmp_path: Path) -> None:
    org, _ = build_org(schools=1, departments_per_school=1, members_per_school=2)
    header = ["姓名", "别名", "职务", "部门", "手机"]  # 账号 deleted
    export = write_wecom_export(org, tmp_path / "w.xlsx", header=header)

    with pytest.raises(ExportFileError) as raised:
        read_export(export, "wecom")

    assert "「账号」" in str(raised.value) and "姓名、账号、部门" in str(raised.value)
    with pytest.raises(ExportFileError, match="「UserID」"):  # a WeCom file read as DingTalk's
        read_export(write_wecom_export(org, tmp_path / "w2.xlsx"), "dingtalk")


def test_a_file_that_is_no_spreadsheet_is_refused_in_chinese(tmp_path: Path) -> None:
    text = tmp_path / "contacts.xlsx"
    text.write_text("姓名,账号,部门\n张三,zhangsan,一中\n", encoding="utf-8")

    with pytest.raises(ExportFileError, match="不是 Excel"):
        read_export(text, "wecom")
    with pytest.raises(ExportFileError, match="找不到文件"):
        read_export(tmp_path / "missing.xlsx", "wecom")


def test_the_cli_imports_with_a_dry_run_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    org, schools = build_org(schools=2, departments_per_school=2, members_per_school=5)
    config_file = tmp_path / "county.toml"
    config_file.write_text(f"""
[database]
url = "sqlite:///{tmp_path / 'cli.db'}"

[[units]]
id = "school-1"
name = "{org.departments[1000].name}"

[[units]]
id = "school-2"
name = "{org.departments[1003].name}"

[directory]  # no credentials: the app has no contacts permission
platform = "wecom"
schools = {{ 1000 = "school-1", 1003 = "school-2" }}

[[directory.roles]]
who = "s1u1"
roles = ["admin"]
""", encoding="utf-8")
    export = str(write_wecom_export(org, tmp_path / "export.xlsx"))
    base = ["directory", "import", export, "--platform", "wecom", "--config", str(config_file),
            "--now", "2026-03-02T09:00+08:00"]

    assert main([*base, "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "dry run: nothing was written" in dry and "people: 10 added" in dry
    # The names of what would change, not only the counts (the first 20 of each kind).
    [added] = [line for line in dry.splitlines() if line.startswith("people added (10): ")]
    assert len(added.split(": ", 1)[1].split("、")) == 10
    assert main(base) == 0
    assert "people: 10 added" in capsys.readouterr().out
    assert main(base) == 0
    assert "people: 0 added, 0 changed, 0 moved, 0 deactivated, 10 unchanged" in capsys.readouterr().out

    bad = tmp_path / "bad.xlsx"
    write_wecom_export(org, bad, header=["姓名", "账号", "手机"])
    assert main(["directory", "import", str(bad), "--platform", "wecom", "--config", str(config_file)]) == 1
    err = capsys.readouterr().err
    assert "导入失败，通讯录没有改动" in err and "「部门」" in err


def test_people_who_left_lose_their_personal_fields_after_retention_days(
    tmp_path: Path, engines: tuple[Engine, Engine]
) -> None:
    from datetime import date, timedelta

    from bot.directory.service import purge_in_transaction
    from models.tables import CampaignRow, Hazard

    _, db = engines
    org, schools = build_org(schools=1, departments_per_school=2, members_per_school=4)
    org.members["s1u4"].mobile = "13800000004"
    data = config_data("wecom", "http://127.0.0.1:9", org, schools)
    data["directory"]["retention_days"] = 30
    data["directory"]["roles"] = [{"who": "13800000004", "roles": ["safety_officer"]}]  # so the mobile is kept
    config = parse_config(data)
    load_toml(config, db)
    import_export(config, db, write_wecom_export(org, tmp_path / "a.xlsx"), "wecom", NOW)
    with Session(db) as session:
        leaver = session.exec(select(PersonRow).where(PersonRow.wecom_userid == "s1u4")).one()
        assert leaver.mobile == "13800000004"
        session.add(CampaignRow(id="c", name="排查", start=date(2026, 3, 1), end=date(2026, 4, 30)))
        session.add(Hazard(campaign_id="c", number=1, unit_id=leaver.unit_id, location="1号楼", problem="灭火器过期",
                           reporter_id=leaver.id, deadline=date(2026, 3, 9), found_at=NOW))
        session.commit()
        leaver_id = leaver.id
    org.remove_member("s1u4")
    import_export(config, db, write_wecom_export(org, tmp_path / "b.xlsx"), "wecom", LATER)

    assert purge_in_transaction(db, config, LATER + timedelta(days=29)) == 0
    with Session(db) as session:
        assert session.get(PersonRow, leaver_id).name == "教师1-4"  # type: ignore[union-attr]

    assert purge_in_transaction(db, config, LATER + timedelta(days=31)) == 1

    with Session(db) as session:
        gone = session.get(PersonRow, leaver_id)
        assert gone is not None
        assert (gone.name, gone.mobile, gone.wecom_userid, gone.active) == ("已离职人员", None, None, False)
        assert session.exec(select(Hazard)).one().reporter_id == leaver_id  # the history row stays
    assert purge_in_transaction(db, config, LATER + timedelta(days=60)) == 0  # once


@pytest.mark.parametrize("platform", ["wecom", "dingtalk"])
def test_without_schools_the_departments_named_like_units_are_the_schools(
    platform: str, tmp_path: Path, engines: tuple[Engine, Engine]
) -> None:
    synced_db, imported_db = engines
    org, schools = build_org(schools=3, departments_per_school=2, members_per_school=6)
    fake_cls = FakeWeCom if platform == "wecom" else FakeDingTalk
    with fake_cls() as fake:
        if isinstance(fake, FakeWeCom):
            fake.add_corp(ENV["WC_CORP"], ENV["WC_SECRET"])
        else:
            fake.add_app(ENV["DT_KEY"], ENV["DT_SECRET"])
        fake.org = org
        data = config_data(platform, fake.base_url, org, schools)
        del data["directory"]["schools"]  # one line per school in [[units]] is all the admin types
        config = parse_config(data)
        synced = sync(config, synced_db)
    load_toml(config, imported_db)

    imported = import_export(config, imported_db, (write_wecom_export if platform == "wecom" else
                             write_dingtalk_export)(org, tmp_path / "x.xlsx"), platform, NOW)

    assert synced.problems == imported.problems == []
    assert (synced.people.added, imported.people.added) == (18, 18)
    assert directory_of(imported_db) == directory_of(synced_db)
    with Session(synced_db) as session:
        principal = session.exec(select(PersonRow).where(PersonRow.source == "platform", PersonRow.name == "教师1-1")).one()
    assert (principal.unit_id, principal.role_set) == ("school-1", {"unit_head"})
