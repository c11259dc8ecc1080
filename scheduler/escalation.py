"""The escalation ladder and the 督办 check cadence: which hazard climbs which step, in which group, on which day.

Pure (no database, no clock): the planner uses it to preview (`safetybot plan`, given the open hazards),
the composer at send time with the hazards as they are then. A step is due on
`deadline + 1 + after_days` (0 = the first day past the deadline). One push per group and workday
covers every step due since the previous workday (steps due on a weekend or holiday climb on the next
workday), so each (hazard, step) falls in exactly one push window and that push's unique key sends it once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from models.config import EscalationStep

# The group kind that hears each target.
TARGET_KIND = {"staff": "staff", "leaders": "leaders", "county": "leaders"}


@dataclass(frozen=True, slots=True)
class GroupReach:
    """A group as the ladder sees it: its kind and the units it is configured with (None: every unit)."""

    id: str
    kind: str
    roots: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class LadderHazard:
    """An open hazard as the ladder sees it; `chain` is its unit and the units above it, the unit first."""

    id: int
    number: int
    campaign_id: str
    chain: tuple[str, ...]
    deadline: date
    level: str = "一般"
    found: date | None = None  # the day it was reported (督办 checks count from it)
    status: str = "rectifying"
    school: str = ""  # the name of the school its number belongs to (numbers are per school)


def step_day(deadline: date, step: EscalationStep) -> date:
    """The day a hazard with this deadline reaches the step."""
    return deadline + timedelta(days=1 + step.after_days)


def _reach(group: GroupReach, chain: Sequence[str]) -> int | None:
    """How near the group's nearest covering unit is to the hazard's unit (0: the unit itself); None: not covered."""
    if group.roots is None:
        return len(chain)
    found = [index for index, unit in enumerate(chain) if unit in group.roots]
    return min(found) if found else None


def targets(to: str, chain: Sequence[str], groups: Iterable[GroupReach]) -> list[str]:
    """Ids of the groups a step `to` ("staff", "leaders", "county") reaches for a hazard of this unit chain.

    "leaders" are the nearest leaders' groups covering the hazard (its school's); "county" those further up.
    """
    kind = TARGET_KIND[to]
    reached = [(index, g.id) for g in groups if g.kind == kind and (index := _reach(g, chain)) is not None]
    if to == "staff":
        return sorted(group_id for _, group_id in reached)
    if not reached:
        return []
    nearest = min(index for index, _ in reached)
    return sorted(group_id for index, group_id in reached if (index == nearest) == (to == "leaders"))


def climbs(hazard: LadderHazard, steps: Sequence[EscalationStep], group: GroupReach, groups: Sequence[GroupReach],
           first: date, last: date) -> list[EscalationStep]:
    """The steps this hazard reaches in [first, last] that are heard in `group`."""
    return [
        step for step in steps
        if first <= step_day(hazard.deadline, step) <= last and group.id in targets(step.to, hazard.chain, groups)
    ]


def deadline_range(steps: Sequence[EscalationStep], first: date, last: date) -> tuple[date, date] | None:
    """The deadlines that reach some step within [first, last] (for the query that finds them)."""
    if not steps:
        return None
    return (
        first - timedelta(days=1 + max(s.after_days for s in steps)),
        last - timedelta(days=1 + min(s.after_days for s in steps)),
    )


def supervision_due(found: date, every_days: int, first: date, last: date) -> int | None:
    """The number k ≥ 1 of the 督办 check (found + k·every_days) that falls in [first, last], if any."""
    for day in range((first - found).days, (last - found).days + 1):
        if day >= every_days and day % every_days == 0:
            return day // every_days
    return None


def steps_payload(steps: Iterable[EscalationStep]) -> list[dict[str, Any]]:
    """Steps as stored in a push's payload (the composer has no config)."""
    return [step.model_dump() for step in steps]


def steps_from_payload(payload: Mapping[str, Any]) -> list[EscalationStep]:
    return [EscalationStep.model_validate(step) for step in payload.get("steps", [])]


def step_title(step: EscalationStep) -> str:
    """→分管领导（逾期第4天）"""
    return f"→{step.name}（逾期第{step.after_days + 1}天）"
