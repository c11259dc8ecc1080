"""Issue 15: the hazard page and the leaders' page behind signed, expiring links (served by the bot itself)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from bot.app import create_app
from bot.cli import main
from bot.config import load_config
from bot.secrets import Secrets
from models.clock import FixedClock
from models.queries_ledger import open_hazards
from models.tables import CampaignRow, DuePush, GroupRow
from scheduler.messages import ComposeSettings, leader_digest
from tests.conftest import CAMPAIGN_NOW, EXAMPLE_CONFIG

SIM_URL = "http://127.0.0.1:8000"
REPORT = "隐患\n部位：3号教学楼二楼东侧\n问题：消防通道堆放<b>杂物</b>\n责任人：王建国\n期限：明天"
PAGE_LINK = re.compile(r"网页（照片和记录）：(\S+)")


def with_public_url(config_path: Path, url: str = SIM_URL) -> Path:
    text = config_path.read_text(encoding="utf-8")
    assert text.count("\n[server]\n") == 1
    config_path.write_text(text.replace("\n[server]\n", f'\n[server]\npublic_url = "{url}"\n'), encoding="utf-8")
    return config_path


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.fromisoformat(CAMPAIGN_NOW))


@pytest.fixture
def client(config_path: Path, clock: FixedClock) -> Iterator[TestClient]:
    config = load_config(with_public_url(config_path))
    secrets = Secrets({"SAFETYBOT_LINK_SECRET": "a-long-test-signing-key-0123456789"})
    with TestClient(create_app(config, secrets=secrets, clock=clock), base_url=SIM_URL) as test_client:
        yield test_client


def send(client: TestClient, text: str, *, person: str = "zhang_wei", photo: bytes | None = None) -> list[str]:
    files = {"photo": ("scene.png", photo, "image/png")} if photo else None
    response = client.post(
        "/sim/api/messages", data={"person_id": person, "group_id": "staff", "text": text}, files=files
    )
    assert response.status_code == 200, response.text
    return [reply["text"] for reply in response.json()["replies"]]


def reported_and_fixed(client: TestClient, png: bytes) -> str:
    """A hazard reported with a photo and fixed with another; returns its number."""
    registered = "\n".join(send(client, REPORT, photo=png))
    number = re.search(r"已登记隐患 #(\d+)", registered)
    assert number, registered
    fixed = "\n".join(send(client, f"整改 #{number.group(1)} 已清理通道", person="wang_jianguo", photo=png))
    assert "整改" in fixed, fixed
    return number.group(1)


def page_path(url: str) -> str:
    assert url.startswith(SIM_URL), url
    return url[len(SIM_URL):]


def test_show_reply_links_to_a_page_with_both_photos_and_escaped_text(client: TestClient, tiny_png: bytes) -> None:
    number = reported_and_fixed(client, tiny_png)
    shown = "\n".join(send(client, f"#{number}"))
    link = PAGE_LINK.search(shown)
    assert link, shown
    page = client.get(page_path(link.group(1)))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "消防通道堆放&lt;b&gt;杂物&lt;/b&gt;" in html and "<b>杂物</b>" not in html  # user text is escaped
    assert html.count('<figure class="before">') == 1 and html.count('<figure class="after">') == 1
    photos = re.findall(r'<img src="(/photos/[^"]+)"', html)
    assert len(photos) == 2
    for src in photos:
        image = client.get(src)
        assert image.status_code == 200 and image.content == tiny_png
    assert "报整改" in html and "王建国" in html
    assert "http" not in re.sub(r'xmlns="[^"]*"', "", html.split("<body>", 1)[1])  # no external assets
    assert 'name="viewport"' in html


def test_tampered_link_is_refused_with_a_chinese_page_403(client: TestClient, tiny_png: bytes) -> None:
    number = reported_and_fixed(client, tiny_png)
    link = PAGE_LINK.search("\n".join(send(client, f"查看 #{number}")))
    assert link
    path = page_path(link.group(1))
    _, _, kind, hazard_id, expires, signature = path.split("/")
    for altered in (
        f"/p/{kind}/{int(hazard_id) + 1}/{expires}/{signature}",  # another hazard
        f"/p/{kind}/{hazard_id}/{int(expires) + 86400}/{signature}",  # a longer life
        f"/p/{kind}/{hazard_id}/{expires}/{signature[:-2]}AA",
        f"/p/l/{hazard_id}/{expires}/{signature}",  # the hazard's signature on the leaders' page
    ):
        refused = client.get(altered)
        assert refused.status_code == 403, altered
        assert "链接无效" in refused.text and "Traceback" not in refused.text


def test_expired_link_is_gone_410(client: TestClient, clock: FixedClock, tiny_png: bytes) -> None:
    number = reported_and_fixed(client, tiny_png)
    link = PAGE_LINK.search("\n".join(send(client, f"#{number}")))
    assert link
    path = page_path(link.group(1))
    clock.advance(timedelta(days=6))
    assert client.get(path).status_code == 200  # within the default week
    clock.advance(timedelta(days=2))
    expired = client.get(path)
    assert expired.status_code == 410
    assert "链接已过期" in expired.text and "查看 #编号" in expired.text


def test_no_page_link_without_public_url(config_path: Path, tiny_png: bytes) -> None:
    config = load_config(config_path)
    clock = FixedClock(datetime.fromisoformat(CAMPAIGN_NOW))
    with TestClient(create_app(config, clock=clock), base_url=SIM_URL) as plain:
        number = reported_and_fixed(plain, tiny_png)
        shown = "\n".join(send(plain, f"#{number}"))
        assert "网页" not in shown
        assert plain.get("/p/h/1/9999999999/x").status_code == 404


def test_leader_digest_links_to_the_leaders_page_with_chart_and_filters(
    client: TestClient, clock: FixedClock, tiny_png: bytes
) -> None:
    reported_and_fixed(client, tiny_png)
    send(client, "隐患\n部位：食堂后厨\n问题：插座老化\n等级：重大\n责任人：王建国\n期限：12月20日")
    send(client, "隐患\n部位：2号教学楼一楼\n问题：灭火器过期\n责任人：王建国\n期限：12月8日")
    app = client.app
    engine = app.state.engine  # type: ignore[attr-defined]
    settings = app.state.scheduler.ticker.settings  # type: ignore[attr-defined]
    assert settings.leader_page_link is not None
    clock.advance(timedelta(days=3))  # the 12-08 one is now overdue
    with Session(engine.db) as session:
        group = session.get(GroupRow, "leaders")
        assert group is not None and group.campaign_id is not None
        campaign = session.get(CampaignRow, group.campaign_id)
        assert campaign is not None
        push = DuePush(id=1, payload="{}")
        digest = leader_digest(session, push, campaign, group, engine.now(), ComposeSettings(
            charts_in_digests=False, leader_page_link=settings.leader_page_link))
        assert len(open_hazards(session, campaign.id)) == 3
    text = digest.replies[0].text
    link = re.search(r"网页（清单、统计图、筛选）：(\S+)", text)
    assert link, text
    page = client.get(page_path(link.group(1)))
    assert page.status_code == 200
    html = page.text
    assert '<img alt="隐患统计图" src="data:image/png;base64,' in html
    assert html.count('<li><a href="/p/h/') == 3
    overdue = client.get(page_path(link.group(1)) + "?f=overdue").text
    assert overdue.count('<li><a href="/p/h/') == 1 and "灭火器过期" in overdue
    major = client.get(page_path(link.group(1)) + "?f=major").text
    assert major.count('<li><a href="/p/h/') == 1 and "插座老化" in major
    unit = re.search(r'href="\?unit=([^"]+)"', html)
    assert unit, html
    assert client.get(page_path(link.group(1)) + f"?unit={unit.group(1)}").status_code == 200
    # every hazard row opens its own signed page
    first = re.search(r'<li><a href="(/p/h/[^"]+)"', html)
    assert first and client.get(first.group(1)).status_code == 200


# -- check-config: server.public_url when links are on ------------------------------------------------


def _example_with(tmp_path: Path, public_url: str) -> Path:
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(text.replace("\n[server]\n", f'\n[server]\npublic_url = "{public_url}"\n', 1), encoding="utf-8")
    return path


def test_check_config_warns_in_chinese_about_links_without_a_key_or_https(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAFETYBOT_LINK_SECRET", raising=False)
    monkeypatch.delenv("SAFETYBOT_SECRETS_FILE", raising=False)
    assert main(["check-config", str(_example_with(tmp_path, "http://safety.school.example"))]) == 0
    out, err = capsys.readouterr()
    assert "OK，配置正确" in out
    assert "警告：server.public_url 已设置，但环境变量 $SAFETYBOT_LINK_SECRET 里没有签名密钥" in err
    assert "用的是 http" in err and "请改用 https 地址" in err
    monkeypatch.setenv("SAFETYBOT_LINK_SECRET", "a-long-test-signing-key-0123456789")
    assert main(["check-config", str(_example_with(tmp_path, "https://safety.school.example"))]) == 0
    assert capsys.readouterr().err == ""


def test_check_config_refuses_a_public_url_with_a_query(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFETYBOT_LINK_SECRET", "a-long-test-signing-key-0123456789")
    assert main(["check-config", str(_example_with(tmp_path, "https://safety.school.example/?a=1"))]) == 1
    err = capsys.readouterr().err
    assert "不能带 ? 或 #" in err and 'public_url = "https://safety.school.example"' in err


def test_without_a_link_key_the_handler_processes_sign_with_the_web_process_key(config_path: Path) -> None:
    import pickle

    config = load_config(with_public_url(config_path))
    secrets = Secrets({})
    app = create_app(config, secrets=secrets, start=False, clock=FixedClock(datetime.fromisoformat(CAMPAIGN_NOW)))
    key = secrets.get("SAFETYBOT_LINK_SECRET")
    assert key and len(key) >= 32
    handed: Secrets = pickle.loads(pickle.dumps(secrets))  # what a handler process receives
    assert handed.get("SAFETYBOT_LINK_SECRET") == key
    assert app.state.engine.page_links._key == key.encode()  # type: ignore[attr-defined]


def test_a_county_leaders_page_names_the_schools_and_filters_by_school(config_path: Path, clock: FixedClock) -> None:
    text = config_path.read_text(encoding="utf-8")
    config_path.write_text(text + (
        '\n[[groups]]\nid = "county"\nname = "县局安全领导群"\nplatform = "console"\nkind = "leaders"\n'
        'units = ["bureau"]\ncampaign = "winter-2026"\n'
    ), encoding="utf-8")
    config = load_config(with_public_url(config_path))
    secrets = Secrets({"SAFETYBOT_LINK_SECRET": "a-long-test-signing-key-0123456789"})
    with TestClient(create_app(config, secrets=secrets, clock=clock), base_url=SIM_URL) as county:
        assert "已登记隐患" in "\n".join(send(county, REPORT))
        reply = county.post("/sim/api/messages", data={
            "person_id": "zhou_tao", "group_id": "school2-staff",
            "text": "隐患\n部位：教学楼一楼\n问题：楼梯扶手松动\n责任人：孙丽\n期限：12月20日",
        }).json()
        assert "已登记隐患" in "\n".join(r["text"] for r in reply["replies"]), reply
        link = county.app.state.engine.page_links.leader_link("county")  # type: ignore[attr-defined]
        html = county.get(page_path(link)).text
        assert "城关第一中学#1" in html and "城南小学#1" in html
        assert "全部学校" in html and 'href="?unit=school2"' in html
        only = county.get(page_path(link) + "?unit=school2").text
        assert only.count('<li><a href="/p/h/') == 1 and "楼梯扶手松动" in only
