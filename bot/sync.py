"""Copy the admin's config (campaigns, units, people, groups) into the database at start-up.

The config is the source of truth for who is who; the database keeps hazards pointing at them.
People or units removed from the config are deactivated, never deleted (the ledger refers to them).
Rows from the platform directory (source="platform", bot/directory/) are left to the directory sync.
"""

from __future__ import annotations

from sqlmodel import Session

from bot.config import Config
from models.directory import CHAT, CONFIG
from models.joining import drop_chat_groups_now_configured
from models.queries_directory import (
    clear_campaign_plan,
    clear_group_units,
    deactivate_people_except,
    deactivate_units_except,
    load_directory_rows,
)
from models.ledger import assign_hazard_schools
from models.tables import CampaignRow, GroupRow, GroupUnit, MilestoneRow, PersonRow, PhaseRow, UnitRow


def sync_config(session: Session, config: Config) -> None:
    """Upsert the config's directory into the database (idempotent)."""
    # Load every row once, so each `session.get` below is answered from the identity map, not by a query:
    # a county's config (2,000 people) re-syncs in a fraction of the time (bench/config_reload.py).
    # The session holds rows weakly: `loaded` keeps them for the whole sync.
    loaded = load_directory_rows(session)  # noqa: F841
    _sync_campaigns(session, config)
    _sync_units(session, config)
    _sync_people(session, config)
    _sync_groups(session, config)
    session.commit()


def _sync_campaigns(session: Session, config: Config) -> None:
    """Each campaign's row, with its phases and milestones written afresh."""
    for campaign in config.campaigns:
        row = session.get(CampaignRow, campaign.id) or CampaignRow(
            id=campaign.id, name=campaign.name, start=campaign.start, end=campaign.end
        )
        row.name, row.start, row.end, row.timezone = campaign.name, campaign.start, campaign.end, config.timezone
        if campaign.reporting is not None:
            row.report_every_days = campaign.reporting.every_days
            row.report_first = campaign.reporting.first
            row.report_at = campaign.reporting.at.strftime("%H:%M")
        row.kind, row.looks_back_on = campaign.kind, "|".join(campaign.looks_back_on)  # 回头看 (issue 16)
        row.recheck_share, row.recheck_photo = campaign.recheck_share, campaign.recheck_photo
        row.three_looks = "|".join(campaign.three_looks)
        session.add(row)
        session.flush()
        clear_campaign_plan(session, campaign.id)
        for seq, phase in enumerate(campaign.phases, start=1):
            session.add(
                PhaseRow(
                    campaign_id=campaign.id, seq=seq, name=phase.name, start=phase.start,
                    end=phase.end, deliverable=phase.deliverable,
                )
            )
        for milestone in campaign.milestones:
            session.add(MilestoneRow(campaign_id=campaign.id, name=milestone.name, due=milestone.date))


def _sync_units(session: Session, config: Config) -> None:
    """The config's units, in config order; units of the config no longer in it are deactivated."""
    configured_units = {unit.id for unit in config.units}
    for seq, unit in enumerate(config.units):
        row = session.get(UnitRow, unit.id) or UnitRow(id=unit.id, name=unit.name)
        row.name, row.parent_id, row.aliases, row.active = unit.name, unit.parent, "|".join(unit.aliases), True
        row.source = CONFIG
        row.seq = seq
        session.add(row)
    deactivate_units_except(session, configured_units, source=CONFIG)
    session.flush()


def _sync_people(session: Session, config: Config) -> None:
    """The config's people; people of the config no longer in it are deactivated."""
    configured_people = {person.id for person in config.people}
    for person in config.people:
        row = session.get(PersonRow, person.id) or PersonRow(id=person.id, name=person.name, unit_id=person.unit)
        row.name, row.unit_id, row.roles = person.name, person.unit, ",".join(person.roles)
        row.wecom_userid, row.dingtalk_staff_id, row.mobile = (
            person.wecom_userid, person.dingtalk_staff_id, person.mobile,
        )
        row.active, row.source = True, CONFIG
        session.add(row)
    deactivate_people_except(session, configured_people, source=CONFIG)
    session.flush()



def _sync_groups(session: Session, config: Config) -> None:
    """The config's groups and the units each serves (the group-unit links are written afresh)."""
    # Groups an admin bound in chat (登记本群, source "chat") keep their units, unless the TOML now has the chat;
    # the TOML's are written anew.
    drop_chat_groups_now_configured(
        session, {(group.platform, group.chat_id): group.id for group in config.groups if group.chat_id}
    )
    clear_group_units(session, keep_source=CHAT)
    for group in config.groups:
        row = session.get(GroupRow, group.id) or GroupRow(id=group.id, name=group.name, platform=group.platform)
        row.name, row.platform, row.kind = group.name, group.platform, group.kind
        row.chat_id, row.campaign_id, row.source = group.chat_id, group.campaign, CONFIG
        session.add(row)
        session.flush()
        for unit_id in group.units:
            session.add(GroupUnit(group_id=group.id, unit_id=unit_id))
    # Hazards filed before per-school numbers get their school (keeping their numbers).
    assign_hazard_schools(session, {building.unit for building in config.buildings})
