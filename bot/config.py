"""Typed, validated configuration loaded from a TOML file.

Secrets never live here: groups name the *environment variables* that hold their keys.
`load_config` returns a `Config` or raises `ConfigError` listing every problem by TOML key.
"""

from __future__ import annotations

import re
import tomllib
from datetime import date, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Role = Literal["teacher", "unit_head", "safety_officer", "leader", "admin"]
PlatformName = Literal["console", "wecom", "dingtalk"]

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Phase(_Model):
    name: str
    start: date
    end: date
    deliverable: str = ""


class Milestone(_Model):
    name: str
    date: date


class Reporting(_Model):
    """Every `every_days` days from `first`, at `at` local time, each unit submits (报送)."""

    every_days: int = Field(default=10, ge=1, le=366)
    first: date
    at: time = time(17, 0)

    @field_validator("at", mode="before")
    @classmethod
    def _parse_at(cls, value: Any) -> Any:
        if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
            hour, minute = value.strip().split(":")
            return time(int(hour), int(minute))
        return value


class Campaign(_Model):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    name: str
    start: date
    end: date
    units: list[str] = Field(default_factory=list)  # empty: every configured unit
    reporting: Reporting | None = None
    phases: list[Phase] = Field(default_factory=list)
    milestones: list[Milestone] = Field(default_factory=list)
    nudge_days_before: list[int] = Field(default_factory=lambda: [3, 1, 0])
    escalate_after_days: int = Field(default=3, ge=0)


class Unit(_Model):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    name: str
    parent: str | None = None
    aliases: list[str] = Field(default_factory=list)


class Person(_Model):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    name: str
    unit: str
    roles: list[Role] = Field(default_factory=lambda: ["teacher"])
    wecom_userid: str | None = None
    dingtalk_staff_id: str | None = None
    mobile: str | None = Field(default=None, pattern=r"^1\d{10}$")


class Group(_Model):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    name: str
    platform: PlatformName
    kind: Literal["staff", "leaders"] = "staff"
    units: list[str] = Field(default_factory=list)
    campaign: str | None = None
    chat_id: str | None = None  # the platform's chat id (WeCom chatid, DingTalk conversationId)
    # credential name -> NAME of the environment variable that holds it (never the secret itself)
    credentials: dict[str, str] = Field(default_factory=dict)

    @field_validator("credentials")
    @classmethod
    def _env_names_only(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [key for key, env in value.items() if not _ENV_NAME.match(env)]
        if bad:
            raise ValueError(
                f"credentials {', '.join(bad)}: give the NAME of an environment variable "
                "(e.g. SAFETYBOT_WECOM_WEBHOOK_KEY), never the secret itself"
            )
        return value


class Category(_Model):
    name: str
    keywords: list[str] = Field(default_factory=list)


class Deadlines(_Model):
    """Default rectification deadline in days when a report gives none, per level."""

    general_days: int = Field(default=7, ge=0)
    major_days: int = Field(default=30, ge=0)


class ChecklistItem(_Model):
    project: str  # 督查项目
    seq: int  # 序号
    content: str  # 督查内容
    method: str = ""  # 督查方法
    departments: list[str] = Field(default_factory=list)  # 责任部门 (unit ids)


class Building(_Model):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    name: str
    unit: str
    aliases: list[str] = Field(default_factory=list)
    built_year: int | None = None


class Database(_Model):
    url: str = "sqlite:///data/safetybot.db"


class Server(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    data_dir: str = "data"


class Policy(_Model):
    withdraw_minutes: int = Field(default=30, ge=0)  # a reporter may 撤销 within this window


class Config(_Model):
    timezone: str = "Asia/Shanghai"
    database: Database = Field(default_factory=Database)
    server: Server = Field(default_factory=Server)
    policy: Policy = Field(default_factory=Policy)
    deadlines: Deadlines = Field(default_factory=Deadlines)
    campaigns: list[Campaign] = Field(default_factory=list)
    units: list[Unit] = Field(default_factory=list)
    people: list[Person] = Field(default_factory=list)
    groups: list[Group] = Field(default_factory=list)
    categories: list[Category] = Field(default_factory=list)
    checklist: list[ChecklistItem] = Field(default_factory=list)
    buildings: list[Building] = Field(default_factory=list)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class ConfigError(Exception):
    """The configuration is invalid; `problems` lists `key: message` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _cross_check(config: Config) -> list[str]:
    """Checks that span several tables: dates in order, references that resolve, unique ids."""
    problems: list[str] = []

    def unique(items: list[Any], table: str) -> set[str]:
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.id in seen:
                problems.append(f"{table}[{i}].id: duplicate id {item.id!r}")
            seen.add(item.id)
        return seen

    unit_ids = unique(config.units, "units")
    unique(config.people, "people")
    unique(config.groups, "groups")
    unique(config.buildings, "buildings")
    campaign_ids = unique(config.campaigns, "campaigns")

    try:
        ZoneInfo(config.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"timezone: unknown time zone {config.timezone!r} (e.g. Asia/Shanghai)")

    for i, unit in enumerate(config.units):
        if unit.parent is not None and unit.parent not in unit_ids:
            problems.append(f"units[{i}].parent: unknown unit {unit.parent!r}")
    parents = {u.id: u.parent for u in config.units}
    for i, unit in enumerate(config.units):
        seen, cursor = {unit.id}, unit.parent
        while cursor is not None and cursor in parents:
            if cursor in seen:
                problems.append(f"units[{i}].parent: cycle through {cursor!r}")
                break
            seen.add(cursor)
            cursor = parents[cursor]

    for c, campaign in enumerate(config.campaigns):
        where = f"campaigns[{c}]"
        if campaign.end < campaign.start:
            problems.append(f"{where}.end: before start")
        for u, unit in enumerate(campaign.units):
            if unit not in unit_ids:
                problems.append(f"{where}.units[{u}]: unknown unit {unit!r}")
        for p, phase in enumerate(campaign.phases):
            if phase.end < phase.start:
                problems.append(f"{where}.phases[{p}].end: before start")
            if phase.start < campaign.start or phase.end > campaign.end:
                problems.append(f"{where}.phases[{p}]: outside the campaign {campaign.start}..{campaign.end}")
        for m, milestone in enumerate(campaign.milestones):
            if not campaign.start <= milestone.date <= campaign.end:
                problems.append(f"{where}.milestones[{m}].date: outside the campaign {campaign.start}..{campaign.end}")
        if campaign.reporting and not campaign.start <= campaign.reporting.first <= campaign.end:
            problems.append(f"{where}.reporting.first: outside the campaign {campaign.start}..{campaign.end}")
        for n, days in enumerate(campaign.nudge_days_before):
            if days < 0:
                problems.append(f"{where}.nudge_days_before[{n}]: must be 0 or more")

    for i, person in enumerate(config.people):
        if person.unit not in unit_ids:
            problems.append(f"people[{i}].unit: unknown unit {person.unit!r}")
        if not person.roles:
            problems.append(f"people[{i}].roles: give at least one role")

    for i, group in enumerate(config.groups):
        for u, unit in enumerate(group.units):
            if unit not in unit_ids:
                problems.append(f"groups[{i}].units[{u}]: unknown unit {unit!r}")
        if group.campaign is not None and group.campaign not in campaign_ids:
            problems.append(f"groups[{i}].campaign: unknown campaign {group.campaign!r}")

    for i, item in enumerate(config.checklist):
        for d, dept in enumerate(item.departments):
            if dept not in unit_ids:
                problems.append(f"checklist[{i}].departments[{d}]: unknown unit {dept!r}")
    for i, building in enumerate(config.buildings):
        if building.unit not in unit_ids:
            problems.append(f"buildings[{i}].unit: unknown unit {building.unit!r}")
    return problems


def parse_config(data: dict[str, Any]) -> Config:
    """Validate a parsed TOML document; raise ConfigError naming every problem."""
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            [f"{_key_path(err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()]
        ) from None
    problems = _cross_check(config)
    if problems:
        raise ConfigError(problems)
    return config


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"(file): {path} does not exist"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"(file): not valid TOML: {exc}"]) from None
    return parse_config(data)
