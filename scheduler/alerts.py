"""重大隐患 alerts: written as due-push rows in the report's own transaction, sent by the next tick.

The pipeline that records them (bot/engine.py) then wakes the leading scheduler, so that tick comes
within seconds."""

from __future__ import annotations

import json
from datetime import datetime

from sqlmodel import Session

from models.ledger import descendants
from models.queries_directory import group_unit_ids, leaders_groups
from models.queries_schedule import insert_due_pushes
from models.tables import DuePushState, GroupRow, Hazard

def leaders_groups_for(session: Session, *, campaign_id: str, unit_id: str) -> list[GroupRow]:
    """Leaders' groups whose units cover `unit_id` and that work on the campaign (or on none in particular)."""
    found = []
    for group in leaders_groups(session):
        if group.campaign_id not in (None, campaign_id):
            continue
        roots = list(group_unit_ids(session, group.id))
        if not roots or unit_id in descendants(session, roots):
            found.append(group)
    return found


def queue_major_alert(session: Session, *, hazard: Hazard, now: datetime) -> int:
    """Write one `major_alert` row per leaders' group of the hazard, due now (quiet hours do not apply)."""
    rows = [
        dict(
            key=f"major_alert:{hazard.id}:{group.id}", kind="major_alert", campaign_id=hazard.campaign_id,
            group_id=group.id, due_at=now, send_at=now, state=DuePushState.PENDING.value, reason="",
            payload=json.dumps({"hazard_id": hazard.id, "number": hazard.number}), created_at=now,
        )
        for group in leaders_groups_for(session, campaign_id=hazard.campaign_id, unit_id=hazard.unit_id)
    ]
    return insert_due_pushes(session, rows)
