"""Table definitions. Nothing in the ledger is edited without an event row saying who and when.

Note: no `from __future__ import annotations` here (SQLModel relationships break with it).
"""

from datetime import date, datetime, timezone
from enum import StrEnum
from typing import Optional

from sqlalchemy import (
    Column, Connection, DateTime, Index, LargeBinary, MetaData, String, Text, TypeDecorator, UniqueConstraint, event,
    inspect,
)
from sqlalchemy import text as sql_text  # `text` is a column name in several tables
from sqlalchemy.orm import Mapper
from sqlmodel import Field, SQLModel

from models.places import place_head, place_numbers

# Named constraints so Alembic batch migrations on SQLite can alter them later.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


class AwareDateTime(TypeDecorator[datetime]):
    """Stores UTC and always gives back zone-aware datetimes (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Optional[datetime], dialect: object) -> Optional[datetime]:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a zone-aware time")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: Optional[datetime], dialect: object) -> Optional[datetime]:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _ts(nullable: bool = False) -> Column[datetime]:
    return Column(AwareDateTime(), nullable=nullable)


class HazardStatus(StrEnum):
    """The closed loop 排查 → 整改 → 验收 → 销号 (plus a withdrawn report)."""

    RECTIFYING = "rectifying"  # 整改中 (found, waiting for the fix)
    RECTIFIED = "rectified"  # 已整改，待验收
    CLOSED = "closed"  # 已销号
    WITHDRAWN = "withdrawn"  # 已撤销

    @property
    def label(self) -> str:
        return {"rectifying": "整改中", "rectified": "待验收", "closed": "已销号", "withdrawn": "已撤销"}[
            self.value
        ]


OPEN_STATUSES = (HazardStatus.RECTIFYING.value, HazardStatus.RECTIFIED.value)


class CampaignRow(SQLModel, table=True):
    """A campaign as configured, plus the state the bot keeps (the next hazard number)."""

    __tablename__ = "campaign"
    id: str = Field(primary_key=True, max_length=64)
    name: str
    start: date
    end: date
    timezone: str = "Asia/Shanghai"
    report_every_days: Optional[int] = None
    report_first: Optional[date] = None
    report_at: Optional[str] = Field(default=None, max_length=5)  # "HH:MM" local time
    next_number: int = 1
    # Look-back (回头看, issue 16): kind "lookback" re-checks what the campaigns in `looks_back_on` closed.
    kind: str = Field(default="campaign", max_length=16, sa_column_kwargs={"server_default": "campaign"})
    looks_back_on: str = Field(default="", sa_column_kwargs={"server_default": ""})  # "|"-separated campaign ids
    recheck_share: float = Field(default=0.2, sa_column_kwargs={"server_default": "0.2"})  # of closed 一般 hazards
    recheck_photo: bool = Field(default=True, sa_column_kwargs={"server_default": "1"})  # 复查 合格 needs a photo
    three_looks: str = Field(default="", sa_column_kwargs={"server_default": ""})  # "|"-separated 三看 items

    @property
    def looked_back(self) -> list[str]:
        return [ident for ident in self.looks_back_on.split("|") if ident]

    @property
    def three_look_items(self) -> list[str]:
        return [item for item in self.three_looks.split("|") if item]


class PhaseRow(SQLModel, table=True):
    __tablename__ = "phase"
    id: Optional[int] = Field(default=None, primary_key=True)
    campaign_id: str = Field(foreign_key="campaign.id", index=True, max_length=64)
    seq: int
    name: str
    start: date
    end: date
    deliverable: str = ""


class MilestoneRow(SQLModel, table=True):
    __tablename__ = "milestone"
    id: Optional[int] = Field(default=None, primary_key=True)
    campaign_id: str = Field(foreign_key="campaign.id", index=True, max_length=64)
    name: str
    due: date


class UnitRow(SQLModel, table=True):
    """A unit (school, department …); units nest through `parent_id`."""

    __tablename__ = "unit"
    id: str = Field(primary_key=True, max_length=64)
    name: str
    parent_id: Optional[str] = Field(default=None, max_length=64, index=True)
    aliases: str = ""  # "|"-separated other names people type
    active: bool = True
    seq: int = 0  # position in the config, so forms list units in the admin's order
    source: str = Field(default="config", max_length=16)  # "config" (the TOML) or "platform" (directory sync)
    platform_dept_id: Optional[str] = Field(default=None, max_length=64)  # the WeCom/DingTalk department id


class PersonRow(SQLModel, table=True):
    __tablename__ = "person"
    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(index=True)
    unit_id: str = Field(foreign_key="unit.id", index=True, max_length=64)
    roles: str = "teacher"  # comma-separated roles
    wecom_userid: Optional[str] = Field(default=None, index=True, max_length=128)
    dingtalk_staff_id: Optional[str] = Field(default=None, index=True, max_length=128)
    mobile: Optional[str] = Field(default=None, max_length=20)
    active: bool = True
    source: str = Field(default="config", max_length=16)  # "config" (the TOML) or "platform" (directory sync)
    left_at: Optional[datetime] = Field(default=None, sa_column=_ts(nullable=True))  # left the platform directory

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(r for r in self.roles.split(",") if r)


class GroupRow(SQLModel, table=True):
    """A chat group the bot lives in."""

    __tablename__ = "chat_group"
    id: str = Field(primary_key=True, max_length=64)
    name: str
    platform: str = Field(max_length=16)
    kind: str = Field(default="staff", max_length=16)
    chat_id: Optional[str] = Field(default=None, max_length=128, index=True)
    campaign_id: Optional[str] = Field(default=None, max_length=64)
    source: str = Field(default="config", max_length=16)  # "config" (the TOML) or "chat" (登记本群 by an admin)
    # A chat bound in chat: the robot (route robot_id) that received the 登记本群, which lives in the chat and pushes
    robot: Optional[str] = Field(default=None, max_length=64)


class GroupUnit(SQLModel, table=True):
    __tablename__ = "group_unit"
    group_id: str = Field(foreign_key="chat_group.id", primary_key=True, max_length=64)
    unit_id: str = Field(foreign_key="unit.id", primary_key=True, max_length=64)


class Hazard(SQLModel, table=True):
    """One row of the ledger (seed 003 附件2), numbered per school within a campaign (序号 #N; 城南小学#N)."""

    __tablename__ = "hazard"
    __table_args__ = (
        UniqueConstraint("campaign_id", "school_id", "number", name="uq_hazard_campaign_school_number"),
        Index("ix_hazard_campaign_status_unit", "campaign_id", "status", "unit_id"),
        # Covers every column unit_figures() reads, so digests and the statistics table count a school's
        # thousands of hazards from the index alone instead of one random heap page per hazard.
        Index(
            "ix_hazard_unit_figures",
            "campaign_id", "unit_id", "status", "deadline", "level", "found_at", "rectified_at", "closed_at",
        ),
        # Where the duplicate check finds its candidates (models.drafts.duplicate_candidates): by the numbers a
        # place names, by its first words, by its building; not among every open hazard of the school.
        Index("ix_hazard_place_numbers", "campaign_id", "unit_id", "place_numbers"),
        Index("ix_hazard_place_head", "campaign_id", "unit_id", "place_head", "place_numbers"),
        Index("ix_hazard_place_building", "campaign_id", "building_id", "unit_id", "place_numbers"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    campaign_id: str = Field(foreign_key="campaign.id", max_length=64)
    number: int  # 序号, per school within the campaign
    # The school the number belongs to (handlers.directory school_of); None only for rows filed before per-school
    # numbers, until the next start-up's sync assigns it (models.ledger.assign_hazard_schools).
    school_id: Optional[str] = Field(default=None, max_length=64)
    unit_id: str = Field(foreign_key="unit.id", index=True, max_length=64)
    location: str  # 部位
    # The place's keys (models.places), always computed from `location` on insert and update.
    place_numbers: str = Field(default="", sa_column_kwargs={"server_default": ""})
    place_head: str = Field(default="", max_length=8, sa_column_kwargs={"server_default": ""})
    check_item: str = ""  # 检查内容
    problem: str = Field(sa_column=Column(Text, nullable=False))  # 存在隐患问题
    measure: str = ""  # 整改措施
    completion: str = ""  # 整改完成情况
    responsible_name: str = ""  # 责任人 as shown in the ledger
    responsible_id: Optional[str] = Field(default=None, foreign_key="person.id", max_length=64)
    reporter_id: str = Field(foreign_key="person.id", max_length=64)
    category: str = Field(default="其他", max_length=32)
    level: str = Field(default="一般", max_length=8)  # 一般 / 重大
    building_id: Optional[str] = Field(default=None, max_length=64)
    immediate: bool = False  # 能立即整改
    closed_building: bool = False  # 停用
    deadline: date  # 整改期限
    status: str = Field(default=HazardStatus.RECTIFYING.value, sa_type=String(16))
    found_at: datetime = Field(sa_column=_ts())  # 检查时间
    rectified_at: Optional[datetime] = Field(default=None, sa_column=_ts(nullable=True))
    closed_at: Optional[datetime] = Field(default=None, sa_column=_ts(nullable=True))  # 销号时间
    remark: str = ""  # 备注
    source_msg_id: Optional[int] = Field(default=None, foreign_key="inbound_message.id")
    # Look-back (回头看, issue 16): where the finding comes from (自查, 县普查, 市抽查, 省督查, 审计, 通报, 督查,
    # 复查), the date it was first found, the closed hazard a 复查 rebound follows up, and whether the school's own
    # self-check missed it (found by an inspection from above).
    origin: str = Field(default="自查", max_length=16, sa_column_kwargs={"server_default": "自查"})
    origin_date: Optional[date] = None
    linked_hazard_id: Optional[int] = Field(default=None, foreign_key="hazard.id")
    missed_by_school: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})

    @property
    def status_label(self) -> str:
        return HazardStatus(self.status).label

    def status_label_for_ledger(self) -> str:
        """整改完成情况 when no completion note was written."""
        return {"rectifying": "整改中", "rectified": "已整改待验收", "closed": "已整改", "withdrawn": "已撤销"}[
            self.status
        ]

    def is_overdue(self, today: date) -> bool:
        """Past its deadline and not yet rectified."""
        return self.status == HazardStatus.RECTIFYING.value and self.deadline < today


@event.listens_for(Hazard, "before_insert")
def _keep_place_keys(_mapper: Mapper[Hazard], _connection: Connection, hazard: Hazard) -> None:
    """A hazard written through the ORM (imports, rebounds, tests) is found by place like a report's."""
    hazard.place_numbers, hazard.place_head = place_numbers(hazard.location), place_head(hazard.location)


@event.listens_for(Hazard, "before_update")
def _keep_place_keys_of_a_new_place(mapper: Mapper[Hazard], connection: Connection, hazard: Hazard) -> None:
    if inspect(hazard).attrs.location.history.has_changes():
        _keep_place_keys(mapper, connection, hazard)


class HazardCounter(SQLModel, table=True):
    """The next hazard number of one school in one campaign (taken atomically by models.ledger.next_hazard_number)."""

    __tablename__ = "hazard_counter"

    campaign_id: str = Field(foreign_key="campaign.id", primary_key=True, max_length=64)
    school_id: str = Field(primary_key=True, max_length=64)
    next_number: int = 1


class HazardEvent(SQLModel, table=True):
    """Append-only audit trail (整改一项，签字备书): who did what to which hazard, when."""

    __tablename__ = "hazard_event"
    id: Optional[int] = Field(default=None, primary_key=True)
    hazard_id: int = Field(foreign_key="hazard.id", index=True)
    at: datetime = Field(sa_column=_ts())
    actor_id: str = Field(foreign_key="person.id", max_length=64)
    action: str = Field(max_length=16)  # report, rectify, progress, close, reject, extend, withdraw
    from_status: Optional[str] = Field(default=None, max_length=16)
    to_status: Optional[str] = Field(default=None, max_length=16)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class AttachmentFile(SQLModel, table=True):
    """A photo stored under the data dir by content hash.

    When its file could not be written (e.g. a full disk) the row is kept all the same, marked missing,
    and the photo is fetched again from its message (`source_msg_id`'s route) at `retry_at`.
    """

    __tablename__ = "attachment"
    id: Optional[int] = Field(default=None, primary_key=True)
    hazard_id: int = Field(foreign_key="hazard.id", index=True)
    event_id: Optional[int] = Field(default=None, foreign_key="hazard_event.id")
    sha256: str = Field(max_length=64, index=True)
    filename: str = ""
    content_type: str = Field(default="application/octet-stream", max_length=64)
    size: int = 0
    created_at: datetime = Field(sa_column=_ts())
    source_msg_id: Optional[int] = Field(default=None, foreign_key="inbound_message.id")
    # Set while the file is not on disk; None once it is.
    missing_since: Optional[datetime] = Field(default=None, sa_column=_ts(nullable=True))
    missing_reason: str = Field(default="", max_length=32)  # the OS error, e.g. ENOSPC
    # The next attempt to fetch and write it again; None when stored, or when no more attempts will be made.
    retry_at: Optional[datetime] = Field(default=None, sa_column=Column(AwareDateTime(), nullable=True, index=True))

    @property
    def missing(self) -> bool:
        return self.missing_since is not None


class InboundMessage(SQLModel, table=True):
    """Every message the bot received, keyed by the platform's message id (platforms retry)."""

    __tablename__ = "inbound_message"
    __table_args__ = (UniqueConstraint("platform", "platform_msg_id"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    platform_msg_id: str = Field(max_length=128)
    chat_id: str = Field(max_length=128)
    sender_id: str = Field(max_length=128)
    text: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(sa_column=_ts())
    state: str = Field(default="received", max_length=16)  # received, handled, failed
    reply_text: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))
    # where replies go (JSON: channel, robot, response_url …), so a restart can finish the work
    route: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    # photos the receiving side downloaded and stored in inbound_attachment (0: none, nothing to read)
    photos: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class InboundAttachment(SQLModel, table=True):
    """A photo of a recorded message, downloaded by the receiving side after the acknowledgement.

    Stored with the message so that handling (in any process) never calls the platform; deleted when the
    message is handled (the handlers keep the photos they use) or once it is no longer awaited.
    """

    __tablename__ = "inbound_attachment"
    inbound_id: int = Field(foreign_key="inbound_message.id", primary_key=True)
    position: int = Field(primary_key=True)  # the photo's place in the message, from 0
    filename: str = Field(default="", max_length=200)
    content_type: str = Field(default="application/octet-stream", max_length=64)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class CheckRecord(SQLModel, table=True):
    """A place checked and found without hazard (coverage: 不漏一楼一房)."""

    __tablename__ = "check_record"
    id: Optional[int] = Field(default=None, primary_key=True)
    campaign_id: str = Field(foreign_key="campaign.id", index=True, max_length=64)
    unit_id: str = Field(foreign_key="unit.id", max_length=64)
    person_id: str = Field(foreign_key="person.id", max_length=64)
    location: str
    check_item: str = ""
    result: str = "无隐患"
    building_id: Optional[str] = Field(default=None, max_length=64)
    at: datetime = Field(sa_column=_ts())


class Submission(SQLModel, table=True):
    """A unit's 报送 for one reporting period, with the figures it submitted."""

    __tablename__ = "submission"
    __table_args__ = (UniqueConstraint("campaign_id", "unit_id", "period_due"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    campaign_id: str = Field(foreign_key="campaign.id", max_length=64)
    unit_id: str = Field(foreign_key="unit.id", max_length=64)
    period_due: date  # the report day this 报送 is for (每N天报送)
    person_id: str = Field(foreign_key="person.id", max_length=64)
    at: datetime = Field(sa_column=_ts())
    figures: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))


class OutboxState(StrEnum):
    PENDING = "pending"  # waiting to be sent (or to be retried at next_attempt_at)
    SENT = "sent"
    FAILED = "failed"  # given up; last_error says why
    EXPANDED = "expanded"  # a `replies` row rendered into several rows (its `#1`, `#2` … children), which carry on


class OutboxMessage(SQLModel, table=True):
    """Every outgoing message, stored under a unique dedupe key before it is sent."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("dedupe_key"),
        # Only the rows still to send: the sender's queries read these and nothing of the sent history, however
        # long it grows. They compare `state` with a literal 'pending' (models.outbox.PENDING_ONLY), since a
        # prepared statement's generic plan may use a partial index only when its query implies the predicate.
        Index("ix_outbox_pending", "robot", "next_attempt_at", postgresql_where=sql_text("state = 'pending'"),
              sqlite_where=sql_text("state = 'pending'")),
        # A WeCom callback finds the reply held for its passive answer by its robot (wecom:stream:<id>).
        Index("ix_outbox_robot", "robot"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    dedupe_key: str = Field(max_length=200)
    platform: str = Field(max_length=16)  # wecom / dingtalk / console
    channel: str = Field(max_length=32)  # how to deliver, e.g. wecom_webhook, dingtalk_session_webhook
    robot: str = Field(max_length=128)  # rate-limit bucket (one robot = one webhook / app robot)
    group_id: Optional[str] = Field(default=None, max_length=64)
    kind: str = Field(default="text", max_length=16)  # text / markdown / image / file …, or replies (not yet rendered)
    payload: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))  # JSON
    blob: Optional[bytes] = Field(default=None, sa_column=Column(LargeBinary, nullable=True))  # image/file bytes
    state: str = Field(default=OutboxState.PENDING.value, max_length=16)
    # Higher goes first within its robot's turn (重大 alerts); see models.outbox.PRIORITY_URGENT.
    priority: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    attempts: int = 0
    created_at: datetime = Field(sa_column=_ts())
    next_attempt_at: datetime = Field(sa_column=_ts())
    give_up_at: datetime = Field(sa_column=_ts())
    claimed_until: Optional[datetime] = Field(default=None, sa_column=_ts(nullable=True))
    last_claimed_at: Optional[datetime] = Field(default=None, sa_column=_ts(nullable=True))
    # When an earlier attempt started whose outcome was never recorded (the sender died mid-send):
    # that attempt may have been delivered, which single-use reply URLs can tell.
    interrupted_at: Optional[datetime] = Field(default=None, sa_column=_ts(nullable=True))
    sent_at: Optional[datetime] = Field(default=None, sa_column=_ts(nullable=True))
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class DuePushState(StrEnum):
    PENDING = "pending"  # planned, not yet sent
    SENT = "sent"  # written to the outbox (the outbox sender delivers it)
    SKIPPED = "skipped"  # deliberately not sent; `reason` says why
    # The DingTalk budget runs low: waits for its group's one merged message of the day (send_at = then).
    HELD = "held"


class DuePush(SQLModel, table=True):
    """A push the campaign clock must make once: the scheduler ticks, this table remembers."""

    __tablename__ = "due_push"
    __table_args__ = (
        UniqueConstraint("key"),
        Index("ix_due_push_state_send_at", "state", "send_at"),
        Index("ix_due_push_due_at", "due_at"),  # the ticker re-reads its planning window every few minutes
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    key: str = Field(max_length=200)  # e.g. report_reminder:winter-2018:staff:2018-11-26
    kind: str = Field(max_length=32)  # report_reminder, phase_nudge, milestone_nudge, overdue_digest, leader_digest, major_alert
    campaign_id: str = Field(foreign_key="campaign.id", max_length=64)
    group_id: str = Field(foreign_key="chat_group.id", max_length=64)
    due_at: datetime = Field(sa_column=_ts())  # the planned time
    send_at: datetime = Field(sa_column=_ts())  # after quiet hours and non-workdays moved it (held: the merge time)
    state: str = Field(default=DuePushState.PENDING.value, max_length=16)
    claimed_by: Optional[str] = Field(default=None, max_length=128)  # which process sent it
    claimed_at: Optional[datetime] = Field(default=None, sa_column=_ts(nullable=True))
    sent_at: Optional[datetime] = Field(default=None, sa_column=_ts(nullable=True))
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # why skipped / last error
    payload: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))  # JSON
    created_at: datetime = Field(sa_column=_ts())


class PendingPhoto(SQLModel, table=True):
    """A photo sent without words, kept for its sender in that chat until their next report or 整改 takes it.

    Teachers on phones often send the photo first and the words after. The bytes live here, not on disk, so
    any handler process can attach them; the row is deleted when attached or once it has expired.
    """

    __tablename__ = "pending_photo"
    __table_args__ = (Index("ix_pending_photo_sender_chat", "platform", "sender_id", "chat_id"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    sender_id: str = Field(max_length=64)  # person.id
    chat_id: str = Field(max_length=128)
    received_at: datetime = Field(sa_column=Column(AwareDateTime(), nullable=False, index=True))
    filename: str = Field(default="", max_length=200)
    content_type: str = Field(default="application/octet-stream", max_length=64)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    source_msg_id: Optional[int] = Field(default=None, foreign_key="inbound_message.id")


class DirectoryVersion(SQLModel, table=True):
    """One row whose `version` grows with every change to the directory (campaigns, units, people, groups and
    their units), bumped by database triggers (migration 0006), so a process that caches the directory
    sees any writer's change — another process, the directory sync, a migration, an admin's SQL."""

    __tablename__ = "directory_version"
    id: int = Field(default=1, primary_key=True)
    version: int = 0
class ReportDraft(SQLModel, table=True):
    """A hazard report waiting for its sender to settle a doubt (确认, a corrected field, 新的, 同 #N, 取消).

    Nothing doubtful goes into the ledger: the report waits here, for its sender in that chat only, until
    `expires_at`. `payload` is the report so far (JSON, see `handlers.intake.Item`); several hazards sent in one
    message are several drafts with the same `source_msg_id`, registered together.
    """

    __tablename__ = "report_draft"
    __table_args__ = (Index("ix_report_draft_sender_chat", "platform", "sender_id", "chat_id"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    sender_id: str = Field(max_length=64)  # person.id
    chat_id: str = Field(max_length=128)
    campaign_id: str = Field(foreign_key="campaign.id", max_length=64)
    created_at: datetime = Field(sa_column=_ts())
    expires_at: datetime = Field(sa_column=Column(AwareDateTime(), nullable=False, index=True))
    payload: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    source_msg_id: Optional[int] = Field(default=None, foreign_key="inbound_message.id")


class DraftPhoto(SQLModel, table=True):
    """A photo that came with (or just before) a draft report; stored with the hazard when it is registered."""

    __tablename__ = "draft_photo"
    id: Optional[int] = Field(default=None, primary_key=True)
    draft_id: int = Field(foreign_key="report_draft.id", index=True)
    filename: str = Field(default="", max_length=200)
    content_type: str = Field(default="application/octet-stream", max_length=64)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    source_msg_id: Optional[int] = Field(default=None, foreign_key="inbound_message.id")
class DirectoryRequest(SQLModel, table=True):
    """An unknown sender: looked up once by id through the platform API, else asked which unit they belong to.

    `state`: "asked" (the bot asked 我是 …), "pending" (named a unit; an admin approves with 同意), "bound"
    (a person row exists), "refused". `lookup` is the API's answer, cached so each id is looked up once:
    "" (not tried), "found", "not_found", "refused" (no permission), "failed" (the API could not be reached).
    """

    __tablename__ = "directory_request"
    __table_args__ = (UniqueConstraint("platform", "user_id"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    user_id: str = Field(max_length=128)
    chat_id: str = Field(max_length=128)  # where they first wrote
    name: str = Field(default="", max_length=128)  # the display name the platform gave (purged with the person)
    unit_id: Optional[str] = Field(default=None, max_length=64)  # the unit they named
    state: str = Field(default="asked", max_length=16)
    lookup: str = Field(default="", max_length=16)
    created_at: datetime = Field(sa_column=_ts())
    updated_at: datetime = Field(sa_column=_ts())
    decided_by: Optional[str] = Field(default=None, max_length=64)  # person.id of the approving admin


class SeenChat(SQLModel, table=True):
    """A chat the bot was @-mentioned in, bound to a group or not yet (`safetybot groups` lists them)."""

    __tablename__ = "seen_chat"
    __table_args__ = (UniqueConstraint("platform", "chat_id"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    chat_id: str = Field(max_length=128)
    first_seen: datetime = Field(sa_column=_ts())
    last_seen: datetime = Field(sa_column=_ts())
    messages: int = 0
    answered: bool = False  # the one polite line to someone who may not bind it was said
    group_id: Optional[str] = Field(default=None, max_length=64)  # the group it is bound to
class RecheckStatus(StrEnum):
    PENDING = "pending"  # 待复查
    PASSED = "passed"  # 复查合格
    REBOUND = "rebound"  # 反弹: a new hazard was opened, linked to the old one

    @property
    def label(self) -> str:
        return {"pending": "待复查", "passed": "复查合格", "rebound": "反弹"}[self.value]


class RecheckItem(SQLModel, table=True):
    """A hazard closed in a looked-back campaign, drawn for re-checking (复查 #N) in a look-back campaign."""

    __tablename__ = "recheck_item"
    __table_args__ = (UniqueConstraint("campaign_id", "number"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    campaign_id: str = Field(foreign_key="campaign.id", max_length=64)  # the look-back campaign
    number: int  # 复查 #N, numbered per look-back campaign
    hazard_id: int = Field(foreign_key="hazard.id", index=True)  # the closed hazard to re-check
    unit_id: str = Field(foreign_key="unit.id", index=True, max_length=64)
    status: str = Field(default=RecheckStatus.PENDING.value, max_length=16)
    created_at: datetime = Field(sa_column=_ts())
    checked_at: Optional[datetime] = Field(default=None, sa_column=_ts(nullable=True))
    checked_by: Optional[str] = Field(default=None, foreign_key="person.id", max_length=64)
    note: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    new_hazard_id: Optional[int] = Field(default=None, foreign_key="hazard.id")  # the rebound's new hazard

    @property
    def status_label(self) -> str:
        return RecheckStatus(self.status).label


class LookbackAnswer(SQLModel, table=True):
    """A school's answer to one 三看 item of a look-back (seed 000): 是/否 with what it says."""

    __tablename__ = "lookback_answer"
    __table_args__ = (UniqueConstraint("campaign_id", "unit_id", "item"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    campaign_id: str = Field(foreign_key="campaign.id", max_length=64)
    unit_id: str = Field(foreign_key="unit.id", max_length=64)  # the school
    item: int  # 1-based position in the campaign's three_looks
    answer: str = Field(max_length=8)  # 是 / 否
    note: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    person_id: str = Field(foreign_key="person.id", max_length=64)
    at: datetime = Field(sa_column=_ts())


class PlatformApiCalls(SQLModel, table=True):
    """API calls the bot made to a platform in one month, by kind (DingTalk counts them against a quota)."""

    __tablename__ = "platform_api_calls"
    platform: str = Field(primary_key=True, max_length=16)
    month: str = Field(primary_key=True, max_length=7)  # YYYY-MM in the config's time zone
    kind: str = Field(primary_key=True, max_length=64)  # e.g. group_send, upload_media, access_token, webhook
    calls: int = 0
