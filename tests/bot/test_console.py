"""The console adapter behind /sim: directory, message round trip, validation, platform retries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from bot.app import build_engine, create_app
from bot.config import load_config
from models.clock import FixedClock
from models.tables import AttachmentFile, Hazard
from tests.conftest import campaign_clock

REPORT = "隐患\n部位：3号教学楼二楼东侧\n问题：消防通道堆放杂物\n责任人：王建国\n期限：明天"
SIM_URL = "http://127.0.0.1:8000"  # the example config's loopback address: the only Host the simulator answers


@pytest.fixture
def client(config_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(load_config(config_path), clock=campaign_clock()), base_url=SIM_URL) as test_client:
        yield test_client


def send(client: TestClient, text: str, *, person: str = "zhang_wei", group: str = "staff", **extra: object):
    return client.post("/sim/api/messages", data={"person_id": person, "group_id": group, "text": text, **extra})


def hazard_count(client: TestClient) -> int:
    with Session(client.app.state.engine.db) as session:  # type: ignore[attr-defined]
        return session.exec(select(func.count()).select_from(Hazard)).one()


def test_page_and_assets_are_served(client: TestClient) -> None:
    page = client.get("/sim")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="input"' in page.text and "@安全助手" in page.text
    assert client.get("/sim/assets/sim.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/sim/assets/sim.css").status_code == 200
    assert client.get("/sim/assets/sim.html").status_code == 404


def test_directory_lists_people_with_chinese_roles_and_groups(client: TestClient) -> None:
    data = client.get("/sim/api/directory").json()
    people = {p["id"]: p for p in data["people"]}
    assert people["zhang_wei"]["name"] == "张伟"
    assert people["zhang_wei"]["roles"] == ["教师"]
    assert people["li_na"]["roles"] == ["安全员"]
    assert people["wang_jianguo"]["roles"] == ["部门负责人"]
    assert people["wang_jianguo"]["unit"] != "logistics"  # the unit's name, not its id
    staff = next(g for g in data["groups"] if g["id"] == "staff")
    assert staff["name"] == "一中安全工作群"
    assert staff["kind"] == "staff"


def test_report_with_photo_gets_a_number_back(client: TestClient, tiny_png: bytes) -> None:
    response = client.post(
        "/sim/api/messages",
        data={"person_id": "zhang_wei", "group_id": "staff", "text": REPORT},
        files={"photo": ("fire-exit.png", tiny_png, "image/png")},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["duplicate"] is False
    text = "\n".join(reply["text"] for reply in body["replies"])
    assert re.search(r"已登记隐患 #\d+", text), text
    assert set(body["replies"][0]) >= {"text", "mentions", "image", "file"}
    with Session(client.app.state.engine.db) as session:  # type: ignore[attr-defined]
        assert session.exec(select(func.count()).select_from(AttachmentFile)).one() == 1


def test_report_then_close_by_safety_officer(client: TestClient) -> None:
    reply = send(client, REPORT).json()["replies"][0]["text"]
    number = re.search(r"已登记隐患 #(\d+)", reply).group(1)  # type: ignore[union-attr]
    closing = send(client, f"销号 #{number}", person="li_na").json()
    assert "已销号" in closing["replies"][0]["text"]


def test_help_reply_keeps_line_breaks(client: TestClient) -> None:
    replies = send(client, "帮助").json()["replies"]
    assert replies and "\n" in replies[0]["text"]


def test_repeated_client_msg_id_is_a_duplicate_and_adds_no_hazard(client: TestClient) -> None:
    first = send(client, REPORT, client_msg_id="retry-1").json()
    assert first["duplicate"] is False and first["replies"]
    assert hazard_count(client) == 1
    again = send(client, REPORT, client_msg_id="retry-1").json()
    assert again == {"replies": [], "duplicate": True}
    assert hazard_count(client) == 1


@pytest.mark.parametrize(
    ("person", "group", "needle"),
    [("nobody", "staff", "没有这个人"), ("zhang_wei", "no-such-group", "没有这个群")],
)
def test_unknown_person_or_group_is_rejected(client: TestClient, person: str, group: str, needle: str) -> None:
    response = send(client, "帮助", person=person, group=group)
    assert response.status_code == 400
    assert needle in response.json()["detail"]


def test_empty_message_is_rejected(client: TestClient) -> None:
    response = send(client, "   ")
    assert response.status_code == 400
    assert "空" in response.json()["detail"]


def test_photo_must_be_an_image(client: TestClient) -> None:
    response = client.post(
        "/sim/api/messages",
        data={"person_id": "zhang_wei", "group_id": "staff", "text": REPORT},
        files={"photo": ("notes.txt", b"hello", "text/plain")},
    )
    assert response.status_code == 415
    assert "图片" in response.json()["detail"]
    assert hazard_count(client) == 0


def test_oversized_photo_is_rejected(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, tiny_png: bytes
) -> None:
    monkeypatch.setattr("bot.platforms.console.routes.MAX_PHOTO_BYTES", 64)
    response = client.post(
        "/sim/api/messages",
        data={"person_id": "zhang_wei", "group_id": "staff", "text": REPORT},
        files={"photo": ("big.png", tiny_png + b"\x00" * 100, "image/png")},
    )
    assert response.status_code == 413
    assert "图片太大" in response.json()["detail"]
    assert hazard_count(client) == 0


def test_pushes_to_simulator_groups_are_listed_for_the_page(config_path: Path) -> None:
    from datetime import timedelta

    from sqlmodel import Session

    from bot.config import load_config
    from handlers.messages import Reply
    from models.tables import GroupRow

    app = create_app(load_config(config_path), clock=campaign_clock())
    client = TestClient(app, base_url=SIM_URL)
    engine = app.state.engine
    with Session(engine.db) as session:
        group = session.get(GroupRow, "staff")
        assert group is not None
        app.state.services.pushes.enqueue_push(
            session, group=group, dedupe_key="report_reminder:test", replies=[Reply("【报送提醒】第2期")],
            now=engine.now(), give_up_after=timedelta(hours=1),
        )
        session.commit()
    data = client.get("/sim/api/pushes", params={"after": 0}).json()
    assert [(p["group_id"], p["text"]) for p in data["pushes"]] == [("staff", "【报送提醒】第2期")]
    assert data["last_id"] == data["pushes"][0]["id"]
    assert client.get("/sim/api/pushes", params={"after": data["last_id"]}).json()["pushes"] == []


# -- photos in either order, through the simulator's upload -----------------------------------------------------

WINTER_DAY = datetime(2018, 12, 5, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # inside the example campaign


@pytest.fixture
def clocked(config_path: Path) -> Iterator[tuple[TestClient, FixedClock]]:
    """The simulator on an engine whose clock the test moves."""
    config = load_config(config_path)
    clock = FixedClock(WINTER_DAY)
    with TestClient(create_app(config, build_engine(config, clock=clock)), base_url=SIM_URL) as test_client:
        yield test_client, clock


def _photo(client: TestClient, png: bytes, person: str = "zhang_wei") -> list[str]:
    response = client.post(
        "/sim/api/messages", data={"person_id": person, "group_id": "staff", "text": ""},
        files={"photo": ("scene.png", png, "image/png")},
    )
    assert response.status_code == 200, response.text
    return [reply["text"] for reply in response.json()["replies"]]


def test_a_photo_first_then_the_words_make_one_hazard_with_it(clocked, tiny_png: bytes) -> None:  # type: ignore[no-untyped-def]
    client, clock = clocked
    assert _photo(client, tiny_png) == ["收到1张照片，请接着发隐患内容或「整改 #N 说明」，10分钟内有效。"]
    clock.advance(minutes=2)
    text = send(client, REPORT).json()["replies"][0]["text"]
    assert "已登记隐患" in text and "已附上刚才的1张照片" in text
    assert hazard_count(client) == 1
    with Session(client.app.state.engine.db) as session:  # type: ignore[attr-defined]
        photo = session.exec(select(AttachmentFile)).one()
        assert photo.hazard_id == session.exec(select(Hazard)).one().id


def test_a_photo_left_eleven_minutes_is_not_attached(clocked, tiny_png: bytes) -> None:  # type: ignore[no-untyped-def]
    client, clock = clocked
    _photo(client, tiny_png)
    clock.advance(minutes=11)
    text = send(client, REPORT).json()["replies"][0]["text"]
    assert "已登记隐患" in text and "已附上" not in text
    with Session(client.app.state.engine.db) as session:  # type: ignore[attr-defined]
        assert session.exec(select(func.count()).select_from(AttachmentFile)).one() == 0
