"""The groups the campaign clock pushes to, read from the database: the TOML's and those bound in chat (登记本群).

The scheduler plans from these rows, so a group an admin bound in chat gets the reminders, digests and
escalations of a configured one (issue 13).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from models.tables import GroupRow, GroupUnit


@dataclass(frozen=True, slots=True)
class StoredGroup:
    """A group row with the units it serves (empty: every unit), as the planner needs it."""

    id: str
    name: str
    platform: str
    kind: str
    campaign_id: str | None
    chat_id: str | None
    source: str
    units: tuple[str, ...]


def stored_groups(session: Session) -> list[StoredGroup]:
    """Every group of the database with its units, by id (two queries, however many groups)."""
    units: dict[str, list[str]] = {}
    for group_id, unit_id in session.exec(
        select(GroupUnit.group_id, GroupUnit.unit_id).order_by(col(GroupUnit.group_id), col(GroupUnit.unit_id))
    ):
        units.setdefault(group_id, []).append(unit_id)
    # Columns, not ORM rows: the ticker reads this every few minutes, and a county may have thousands of groups.
    columns = sa_select(
        col(GroupRow.id), col(GroupRow.name), col(GroupRow.platform), col(GroupRow.kind), col(GroupRow.campaign_id),
        col(GroupRow.chat_id), col(GroupRow.source),
    ).order_by(col(GroupRow.id))
    return [
        StoredGroup(
            id=group_id, name=name, platform=platform, kind=kind, campaign_id=campaign_id, chat_id=chat_id,
            source=source, units=tuple(units.get(group_id, ())),
        )
        for group_id, name, platform, kind, campaign_id, chat_id, source in session.execute(columns)
    ]


def push_key_env(group_id: str) -> str:
    """The NAME of the environment variable that holds the push key of a group bound in chat, which has no TOML
    entry to name one: WeCom's 消息推送 webhook key (`SAFETYBOT_PUSH_KEY_WECOM_CHAT_WRKA` for `wecom-chat-wrkA`).

    The key is a credential, so it is never typed into a chat (the chat's history and the bot's recorded
    messages would keep it): an admin sets this variable (or a line of SAFETYBOT_SECRETS_FILE) instead."""
    return "SAFETYBOT_PUSH_KEY_" + re.sub(r"[^A-Z0-9]+", "_", group_id.upper()).strip("_")
