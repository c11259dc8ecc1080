"""The plan: which pushes exist for a config, when they go out, and what they are about (no database)."""

from __future__ import annotations

from datetime import date, timedelta

from bot.config import parse_config
from scheduler.calendar import WorkCalendar
from scheduler.plan import PlannedPush, plan_pushes, plan_window
from tests.scheduler.conftest import at, seed002_config, seed002_data

SEED_START, SEED_END = date(2018, 11, 21), date(2019, 5, 10)


def seed_plan(**scheduler: object) -> list[PlannedPush]:
    config = seed002_config(**scheduler)
    return plan_pushes(config, WorkCalendar.from_config(config), first=SEED_START, last=SEED_END)


def of(pushes: list[PlannedPush], kind: str, group: str = "staff") -> list[PlannedPush]:
    return [p for p in pushes if p.kind == kind and p.group_id == group]


def test_seed002_reminders_every_10_days_from_2018_11_26() -> None:
    reminders = of(seed_plan(), "report_reminder")
    due = [p.due_at.date() for p in reminders]
    assert due[:4] == [date(2018, 11, 26), date(2018, 12, 6), date(2018, 12, 16), date(2018, 12, 26)]
    assert due == [date(2018, 11, 26) + timedelta(days=10 * k) for k in range(17)]  # … 2019-05-05, within the end
    assert all(p.due_at.strftime("%H:%M%z") == "17:00+0800" for p in reminders)
    assert reminders[0].summary == "第1期报送提醒（截至11-26）"
    assert reminders[0].key == "report_reminder:winter-2018:staff:2018-11-26"
    assert {p.group_id for p in seed_plan() if p.kind == "report_reminder"} == {"staff", "school2-staff"}


def test_reminders_on_weekends_and_holidays_move_to_the_next_workday_at_the_same_time() -> None:
    moved = {p.due_at.date(): p.send_at for p in of(seed_plan(), "report_reminder") if p.send_at != p.due_at}
    assert moved == {
        date(2018, 12, 16): at("2018-12-17 17:00"),  # Sunday → Monday
        date(2019, 1, 5): at("2019-01-07 17:00"),  # Saturday → Monday
        date(2019, 2, 4): at("2019-02-11 17:00"),  # Spring Festival 02-04 … 02-10
        date(2019, 2, 24): at("2019-02-25 17:00"),
        date(2019, 3, 16): at("2019-03-18 17:00"),
        date(2019, 4, 5): at("2019-04-08 17:00"),  # 清明 (Friday) and the weekend
    }
    spring = next(p for p in of(seed_plan(), "report_reminder") if p.due_at.date() == date(2019, 2, 4))
    assert spring.summary == "第8期报送提醒（截至02-04）（原定02-04周一，顺延）"
    # 2019-05-05 is a Sunday but a make-up workday (劳动节调休): not moved.
    last = of(seed_plan(), "report_reminder")[-1]
    assert last.due_at == last.send_at == at("2019-05-05 17:00")


def test_nudges_before_the_seed002_milestones() -> None:
    nudges = of(seed_plan(), "milestone_nudge")
    sends = {}
    for push in nudges:
        sends.setdefault(push.payload["deadline"], []).append(push.send_at)
    assert sends["2018-12-19"] == [at("2018-12-17 09:00"), at("2018-12-18 09:00"), at("2018-12-19 09:00")]  # 12-16 is a Sunday
    assert sends["2019-03-20"] == [at("2019-03-18 09:00"), at("2019-03-19 09:00"), at("2019-03-20 09:00")]  # 03-17 Sunday
    # 04-21 (1 day before) is a Sunday: moved onto 04-22 it would repeat the day-0 nudge, so it is dropped.
    assert sends["2019-04-22"] == [at("2019-04-19 09:00"), at("2019-04-22 09:00")]
    first = next(p for p in nudges if p.payload["deadline"] == "2018-12-19")
    assert first.summary == "报送阶段性情况（第一次）截止（12-19，还有2天）（原定12-16周日，顺延）"


def test_phase_nudges_count_days_from_when_they_go_out() -> None:
    phase2 = [p for p in of(seed_plan(), "phase_nudge") if p.payload["phase"] == 2]
    assert [p.send_at for p in phase2] == [at("2019-04-17 09:00"), at("2019-04-19 09:00"), at("2019-04-22 09:00")]
    assert phase2[0].summary.endswith("隐患清单全部整改销号（04-20，还有3天）")
    # The day-0 nudge fell on Saturday 04-20; on Monday it says the phase has ended.
    assert "（04-20，已截止2天）（原定04-20周六，顺延）" in phase2[-1].summary


def test_nudges_never_start_before_the_campaign() -> None:
    data = seed002_data()
    data["campaigns"][0]["nudge_days_before"] = [7, 0]
    config = parse_config(data)
    pushes = plan_pushes(config, WorkCalendar.from_config(config), first=SEED_START, last=SEED_END)
    phase1 = [p for p in of(pushes, "phase_nudge") if p.payload["phase"] == 1]
    assert [p.payload["days_before"] for p in phase1] == [0]  # 11-19 is before the 11-21 start


def test_daily_digests_only_on_workdays() -> None:
    pushes = seed_plan()
    overdue = {p.due_at.date() for p in of(pushes, "overdue_digest")}
    leaders = {p.due_at.date() for p in of(pushes, "leader_digest", "leaders")}
    assert date(2018, 12, 29) in overdue  # make-up Saturday
    assert date(2018, 12, 30) not in overdue and date(2019, 1, 1) not in overdue
    assert overdue == leaders
    assert all(p.send_at == p.due_at for p in of(pushes, "overdue_digest"))
    assert {p.group_id for p in pushes if p.kind == "leader_digest"} == {"leaders"}
    # With a daily leader digest, escalations go there; the leaders get no separate overdue digest.
    assert not of(pushes, "overdue_digest", "leaders")


def test_weekly_leader_digest_on_its_weekday_moved_by_holidays() -> None:
    pushes = seed_plan(leader_digest={"cadence": "weekly", "at": "08:00", "weekday": "mon"})
    weekly = of(pushes, "leader_digest", "leaders")
    assert all(p.due_at.weekday() == 0 for p in weekly)
    assert weekly[0].due_at == at("2018-11-26 08:00") and weekly[0].summary.startswith("领导周报")
    by_day = {p.due_at.date(): p.send_at for p in weekly}
    assert by_day[date(2018, 12, 31)] == at("2019-01-02 08:00")  # 元旦 holiday Monday
    assert date(2019, 2, 4) not in by_day  # moved a full week by Spring Festival: next Monday's covers it
    # Weekly leaders still hear of escalations daily.
    assert of(pushes, "overdue_digest", "leaders")[0].summary == "逾期升级日报（逾期满3天；无则不发）"


def test_quiet_hours_move_a_late_reminder_to_the_next_morning() -> None:
    data = seed002_data()
    data["campaigns"][0]["reporting"]["at"] = "22:00"
    config = parse_config(data)
    reminders = of(plan_pushes(config, WorkCalendar.from_config(config), first=SEED_START, last=SEED_END), "report_reminder")
    assert reminders[0].due_at == at("2018-11-26 22:00")
    assert reminders[0].send_at == at("2018-11-27 07:30")
    assert reminders[0].summary.endswith("（原定11-26周一，顺延）")
    friday = next(p for p in reminders if p.due_at.date() == date(2018, 12, 6))  # a Thursday
    assert friday.send_at == at("2018-12-07 07:30")


def test_plan_window_is_by_send_time_and_sorted() -> None:
    config = seed002_config()
    window = plan_window(config, WorkCalendar.from_config(config), first=date(2019, 2, 11), last=date(2019, 2, 11))
    assert window == sorted(window, key=lambda p: p.send_at)
    assert all(p.send_at.date() == date(2019, 2, 11) for p in window)
    assert "report_reminder:winter-2018:staff:2019-02-04" in {p.key for p in window}  # planned a week earlier


def test_group_without_campaign_follows_the_running_one() -> None:
    data = seed002_data()
    for group in data["groups"]:
        group.pop("campaign")
    config = parse_config(data)
    pushes = plan_pushes(config, WorkCalendar.from_config(config), first=date(2018, 11, 26), last=date(2018, 11, 26))
    assert {p.campaign_id for p in pushes} == {"winter-2018"}
    pushes = plan_pushes(config, WorkCalendar.from_config(config), first=date(2026, 11, 20), last=date(2026, 11, 20))
    assert {p.campaign_id for p in pushes} == {"winter-2026"}


def test_json_shape() -> None:
    push = of(seed_plan(), "report_reminder")[0]
    assert push.to_json() == {
        "at": "2018-11-26T17:00+08:00", "kind": "report_reminder", "campaign": "winter-2018", "group": "staff",
        "summary": "第1期报送提醒（截至11-26）",
    }
