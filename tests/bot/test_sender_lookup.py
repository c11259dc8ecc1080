"""An unknown sender in a known group is looked up once by id (WeCom user/get, DingTalk topapi/v2/user/get)."""

from __future__ import annotations

import copy
import itertools
import logging
import tomllib
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.cli import main
from bot.config import Config, parse_config
from bot.engine import Engine
from bot.logging_setup import redact
from bot.secrets import Secrets
from handlers.messages import Inbound
from models.clock import FixedClock
from models.db import make_engine
from models.tables import DirectoryRequest, GroupRow, Hazard, PersonRow
from tests.fakes.contacts import FakeOrg
from tests.fakes.dingtalk_server import FakeDingTalk
from tests.fakes.wecom_server import FakeWeCom
from tests.school import SCHOOL, START, TZ

ENV = {"WC_CORP": "ww-corp", "WC_SECRET": "wc-secret", "DT_KEY": "dt-key", "DT_SECRET": "dt-secret",
       "HOOK": "hook-key"}
CHAT = "wrkSCHOOL"
REPORT = "隐患\n部位：食堂后门\n问题：灭火器过期\n期限：12月10日"


def org() -> FakeOrg:
    """城关一中 (department 1000) with 教务处 (1001); 马明 sits in the school, 孙强 in 教务处."""
    fake = FakeOrg()
    fake.add_department(1, "某县教育局", None)
    fake.add_department(1000, "城关一中", 1)
    fake.add_department(1001, "教务处", 1000)
    fake.add_member("maming", "马明", [1000])
    fake.add_member("sunqiang", "孙强", [1001], leader=True)
    return fake


def config(platform: str, base_url: str, **directory: Any) -> Config:
    data = copy.deepcopy(SCHOOL)
    credentials = (
        {"corp_id": "WC_CORP", "secret": "WC_SECRET"} if platform == "wecom"
        else {"app_key": "DT_KEY", "app_secret": "DT_SECRET"}
    )
    group: dict[str, Any] = {"id": "staff", "name": "一中安全工作群", "platform": platform, "units": ["school"],
                             "campaign": "c1", "chat_id": CHAT}
    group["credentials"] = {"webhook_key": "HOOK"} if platform == "wecom" else {"access_token": "HOOK"}
    data["groups"] = [group]
    data["wecom"] = {"api_base": base_url}
    data["dingtalk"] = {**data.get("dingtalk", {}), "api_base": base_url, "oapi_base": base_url}
    data["directory"] = {"platform": platform, "credentials": credentials, "schools": {"1000": "school"}, **directory}
    return parse_config(data)


class Bot:
    def __init__(self, config: Config, tmp_path: Path, db_url: str | None = None) -> None:
        db = make_engine(db_url or f"sqlite:///{tmp_path / 'bot.db'}")
        self.clock = FixedClock(START, TZ)
        self.engine = Engine(config=config, db=db, data_dir=tmp_path / "data", clock=self.clock,
                             secrets=Secrets(environ=ENV))
        self.engine.start()
        self.platform = config.directory.platform if config.directory else "console"
        self._ids = itertools.count(1)

    def say(self, user_id: str, text: str, *, chat: str = CHAT) -> str:
        msg = Inbound(platform=self.platform, msg_id=f"m{next(self._ids)}", chat_id=chat,  # type: ignore[arg-type]
                      sender_id=user_id, text=text, received_at=self.clock.now(), sender_name=user_id)
        return "\n".join(reply.text for reply in self.engine.handle_sync(msg))

    def person(self, user_id: str) -> PersonRow | None:
        column = PersonRow.wecom_userid if self.platform == "wecom" else PersonRow.dingtalk_staff_id
        with Session(self.engine.db) as session:
            return session.exec(select(PersonRow).where(column == user_id)).first()


@pytest.fixture
def wecom() -> Iterator[FakeWeCom]:
    with FakeWeCom() as fake:
        fake.add_corp(ENV["WC_CORP"], ENV["WC_SECRET"])
        fake.org = org()
        yield fake


@pytest.fixture
def dingtalk() -> Iterator[FakeDingTalk]:
    with FakeDingTalk() as fake:
        fake.add_app(ENV["DT_KEY"], ENV["DT_SECRET"])
        fake.org = org()
        yield fake


def test_a_wecom_sender_known_to_the_api_reports_in_their_first_message(wecom: FakeWeCom, tmp_path: Path) -> None:
    bot = Bot(config("wecom", wecom.base_url), tmp_path)

    reply = bot.say("maming", REPORT)

    assert "#1" in reply  # looked up, bound and filed in one go
    person = bot.person("maming")
    assert person is not None and (person.name, person.unit_id, person.role_set) == ("马明", "school", {"teacher"})
    assert wecom.org.calls["/cgi-bin/user/get"] == 1
    bot.say("maming", "我的")
    assert wecom.org.calls["/cgi-bin/user/get"] == 1  # known now: never looked up again


def test_a_dingtalk_sender_known_to_the_api_is_bound(dingtalk: FakeDingTalk, tmp_path: Path) -> None:
    bot = Bot(config("dingtalk", dingtalk.base_url), tmp_path)

    assert "#1" in bot.say("maming", REPORT)

    person = bot.person("maming")
    assert person is not None and (person.name, person.unit_id) == ("马明", "school")
    assert dingtalk.org.calls["/topapi/v2/user/get"] == 1


def test_a_department_head_of_a_synced_department_becomes_its_unit_head(wecom: FakeWeCom, tmp_path: Path) -> None:
    bot = Bot(config("wecom", wecom.base_url), tmp_path)
    from models.tables import UnitRow

    with Session(bot.engine.db) as session:  # as the last directory sync left it
        session.add(UnitRow(id="wecom-dept-1001", name="教务处", parent_id="school", source="platform",
                            platform_dept_id="1001"))
        session.commit()

    bot.say("sunqiang", "我的")

    person = bot.person("sunqiang")
    assert person is not None and (person.unit_id, person.role_set) == ("wecom-dept-1001", {"unit_head"})


def test_an_id_the_api_does_not_know_is_looked_up_once_then_asked_in_chat(wecom: FakeWeCom, tmp_path: Path) -> None:
    bot = Bot(config("wecom", wecom.base_url), tmp_path)

    first = bot.say("ghost", REPORT)
    second = bot.say("ghost", "你好")

    assert first == second == "您好！我还不认识您，请告诉我您的单位，回复如：我是 安全保卫处"
    assert wecom.org.calls["/cgi-bin/user/get"] == 1
    with Session(bot.engine.db) as session:
        request = session.exec(select(DirectoryRequest)).one()
        assert (request.lookup, request.state) == ("not_found", "asked")
        assert session.exec(select(Hazard)).all() == []
    assert bot.say("ghost", "我是 教务处 钱多").startswith("好的，钱多（教务处），已登记。")


def test_a_refused_lookup_asks_in_chat_and_logs_nothing_of_the_person(
    wecom: FakeWeCom, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wecom.org.refuse = 60011  # the member is outside the app's visible range
    bot = Bot(config("wecom", wecom.base_url), tmp_path)

    with caplog.at_level(logging.DEBUG):
        reply = bot.say("maming", REPORT)

    assert reply.startswith("您好！我还不认识您，请告诉我您的单位")
    assert bot.person("maming") is None
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("bot", "models", "handlers"))
    assert "60011" in ours and "maming" not in ours and "马明" not in ours
    # The HTTP client's request lines pass the log filter of `serve`, which masks the id in the URL.
    http_lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert http_lines and all("maming" not in redact(line) for line in http_lines)


def test_an_unreachable_api_is_asked_again_after_an_hour(tmp_path: Path) -> None:
    bot = Bot(config("wecom", "http://127.0.0.1:9"), tmp_path)  # nothing listens there

    def tried_at() -> datetime:
        with Session(bot.engine.db) as session:
            request = session.exec(select(DirectoryRequest)).one()
            assert request.lookup == "failed"
            return request.updated_at

    assert bot.say("maming", REPORT).startswith("您好！我还不认识您")
    assert tried_at() == START
    bot.clock.set(START + timedelta(minutes=30))
    bot.say("maming", "你好")
    assert tried_at() == START  # not tried again within the hour
    bot.clock.set(START + timedelta(minutes=61))
    bot.say("maming", "你好")
    assert tried_at() == START + timedelta(minutes=61)


def test_cli_groups_lists_the_chats_seen_and_their_state(
    wecom: FakeWeCom, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "county.toml"
    path.write_text(f"""
[database]
url = "sqlite:///{tmp_path / 'cli.db'}"

[[units]]
id = "school"
name = "城关一中"

[[people]]
id = "admin"
name = "刘洋"
unit = "school"
roles = ["admin"]
wecom_userid = "liuyang"

[directory]
platform = "wecom"
schools = {{ 1000 = "school" }}
""", encoding="utf-8")
    from bot.config import load_config

    cfg = load_config(path)
    bot = Bot(cfg, tmp_path, cfg.database.url)
    bot.say("liuyang", "你好", chat="wrkA")
    bot.say("someone", "你好", chat="wrkB")
    assert bot.say("liuyang", "登记本群 城关一中 一中安全群 教职工", chat="wrkA").startswith("已登记本群")

    assert main(["groups", "--config", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()

    assert len(lines) == 2
    bound = next(line for line in lines if "wrkA" in line)
    unbound = next(line for line in lines if "wrkB" in line)
    assert "bound" in bound and "一中安全群 (staff)" in bound
    assert "unbound" in unbound and "登记本群" in unbound
    assert main(["groups", "--config", str(path), "--json"]) == 0
    assert '"state": "unbound"' in capsys.readouterr().out

    # The [[groups]] entries to paste (scheduled reminders need one with the group's key), chat ids filled in.
    assert main(["groups", "--config", str(path), "--toml"]) == 0
    entries = tomllib.loads(capsys.readouterr().out.replace("[[groups]]", "[[g]]"))["g"]
    by_chat = {entry["chat_id"]: entry for entry in entries}
    assert by_chat["wrkA"]["units"] == ["school"] and by_chat["wrkA"]["name"] == "一中安全群"
    assert by_chat["wrkB"]["credentials"] == {"webhook_key": "SAFETYBOT_WECOM_WEBHOOK_KEY"}
    # Once the TOML has the chat, its entry wins and the chat-bound group gives way.
    with path.open("a", encoding="utf-8") as file:
        file.write('\n[[groups]]\nid = "a"\nname = "一中群"\nplatform = "wecom"\nunits = ["school"]\n'
                   'chat_id = "wrkA"\ncredentials = { webhook_key = "HOOK" }\n')
    (tmp_path / "restart").mkdir()
    again = Bot(load_config(path), tmp_path / "restart", cfg.database.url)  # start() loads the TOML again
    with Session(again.engine.db) as session:
        groups = session.exec(select(GroupRow).where(GroupRow.chat_id == "wrkA")).all()
        assert [(g.id, g.source) for g in groups] == [("a", "config")]
