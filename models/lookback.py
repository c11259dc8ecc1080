"""Look-back campaigns (回头看, issue 16): the re-check sample, coverage, findings by source, archive gaps.

A look-back campaign (`CampaignRow.kind == "lookback"`) names the campaigns it looks back on. What they closed is
re-checked: every 重大 hazard and a share of the 一般 ones, drawn reproducibly (the draw is seeded by the
look-back's id, so it is the same on every machine and every run).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from models.ids import stored_id
from models.ledger import subtrees
from models.tables import (
    OPEN_STATUSES,
    AttachmentFile,
    CampaignRow,
    CheckRecord,
    Hazard,
    HazardEvent,
    HazardStatus,
    LookbackAnswer,
    RecheckItem,
    RecheckStatus,
)

# Where a finding comes from. The first is the school's own self-check; inspections from above (督查 and the
# county/city/province rounds) found what the school's self-check missed, which counts against the school.
ORIGINS: tuple[str, ...] = ("自查", "县普查", "市抽查", "省督查", "督查", "审计", "通报", "复查")
MISSED_ORIGINS: frozenset[str] = frozenset({"县普查", "市抽查", "省督查", "督查"})
ORIGIN_ALIASES: dict[str, str] = {
    "自检": "自查", "学校自查": "自查", "普查": "县普查", "县级普查": "县普查", "县（市、区）普查": "县普查",
    "抽查": "市抽查", "市级抽查": "市抽查", "省级督查": "省督查", "省督导": "省督查", "督导": "督查", "督导组": "督查",
    "专班督查": "督查", "审计调查": "审计", "省委审计办审计调查": "审计", "检查通报": "通报", "安全检查通报": "通报",
    "回头看复查": "复查",
}


def normalize_origin(text: str) -> str | None:
    """The canonical source of a finding as written (县级普查 → 县普查), or None when unknown."""
    value = text.strip().replace(" ", "")
    if value in ORIGINS:
        return value
    if value in ORIGIN_ALIASES:
        return ORIGIN_ALIASES[value]
    for origin in ORIGINS:  # e.g. 省级第六轮督查 → 省督查 is not guessed; 县普查发现 → 县普查 is
        if value.startswith(origin):
            return origin
    return None


def _draw_key(seed: str, hazard: Hazard) -> str:
    # Numbers are per school: the school keeps two schools' #1 apart (hazards of before per-school numbers have none).
    school = f"{hazard.school_id}#" if hazard.school_id else ""
    return hashlib.sha256(f"{seed}:{hazard.campaign_id}:{school}{hazard.number}".encode()).hexdigest()


def draw_sample(hazards: Sequence[Hazard], *, share: float, seed: str) -> list[Hazard]:
    """Every 重大 hazard and ceil(share × n) of the n 一般 ones, chosen by a hash of the seed (reproducible)."""
    major = [h for h in hazards if h.level == "重大"]
    general = sorted((h for h in hazards if h.level != "重大"), key=lambda h: _draw_key(seed, h))
    chosen = {id(h) for h in major + general[: math.ceil(share * len(general) - 1e-9)]}
    return [h for h in hazards if id(h) in chosen]


def closed_in(session: Session, campaign_ids: Sequence[str]) -> list[Hazard]:
    """Hazards closed (销号) in these campaigns, in campaign order, then by school and number."""
    order = {ident: i for i, ident in enumerate(campaign_ids)}
    rows = session.exec(
        select(Hazard).where(
            col(Hazard.campaign_id).in_(list(campaign_ids)),
            Hazard.status == HazardStatus.CLOSED.value,
        )
    ).all()
    return sorted(rows, key=lambda h: (order.get(h.campaign_id, 0), h.school_id or "", h.number))


def draw_rechecks(session: Session, campaign: CampaignRow, *, now: datetime) -> tuple[list[RecheckItem], bool]:
    """The look-back's 复查 items, drawn once (later calls return the same items); True when drawn now."""
    existing = list(session.exec(
        select(RecheckItem).where(col(RecheckItem.campaign_id) == campaign.id).order_by(col(RecheckItem.number))
    ))
    if existing or not campaign.looked_back:
        return existing, False
    chosen = draw_sample(closed_in(session, campaign.looked_back), share=campaign.recheck_share, seed=campaign.id)
    items = [
        RecheckItem(campaign_id=campaign.id, number=number, hazard_id=stored_id(hazard), unit_id=hazard.unit_id,
                    created_at=now)
        for number, hazard in enumerate(chosen, start=1)
    ]
    session.add_all(items)
    session.flush()
    return items, True


def rechecks(
    session: Session, campaign_id: str, *, unit_ids: Iterable[str] | None = None, status: str | None = None
) -> list[tuple[RecheckItem, Hazard]]:
    """The look-back's 复查 items with their old hazards, by number."""
    statement = (
        select(RecheckItem, Hazard)
        .join(Hazard, col(Hazard.id) == col(RecheckItem.hazard_id))
        .where(RecheckItem.campaign_id == campaign_id)
        .order_by(col(RecheckItem.number))
    )
    if unit_ids is not None:
        statement = statement.where(col(RecheckItem.unit_id).in_(set(unit_ids)))
    if status is not None:
        statement = statement.where(RecheckItem.status == status)
    return [(item, hazard) for item, hazard in session.exec(statement)]


def recheck_by_number(session: Session, campaign_id: str, number: int) -> tuple[RecheckItem, Hazard] | None:
    row = session.exec(
        select(RecheckItem, Hazard)
        .join(Hazard, col(Hazard.id) == col(RecheckItem.hazard_id))
        .where(RecheckItem.campaign_id == campaign_id, RecheckItem.number == number)
    ).first()
    return (row[0], row[1]) if row is not None else None


def pending_recheck_counts(session: Session, campaign_id: str, unit_ids: Iterable[str] | None) -> dict[str, int]:
    """Per unit, the 复查 items not yet re-checked."""
    statement = (
        select(RecheckItem.unit_id, func.count())
        .where(RecheckItem.campaign_id == campaign_id, RecheckItem.status == RecheckStatus.PENDING.value)
        .group_by(RecheckItem.unit_id)
    )
    if unit_ids is not None:
        statement = statement.where(col(RecheckItem.unit_id).in_(set(unit_ids)))
    return {unit: int(count) for unit, count in session.execute(statement)}


@dataclass(frozen=True, slots=True)
class Coverage:
    """Schools with nothing checked yet in the campaign, and buildings not checked (by id)."""

    unchecked_schools: list[str]
    unchecked_buildings: list[str]
    checked_buildings: int
    buildings: int


def coverage(
    session: Session, campaign_id: str, *, schools: Sequence[str], buildings: Sequence[tuple[str, str]]
) -> Coverage:
    """Which schools and buildings (building id, school id) no 检查, hazard or 复查 of the campaign has touched.

    A school counts as checked when anything was checked or reported in any of its units; a building when a
    检查 or a hazard names it.
    """
    live = Hazard.status != HazardStatus.WITHDRAWN.value
    touched_units = set(session.exec(select(CheckRecord.unit_id).where(CheckRecord.campaign_id == campaign_id)))
    touched_units |= set(session.exec(select(Hazard.unit_id).where(Hazard.campaign_id == campaign_id, live)))
    touched_units |= set(session.exec(
        select(RecheckItem.unit_id).where(
            RecheckItem.campaign_id == campaign_id, RecheckItem.status != RecheckStatus.PENDING.value
        )
    ))
    checked = set(session.exec(select(CheckRecord.building_id).where(CheckRecord.campaign_id == campaign_id)))
    checked |= set(session.exec(select(Hazard.building_id).where(Hazard.campaign_id == campaign_id, live)))
    trees = subtrees(session, schools)  # one query per tree level, not one per school
    unchecked_schools = [school for school in schools if not trees[school] & touched_units]
    unchecked_buildings = [ident for ident, _school in buildings if ident not in checked]
    return Coverage(
        unchecked_schools=unchecked_schools,
        unchecked_buildings=unchecked_buildings,
        checked_buildings=len(buildings) - len(unchecked_buildings),
        buildings=len(buildings),
    )


def open_by_origin(session: Session, campaign_id: str, unit_ids: Iterable[str] | None) -> dict[str, dict[str, int]]:
    """Per unit, its open hazards by source (动态清零 counts these down to zero)."""
    statement = (
        select(Hazard.unit_id, Hazard.origin, func.count())
        .where(col(Hazard.campaign_id) == campaign_id, col(Hazard.status).in_(OPEN_STATUSES))
        .group_by(Hazard.unit_id, Hazard.origin)
    )
    if unit_ids is not None:
        statement = statement.where(col(Hazard.unit_id).in_(set(unit_ids)))
    result: dict[str, dict[str, int]] = {}
    for unit, origin, count in session.execute(statement):
        result.setdefault(unit, {})[origin] = int(count)
    return result


def total_by_origin(session: Session, campaign_id: str, unit_ids: Iterable[str] | None) -> dict[str, int]:
    """All live findings of the campaign by source (the 清零 denominator)."""
    statement = (
        select(Hazard.origin, func.count())
        .where(Hazard.campaign_id == campaign_id, Hazard.status != HazardStatus.WITHDRAWN.value)
        .group_by(Hazard.origin)
    )
    if unit_ids is not None:
        statement = statement.where(col(Hazard.unit_id).in_(set(unit_ids)))
    return {origin: int(count) for origin, count in session.execute(statement)}


def missed_by_unit(session: Session, campaign_id: str, unit_ids: Iterable[str] | None) -> dict[str, int]:
    """Per unit, live findings the school's own self-check missed (found by a supervisor or an inspection)."""
    statement = (
        select(Hazard.unit_id, func.count())
        .where(
            Hazard.campaign_id == campaign_id, Hazard.missed_by_school == True,  # noqa: E712
            Hazard.status != HazardStatus.WITHDRAWN.value,
        )
        .group_by(Hazard.unit_id)
    )
    if unit_ids is not None:
        statement = statement.where(col(Hazard.unit_id).in_(set(unit_ids)))
    return {unit: int(count) for unit, count in session.execute(statement)}


# The gaps an archive check looks for in a closed hazard's record (整改档案资料是否真实、完整、准确).
GAP_BEFORE_PHOTO = "无整改前照片"
GAP_AFTER_PHOTO = "无整改后照片"
GAP_VERIFIER = "无验收人"
GAP_DATES = "缺整改/销号日期"
GAP_SELF_CLOSED = "整改人自己验收销号"


@dataclass(slots=True)
class ArchiveGap:
    hazard: Hazard
    gaps: list[str] = field(default_factory=list)


def archive_gaps(
    session: Session, campaign_ids: Sequence[str], *, unit_ids: Iterable[str] | None = None
) -> list[ArchiveGap]:
    """Closed hazards of these campaigns whose record is incomplete, each with what is missing."""
    statement = select(Hazard).where(
        col(Hazard.campaign_id).in_(list(campaign_ids)),
        Hazard.status == HazardStatus.CLOSED.value,
    )
    if unit_ids is not None:
        statement = statement.where(col(Hazard.unit_id).in_(set(unit_ids)))
    hazards = sorted(session.exec(statement).all(), key=lambda h: (list(campaign_ids).index(h.campaign_id), h.number))
    if not hazards:
        return []
    ids = [h.id for h in hazards]
    events: dict[int, list[HazardEvent]] = {}
    for event in session.exec(
        select(HazardEvent).where(col(HazardEvent.hazard_id).in_(ids)).order_by(col(HazardEvent.id))
    ):
        events.setdefault(event.hazard_id, []).append(event)
    photo_actions: dict[int, set[str]] = {}
    for hazard_id, action in session.execute(
        select(AttachmentFile.hazard_id, HazardEvent.action)
        .join(HazardEvent, col(HazardEvent.id) == col(AttachmentFile.event_id), isouter=True)
        .where(col(AttachmentFile.hazard_id).in_(ids))
    ):
        photo_actions.setdefault(hazard_id, set()).add(action or "report")
    found: list[ArchiveGap] = []
    for hazard in hazards:
        trail = events.get(stored_id(hazard), [])
        actions = photo_actions.get(stored_id(hazard), set())
        gap = ArchiveGap(hazard)
        if "report" not in actions:
            gap.gaps.append(GAP_BEFORE_PHOTO)
        if not actions & {"rectify", "close", "progress"}:
            gap.gaps.append(GAP_AFTER_PHOTO)
        closes = [e for e in trail if e.action == "close"]
        if not closes:
            gap.gaps.append(GAP_VERIFIER)
        if hazard.rectified_at is None or hazard.closed_at is None:
            gap.gaps.append(GAP_DATES)
        fixes = [e for e in trail if e.action == "rectify"]
        fixer = fixes[-1].actor_id if fixes else None
        if closes and closes[-1].actor_id in {fixer, hazard.responsible_id} - {None}:
            gap.gaps.append(GAP_SELF_CLOSED)
        if gap.gaps:
            found.append(gap)
    return found


def three_look_answers(
    session: Session, campaign_id: str, unit_ids: Iterable[str] | None = None
) -> dict[str, dict[int, LookbackAnswer]]:
    """Per school, its 三看 answers by item number."""
    statement = select(LookbackAnswer).where(LookbackAnswer.campaign_id == campaign_id)
    if unit_ids is not None:
        statement = statement.where(col(LookbackAnswer.unit_id).in_(set(unit_ids)))
    result: dict[str, dict[int, LookbackAnswer]] = {}
    for row in session.exec(statement):
        result.setdefault(row.unit_id, {})[row.item] = row
    return result
