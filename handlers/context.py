"""What a handler gets to work with: the session, who is speaking, where, when, and the rules."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from pathlib import Path

from sqlmodel import Session

from handlers.messages import Attachment
from models.tables import CampaignRow, GroupRow, PersonRow


@dataclass(frozen=True, slots=True)
class BuildingRef:
    """A building (建筑单体) a location can name: its id, its unit and the names people use."""

    id: str
    unit_id: str
    names: tuple[str, ...]
    built_year: int | None = None


@dataclass(frozen=True, slots=True)
class ChecklistRef:
    """One line of the 项目清单 (seed 003 附件1) as configured: what must be checked, how, and by whom."""

    project: str  # 督查项目
    seq: int  # 序号 within the project
    content: str  # 督查内容
    method: str = ""  # 督查方法
    departments: tuple[str, ...] = ()  # 责任部门 (unit ids)


@dataclass(frozen=True, slots=True)
class Policy:
    """Admin-set rules the handlers apply (built by `bot` from the config)."""

    general_deadline_days: int = 7
    major_deadline_days: int = 30
    withdraw_minutes: int = 30
    verify_by_other: bool = True  # 销号 by someone other than the rectifier and the responsible person
    photo_required: frozenset[str] = frozenset({"重大"})  # levels whose 整改 must carry a photo
    pending_photo_minutes: int = 10  # a photo sent without words waits this long for its report or 整改
    draft_minutes: int = 30  # a doubtful report waits this long for its sender's answer (确认, a fix, 取消)
    categories: Sequence[tuple[str, Sequence[str]]] | None = None
    buildings: Sequence["BuildingRef"] = ()
    checklist: Sequence[ChecklistRef] = ()  # the config's [[checklist]], for the 项目清单 form


@dataclass(slots=True)
class Context:
    """Dependencies of one handler call; `now` is zone-aware local time."""

    session: Session
    person: PersonRow
    campaign: CampaignRow
    now: datetime
    policy: Policy
    data_dir: Path
    group: GroupRow | None = None
    group_unit_ids: frozenset[str] = frozenset()  # the units the group serves (roots)
    group_scope: frozenset[str] = frozenset()  # those units and every unit below them
    attachments: Sequence[Attachment] = field(default_factory=tuple)
    inbound_id: int | None = None
    photo_link: Callable[[int], str] | None = None  # signed, expiring URL of a stored photo
    page_link: Callable[[int], str] | None = None  # issue 15: signed, expiring URL of a hazard's page (by id)
    platform: str = ""  # where the message came from, with chat_id: whose pending photos are whose
    chat_id: str = ""
    robot: str | None = None  # the robot that received the message (route robot_id), where the platform says
    # False when the claim saw no pending photo at all / no draft in this chat: their statements are skipped
    pending_photos: bool = True
    drafts_in_chat: bool = True


    @property
    def today(self) -> date:
        return self.now.date()

    @property
    def tz(self) -> tzinfo:
        """The zone of `now` (the campaign's)."""
        if self.now.tzinfo is None:
            raise ValueError("naive datetime: a handler's `now` is zone-aware")
        return self.now.tzinfo
