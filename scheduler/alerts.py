"""重大隐患 alerts: written as due-push rows in the report's own transaction, sent by the next tick.

The pipeline that records them (bot/engine.py) then wakes the leading scheduler, so that tick comes
within seconds."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from models.ledger import descendants
from models.tables import DuePush, DuePushState, GroupRow, GroupUnit, Hazard

def leaders_groups_for(session: Session, *, campaign_id: str, unit_id: str) -> list[GroupRow]:
    """Leaders' groups whose units cover `unit_id` and that work on the campaign (or on none in particular)."""
    found = []
    for group in session.exec(select(GroupRow).where(GroupRow.kind == "leaders").order_by(GroupRow.id)):
        if group.campaign_id not in (None, campaign_id):
            continue
        roots = list(session.exec(select(GroupUnit.unit_id).where(GroupUnit.group_id == group.id)))
        if not roots or unit_id in descendants(session, roots):
            found.append(group)
    return found


def queue_major_alert(session: Session, *, hazard: Hazard, now: datetime) -> int:
    """Write one `major_alert` row per leaders' group of the hazard, due now (quiet hours do not apply)."""
    added = 0
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    for group in leaders_groups_for(session, campaign_id=hazard.campaign_id, unit_id=hazard.unit_id):
        statement = (
            insert(DuePush)
            .values(
                key=f"major_alert:{hazard.id}:{group.id}", kind="major_alert", campaign_id=hazard.campaign_id,
                group_id=group.id, due_at=now, send_at=now, state=DuePushState.PENDING.value, reason="",
                payload=json.dumps({"hazard_id": hazard.id, "number": hazard.number}), created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(col(DuePush.id))
        )
        added += len(session.execute(statement).all())
    return added
