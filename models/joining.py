"""Unknown senders and unknown chats in the database: lookups, bindings and the chats the bot has seen.

An unknown sender is looked up once through the platform API (the answer is cached in `directory_request`),
else binds themselves in chat (我是 教务处) — at once, or after an admin's 同意. An unknown chat is noted in
`seen_chat` until an admin binds it to a group (登记本群 …).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from models.directory import CHAT, stable_id
from models.tables import DirectoryRequest, GroupRow, GroupUnit, PersonRow, SeenChat, UnitRow

RETRY_FAILED_LOOKUP = timedelta(hours=1)  # an API that could not be reached is tried again after this
PURGED_NAME = "已离职人员"


# -- unknown senders -------------------------------------------------------------------------------------------


def request_of(session: Session, platform: str, user_id: str) -> DirectoryRequest | None:
    return session.exec(
        select(DirectoryRequest).where(DirectoryRequest.platform == platform, DirectoryRequest.user_id == user_id)
    ).first()


def needs_lookup(session: Session, platform: str, user_id: str, now: datetime) -> bool:
    """True unless the API was asked about this id already (a failed call is retried after an hour)."""
    request = request_of(session, platform, user_id)
    if request is None or not request.lookup:
        return True
    return request.lookup == "failed" and request.updated_at + RETRY_FAILED_LOOKUP <= now


def note_request(
    session: Session, *, platform: str, user_id: str, chat_id: str, name: str, now: datetime
) -> DirectoryRequest:
    """The sender's request row, created on their first message."""
    request = request_of(session, platform, user_id)
    if request is None:
        request = DirectoryRequest(
            platform=platform, user_id=user_id, chat_id=chat_id, name=name[:128], created_at=now, updated_at=now
        )
        session.add(request)
        session.flush()
    return request


def note_lookup(session: Session, request: DirectoryRequest, outcome: str, now: datetime) -> None:
    request.lookup, request.updated_at = outcome, now
    session.add(request)


def bind_person(
    session: Session, *, platform: str, user_id: str, name: str, unit_id: str, roles: tuple[str, ...] = ("teacher",),
) -> PersonRow:
    """The person of a platform user id (a row bound in chat: source "chat"; the directory sync may take it over)."""
    person_id = stable_id(platform, "user", user_id)
    row = session.get(PersonRow, person_id) or PersonRow(id=person_id, name=name, unit_id=unit_id, source=CHAT)
    row.name, row.unit_id, row.roles, row.active, row.left_at = name, unit_id, ",".join(roles), True, None
    if platform == "wecom":
        row.wecom_userid = user_id
    elif platform == "dingtalk":
        row.dingtalk_staff_id = user_id
    session.add(row)
    session.flush()
    return row


def unit_of_department(session: Session, dept_id: str, schools: dict[str, str]) -> str | None:
    """The unit of a platform department: a school of `[directory] schools`, else a synced unit."""
    if dept_id in schools and session.get(UnitRow, schools[dept_id]) is not None:
        return schools[dept_id]
    row = session.exec(
        select(UnitRow).where(UnitRow.platform_dept_id == dept_id, UnitRow.active == True)  # noqa: E712
    ).first()
    return row.id if row is not None else None


def decide(session: Session, request: DirectoryRequest, state: str, *, by: str | None, now: datetime) -> None:
    request.state, request.decided_by, request.updated_at = state, by, now
    session.add(request)


def pending_requests(session: Session, platform: str, unit_ids: set[str] | None) -> list[DirectoryRequest]:
    """Requests waiting for an admin's 同意, oldest first, within the given units (None: all)."""
    rows = session.exec(
        select(DirectoryRequest)
        .where(DirectoryRequest.platform == platform, DirectoryRequest.state == "pending")
        .order_by(col(DirectoryRequest.created_at))
    )
    return [row for row in rows if unit_ids is None or row.unit_id in unit_ids]


# -- unknown chats -------------------------------------------------------------------------------------------


def note_chat(session: Session, platform: str, chat_id: str, now: datetime) -> SeenChat:
    """The chat's row, created on the first @ and counted on each."""
    chat = session.exec(select(SeenChat).where(SeenChat.platform == platform, SeenChat.chat_id == chat_id)).first()
    if chat is None:
        chat = SeenChat(platform=platform, chat_id=chat_id, first_seen=now, last_seen=now)
    chat.last_seen, chat.messages = now, chat.messages + 1
    session.add(chat)
    session.flush()
    return chat


def seen_chats(session: Session) -> list[tuple[SeenChat, GroupRow | None]]:
    """Every chat the bot was @-mentioned in, with the group it is bound to (if any), newest first."""
    chats = session.exec(select(SeenChat).order_by(col(SeenChat.last_seen).desc())).all()
    out: list[tuple[SeenChat, GroupRow | None]] = []
    for chat in chats:
        group = session.exec(
            select(GroupRow).where(GroupRow.platform == chat.platform, GroupRow.chat_id == chat.chat_id)
        ).first()
        out.append((chat, group))
    return out


def bind_chat(
    session: Session, *, platform: str, chat_id: str, name: str, kind: str, unit_id: str, campaign_id: str | None,
    robot: str | None = None,
) -> GroupRow:
    """A group for the chat, serving one unit (its school); binding it again changes it. `robot`: the robot
    that received the 登记本群 (None: unknown, the one on file is kept)."""
    group_id = stable_id(platform, "chat", chat_id)
    row = session.get(GroupRow, group_id) or GroupRow(id=group_id, name=name, platform=platform, source=CHAT)
    row.name, row.kind, row.chat_id, row.campaign_id = name, kind, chat_id, campaign_id
    row.robot = robot or row.robot
    session.add(row)
    session.flush()
    for old in session.exec(select(GroupUnit).where(GroupUnit.group_id == group_id)):
        session.delete(old)
    session.flush()
    session.add(GroupUnit(group_id=group_id, unit_id=unit_id))
    session.execute(
        update(SeenChat).where(col(SeenChat.platform) == platform, col(SeenChat.chat_id) == chat_id)
        .values(group_id=group_id)
    )
    session.flush()
    return row


def drop_chat_groups_now_configured(session: Session, configured: dict[tuple[str, str], str]) -> int:
    """Groups bound in chat whose chat now has a [[groups]] entry give way to it (`configured`: (platform,
    chat_id) -> that group's id). Returns how many were dropped."""
    dropped = 0
    for row in session.exec(select(GroupRow).where(GroupRow.source == CHAT)).all():
        taken_by = configured.get((row.platform, row.chat_id or ""))
        if taken_by is None:
            continue
        for unit in session.exec(select(GroupUnit).where(GroupUnit.group_id == row.id)):
            session.delete(unit)
        session.execute(
            update(SeenChat).where(col(SeenChat.group_id) == row.id).values(group_id=taken_by)
        )
        session.flush()
        session.delete(row)
        dropped += 1
    session.flush()
    return dropped


def units_of_group(session: Session, group_id: str) -> list[str]:
    return list(session.exec(select(GroupUnit.unit_id).where(GroupUnit.group_id == group_id)))


# -- people who left -----------------------------------------------------------------------------------------


def purge_leavers(session: Session, *, left_before: datetime) -> int:
    """Blank the personal fields of people who left the directory before `left_before`; rows stay for history.

    Returns how many were purged. Their hazards and events keep pointing at the row, which then shows
    「已离职人员」.
    """
    left_at = col(PersonRow.left_at)  # a column expression (the attribute is typed as the Python value)
    rows = session.exec(
        select(PersonRow).where(
            PersonRow.active == False, left_at.is_not(None), left_at < left_before,  # noqa: E712
            PersonRow.name != PURGED_NAME,
        )
    ).all()
    for row in rows:
        user_ids = [uid for uid in (row.wecom_userid, row.dingtalk_staff_id) if uid]
        row.name, row.mobile, row.wecom_userid, row.dingtalk_staff_id = PURGED_NAME, None, None, None
        session.add(row)
        for user_id in user_ids:
            for request in session.exec(select(DirectoryRequest).where(DirectoryRequest.user_id == user_id)):
                session.delete(request)
    # Senders who were asked but never bound: their display name goes too.
    for request in session.exec(
        select(DirectoryRequest).where(DirectoryRequest.state != "bound", col(DirectoryRequest.updated_at) < left_before)
    ):
        session.delete(request)
    session.flush()
    return len(rows)
