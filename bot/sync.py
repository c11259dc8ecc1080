"""Copy the admin's config (campaigns, units, people, groups) into the database at start-up.

The config is the source of truth for who is who; the database keeps hazards pointing at them.
People or units removed from the config are deactivated, never deleted (the ledger refers to them).
Rows from the platform directory (source="platform", bot/directory/) are left to the directory sync.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import Session, delete, select

from bot.config import Config
from models.directory import CONFIG
from models.ledger import assign_hazard_schools
from models.tables import CampaignRow, GroupRow, GroupUnit, MilestoneRow, PersonRow, PhaseRow, UnitRow


def sync_config(session: Session, config: Config) -> None:
    """Upsert the config's directory into the database (idempotent)."""
    # Load every row once, so each `session.get` below is answered from the identity map, not by a query:
    # a county's config (2,000 people) re-syncs in a fraction of the time (bench/config_reload.py).
    # The session holds rows weakly: `loaded` keeps them for the whole sync.
    loaded: list[object] = []
    for table in (CampaignRow, UnitRow, PersonRow, GroupRow):
        loaded.extend(session.exec(select(table)).all())
    for campaign in config.campaigns:
        row = session.get(CampaignRow, campaign.id) or CampaignRow(
            id=campaign.id, name=campaign.name, start=campaign.start, end=campaign.end
        )
        row.name, row.start, row.end, row.timezone = campaign.name, campaign.start, campaign.end, config.timezone
        if campaign.reporting is not None:
            row.report_every_days = campaign.reporting.every_days
            row.report_first = campaign.reporting.first
            row.report_at = campaign.reporting.at.strftime("%H:%M")
        session.add(row)
        session.flush()
        session.execute(delete(PhaseRow).where(PhaseRow.campaign_id == campaign.id))
        session.execute(delete(MilestoneRow).where(MilestoneRow.campaign_id == campaign.id))
        for seq, phase in enumerate(campaign.phases, start=1):
            session.add(
                PhaseRow(
                    campaign_id=campaign.id, seq=seq, name=phase.name, start=phase.start,
                    end=phase.end, deliverable=phase.deliverable,
                )
            )
        for milestone in campaign.milestones:
            session.add(MilestoneRow(campaign_id=campaign.id, name=milestone.name, due=milestone.date))

    configured_units = {unit.id for unit in config.units}
    for seq, unit in enumerate(config.units):
        row = session.get(UnitRow, unit.id) or UnitRow(id=unit.id, name=unit.name)
        row.name, row.parent_id, row.aliases, row.active = unit.name, unit.parent, "|".join(unit.aliases), True
        row.source = CONFIG
        row.seq = seq
        session.add(row)
    session.execute(
        update(UnitRow)
        .where(UnitRow.id.not_in(configured_units), UnitRow.source == CONFIG)  # type: ignore[attr-defined]
        .values(active=False)
    )
    session.flush()

    configured_people = {person.id for person in config.people}
    for person in config.people:
        row = session.get(PersonRow, person.id) or PersonRow(id=person.id, name=person.name, unit_id=person.unit)
        row.name, row.unit_id, row.roles = person.name, person.unit, ",".join(person.roles)
        row.wecom_userid, row.dingtalk_staff_id, row.mobile = (
            person.wecom_userid, person.dingtalk_staff_id, person.mobile,
        )
        row.active, row.source = True, CONFIG
        session.add(row)
    session.execute(
        update(PersonRow)
        .where(PersonRow.id.not_in(configured_people), PersonRow.source == CONFIG)  # type: ignore[attr-defined]
        .values(active=False)
    )
    session.flush()

    session.execute(delete(GroupUnit))
    for group in config.groups:
        row = session.get(GroupRow, group.id) or GroupRow(id=group.id, name=group.name, platform=group.platform)
        row.name, row.platform, row.kind = group.name, group.platform, group.kind
        row.chat_id, row.campaign_id = group.chat_id, group.campaign
        session.add(row)
        session.flush()
        for unit_id in group.units:
            session.add(GroupUnit(group_id=group.id, unit_id=unit_id))
    # Hazards filed before per-school numbers get their school (keeping their numbers).
    assign_hazard_schools(session, {building.unit for building in config.buildings})
    session.commit()
