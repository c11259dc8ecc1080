"""What the campaign clock will push, computed from the config and the groups it is given (pure: no database, no
clock). The ticker and `safetybot plan` give it the database's groups (`PlanGroup`): the TOML's and those an admin
bound in chat (登记本群); without them it plans the TOML's `[[groups]]`.

`safetybot plan` prints this list; the ticker stores it as due-push rows with the same keys.
Kinds and where they go:
  report_reminder   staff groups, on each report day (first + k·every_days) at reporting.at, or at each of
                    reporting.remind_before (e.g. "-1d 16:00": the day before; a day off: the workday before)
  phase_nudge       staff groups, nudge_days_before each phase end, at scheduler.nudge_at
  milestone_nudge   staff groups, nudge_days_before each milestone, at scheduler.nudge_at
  overdue_digest    staff groups every workday at scheduler.overdue_digest_at; leaders' groups too
                    (escalations only) when the leader digest is weekly
  leader_digest     leaders' groups, daily (workdays) or weekly, at scheduler.leader_digest.at
  escalation        staff and leaders' groups every workday at escalation.at: the overdue hazards that reached
                    a step of [[escalation.steps]] since the previous workday, all steps in one message
  supervision       leaders' groups every workday at supervision.at: 督办 (重大) hazards whose
                    every_days check falls since the previous workday
(Given the open hazards (`PlanHazards`), escalations and 督办 checks name them and empty ones are left out.)
(major_alert rows are not planned: the report handler writes them when a 重大 hazard comes in.)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from models.config import Campaign, Config, EscalationStep, Group
from handlers.periods import period_for, report_days
from models.push_groups import StoredGroup
from models.tables import CampaignRow
from scheduler.calendar import WorkCalendar
from scheduler.escalation import (
    GroupReach,
    LadderHazard,
    TARGET_KIND,
    climbs,
    steps_payload,
    supervision_due,
)

KINDS = (
    "report_reminder", "phase_nudge", "milestone_nudge", "overdue_digest", "escalation", "supervision",
    "leader_digest", "major_alert",
)
WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_WEEKDAY_ZH = "一二三四五六日"


@dataclass(frozen=True, slots=True)
class PlannedPush:
    """One push: its unique key, when it was meant for and when it may go out, and what it is about."""

    key: str
    kind: str
    campaign_id: str
    group_id: str
    due_at: datetime  # zone-aware planned time
    send_at: datetime  # after the calendar moved it (quiet hours, non-workdays)
    summary: str
    payload: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, str]:
        """The `safetybot plan --json` object."""
        return {
            "at": self.send_at.isoformat(timespec="minutes"),
            "kind": self.kind,
            "campaign": self.campaign_id,
            "group": self.group_id,
            "summary": self.summary,
        }

    def line(self, *, campaign_width: int = 0, group_width: int = 0) -> str:
        """The `safetybot plan` text line (columns padded to the given widths)."""
        at = self.send_at.isoformat(sep=" ", timespec="minutes")
        return (
            f"{at}  {self.kind:<15}  {self.campaign_id:<{campaign_width}}  {self.group_id:<{group_width}}  {self.summary}"
        )


def campaign_row(campaign: Campaign, timezone: str) -> CampaignRow:
    """A detached CampaignRow, so the reporting-period rules of handlers.periods apply unchanged."""
    return CampaignRow(
        id=campaign.id, name=campaign.name, start=campaign.start, end=campaign.end, timezone=timezone,
        report_every_days=campaign.reporting.every_days if campaign.reporting else None,
        report_first=campaign.reporting.first if campaign.reporting else None,
        report_at=campaign.reporting.at.strftime("%H:%M") if campaign.reporting else None,
    )


@dataclass(frozen=True, slots=True)
class PlanGroup:
    """A group the plan pushes to: a [[groups]] entry of the TOML, or a group of the database (the TOML's and
    those an admin bound in chat with 登记本群, which have no TOML entry)."""

    id: str
    kind: str
    units: tuple[str, ...] = ()  # empty: every unit
    campaign: str | None = None  # None: the latest started running campaign
    platform: str = ""
    source: str = "config"  # "config" or "chat"

    @classmethod
    def of_config(cls, group: Group) -> PlanGroup:
        return cls(group.id, group.kind, tuple(group.units), group.campaign, group.platform)

    @classmethod
    def of_stored(cls, group: StoredGroup) -> PlanGroup:
        return cls(group.id, group.kind, group.units, group.campaign_id, group.platform, group.source)


def config_groups(config: Config) -> list[PlanGroup]:
    """The TOML's groups (`plan --no-db`, and before the database exists)."""
    return [PlanGroup.of_config(group) for group in config.groups]


def push_groups(config: Config, stored: Sequence[StoredGroup], *, stored_only: bool = True) -> list[PlanGroup]:
    """The groups to push to: the TOML's `[[groups]]` as the config has them now (only those the database holds,
    unless not `stored_only`: a preview before the next start), and the groups an admin bound in chat that no
    TOML entry has taken over. A group removed from the TOML keeps its row (the ledger refers to it) but gets
    no more pushes."""
    ids = {group.id for group in stored}
    configured = [group for group in config_groups(config) if not stored_only or group.id in ids]
    chats = {(group.platform, group.chat_id) for group in config.groups if group.chat_id}
    taken = {group.id for group in config.groups}
    return configured + [
        PlanGroup.of_stored(group) for group in stored
        if group.source == "chat" and (group.platform, group.chat_id) not in chats and group.id not in taken
    ]


def group_campaign(config: Config, group: Group | PlanGroup, day: date) -> Campaign | None:
    """The campaign a group works on that day: its configured one, else the latest started running one."""
    if group.campaign is not None:
        return next((c for c in config.campaigns if c.id == group.campaign), None)
    running = [c for c in config.campaigns if c.start <= day <= c.end]
    return max(running, key=lambda c: c.start) if running else None


def _groups(config: Config, groups: Sequence[PlanGroup], campaign: Campaign, day: date, kind: str) -> list[PlanGroup]:
    return [g for g in groups if g.kind == kind and (c := group_campaign(config, g, day)) and c.id == campaign.id]


def days_left(deadline: date, today: date) -> str:
    """还有3天 / 今天截止 / 已截止2天 (a nudge moved past a deadline says so)."""
    days = (deadline - today).days
    if days > 0:
        return f"还有{days}天"
    return "今天截止" if days == 0 else f"已截止{-days}天"


def _shift_note(due: datetime, send: datetime, calendar: WorkCalendar) -> str:
    if send == due:
        return ""
    if send < due:  # a reminder before a deadline, moved off a day off to the workday before
        return f"（原定{due:%m-%d}周{_WEEKDAY_ZH[due.weekday()]}，提前）"
    if send.date() == due.date():
        return f"（原定{due:%H:%M}，避开免打扰时段）"
    # Days off that only the lunar estimate knows about are flagged: the official calendar may differ.
    estimated = calendar.estimated_holidays(due.date(), send.date() - timedelta(days=1))
    reason = "按估算假期顺延" if estimated else "顺延"
    return f"（原定{due:%m-%d}周{_WEEKDAY_ZH[due.weekday()]}，{reason}）"


# A push moves at most this far (Spring Festival plus weekends), so planning starts this much earlier.
MAX_SHIFT = timedelta(days=45)


@dataclass(frozen=True, slots=True)
class PlanHazards:
    """The open hazards a plan may name (read from the database by `safetybot plan`)."""

    hazards: tuple[LadderHazard, ...] = ()


def _reach_of(group: PlanGroup) -> GroupReach:
    return GroupReach(group.id, group.kind, frozenset(group.units) if group.units else None)


def _labels(hazards: list[LadderHazard]) -> list[str]:
    """#12, or 城南小学#12 when the hazards come from several schools (numbers are per school)."""
    several = len({h.school for h in hazards}) > 1
    return [f"{h.school}#{h.number}" if several and h.school else f"#{h.number}" for h in hazards]


def _names(items: list[str], limit: int = 6) -> str:
    return "、".join(items[:limit]) + (f"等{len(items)}项" if len(items) > limit else "")


class _Planner:
    def __init__(self, config: Config, calendar: WorkCalendar, first: date, last: date,
                 hazards: PlanHazards | None = None, groups: Sequence[PlanGroup] | None = None) -> None:
        self.config = config
        self.groups = list(groups) if groups is not None else config_groups(config)
        self._by_id = {group.id: group for group in self.groups}
        self.hazards = hazards
        self.calendar = calendar
        self.tz = calendar.tz
        self.settings = config.scheduler
        self.first, self.last = first, last
        self._allowed: dict[datetime, datetime] = {}
        self._notes: dict[tuple[datetime, datetime], str] = {}

    def near(self, day: date) -> bool:
        """Whether a push planned for `day` can matter to the window (saves calendar look-ups)."""
        return self.first - MAX_SHIFT <= day <= self.last + MAX_SHIFT

    def at(self, day: date, moment: time) -> datetime:
        return datetime.combine(day, moment, self.tz)

    def allowed(self, due: datetime) -> datetime:
        """calendar.next_allowed, worked out once per time: thousands of groups share each push time."""
        if due not in self._allowed:
            self._allowed[due] = self.calendar.next_allowed(due)
        return self._allowed[due]

    def shift_note(self, due: datetime, send: datetime) -> str:
        """_shift_note, worked out once per pair of times, like `allowed`."""
        if (due, send) not in self._notes:
            self._notes[due, send] = _shift_note(due, send, self.calendar)
        return self._notes[due, send]

    def push(self, *, key: str, kind: str, campaign: Campaign, group: PlanGroup, due: datetime, summary: str,
             payload: Mapping[str, Any], send: datetime | None = None) -> PlannedPush:
        send = send or self.allowed(due)
        return PlannedPush(
            key=key, kind=kind, campaign_id=campaign.id, group_id=group.id, due_at=due, send_at=send,
            summary=summary + self.shift_note(due, send), payload=dict(payload),
        )

    def report_reminders(self, campaign: Campaign) -> Iterator[PlannedPush]:
        if campaign.reporting is None:
            return
        row = campaign_row(campaign, self.config.timezone)
        reporting = campaign.reporting
        deadline_at = reporting.at.strftime("%H:%M")
        for seq, day in enumerate(report_days(row), start=1):
            if not self.near(day):
                continue
            period = period_for(row, day)
            assert period is not None and period.due == day
            for group in _groups(self.config, self.groups, campaign, day, "staff"):
                taken: dict[date, PlannedPush] = {}
                for days, moment in reporting.reminders():
                    # No remind_before: one reminder at the deadline itself, under the original key.
                    suffix = f":{days}d{moment:%H%M}" if reporting.remind_before else ""
                    summary = (
                        f"第{seq}期报送提醒（{day:%m-%d} {deadline_at}截止）" if reporting.remind_before
                        else f"第{seq}期报送提醒（截至{day:%m-%d}）"
                    )
                    due = self.at(day + timedelta(days=days), moment)
                    early = self._earlier_workday(due, period.start) if reporting.remind_before else None
                    push = self.push(
                        key=f"report_reminder:{campaign.id}:{group.id}:{day.isoformat()}{suffix}",
                        kind="report_reminder", campaign=campaign, group=group, due=due,
                        summary=summary,
                        payload={"seq": seq, "period_start": period.start.isoformat(), "period_due": day.isoformat(),
                                 "deadline_at": deadline_at},
                        send=early,
                    )
                    # Two reminders moved onto the same day (a weekend) would say the same: keep the later one.
                    kept = taken.get(push.send_at.date())
                    if kept is None or push.send_at >= kept.send_at:
                        taken[push.send_at.date()] = push
                yield from taken.values()

    def _earlier_workday(self, due: datetime, floor: date) -> datetime | None:
        """A reminder before a deadline that falls on a day off goes out on the workday before (same time), not
        after the deadline; None when `due` may go out as it is (or no workday is left since `floor`)."""
        if not self.calendar.skip_non_workdays or self.calendar.is_workday(due.date()):
            return None
        day = due.date() - timedelta(days=1)
        while day >= floor:
            if self.calendar.is_workday(day):
                moved = self.at(day, due.timetz().replace(tzinfo=None))
                return moved if self.allowed(moved) == moved else None
            day -= timedelta(days=1)
        return None

    def _nudges(self, campaign: Campaign, *, kind: str, ident: str, deadline: date, title: str,
                payload: Mapping[str, Any]) -> Iterator[PlannedPush]:
        days_before = sorted({n for n in campaign.nudge_days_before if n >= 0}, reverse=True)
        if not self.near(deadline):
            return
        for group in _groups(self.config, self.groups, campaign, deadline, "staff"):
            taken: dict[date, PlannedPush] = {}
            for n in days_before:
                day = deadline - timedelta(days=n)
                if day < campaign.start:
                    continue
                due = self.at(day, self.settings.nudge_at)
                send = self.allowed(due)
                push = self.push(
                    key=f"{kind}:{campaign.id}:{group.id}:{ident}:{deadline.isoformat()}:{n}",
                    kind=kind, campaign=campaign, group=group, due=due, send=send,
                    summary=f"{title}（{deadline:%m-%d}，{days_left(deadline, send.date())}）",
                    payload={**payload, "deadline": deadline.isoformat(), "days_before": n},
                )
                # Two nudges moved onto the same day (e.g. Sat and Sun → Mon) would say the same thing twice:
                # keep the later one, which counts the days left correctly.
                taken[push.send_at.date()] = push
            yield from taken.values()

    def phase_nudges(self, campaign: Campaign) -> Iterator[PlannedPush]:
        for seq, phase in enumerate(campaign.phases, start=1):
            deliverable = f"：{phase.deliverable}" if phase.deliverable else ""
            yield from self._nudges(
                campaign, kind="phase_nudge", ident=f"p{seq}", deadline=phase.end,
                title=f"{phase.name}结束{deliverable}",
                payload={"phase": seq, "name": phase.name, "deliverable": phase.deliverable},
            )

    def milestone_nudges(self, campaign: Campaign) -> Iterator[PlannedPush]:
        for index, milestone in enumerate(campaign.milestones, start=1):
            yield from self._nudges(
                campaign, kind="milestone_nudge", ident=f"m{index}", deadline=milestone.date,
                title=f"{milestone.name}截止", payload={"milestone": index, "name": milestone.name},
            )

    def _days(self, campaign: Campaign, first: date, last: date) -> Iterator[date]:
        day = max(first, campaign.start)
        while day <= min(last, campaign.end):
            yield day
            day += timedelta(days=1)

    def overdue_digests(self, campaign: Campaign, first: date, last: date) -> Iterator[PlannedPush]:
        escalate_to_leaders = self.settings.leader_digest.cadence != "daily"
        for day in self._days(campaign, first, last):
            # A daily digest on a day off is dropped, not moved: moving it would double the next day's.
            if self.calendar.skip_non_workdays and not self.calendar.is_workday(day):
                continue
            kinds = ["staff", "leaders"] if escalate_to_leaders else ["staff"]
            ladder = self._ladder_heard(campaign, day)  # [escalation] steps: what the ladder says in each group
            for kind in kinds:
                for group in _groups(self.config, self.groups, campaign, day, kind):
                    summary = (
                        "逾期隐患日报（@责任人；无逾期不发）" if kind == "staff"
                        else f"逾期升级日报（逾期满{campaign.escalate_after_days}天；无则不发）"
                    )
                    payload: dict[str, object] = {
                        "day": day.isoformat(), "escalated_only": kind == "leaders",
                        "escalate_after_days": campaign.escalate_after_days,
                    }
                    if ladder.get(group.id):  # the digest leaves out what the ladder announces here that day
                        payload["ladder"] = {
                            "first": self._since_last_workday(day).isoformat(),
                            "steps": steps_payload(ladder[group.id]),
                        }
                    yield self.push(
                        key=f"overdue_digest:{campaign.id}:{group.id}:{day.isoformat()}",
                        kind="overdue_digest", campaign=campaign, group=group,
                        due=self.at(day, self.settings.overdue_digest_at), summary=summary, payload=payload,
                    )

    def _ladder_heard(self, campaign: Campaign, day: date) -> dict[str, list[EscalationStep]]:
        """Per group working on the campaign that day, the escalation steps heard in it (as `escalations`)."""
        steps = self.config.escalation.steps
        if not steps:
            return {}
        reaches = [_reach_of(g) for kind in ("staff", "leaders") for g in _groups(self.config, self.groups, campaign, day, kind)]
        return {
            group.id: [s for s in steps if TARGET_KIND[s.to] == group.kind
                       and (s.to != "county" or self._above_other_leaders(group, reaches))]
            for group in reaches
        }

    def leader_digests(self, campaign: Campaign, first: date, last: date) -> Iterator[PlannedPush]:
        digest = self.settings.leader_digest
        weekly = digest.cadence == "weekly"
        charts = "、图表" if self.settings.charts_in_digests else ""
        for day in self._days(campaign, first, last):
            if weekly and day.weekday() != WEEKDAYS[digest.weekday]:
                continue
            if not weekly and self.calendar.skip_non_workdays and not self.calendar.is_workday(day):
                continue
            ladder = self._ladder_heard(campaign, day)  # its escalated hazards are listed by the steps heard here
            for group in _groups(self.config, self.groups, campaign, day, "leaders"):
                title = "领导周报" if weekly else "领导日报"
                due = self.at(day, digest.at)
                send = self.allowed(due)
                if weekly and send.date() >= day + timedelta(days=7):
                    continue  # a week-long holiday: next week's digest covers it
                yield self.push(
                    send=send,
                    key=f"leader_digest:{campaign.id}:{group.id}:{day.isoformat()}",
                    kind="leader_digest", campaign=campaign, group=group, due=due,
                    summary=f"{title}：合计、各单位逾期、未报送单位、重大隐患{charts}",
                    payload={
                        "day": day.isoformat(), "cadence": digest.cadence,
                        "escalate_after_days": campaign.escalate_after_days,
                        **({"steps": steps_payload(ladder[group.id])} if ladder.get(group.id) else {}),
                    },
                )


    # -- escalation ladder and 督办 checks (scheduler/escalation.py) -------------------------------

    def _since_last_workday(self, day: date) -> date:
        """The first day a workday's push covers: the day after the previous workday (the day itself when
        pushes go out on every day)."""
        if not self.calendar.skip_non_workdays:
            return day
        previous = day - timedelta(days=1)
        while previous > day - MAX_SHIFT and not self.calendar.is_workday(previous):
            previous -= timedelta(days=1)
        return previous + timedelta(days=1)

    def _workdays(self, campaign: Campaign, first: date, last: date) -> Iterator[date]:
        for day in self._days(campaign, first, last):
            if not self.calendar.skip_non_workdays or self.calendar.is_workday(day):
                yield day

    def _above_other_leaders(self, group: GroupReach, reaches: list[GroupReach]) -> bool:
        """Whether a leaders' group covers another leaders' group's units from above (it hears "county" steps)."""
        if group.kind != "leaders":
            return False
        parents = {unit.id: unit.parent for unit in self.config.units}
        for other in reaches:
            if other.id == group.id or other.kind != "leaders" or other.roots is None:
                continue
            if group.roots is None:
                return True  # a group of every unit is above any group of some units
            for root in other.roots:
                unit = parents.get(root)
                while unit is not None:
                    if unit in group.roots:
                        return True
                    unit = parents.get(unit)
        return False

    def escalations(self, campaign: Campaign, first: date, last: date) -> Iterator[PlannedPush]:
        steps = self.config.escalation.steps
        if not steps:
            return
        for day in self._workdays(campaign, first, last):
            since = self._since_last_workday(day)
            reaches = [_reach_of(g) for kind in ("staff", "leaders") for g in _groups(self.config, self.groups, campaign, day, kind)]
            above = {g.id: self._above_other_leaders(g, reaches) for g in reaches}
            for group in reaches:
                heard = [s for s in steps if TARGET_KIND[s.to] == group.kind and (s.to != "county" or above[group.id])]
                if not heard:
                    continue
                if self.hazards is None:
                    summary = f"逾期升级：{'、'.join(dict.fromkeys(s.name for s in heard))}（当天到级的逾期隐患；无则不发）"
                else:
                    climbing = [
                        (h, found) for h in self.hazards.hazards
                        if h.campaign_id == campaign.id and h.status == "rectifying"
                        and (found := climbs(h, heard, group, reaches, since, day))
                    ]
                    labels = _labels([h for h, _ in climbing])
                    items = [f"{label}→{'、'.join(s.name for s in found)}" for label, (_, found) in zip(labels, climbing)]
                    if not items:
                        continue
                    summary = f"逾期升级：{_names(items)}"
                yield self.push(
                    key=f"escalation:{campaign.id}:{group.id}:{day.isoformat()}",
                    kind="escalation", campaign=campaign, group=self._by_id[group.id],
                    due=self.at(day, self.config.escalation.at), summary=summary,
                    payload={"first": since.isoformat(), "day": day.isoformat(), "steps": steps_payload(heard)},
                )

    def supervisions(self, campaign: Campaign, first: date, last: date) -> Iterator[PlannedPush]:
        settings = self.config.supervision
        if not settings.enabled:
            return
        for day in self._workdays(campaign, first, last):
            since = self._since_last_workday(day)
            for group in _groups(self.config, self.groups, campaign, day, "leaders"):
                if self.hazards is None:
                    summary = f"督办复查：挂牌督办的重大隐患每{settings.every_days}天复查一次（无则不发）"
                else:
                    reach = _reach_of(group)
                    checks = [
                        (h, k) for h in self.hazards.hazards
                        if h.campaign_id == campaign.id and h.level == "重大" and h.found is not None
                        and h.status in ("rectifying", "rectified")
                        and (reach.roots is None or reach.roots & set(h.chain))
                        and (k := supervision_due(h.found, settings.every_days, since, day))
                    ]
                    labels = _labels([h for h, _ in checks])
                    items = [f"{label}第{k}次" for label, (_, k) in zip(labels, checks)]
                    if not items:
                        continue
                    summary = f"督办复查：{_names(items)}"
                yield self.push(
                    key=f"supervision:{campaign.id}:{group.id}:{day.isoformat()}",
                    kind="supervision", campaign=campaign, group=group,
                    due=self.at(day, settings.at), summary=summary,
                    payload={"first": since.isoformat(), "day": day.isoformat(), "every_days": settings.every_days},
                )


def plan_pushes(config: Config, calendar: WorkCalendar, *, first: date, last: date,
                hazards: PlanHazards | None = None, groups: Sequence[PlanGroup] | None = None) -> list[PlannedPush]:
    """Every planned push whose planned (due) day is within [first, last], in sending order.

    `groups`: the groups to push to (the database's, chat-bound ones included); None: the TOML's."""
    planner = _Planner(config, calendar, first, last, hazards, groups)
    pushes: list[PlannedPush] = []
    for campaign in config.campaigns:
        pushes += planner.report_reminders(campaign)
        pushes += planner.phase_nudges(campaign)
        pushes += planner.milestone_nudges(campaign)
        pushes += planner.overdue_digests(campaign, first, last)
        pushes += planner.leader_digests(campaign, first, last)
        pushes += planner.escalations(campaign, first, last)
        pushes += planner.supervisions(campaign, first, last)
    # A reminder moved earlier (off a day off before its deadline) counts from the day it goes out.
    pushes = [
        p for p in pushes
        if first <= p.due_at.date() <= last or (p.send_at < p.due_at and first <= p.send_at.date() <= last)
    ]
    order = {kind: rank for rank, kind in enumerate(KINDS)}
    return sorted(pushes, key=lambda p: (p.send_at, order[p.kind], p.group_id, p.key))


def plan_window(config: Config, calendar: WorkCalendar, *, first: date, last: date,
                hazards: PlanHazards | None = None, groups: Sequence[PlanGroup] | None = None) -> list[PlannedPush]:
    """Pushes that will be *sent* within [first, last] (a push may be planned days before it goes out)."""
    return [
        p for p in plan_pushes(config, calendar, first=first - MAX_SHIFT, last=last, hazards=hazards, groups=groups)
        if first <= p.send_at.date() <= last
    ]
