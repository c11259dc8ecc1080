"""The tick with a controlled clock: what is sent, once, across crashes, restarts, downtime and two processes."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine as DbEngine
from sqlalchemy import text, update
from sqlmodel import Session

from bot.services import build_pushes
from bot.config import Config, parse_config
from bot.engine import Engine
from models.db import make_engine
from models.outbox import PRIORITY_NORMAL, PRIORITY_URGENT
from models.tables import DuePush
from scheduler import messages
from scheduler.ticker import Ticker
from tests.scheduler.conftest import at, due_rows, outbox, seed002_config, seed002_data, start_engine, new_ticker
from tests.school import Chat

REPORT = "隐患\n部位：3号教学楼二楼东侧\n问题：消防通道堆放杂物\n责任人：王建国\n期限：明天"
MAJOR = "隐患\n部位：实验楼三楼\n问题：危化品柜未上锁\n等级：重大\n责任人：李娜\n期限：12月20日"


class Crash(BaseException):
    """The process dies (not an error the tick would catch and carry on from)."""


def texts(db: DbEngine, group: str) -> list[str]:
    return [json.loads(m.payload)["text"] for m in outbox(db, group)]


def keys(db: DbEngine) -> list[str]:
    return [m.dedupe_key for m in outbox(db)]


def test_reminder_names_units_not_submitted_with_their_figures(engine: Engine, chat: Chat, config: Config) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("zhou_tao", "隐患\n部位：教学楼\n问题：灭火器过期\n期限：明天", group="school2-staff")
    ticker = new_ticker(config, engine.db)
    chat.now = at("2018-12-05 10:00")
    assert "已报送本期统计" in chat.say("li_na", "报送")  # 安全员 submits for 城关第一中学 (period due 12-06)

    result = ticker.tick(at("2018-12-06 17:00"))
    assert "report_reminder:winter-2018:school2-staff:2018-12-06" in result.sent
    assert "report_reminder:winter-2018:staff:2018-12-06" in result.skipped
    assert due_rows(engine.db, key="report_reminder:winter-2018:staff:2018-12-06")[0].reason.startswith("every unit submitted")
    [reminder] = [t for t in texts(engine.db, "school2-staff") if t.startswith("【报送提醒】")]
    assert "第2期（11-27至12-06）统计报表今天17:00截止" in reminder
    assert "· 城南小学：新1 改0 销0｜未销号1 逾期1 重大0" in reminder
    [row] = [m for m in outbox(engine.db, "school2-staff") if "报送提醒" in m.payload]
    assert json.loads(row.payload)["mentions"] == ["sun_li"]  # the unit head who can 报送


def test_overdue_digest_mentions_responsible_people_once_per_group(engine: Engine, chat: Chat, config: Config) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("chen_jing", "隐患\n部位：食堂后厨\n问题：插座老化\n责任人：王建国\n期限：明天")
    ticker = new_ticker(config, engine.db)
    # Monday 12-03: the example's escalation ladder announces nothing in the staff group that day (its staff
    # steps came on 11-29 and 11-30, when the digest left both hazards to it), so the digest lists both.
    result = ticker.tick(at("2018-12-03 08:30"))
    assert "overdue_digest:winter-2018:staff:2018-12-03" in result.sent
    assert "overdue_digest:winter-2018:school2-staff:2018-12-03" in result.skipped  # nothing overdue there
    [digest] = [m for m in outbox(engine.db, "staff") if "逾期隐患" in m.payload]
    payload = json.loads(digest.payload)
    assert payload["mentions"] == ["wang_jianguo"]
    assert payload["text"].splitlines()[0] == "【逾期隐患】截至12-03共2项，请责任人尽快整改，完成后发「整改 #序号」："
    assert "#1 3号教学楼二楼东侧 消防通道堆放杂物｜王建国｜11-28 已逾期5天" in payload["text"]


def test_leader_digest_escalates_after_the_configured_days(engine: Engine, chat: Chat, config: Config) -> None:
    chat.say("zhang_wei", REPORT)  # deadline 11-28
    ticker = new_ticker(config, engine.db)
    ticker.tick(at("2018-11-30 08:00"))  # overdue 2 days: not yet escalated
    ticker.tick(at("2018-12-03 08:00"))  # overdue 5 days
    first, second = [t for t in texts(engine.db, "leaders") if t.startswith("【领导日报】")]
    assert "逾期：总务基建处1" in first and "已升级" not in first
    assert "第1期（截至11-26）未报送：城关第一中学" in first
    assert {m.priority for m in outbox(engine.db, "leaders")} == {PRIORITY_NORMAL}  # digests take ordinary turns
    # The example's ladder: 分管领导 after 3 days (reached 4 days overdue), 校长 after 7.
    assert "已升级至分管领导（逾期满4天，1项）：\n#1 3号教学楼二楼东侧 消防通道堆放杂物｜王建国｜11-28 已逾期5天" in second


def test_leader_digest_without_a_ladder_escalates_after_the_campaign_days(tmp_path: Path) -> None:
    data = seed002_data()
    data["escalation"]["steps"] = []
    config = parse_config(data)
    db = make_engine(f"sqlite:///{tmp_path / 'plain.db'}")
    engine = start_engine(config, db, tmp_path / "data")
    Chat(engine, at("2018-11-27 10:00")).say("zhang_wei", REPORT)  # deadline 11-28
    new_ticker(config, db).tick(at("2018-12-03 08:00"))
    [digest] = [t for t in texts(db, "leaders") if t.startswith("【领导日报】")]
    assert "逾期满3天（1项）：\n#1 3号教学楼二楼东侧 消防通道堆放杂物｜王建国｜11-28 已逾期5天" in digest
    db.dispose()


def test_major_hazard_alerts_the_leaders_at_once_even_in_quiet_hours(engine: Engine, chat: Chat, config: Config) -> None:
    chat.now = at("2018-12-04 23:10")
    chat.say("zhang_wei", MAJOR)
    [row] = due_rows(engine.db, kind="major_alert")
    assert row.key == "major_alert:1:leaders" and row.send_at == at("2018-12-04 23:10")
    result = new_ticker(config, engine.db).tick(at("2018-12-04 23:11"))
    assert result.sent == ["major_alert:1:leaders"]
    [alert, sheet] = texts(engine.db, "leaders")  # the alert and its 督办单 (挂牌督办)
    assert alert.startswith("【重大隐患】#1 实验楼三楼\n问题：危化品柜未上锁\n单位：安全保卫处｜责任人：李娜")
    assert sheet == "督办单 #1"
    assert {m.priority for m in outbox(engine.db, "leaders")} == {PRIORITY_URGENT}  # first in its robot's turn
    assert not texts(engine.db, "staff")  # staff digests wait for the morning


def test_late_major_alert_is_still_sent(engine: Engine, chat: Chat, config: Config) -> None:
    chat.say("zhang_wei", MAJOR)
    result = new_ticker(config, engine.db).tick(at("2018-11-28 10:00"))  # a day later
    assert "major_alert:1:leaders" in result.sent


def test_crash_after_claim_before_commit_sends_once_after_restart(
    engine: Engine, chat: Chat, config: Config
) -> None:
    chat.say("zhang_wei", REPORT)
    original = build_pushes(config).enqueue_push

    def enqueue_then_die(*args: object, **kwargs: object) -> int:
        original(*args, **kwargs)  # type: ignore[arg-type]  (outbox rows written in the open transaction …)
        raise Crash()  # … and the process dies before it commits

    with pytest.raises(Crash):
        Ticker(config=config, db=engine.db, enqueue_push=enqueue_then_die, name="first").tick(at("2018-11-30 08:00"))
    assert outbox(engine.db) == []
    [row] = due_rows(engine.db, key="leader_digest:winter-2018:leaders:2018-11-30")
    assert row.state == "pending" and row.claimed_by is None

    restarted = new_ticker(config, engine.db, name="second")
    assert "leader_digest:winter-2018:leaders:2018-11-30" in restarted.tick(at("2018-11-30 08:01")).sent
    assert restarted.tick(at("2018-11-30 08:02")).sent == []
    assert Counter(keys(engine.db))["push:leader_digest:winter-2018:leaders:2018-11-30:0"] == 1
    [row] = due_rows(engine.db, key="leader_digest:winter-2018:leaders:2018-11-30")
    assert (row.state, row.claimed_by, row.sent_at) == ("sent", "second", at("2018-11-30 08:01"))


def test_crash_after_commit_is_never_resent(engine: Engine, chat: Chat, config: Config) -> None:
    chat.say("zhang_wei", REPORT)
    new_ticker(config, engine.db).tick(at("2018-11-30 08:00"))
    before = keys(engine.db)
    assert "push:leader_digest:winter-2018:leaders:2018-11-30:0" in before
    for minute in range(1, 4):  # restarts: fresh tickers, same and later clocks
        new_ticker(config, engine.db).tick(at(f"2018-11-30 08:0{minute}"))
    assert keys(engine.db) == before
    # Even a row forced back to pending cannot add a second outbox message: the outbox key is unique.
    with Session(engine.db) as session:
        session.execute(update(DuePush).where(DuePush.key == "leader_digest:winter-2018:leaders:2018-11-30").values(state="pending"))
        session.commit()
    new_ticker(config, engine.db).tick(at("2018-11-30 08:05"))
    assert keys(engine.db) == before


def test_a_push_that_fails_to_compose_does_not_hold_back_its_batch(
    engine: Engine, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = messages.report_reminders

    def fails_for_staff(session: Session, items: list[tuple[DuePush, object, object]], *args: object) -> object:
        if any(push.group_id == "staff" for push, _, _ in items):
            raise RuntimeError("bad data")
        return original(session, items, *args)  # type: ignore[arg-type]

    ticker = new_ticker(config, engine.db)
    ticker.tick(at("2018-11-26 14:00"))
    monkeypatch.setattr(messages, "report_reminders", fails_for_staff)
    result = ticker.tick(at("2018-11-26 17:00"))  # both staff groups' reminders are due in one batch
    assert result.failed == ["report_reminder:winter-2018:staff:2018-11-26"]
    assert "report_reminder:winter-2018:school2-staff:2018-11-26" in result.sent
    [row] = due_rows(engine.db, key="report_reminder:winter-2018:staff:2018-11-26")
    assert row.state == "pending" and row.reason == "last error: RuntimeError: bad data"

    monkeypatch.setattr(messages, "report_reminders", original)
    assert ticker.tick(at("2018-11-26 17:01")).sent == ["report_reminder:winter-2018:staff:2018-11-26"]
    assert Counter(k.rsplit(":", 1)[0] for k in keys(engine.db) if "report_reminder" in k) == {
        "push:report_reminder:winter-2018:staff:2018-11-26": 1,
        "push:report_reminder:winter-2018:school2-staff:2018-11-26": 1,
    }


def test_downtime_within_the_grace_window_sends_late_once(engine: Engine, config: Config) -> None:
    ticker = new_ticker(config, engine.db)
    ticker.tick(at("2018-11-26 14:00"))  # planned, then the bot goes down before 17:00
    restarted = new_ticker(config, engine.db)
    result = restarted.tick(at("2018-11-26 18:30"))  # back 90 min late, grace is 120 min
    assert set(result.sent) >= {"report_reminder:winter-2018:staff:2018-11-26", "report_reminder:winter-2018:school2-staff:2018-11-26"}
    assert restarted.tick(at("2018-11-26 18:31")).sent == []


def test_downtime_longer_than_grace_is_skipped_and_recorded(engine: Engine, config: Config) -> None:
    new_ticker(config, engine.db).tick(at("2018-11-26 14:00"))
    result = new_ticker(config, engine.db).tick(at("2018-11-26 19:30"))  # 150 min late
    assert "report_reminder:winter-2018:staff:2018-11-26" in result.skipped
    [row] = due_rows(engine.db, key="report_reminder:winter-2018:staff:2018-11-26")
    assert row.state == "skipped" and row.sent_at is None
    assert row.reason.startswith("missed: not sent within the grace window (120 min)")
    assert "2018-11-26T19:30+08:00" in row.reason
    assert not [k for k in keys(engine.db) if "report_reminder" in k]


def test_pushes_missed_before_the_first_start_are_recorded_as_skipped(engine: Engine, config: Config) -> None:
    result = new_ticker(config, engine.db).tick(at("2018-11-28 12:00"))
    assert "report_reminder:winter-2018:staff:2018-11-26" in result.skipped
    assert outbox(engine.db) == []


def test_holiday_shifted_reminder_goes_out_after_the_holiday(engine: Engine, config: Config) -> None:
    ticker = new_ticker(config, engine.db)
    ticker.tick(at("2019-02-04 17:00"))  # 除夕: nothing goes out
    assert not [k for k in keys(engine.db) if "report_reminder" in k]
    [row] = due_rows(engine.db, key="report_reminder:winter-2018:staff:2019-02-04")
    assert (row.state, row.send_at) == ("pending", at("2019-02-11 17:00"))
    for day in range(5, 11):  # the holiday passes with the bot running
        ticker.tick(at(f"2019-02-{day:02d} 17:00"))
    assert "report_reminder:winter-2018:staff:2019-02-04" in ticker.tick(at("2019-02-11 17:00")).sent
    [reminder] = [t for t in texts(engine.db, "staff") if t.startswith("【报送提醒】")]
    assert "第8期（01-26至02-04）统计报表已于02-04截止" in reminder


def test_config_change_moves_pending_pushes(engine: Engine, tmp_path: Path) -> None:
    new_ticker(seed002_config(), engine.db).tick(at("2018-11-26 09:00"))
    later = seed002_config(overdue_digest_at="10:00")
    new_ticker(later, engine.db).tick(at("2018-11-26 09:01"))
    [row] = due_rows(engine.db, key="overdue_digest:winter-2018:staff:2018-11-27")
    assert row.send_at == at("2018-11-27 10:00")


def test_leader_digest_chart_is_attached_when_enabled(engine: Engine, chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    new_ticker(seed002_config(charts_in_digests=True), engine.db).tick(at("2018-11-30 08:00"))
    rows = outbox(engine.db, "leaders")
    assert [m.kind for m in rows] == ["text", "image"]
    assert rows[1].blob is not None and rows[1].blob.startswith(b"\x89PNG")


# -- two scheduler processes on one PostgreSQL --------------------------------------------------


def _same_schema_engine(engine: DbEngine) -> DbEngine:
    """A second engine (its own pool, as another process would have) on the fixture's schema."""
    with engine.connect() as connection:
        search_path = connection.execute(text("SHOW search_path")).scalar()
    return make_engine(engine.url.render_as_string(hide_password=False), connect_args={"options": f"-csearch_path={search_path}"})


def _race(db: DbEngine, other: DbEngine, tmp_path: Path) -> dict[str, list[str]]:
    """Two tickers, each on its own engine, tick the same moments at the same time; returns what each sent."""
    config = seed002_config()
    engine = start_engine(config, db, tmp_path / "data")
    chat = Chat(engine, at("2018-11-27 10:00"))
    chat.say("zhang_wei", REPORT)
    chat.say("zhang_wei", MAJOR)
    chat.say("zhou_tao", "隐患\n部位：教学楼\n问题：灭火器过期\n期限：明天", group="school2-staff")
    tickers = [new_ticker(config, db, name="p1"), new_ticker(config, other, name="p2")]
    sent: dict[str, list[str]] = {"p1": [], "p2": []}
    errors: list[BaseException] = []
    for now in ["2018-11-27 10:01", "2018-11-30 08:00", "2018-11-30 08:30", "2018-12-03 08:30", "2018-12-06 17:00"]:
        barrier = threading.Barrier(2)

        def run(ticker: Ticker, moment: str = now) -> None:
            try:
                barrier.wait()
                result = ticker.tick(at(moment))
                sent[ticker.name] += result.sent
                assert not result.failed
            except BaseException as exc:  # noqa: BLE001  (reported below)
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(t,)) for t in tickers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert not errors, errors
    return sent


def _assert_each_push_once(db: DbEngine, sent: dict[str, list[str]]) -> None:
    both = sent["p1"] + sent["p2"]
    assert len(both) == len(set(both))  # no push claimed by both
    assert set(both) == {r.key for r in due_rows(db, state="sent")}
    assert {"major_alert:2:leaders", "leader_digest:winter-2018:leaders:2018-11-30",
            "report_reminder:winter-2018:staff:2018-12-06"} <= set(both)
    counts = Counter(keys(db))
    assert counts and max(counts.values()) == 1
    assert {r.claimed_by for r in due_rows(db, state="sent")} <= {"p1", "p2"}


def test_two_scheduler_processes_on_postgres_send_each_push_once(postgres_engine: DbEngine, tmp_path: Path) -> None:
    other = _same_schema_engine(postgres_engine)
    try:
        sent = _race(postgres_engine, other, tmp_path)
    finally:
        other.dispose()
    _assert_each_push_once(postgres_engine, sent)


def test_two_tickers_on_one_sqlite_file_send_each_push_once(tmp_path: Path) -> None:
    """The leader file lock normally prevents this; the compare-and-set claim still holds if it fails."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    db, other = make_engine(url), make_engine(url)
    try:
        sent = _race(db, other, tmp_path)
        _assert_each_push_once(db, sent)
    finally:
        db.dispose()
        other.dispose()


def test_a_major_alert_is_committed_before_a_digest_due_at_the_same_minute(
    engine: Engine, chat: Chat, config: Config
) -> None:
    ticker = new_ticker(config, engine.db)
    assert ticker.tick(at("2018-11-30 07:59")).sent == []  # the digest's row is stored, not yet due
    chat.now = at("2018-11-30 08:00")
    chat.say("zhang_wei", MAJOR)
    result = ticker.tick(at("2018-11-30 08:00"))
    assert result.sent[0] == "major_alert:1:leaders"
    assert "leader_digest:winter-2018:leaders:2018-11-30" in result.sent[1:]
    leaders = outbox(engine.db, "leaders")
    assert leaders[0].dedupe_key == "push:major_alert:1:leaders:0"  # stored (committed) first


def test_counts_held_in_memory_are_written_before_pushes_are_sent(engine: Engine, chat: Chat, config: Config) -> None:
    """The budget check reads the month's platform calls: the ticker first has the meters write what they hold."""
    chat.say("zhang_wei", REPORT)
    calls: list[str] = []
    ticker = new_ticker(config, engine.db, flush_counts=lambda: calls.append("flushed"))
    result = ticker.tick(at("2018-12-03 08:30"))
    assert result.sent and calls  # sending the due pushes asked for the counts first
