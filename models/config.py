"""Typed, validated configuration loaded from a TOML file.

Secrets never live here: groups name the *environment variables* that hold their keys.
`load_config` returns a `Config` or raises `ConfigError` listing every problem by TOML key.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import tomllib
from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from models.config_problems import Problem, Ref, closest, problem, render

Role = Literal["teacher", "unit_head", "safety_officer", "leader", "admin", "supervisor"]  # supervisor: 督导组
PlatformName = Literal["console", "wecom", "dingtalk"]
ROLES: tuple[str, ...] = get_args(Role)
PLATFORMS: tuple[str, ...] = get_args(PlatformName)

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_ID_PATTERN = r"^[A-Za-z0-9_.-]+$"
_MOBILE = re.compile(r"^1[3-9]\d{9}$")


def _mask(value: str) -> str:
    """Show only the start of a value that may be a secret."""
    return f"{value[:4]}…" if len(value) > 4 else "…"


def _looks_like_secret(value: str) -> bool:
    """Heuristic: random-looking strings, URLs and known key prefixes are secrets, not env-var names."""
    if "://" in value or "key=" in value or "access_token=" in value:
        return True
    if re.match(r"^SEC[0-9a-f]{16,}$", value):  # a DingTalk robot signing secret
        return True
    if len(value) >= 16 and "_" not in value:
        return True
    digits = sum(ch.isdigit() for ch in value)
    return digits >= 6 and digits * 3 >= len(value)


def _check_env_name(value: str) -> str:
    """Accept an environment variable NAME; refuse (without echoing it) anything that looks like a secret."""
    if _ENV_NAME.match(value) and not _looks_like_secret(value):
        return value
    if _looks_like_secret(value) or not _ENV_NAME.match(value.upper()):
        raise PydanticCustomError(
            "secret_in_config",
            "this looks like a secret ({masked}), not an environment variable name: put the secret "
            "in an environment variable and write its NAME here, e.g. SAFETYBOT_WECOM_WEBHOOK_KEY",
            {"masked": _mask(value)},
        )
    raise PydanticCustomError(
        "env_var_name",
        "{value} is not an environment variable name: use UPPER_CASE letters, digits and _, "
        "e.g. SAFETYBOT_WECOM_WEBHOOK_KEY",
        {"value": repr(value)},
    )


def _normalize_mobile(value: Any) -> Any:
    """Turn 13800000001 (unquoted), '138-0000-0001' or '+86 138…' into '13800000001'."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        value = re.sub(r"[\s-]", "", value)
        value = re.sub(r"^(\+86|0086)", "", value)
    return value


def _check_mobile(value: str | None) -> str | None:
    """Accept an 11-digit mainland mobile number."""
    if value is not None and not _MOBILE.match(value):
        raise PydanticCustomError(
            "mobile", "{value} is not an 11-digit mobile number like 13800000001", {"value": repr(value)}
        )
    return value


Id = Annotated[str, Field(pattern=_ID_PATTERN, min_length=1, max_length=64)]
EnvVarName = Annotated[str, AfterValidator(_check_env_name)]
Mobile = Annotated[str | None, BeforeValidator(_normalize_mobile), AfterValidator(_check_mobile)]
NonEmpty = Annotated[str, Field(min_length=1)]
_URL_HOST = re.compile(r"^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def _check_url_host(value: str) -> str:
    """A host name, or "*." + a domain for any of its subdomains (no scheme, port or path)."""
    if len(value) <= 253 and _URL_HOST.match(value):
        return value
    raise PydanticCustomError(
        "url_host",
        "not a host name: write the host only, e.g. oapi.dingtalk.com, or *.example.com for its subdomains",
        {"value": repr(value)},
    )


UrlHost = Annotated[str, AfterValidator(_check_url_host)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Phase(_Model):
    name: NonEmpty
    start: date
    end: date
    deliverable: str = ""


class Milestone(_Model):
    name: NonEmpty
    date: date


_REMIND_BEFORE = re.compile(r"^\s*([+-]?\d{1,2})\s*d\s+(\d{1,2}):(\d{2})\s*$")


def parse_remind_before(value: str) -> tuple[int, time]:
    """"-1d 16:00" → (-1, 16:00): a reminder that many days before the report day (0d = that day), at that time."""
    match = _REMIND_BEFORE.match(value) if isinstance(value, str) else None
    if match is None or int(match[2]) > 23 or int(match[3]) > 59 or not -30 <= int(match[1]) <= 0:
        raise PydanticCustomError(
            "remind_before", "{value} is not a reminder time such as \"-1d 16:00\" (days before the report day, "
            "-30d to 0d, and HH:MM)", {"value": repr(value)},
        )
    return int(match[1]), time(int(match[2]), int(match[3]))


def _check_remind_before(value: str) -> str:
    parse_remind_before(value)
    return value


class Reporting(_Model):
    """Every `every_days` days from `first`, at `at` local time, each unit submits (报送)."""

    every_days: int = Field(default=10, ge=1, le=366)
    first: date
    at: time = time(17, 0)
    # Reminders before the deadline, e.g. ["-1d 16:00", "0d 09:00"]; empty: one reminder at `at` itself.
    remind_before: list[Annotated[str, AfterValidator(_check_remind_before)]] = Field(default_factory=list)

    @field_validator("at", mode="before")
    @classmethod
    def _parse_at(cls, value: Any) -> Any:
        return _parse_hhmm(value)

    @model_validator(mode="after")
    def _reminders_before_the_deadline(self) -> "Reporting":
        for text in self.remind_before:
            days, moment = parse_remind_before(text)
            if days == 0 and moment >= self.at:
                raise PydanticCustomError(
                    "remind_after_deadline",
                    "{value} is not before the deadline {at}: remind earlier on the day, e.g. \"0d 09:00\"",
                    {"value": repr(text), "at": self.at.strftime("%H:%M")},
                )
        return self

    def reminders(self) -> list[tuple[int, time]]:
        """(days before the report day, time of day) of each reminder, earliest first; [(0, at)] when none are set."""
        if not self.remind_before:
            return [(0, self.at)]
        return sorted({parse_remind_before(text) for text in self.remind_before})


THREE_LOOKS = ("安全工作责任是否落实到位", "安全隐患是否查改到位", "长效机制是否落实到位")  # seed 000's 三看


class Campaign(_Model):
    id: Id
    name: NonEmpty
    start: date
    end: date
    units: list[str] = Field(default_factory=list)  # empty: every configured unit
    reporting: Reporting | None = None
    phases: list[Phase] = Field(default_factory=list)
    milestones: list[Milestone] = Field(default_factory=list)
    nudge_days_before: list[int] = Field(default_factory=lambda: [3, 1, 0])
    escalate_after_days: int = Field(default=3, ge=0)
    # Look-back (回头看, issue 16): a "lookback" campaign re-checks what the campaigns in looks_back_on closed
    # (every 重大 hazard and recheck_share of the 一般 ones, drawn reproducibly from the campaign id).
    kind: Literal["campaign", "lookback"] = "campaign"
    looks_back_on: list[str] = Field(default_factory=list)
    recheck_share: float = Field(default=0.2, ge=0, le=1)
    recheck_photo: bool = True  # 复查 #N 合格 must carry a photo of the place
    # 三看 (seed 000): what each school answers once in a look-back (三看 1 是 说明), in order.
    three_looks: list[NonEmpty] = Field(default_factory=lambda: list(THREE_LOOKS))


class Unit(_Model):
    id: Id
    name: NonEmpty
    parent: str | None = None
    aliases: list[NonEmpty] = Field(default_factory=list)


class Person(_Model):
    id: Id
    name: NonEmpty
    unit: str
    roles: list[Role] = Field(default_factory=lambda: list[Role](["teacher"]))
    wecom_userid: str | None = Field(default=None, min_length=1, max_length=128)
    dingtalk_staff_id: str | None = Field(default=None, min_length=1, max_length=128)
    mobile: Mobile = None


class Group(_Model):
    id: Id
    name: NonEmpty
    platform: PlatformName
    kind: Literal["staff", "leaders"] = "staff"
    units: list[str] = Field(default_factory=list)  # empty: every configured unit
    campaign: str | None = None
    chat_id: str | None = Field(default=None, min_length=1, max_length=128)  # WeCom chatid, DingTalk conversationId
    # credential name -> NAME of the environment variable that holds it (never the secret itself)
    credentials: dict[str, EnvVarName] = Field(default_factory=dict)
    bot: str | None = None  # id of the [[wecom.bots]] / [[dingtalk.robots]] entry that receives this group's messages


class Category(_Model):
    name: NonEmpty
    keywords: list[NonEmpty] = Field(default_factory=list)


class Deadlines(_Model):
    """Default rectification deadline in days when a report gives none, per level."""

    general_days: int = Field(default=7, ge=0)
    major_days: int = Field(default=30, ge=0)


class ChecklistItem(_Model):
    project: NonEmpty  # 督查项目
    seq: int = Field(ge=1)  # 序号
    content: NonEmpty  # 督查内容
    method: str = ""  # 督查方法
    departments: list[str] = Field(default_factory=list)  # 责任部门 (unit ids)


class Building(_Model):
    id: Id
    name: NonEmpty
    unit: str
    aliases: list[NonEmpty] = Field(default_factory=list)
    built_year: int | None = Field(default=None, ge=1800, le=2100)


class Database(_Model):
    url: str = "sqlite:///data/safetybot.db"

    @field_validator("url")
    @classmethod
    def _sqlalchemy_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:
            make_url(value).get_dialect()
        except NoSuchModuleError:  # a subclass of ArgumentError, so it comes first
            raise PydanticCustomError(
                "database_url",
                "unknown database kind {scheme}; use e.g. sqlite:/// or postgresql+psycopg://",
                {"scheme": repr(value.split("://", 1)[0])},
            ) from None
        except ArgumentError:
            raise PydanticCustomError(
                "database_url",
                "not a SQLAlchemy database URL; e.g. sqlite:///data/safetybot.db or "
                "postgresql+psycopg://user@host/dbname",
            ) from None
        return value


class Server(_Model):
    host: NonEmpty = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    data_dir: NonEmpty = "data"
    # Public address of this server; when set, 查看 #N replies carry signed, expiring photo links.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    photo_link_hours: int = Field(default=24, ge=1, le=24 * 30)
    link_secret_env: EnvVarName = "SAFETYBOT_LINK_SECRET"  # NAME of the env var with the link-signing key
    # Issue 15: how long a hazard page / leaders' page link (查看 #N, the leaders' digest) opens.
    page_link_hours: int = Field(default=24 * 7, ge=1, le=24 * 90)
    # Processes that handle recorded messages, so the web process only verifies, records and acknowledges;
    # 0 handles them inside the web process.
    handler_processes: int = Field(default=1, ge=0, le=16)


class Policy(_Model):
    withdraw_minutes: int = Field(default=30, ge=0)  # a reporter may 撤销 within this window
    verify_by_other: bool = True  # 销号 needs someone other than whoever fixed it (a leader may override)
    photo_required: list[Literal["一般", "重大"]] = Field(  # "all": both levels
        default_factory=lambda: list[Literal["一般", "重大"]](["重大"]))
    pending_photo_minutes: int = Field(default=10, ge=1, le=24 * 60)  # a photo without words waits this long

    @field_validator("photo_required", mode="before")
    @classmethod
    def _all_levels(cls, value: Any) -> Any:
        """`"all"` stands for every level; any other bare string is a mistake."""
        if value == "all":
            return ["一般", "重大"]
        if isinstance(value, str):
            raise PydanticCustomError("photo_levels", 'use "all" or a list of levels such as ["重大"]')
        return value


class Intake(_Model):
    """How reports are taken in: a doubtful one waits as a draft for its sender's answer."""

    draft_minutes: int = Field(default=30, ge=1, le=24 * 60)  # a draft report waits this long for 确认 / a fix


class WeComBot(_Model):
    """A WeCom 智能机器人 that receives @-messages: HTTP callback or long connection (WebSocket)."""

    id: Id
    mode: Literal["callback", "websocket"] = "callback"
    # token / encoding_aes_key (callback mode), bot_id / secret (websocket mode): env var NAMES
    credentials: dict[str, EnvVarName] = Field(default_factory=dict)


class WeCom(_Model):
    api_base: NonEmpty = "https://qyapi.weixin.qq.com"  # webhook send / upload_media
    ws_url: NonEmpty = "wss://openws.work.weixin.qq.com"  # 智能机器人 long connection
    bots: list[WeComBot] = Field(default_factory=list)
    # Hosts a callback's response_url and photo URLs may point at (https only; "*.x.com" = any subdomain).
    # The api_base's own origin is always allowed. Photos of 智能机器人 come from Tencent COS (*.myqcloud.com).
    callback_url_hosts: list[UrlHost] = Field(
        default_factory=lambda: ["qyapi.weixin.qq.com", "wework.qpic.cn", "*.myqcloud.com"]
    )


class DingTalkRobot(_Model):
    """A DingTalk enterprise-internal robot: HTTP callback or Stream mode."""

    id: Id
    mode: Literal["callback", "stream"] = "callback"
    # app_key / app_secret / robot_code: env var NAMES
    credentials: dict[str, EnvVarName] = Field(default_factory=dict)


class DingTalk(_Model):
    api_base: NonEmpty = "https://api.dingtalk.com"  # OpenAPI v1.0 (tokens, robot messages, stream gateway)
    oapi_base: NonEmpty = "https://oapi.dingtalk.com"  # legacy OpenAPI (media upload, custom robot webhook)
    robots: list[DingTalkRobot] = Field(default_factory=list)
    # Hosts a callback's sessionWebhook may point at (https only; "*.x.com" = any subdomain); the origins
    # of api_base and oapi_base are always allowed. DingTalk hands out https://oapi.dingtalk.com/robot/sendBySession.
    callback_url_hosts: list[UrlHost] = Field(default_factory=lambda: ["oapi.dingtalk.com", "api.dingtalk.com"])
    # How far a callback's `timestamp` header may be from our clock. DingTalk allows up to an hour; it
    # sends the callback at once, so a few minutes cover clock skew and keep a captured sign short-lived.
    callback_window_seconds: int = Field(default=300, ge=10, le=3600)
    # API calls a month the organisation may make (robot OpenAPI sends, uploads, tokens; users report 5000 on
    # free organisations); 0 = not counted against a budget. From `budget_low_percent` used on, a group's
    # non-urgent pushes are held and go as ONE message per group and day at `merged_push_time`, by the custom
    # robot webhook when the group has one; 重大 alerts and escalations always go at once.
    monthly_call_budget: int = Field(default=0, ge=0)
    budget_low_percent: int = Field(default=80, ge=1, le=100)
    # 17:00: the latest default push of a school day is the reporting reminder (campaigns' reporting `at`,
    # 17:00 in the example), so the morning's digests and the day's reminders all fit in the one message, and
    # it still arrives in working hours, well before quiet hours. A push due after it waits for the next day's.
    merged_push_time: TimeOfDay = time(17, 0)


class Outbox(_Model):
    """How the sender drains the outbox: per-robot rate, retries and when to give up."""

    per_minute: int = Field(default=20, ge=1)  # messages per robot per window (platforms allow 20/min)
    window_seconds: float = Field(default=60.0, gt=0)
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_max_seconds: float = Field(default=300.0, gt=0)
    give_up_after_minutes: float = Field(default=120.0, gt=0)


def _parse_hhmm(value: Any) -> Any:
    """Accept "HH:MM" strings for times of day (TOML has no bare local-time literal users remember)."""
    if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        hour, minute = value.strip().split(":")
        if int(hour) > 23 or int(minute) > 59:
            raise PydanticCustomError("time_of_day", "{value} is not a time of day (HH:MM)", {"value": repr(value)})
        return time(int(hour), int(minute))
    return value


TimeOfDay = Annotated[time, BeforeValidator(_parse_hhmm)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class CalendarSettings(_Model):
    """When pushes may go out: quiet hours, and workdays (Chinese holidays and make-up workdays)."""

    quiet_hours: list[TimeOfDay] = Field(default_factory=lambda: [time(21, 30), time(7, 30)])  # [start, end]; [] = none
    extra_holidays: list[date] = Field(default_factory=list)  # school-specific days off (checked first)
    extra_workdays: list[date] = Field(default_factory=list)  # school-specific working days (checked first)
    skip_non_workdays: bool = True  # move pushes that fall on a non-workday to the next workday

    @field_validator("quiet_hours")
    @classmethod
    def _start_and_end(cls, value: list[time]) -> list[time]:
        if len(value) not in (0, 2):
            raise PydanticCustomError(
                "quiet_hours", 'give a start and an end, e.g. ["21:30", "07:30"], or [] for none', {}
            )
        return value


class LeaderDigest(_Model):
    cadence: Literal["daily", "weekly"] = "daily"
    at: TimeOfDay = time(8, 0)
    weekday: Weekday = "mon"  # weekly cadence only


class SchedulerSettings(_Model):
    """The campaign clock: reminders, nudges, digests (see scheduler/)."""

    enabled: bool = True
    grace_minutes: int = Field(default=120, ge=0)  # a push missed while down is still sent this late, else skipped
    tick_seconds: int = Field(default=60, ge=5, le=3600)
    overdue_digest_at: TimeOfDay = time(8, 30)
    nudge_at: TimeOfDay = time(9, 0)  # phase and milestone nudges
    leader_digest: LeaderDigest = Field(default_factory=LeaderDigest)
    charts_in_digests: bool = True
    reminder_charts: bool = False


# -- escalation ladder and 挂牌督办 (scheduler/escalation.py) --------------------------------------

ESCALATION_TARGETS = ("staff", "leaders", "county")
ESCALATION_MENTIONS = ("responsible", "unit_head", "safety_officer", "leader")


class EscalationStep(_Model):
    """One rung: `after_days` after a hazard fell overdue (0 = the first day past its deadline) it climbs to `name`."""

    after_days: int = Field(ge=0, le=366)
    name: NonEmpty  # who it climbs to, as the message says it: 责任人, 部门负责人, 分管领导, 校长, 教育局
    # where the message goes: "staff" the hazard's staff groups, "leaders" its school's leaders' groups,
    # "county" the leaders' groups above the school (教育局)
    to: Literal["staff", "leaders", "county"] = "staff"
    # who is @-mentioned: "responsible", a role of the hazard's unit or a unit above it (unit_head,
    # safety_officer, leader; the nearest such people), or person ids (only for hazards of their own school)
    mention: list[NonEmpty] = Field(default_factory=list)


class Escalation(_Model):
    """The ladder an overdue hazard climbs; one message per group and day carries all of that day's steps."""

    at: TimeOfDay = time(8, 45)
    steps: list[EscalationStep] = Field(default_factory=list)


class Supervision(_Model):
    """挂牌督办: a 重大 hazard gets a 督办单 (XLSX) in the leaders' groups at once, and a check every `every_days` days."""

    enabled: bool = True
    every_days: int = Field(default=10, ge=1, le=366)
    at: TimeOfDay = time(9, 0)


class RedisSettings(_Model):
    """Optional Redis shared by the replicas (replay window, access tokens); used when the env var is set."""

    url_env: EnvVarName = "SAFETYBOT_REDIS_URL"  # NAME of the env var with the URL (it may hold a password)


_HOST_PATTERN = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$"


def is_loopback_host(host: str) -> bool:
    """True when a listening address only accepts connections from this machine."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Simulator(_Model):
    """The local chat simulator at /sim: a rehearsal tool, off unless enabled."""

    enabled: bool = False
    # Extra names the page may be opened under (Host / Origin), e.g. "sim.school.example" or "10.0.0.5:8000";
    # loopback names on the configured port are always allowed.
    allowed_hosts: list[Annotated[str, Field(pattern=_HOST_PATTERN)]] = Field(default_factory=list)
    max_upload_mb: int = Field(default=10, ge=1, le=100)  # larger request bodies are refused before being read
    # NAME of the env var holding the access token; required when the server listens beyond loopback.
    token_env: EnvVarName | None = None


class Cards(_Model):
    """Replies that lead to an action carry buttons (issue 15); a tap is the same command as typed."""

    enabled: bool = False  # off: every platform answers in text as before (the commands always work typed)
    # DingTalk: the interactive card template (built in DingTalk's card platform) with the parameters title,
    # text, buttons (JSON [{"label","command"}], each button's callback param `command`) and who; empty: no
    # DingTalk cards. WeCom's template_card needs no template.
    dingtalk_template_id: str = ""


class Login(_Model):
    """Signing in on the hazard pages through the platform's in-app login (issue 15); the page then offers the
    buttons the viewer may use. WeCom: OAuth2 (snsapi_base) in the WeCom app; DingTalk: 免登 (requestAuthCode)."""

    enabled: bool = False  # off: the pages only read
    session_hours: int = Field(default=12, ge=1, le=72)  # how long a sign-in lasts (an HttpOnly cookie)
    # wecom: corp_id, secret (a self-built app's secret; the contacts-sync secret cannot sign anyone in), agent_id;
    # dingtalk: corp_id, app_key, app_secret (the H5 micro-app's, usually the robot's app): env var NAMES.
    # A key left out is taken from [directory] credentials of the same platform (DingTalk app_key/app_secret also
    # from the first [[dingtalk.robots]] entry).
    wecom: dict[str, EnvVarName] = Field(default_factory=dict)
    dingtalk: dict[str, EnvVarName] = Field(default_factory=dict)
    # WeCom's OAuth2 page (the code exchange goes to [wecom] api_base).
    wecom_authorize_url: NonEmpty = Field(
        default="https://open.weixin.qq.com/connect/oauth2/authorize", pattern=r"^https?://[^\s?#]+$")
    # DingTalk's JSAPI (dd.runtime.permission.requestAuthCode), loaded by the sign-in page only; the code exchange
    # goes to [dingtalk] oapi_base.
    dingtalk_jsapi_url: NonEmpty = Field(
        default="https://g.alicdn.com/dingding/dingtalk-jsapi/3.2.7/dingtalk.open.js", pattern=r"^https?://[^\s?#]+$")


def _who_as_text(value: Any) -> Any:
    """An unquoted mobile (13800000001) is a TOML integer; a `who` is always text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class DirectoryRole(_Model):
    """Roles the platform cannot know, for one person named by user id, name or mobile."""

    who: Annotated[str, BeforeValidator(_who_as_text), Field(min_length=1, max_length=128)]
    roles: list[Role] = Field(min_length=1)


class Directory(_Model):
    """Units and people come from the WeCom/DingTalk directory (bot/directory/), not from [[people]]."""

    platform: Literal["wecom", "dingtalk"]
    # wecom: corp_id, secret (the contacts-sync or app secret); dingtalk: app_key, app_secret: env var NAMES.
    # None at all: the app has no contacts permission (`safetybot directory import` of the console's export).
    credentials: dict[str, EnvVarName] = Field(default_factory=dict)
    # platform department id -> id of a configured unit (the school); its sub-departments become units under it.
    # Left out: a department named like a [[units]] entry (its name or an alias) is that unit.
    schools: dict[str, str] = Field(default_factory=dict)
    roles: list[DirectoryRole] = Field(default_factory=list)
    sync_every_minutes: int = Field(default=1440, ge=15, le=7 * 1440)
    max_concurrency: int = Field(default=4, ge=1, le=16)  # API calls in flight at once
    # API calls per second; default 20 on DingTalk (a reported 20 QPS per app), 50 on WeCom (far below its
    # 10,000 calls per minute per API and corp).
    calls_per_second: float | None = Field(default=None, gt=0, le=1000)
    # An unknown sender who names their unit in chat (我是 教务处) waits for an admin's 同意 张三.
    approve: bool = False
    # People who left the directory keep their rows (history) but lose name, mobile and ids after this many days.
    retention_days: int | None = Field(default=None, ge=1, le=3650)

    @property
    def has_api(self) -> bool:
        """Credentials are named: the directory API can be called (periodic sync, looking up unknown senders)."""
        return bool(self.credentials)

    @property
    def rate(self) -> float:
        if self.calls_per_second is not None:
            return self.calls_per_second
        return 50.0 if self.platform == "wecom" else 20.0


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
    wecom: WeCom = Field(default_factory=WeCom)
    dingtalk: DingTalk = Field(default_factory=DingTalk)
    outbox: Outbox = Field(default_factory=Outbox)
    calendar: CalendarSettings = Field(default_factory=CalendarSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    escalation: Escalation = Field(default_factory=Escalation)
    supervision: Supervision = Field(default_factory=Supervision)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    simulator: Simulator = Field(default_factory=Simulator)
    directory: Directory | None = None
    intake: Intake = Field(default_factory=Intake)
    cards: Cards = Field(default_factory=Cards)
    login: Login = Field(default_factory=Login)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "timezone", "unknown time zone {value}; use an IANA name such as Asia/Shanghai", {"value": repr(value)}
            ) from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class ConfigError(Exception):
    """The configuration is invalid: `records` are the problems; `lines(lang)` renders them one per line.

    `problems` keeps the English lines (what logs and older callers read).
    """

    def __init__(self, records: list[Problem], data: Any = None) -> None:
        self.records = records
        self.data = data
        self.problems = self.lines("en")
        super().__init__("\n".join(self.problems))

    def lines(self, lang: str = "zh") -> list[str]:
        """Each problem as `where: what is wrong and how to fix it`, in Chinese (zh) or English (en)."""
        return [render(record, self.data, lang) for record in self.records]


# -- pydantic errors as problem records ----------------------------------------------------


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as `list[Phase]` or `Reporting | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (list, dict, Union, Annotated) or type(annotation).__name__ == "UnionType":
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model that owns the table at `loc` (e.g. ('campaigns', 0, 'phases', 1) -> Phase)."""
    model: type[BaseModel] = Config
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        found = _model_in(info.annotation) if info is not None else None
        if found is None:
            return None
        model = found
    return model


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, date, time))


# pydantic's error types, by the catalogue entry that explains them (models/config_problems.py)
_PYDANTIC_CODES: dict[str, str] = {
    **dict.fromkeys(("date_parsing", "date_from_datetime_parsing", "date_from_datetime_inexact", "date_type"), "date"),
    **dict.fromkeys(("time_parsing", "time_type"), "time"),
    **dict.fromkeys(("int_parsing", "int_type", "int_from_float"), "int"),
    **dict.fromkeys(("float_parsing", "float_type"), "number"),
    **dict.fromkeys(("bool_parsing", "bool_type"), "bool"),
    "string_type": "string",
    "list_type": "list",
    **dict.fromkeys(("model_type", "dict_type", "model_attributes_type"), "table"),
    "string_too_short": "too_short",
    "string_too_long": "too_long",
    "less_than_equal": "at_most",
    "greater_than_equal": "at_least",
    "greater_than": "more_than",
    "string_pattern_mismatch": "pattern",
}
_OUR_CODES = ("secret_in_config", "env_var_name", "mobile", "timezone", "time_of_day", "quiet_hours",
              "photo_levels", "url_host", "remind_before", "remind_after_deadline")


def _pydantic_problem(err: Any) -> Problem:
    """One pydantic error as a problem record: its catalogue code and the details its messages need."""
    kind, loc, value = err["type"], tuple(err["loc"]), err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        known = list(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        listed = ", ".join(known) if known and not close else ""
        return Problem(loc, kind, {
            "close": close[0] if close else None,
            "hint_zh": f"；可用的键：{listed}" if listed else "", "hint_en": f"; known keys: {listed}" if listed else "",
        })
    if kind == "missing":
        return Problem(loc, kind, {})
    if kind == "literal_error":
        return Problem(loc, kind, {"value": value, "expected": ctx.get("expected", "")})
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "id":
        return Problem(loc, "bad_id", {"value": value})
    if kind in _OUR_CODES:
        return Problem(loc, kind, dict(ctx))
    if kind == "database_url":
        return Problem(loc, "database_kind" if "scheme" in ctx else "database_url", dict(ctx))
    message = str(err["msg"])
    if kind in ("value_error", "assertion_error"):
        message = message.split(", ", 1)[-1]
    show = _is_scalar(value) and "credentials" not in loc  # never echo what may be a secret
    limit = ctx.get("le", ctx.get("ge", ctx.get("gt")))
    return Problem(loc, _PYDANTIC_CODES.get(kind, "invalid"), {
        "msg": message, "got_zh": f"（现在是 {value!r}）" if show else "",
        "got_en": f" (got {value!r})" if show and kind not in ("value_error", "assertion_error") else "",
        "limit": limit, "max_length": ctx.get("max_length"), "pattern": ctx.get("pattern"),
    })


# -- cross-checks on the raw document ------------------------------------------------------
# They read the raw TOML tolerantly (a value of the wrong type is simply skipped, pydantic already
# reported it), so one bad row or nested value does not hide the other rows' problems.

Row = dict[str, Any]


def _rows(data: Row, key: str) -> list[Row]:
    value = data.get(key)
    if not isinstance(value, list):
        return []
    return [row if isinstance(row, dict) else {} for row in value]


def _str(row: Row, key: str) -> str | None:
    value = row.get(key)
    return value if isinstance(value, str) else None


def _strs(row: Row, key: str) -> list[tuple[int, str]]:
    value = row.get(key)
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, str)]


def _date(row: Row, key: str) -> date | None:
    value = row.get(key)
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _ids(data: Row, table: str) -> set[str]:
    return {ident for row in _rows(data, table) if (ident := _str(row, "id")) is not None}


def _parents(data: Row) -> dict[str, str | None]:
    return {ident: _str(row, "parent") for row in _rows(data, "units") if (ident := _str(row, "id")) is not None}


def _children(parents: dict[str, str | None]) -> dict[str, list[str]]:
    children: dict[str, list[str]] = {}
    for unit, parent in parents.items():
        if parent is not None:
            children.setdefault(parent, []).append(unit)
    return children


def _descendants(roots: list[str], children: dict[str, list[str]]) -> set[str]:
    """The given units and every unit below them."""
    found: set[str] = set()
    stack = list(roots)
    while stack:
        unit = stack.pop()
        if unit not in found:
            found.add(unit)
            stack.extend(children.get(unit, []))
    return found


def _rows_by(rows: list[Row], key: str) -> dict[str, list[int]]:
    """Positions of the rows by the value of `key`."""
    positions: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        value = _str(row, key)
        if value is not None:
            positions.setdefault(value, []).append(i)
    return positions


def _scopes(data: Row) -> list[tuple[str, set[str]]]:
    """Where a typed name must be unambiguous: each staff group's units with their subtrees (by group id)."""
    parents = _parents(data)
    children = _children(parents)
    scopes: list[tuple[str, set[str]]] = []
    for row in _rows(data, "groups"):
        if row.get("kind", "staff") != "staff":
            continue
        roots = [unit for _, unit in _strs(row, "units")]
        scopes.append((str(row.get("id")), _descendants(roots, children) if roots else set(parents)))
    return scopes or [("", set(parents))]


def _scope_text(group_id: str) -> dict[str, str]:
    """How a scope reads in each language (the params of the *_clash / duplicate_person_name problems)."""
    return {"scope": f"group {group_id!r}" if group_id else "the config",
            "scope_zh": f"群 {group_id}" if group_id else "整个配置"}


def _unknown_unit(loc: tuple[int | str, ...], unit: str, unit_ids: set[str]) -> Problem:
    return Problem(loc, "unknown_unit", {"value": unit, "close": closest(unit, unit_ids)})


def _check_ids(data: Row) -> list[Problem]:
    problems: list[Problem] = []
    for table in ("campaigns", "units", "people", "groups", "buildings"):
        first: dict[str, int] = {}
        for i, row in enumerate(_rows(data, table)):
            ident = _str(row, "id")
            if ident is None:
                continue
            if ident in first:
                problems.append(problem(table, i, "id", code="duplicate_id", value=ident, other=Ref((table, first[ident]))))
            else:
                first[ident] = i
    return problems


def _check_units(data: Row) -> list[Problem]:
    problems: list[Problem] = []
    parents = _parents(data)
    in_reported_cycle: set[str] = set()
    for i, row in enumerate(_rows(data, "units")):
        ident, parent = _str(row, "id"), _str(row, "parent")
        if parent is None or ident is None:
            continue
        if parent not in parents:
            problems.append(_unknown_unit(("units", i, "parent"), parent, set(parents)))
            continue
        # Report each cycle once, on its first unit; units merely hanging below a cycle are not at fault.
        chain: list[str] = [ident]
        cursor: str | None = parent
        while cursor is not None and cursor in parents and cursor != ident and len(chain) <= len(parents):
            chain.append(cursor)
            cursor = parents[cursor]
        if cursor == ident and ident not in in_reported_cycle:
            in_reported_cycle.update(chain)
            problems.append(problem("units", i, "parent", code="unit_cycle", chain=" → ".join([*chain, ident])))
    # The same short name on two units of one group would make 单位：保卫处 ambiguous.
    units = _rows(data, "units")
    rows_of = _rows_by(units, "id")  # each scope visits only its own rows: 10,000 groups × 10,000 units is too slow
    reported: set[tuple[str, int, int]] = set()
    for scope, members in _scopes(data):
        owner: dict[str, int] = {}
        for i in sorted(i for unit in members for i in rows_of.get(unit, ())):
            row = units[i]
            labels = [("name", _str(row, "name"))] + [(f"aliases[{a}]", alias) for a, alias in _strs(row, "aliases")]
            for key, label in labels:
                if not label:
                    continue
                other = owner.setdefault(label, i)
                if other != i and (label, other, i) not in reported:
                    reported.add((label, other, i))
                    loc = ("units", i, "name") if key == "name" else ("units", i, "aliases", int(key[8:-1]))
                    problems.append(Problem(loc, "unit_label_clash", {
                        "label": label, "other": Ref(("units", other)),
                        **_scope_text(scope),
                    }))
    return problems


class _Span:
    """A campaign's date range; either end may be unknown (invalid in the file)."""

    def __init__(self, start: date | None, end: date | None) -> None:
        self.start, self.end = start, end

    def excludes(self, day: date | None) -> bool:
        """True when `day` is known and falls outside the known bounds."""
        if day is None:
            return False
        return (self.start is not None and day < self.start) or (self.end is not None and day > self.end)


def _check_campaigns(data: Row) -> list[Problem]:
    problems: list[Problem] = []
    unit_ids = _ids(data, "units")
    for c, row in enumerate(_rows(data, "campaigns")):
        start, end = _date(row, "start"), _date(row, "end")
        if start is not None and end is not None and end < start:
            problems.append(problem("campaigns", c, "end", code="end_before_start", end=end, start=start))
            start = end = None  # every date would be "outside"; the one problem above says it all
        span = {"start": start or "?", "end": end or "?"}
        outside = _Span(start, end).excludes
        for u, unit in _strs(row, "units"):
            if unit not in unit_ids:
                problems.append(_unknown_unit(("campaigns", c, "units", u), unit, unit_ids))
        for p, phase in enumerate(_rows(row, "phases")):
            p_start, p_end = _date(phase, "start"), _date(phase, "end")
            if p_start is not None and p_end is not None and p_end < p_start:
                problems.append(problem("campaigns", c, "phases", p, "end", code="end_before_start", end=p_end,
                                        start=p_start))
            for key, day in (("start", p_start), ("end", p_end)):
                if outside(day):
                    problems.append(problem("campaigns", c, "phases", p, key, code="outside_campaign", day=day, **span))
        for m, milestone in enumerate(_rows(row, "milestones")):
            due = _date(milestone, "date")
            if outside(due):
                problems.append(problem("campaigns", c, "milestones", m, "date", code="outside_campaign", day=due,
                                        **span))
        reporting = row.get("reporting")
        first = _date(reporting, "first") if isinstance(reporting, dict) else None
        if outside(first):
            problems.append(problem("campaigns", c, "reporting", "first", code="outside_campaign", day=first, **span))
        campaign_ids = _ids(data, "campaigns")
        for b, back in _strs(row, "looks_back_on"):
            if back not in campaign_ids or back == _str(row, "id"):
                problems.append(problem("campaigns", c, "looks_back_on", b, code="unknown_campaign", value=back,
                                        close=closest(back, campaign_ids - {_str(row, "id")})))
        nudges = row.get("nudge_days_before")
        for n, days in enumerate(nudges if isinstance(nudges, list) else []):
            if isinstance(days, int) and days < 0:
                problems.append(problem("campaigns", c, "nudge_days_before", n, code="negative_nudge", days=days))
    return problems


def _check_escalation(data: Row) -> list[Problem]:
    """A step's mentions must be "responsible", a role or a person id."""
    escalation = data.get("escalation")
    if not isinstance(escalation, dict):
        return []
    problems: list[Problem] = []
    people = _ids(data, "people")
    known = set(ESCALATION_MENTIONS) | people
    for s, step in enumerate(_rows(escalation, "steps")):
        for m, who in _strs(step, "mention"):
            if who not in known:
                problems.append(problem("escalation", "steps", s, "mention", m, code="unknown_mention", value=who,
                                        kinds=", ".join(ESCALATION_MENTIONS), close=closest(who, known)))
    return problems


def _check_people(data: Row) -> list[Problem]:
    problems: list[Problem] = []
    unit_ids = _ids(data, "units")
    people = _rows(data, "people")
    for i, row in enumerate(people):
        unit = _str(row, "unit")
        if unit is not None and unit not in unit_ids:
            problems.append(_unknown_unit(("people", i, "unit"), unit, unit_ids))
        if row.get("roles") == []:
            problems.append(problem("people", i, "roles", code="no_roles", roles=", ".join(ROLES)))
    # Inbound messages are matched to people by these ids, so each must point at one person.
    for key in ("wecom_userid", "dingtalk_staff_id", "mobile"):
        first: dict[str, int] = {}
        for i, row in enumerate(people):
            value = _normalize_mobile(row.get(key)) if key == "mobile" else row.get(key)
            if not isinstance(value, str):
                continue
            if value in first:
                problems.append(problem("people", i, key, code="duplicate_contact", value=value,
                                        other=Ref(("people", first[value])), key=key))
            else:
                first[value] = i
    reported: set[tuple[int, int]] = set()
    people_of = _rows_by(people, "unit")
    for scope, members in _scopes(data):
        by_name: dict[str, int] = {}
        for i in sorted(i for unit in members for i in people_of.get(unit, ())):
            name = _str(people[i], "name")
            if not name:
                continue
            other = by_name.setdefault(name, i)
            if other != i and (other, i) not in reported:
                reported.add((other, i))
                problems.append(problem("people", i, "name", code="duplicate_person_name", name=name,
                                        other=Ref(("people", other)), **_scope_text(scope)))
    if not any("admin" in [role for _, role in _strs(row, "roles")] for row in people) and not _directory_admin(data):
        problems.append(problem("people", code="no_admin"))
    return problems


def _directory_table(data: Row) -> Row:
    value = data.get("directory")
    return value if isinstance(value, dict) else {}


def _directory_admin(data: Row) -> bool:
    """True when a [[directory.roles]] entry names an admin."""
    return any("admin" in [role for _, role in _strs(row, "roles")] for row in _rows(_directory_table(data), "roles"))


DIRECTORY_CREDENTIALS = {"wecom": ("corp_id", "secret"), "dingtalk": ("app_key", "app_secret")}


def _check_directory(data: Row) -> list[Problem]:
    """Schools must be configured units, and the platform's credentials must be named."""
    directory = _directory_table(data)
    if not directory:
        return []
    problems: list[Problem] = []
    unit_ids = _ids(data, "units")
    schools = directory.get("schools")
    for dept_id, unit in (schools.items() if isinstance(schools, dict) else []):
        if isinstance(unit, str) and unit not in unit_ids:
            problems.append(problem("directory", "schools", str(dept_id), code="unknown_unit", value=unit,
                                    close=closest(unit, unit_ids)))
    credentials = directory.get("credentials")
    needed = DIRECTORY_CREDENTIALS.get(str(directory.get("platform")), ())
    missing = [key for key in needed if not (isinstance(credentials, dict) and key in credentials)]
    if missing and credentials:  # none at all: no API access (console export import, senders bind in chat)
        example = ", ".join(f'{key} = "SAFETYBOT_{key.upper()}"' for key in needed)
        problems.append(problem("directory", "credentials", code="directory_credentials",
                                missing=", ".join(missing), example=example))
    return problems


def _check_group_bot(data: Row, i: int, row: Row) -> Problem | None:
    """A group's `bot` must name a receiving bot of its own platform."""
    bot, platform = _str(row, "bot"), _str(row, "platform")
    if bot is None:
        return None
    table = {"wecom": ("wecom", "bots"), "dingtalk": ("dingtalk", "robots")}.get(platform or "")
    if table is None:
        return problem("groups", i, "bot", code="bot_not_platform")
    section = data.get(table[0])
    known = {ident for r in _rows(section, table[1]) if (ident := _str(r, "id"))} if isinstance(section, dict) else set()
    if bot in known:
        return None
    return problem("groups", i, "bot", code="unknown_bot", table=".".join(table), value=bot, close=closest(bot, known))


def _check_groups(data: Row) -> list[Problem]:
    problems: list[Problem] = []
    unit_ids, campaign_ids = _ids(data, "units"), _ids(data, "campaigns")
    chats: dict[str, int] = {}
    for i, row in enumerate(_rows(data, "groups")):
        platform = _str(row, "platform")
        for u, unit in _strs(row, "units"):
            if unit not in unit_ids:
                problems.append(_unknown_unit(("groups", i, "units", u), unit, unit_ids))
        campaign = _str(row, "campaign")
        if campaign is not None and campaign not in campaign_ids:
            problems.append(problem("groups", i, "campaign", code="unknown_campaign", value=campaign,
                                    close=closest(campaign, campaign_ids)))
        if platform in ("wecom", "dingtalk") and not row.get("credentials"):
            problems.append(problem("groups", i, "credentials", code="needs_credentials", platform=platform))
        bot_problem = _check_group_bot(data, i, row)
        if bot_problem is not None:
            problems.append(bot_problem)
        # Inbound messages find their group by chat id alone.
        chat_id = _str(row, "chat_id")
        if platform != "console" and chat_id is not None:
            if chat_id in chats:
                problems.append(problem("groups", i, "chat_id", code="duplicate_chat_id", value=chat_id,
                                        other=Ref(("groups", chats[chat_id]))))
            else:
                chats[chat_id] = i
    return problems


def _check_catalogue(data: Row) -> list[Problem]:
    problems: list[Problem] = []
    unit_ids = _ids(data, "units")
    names: dict[str, int] = {}
    owners: dict[str, int] = {}
    for i, row in enumerate(_rows(data, "categories")):
        name = _str(row, "name")
        if name is not None and name in names:
            problems.append(problem("categories", i, "name", code="duplicate_category", name=name,
                                    other=Ref(("categories", names[name]))))
        elif name is not None:
            names[name] = i
        for k, keyword in _strs(row, "keywords"):
            other = owners.setdefault(keyword, i)
            if other != i:
                problems.append(problem("categories", i, "keywords", k, code="keyword_clash", keyword=keyword,
                                        other=Ref(("categories", other))))
    seqs: dict[tuple[str, int], int] = {}
    for i, row in enumerate(_rows(data, "checklist")):
        for d, dept in _strs(row, "departments"):
            if dept not in unit_ids:
                problems.append(_unknown_unit(("checklist", i, "departments", d), dept, unit_ids))
        project, seq = _str(row, "project"), row.get("seq")
        if project is not None and isinstance(seq, int):
            if (project, seq) in seqs:
                problems.append(problem("checklist", i, "seq", code="duplicate_checklist", project=project, seq=seq,
                                        row=seqs[project, seq] + 1))
            else:
                seqs[project, seq] = i
    labels: dict[tuple[str, str], int] = {}
    for i, row in enumerate(_rows(data, "buildings")):
        unit = _str(row, "unit")
        if unit is None:
            continue
        if unit not in unit_ids:
            problems.append(_unknown_unit(("buildings", i, "unit"), unit, unit_ids))
        for key, label in [("name", _str(row, "name"))] + [(a, x) for a, x in _strs(row, "aliases")]:
            if not label:
                continue
            other = labels.setdefault((unit, label), i)
            if other != i:
                loc = ("buildings", i, "name") if key == "name" else ("buildings", i, "aliases", key)
                problems.append(Problem(loc, "building_label_clash", {"label": label, "other": Ref(("buildings", other))}))
    return problems


_ORDER = {name: rank for rank, name in enumerate(Config.model_fields)}


def _sort_key(record: Problem) -> tuple[int, int]:
    """Table by table in the order of Config, row by row; a problem about a whole table after its rows'."""
    table = record.loc[0] if record.loc else ""
    index = record.loc[1] if len(record.loc) > 1 and isinstance(record.loc[1], int) else 1 << 30
    return (_ORDER.get(str(table), len(_ORDER)), index)


def find_problem_records(data: dict[str, Any]) -> list[Problem]:
    """Every problem in a parsed TOML document as records (empty when valid)."""
    problems: list[Problem] = []
    try:
        Config.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problem(err) for err in exc.errors())
    for check in (_check_ids, _check_units, _check_campaigns, _check_people, _check_groups, _check_catalogue,
                  _check_directory, _check_escalation):
        problems.extend(check(data))
    unique = {render(record, data, "en"): record for record in reversed(problems)}  # first of equal lines wins
    return sorted(reversed(unique.values()), key=_sort_key)


def find_problems(data: dict[str, Any], lang: str = "en") -> list[str]:
    """Every problem in a parsed TOML document as `where: message` lines (empty when valid)."""
    return [render(record, data, lang) for record in find_problem_records(data)]


def parse_config(data: dict[str, Any]) -> Config:
    """Validate a parsed TOML document; raise ConfigError naming every problem."""
    problems = find_problem_records(data)
    if problems:
        raise ConfigError(problems, data)
    return Config.model_validate(data)


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([problem("(file)", code="file_missing", path=str(path))]) from None
    except UnicodeDecodeError:
        raise ConfigError([problem("(file)", code="file_encoding", path=str(path))]) from None
    except OSError as exc:
        raise ConfigError([problem("(file)", code="file_unreadable", path=str(path), reason=exc.strerror or exc)]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([problem("(file)", code="toml", detail=str(exc))]) from None
    return parse_config(data)


def simulator_exposure(config: Config, lang: str = "en") -> tuple[list[str], list[str]]:
    """What `check-config` says about who can reach the simulator: (warnings, errors), in Chinese (zh) or English."""
    sim, host = config.simulator, config.server.host
    if not sim.enabled or is_loopback_host(host):
        return [], []
    if sim.token_env is None:
        if lang == "zh":
            return [], [
                f"simulator：已开启，但 server.host = {host!r} 对本机以外开放，又没有设置 simulator.token_env，"
                "机器人不会挂载 /sim。请设置 token_env（保存一个很长的随机口令的环境变量名），或改为 enabled = false"
            ]
        return [], [
            f"simulator: enabled while server.host = {host!r} listens beyond this machine and no "
            "simulator.token_env is set; the bot will not mount /sim. Set token_env (the NAME of an env var "
            "holding a long random token), or set enabled = false"
        ]
    if lang == "zh":
        return [
            f"simulator：已开启，且 server.host = {host!r} 对本机以外开放；能访问这个端口并持有 ${sim.token_env} "
            "中口令的人，可以冒充控制台群里的任何人发消息"
        ], []
    return [
        f"simulator: enabled while server.host = {host!r} listens beyond this machine; anyone who reaches the "
        f"port and holds the token in ${sim.token_env} can post as any person of the console groups"
    ], []
    if sim.token_env is None:
        return [], [
            f"simulator: enabled while server.host = {host!r} listens beyond this machine and no "
            "simulator.token_env is set; the bot will not mount /sim. Set token_env (the NAME of an env var "
            "holding a long random token), or set enabled = false"
        ]
    return [
        f"simulator: enabled while server.host = {host!r} listens beyond this machine; anyone who reaches the "
        f"port and holds the token in ${sim.token_env} can post as any person of the console groups"
    ], []


# -- issue 15: the signed page and photo links ---------------------------------------------------------


def page_link_problems(config: Config, *, secret_set: bool, lang: str = "en") -> tuple[list[str], list[str]]:
    """What `check-config` says about `server.public_url` when links are on: (warnings, errors), zh or en.

    `secret_set`: whether the environment holds the link-signing key named by `server.link_secret_env`.
    """
    from urllib.parse import urlsplit

    server = config.server
    if not server.public_url:
        return [], []
    zh = lang == "zh"
    url = urlsplit(server.public_url)
    warnings: list[str] = []
    errors: list[str] = []
    if url.query or url.fragment or "?" in server.public_url or "#" in server.public_url:
        errors.append(
            f"server.public_url = {server.public_url!r}：不能带 ? 或 #，链接会打不开；请只写地址，例如 "
            "public_url = \"https://safety.school.example\""
            if zh else
            f"server.public_url = {server.public_url!r} must not carry ? or #: the links would break; write the "
            "address only, e.g. public_url = \"https://safety.school.example\""
        )
    if not secret_set:
        warnings.append(
            f"server.public_url 已设置，但环境变量 ${server.link_secret_env} 里没有签名密钥：机器人每次重启都会换一个"
            "随机密钥，之前发出的隐患网页、照片和领导页面链接会全部失效；请在该环境变量里放一串很长的随机字符"
            if zh else
            f"server.public_url is set but ${server.link_secret_env} holds no signing key: a random key is used and "
            "every hazard, photo and leaders' page link sent before a restart stops working; put a long random "
            "string in that environment variable"
        )
    host = url.hostname or ""
    on_phones = any(group.platform in ("wecom", "dingtalk") for group in config.groups)
    if on_phones and is_loopback_host(host):
        warnings.append(
            f"server.public_url = {server.public_url!r} 指向本机，老师的手机打不开这些链接；请写企业微信/钉钉里能访问的"
            "公网地址（反向代理的 https 地址）"
            if zh else
            f"server.public_url = {server.public_url!r} points at this machine: teachers' phones cannot open the "
            "links; use the public https address of the reverse proxy"
        )
    elif url.scheme == "http" and not is_loopback_host(host):
        warnings.append(
            f"server.public_url = {server.public_url!r} 用的是 http：照片和隐患信息会明文传输，企业微信/钉钉内置浏览器"
            "也可能拦截；请改用 https 地址"
            if zh else
            f"server.public_url = {server.public_url!r} uses http: photos and hazard details travel unencrypted and "
            "the WeCom/DingTalk in-app browsers may refuse the page; use an https address"
        )
    return warnings, errors
def cards_notes(config: Config, lang: str = "en") -> list[str]:
    """What `check-config` says about [cards] (issue 15): where buttons cannot show (warnings, in zh or en)."""
    if not config.cards.enabled:
        return []
    # WeCom bots in callback mode show cards too: as the passive answer to a stream refresh (issue 15).
    notes: list[str] = []
    streams = [robot.id for robot in config.dingtalk.robots if robot.mode == "stream"]
    if streams and not config.cards.dingtalk_template_id:
        notes.append(
            "cards：没有设置 dingtalk_template_id，钉钉群仍用文字回复。" if lang != "en" else
            "cards: no dingtalk_template_id, so DingTalk groups keep text replies."
        )
    return notes


LOGIN_KEYS = {"wecom": ("corp_id", "secret", "agent_id"), "dingtalk": ("corp_id", "app_key", "app_secret")}


def login_credentials(config: Config, platform: str) -> dict[str, str]:
    """The env var NAMES of the page sign-in's credentials on a platform: [login] first, then [directory] of the
    same platform, then (DingTalk app_key/app_secret) the first robot's app."""
    named = dict(config.login.wecom if platform == "wecom" else config.login.dingtalk)
    directory = config.directory
    if directory is not None and directory.platform == platform:
        for key, env in directory.credentials.items():
            named.setdefault(key, env)
    if platform == "dingtalk" and config.dingtalk.robots:
        for key in ("app_key", "app_secret"):
            robot_env = config.dingtalk.robots[0].credentials.get(key)
            if robot_env:
                named.setdefault(key, robot_env)
    return {key: named[key] for key in LOGIN_KEYS.get(platform, ()) if key in named}


def login_problems(config: Config, has_secret: Callable[[str], bool], lang: str = "en") -> list[str]:
    """What `check-config` says when page sign-in is on without what it needs (errors, zh or en)."""
    if not config.login.enabled:
        return []
    zh = lang != "en"
    errors: list[str] = []
    if not config.server.public_url:
        errors.append(
            "login：已开启网页登录，但没有设置 server.public_url（手机能打开的 https 地址），登录后无法跳回页面；"
            "例如 public_url = \"https://safety.school.example\"" if zh else
            "login: page sign-in is on but server.public_url is not set (the https address phones reach), so the "
            "platform cannot send people back; e.g. public_url = \"https://safety.school.example\""
        )
    platforms = sorted({g.platform for g in config.groups if g.platform in LOGIN_KEYS})
    for platform in platforms:
        named = login_credentials(config, platform)
        missing = [key for key in LOGIN_KEYS[platform] if key not in named]
        unset = [named[key] for key in LOGIN_KEYS[platform] if key in named and not has_secret(named[key])]
        where = "企业微信" if platform == "wecom" else "钉钉"
        example = ('wecom = { corp_id = "SAFETYBOT_WECOM_CORP_ID", secret = "SAFETYBOT_WECOM_APP_SECRET", '
                   'agent_id = "SAFETYBOT_WECOM_AGENT_ID" }' if platform == "wecom" else
                   'dingtalk = { corp_id = "SAFETYBOT_DINGTALK_CORP_ID", app_key = "SAFETYBOT_DINGTALK_APP_KEY", '
                   'app_secret = "SAFETYBOT_DINGTALK_APP_SECRET" }')
        if missing:
            errors.append(
                f"login：{where}群的网页登录缺少凭据 {', '.join(missing)}；请在 [login] 里写保存它们的环境变量名，例如 {example}"
                if zh else
                f"login: page sign-in on {platform} lacks the credentials {', '.join(missing)}; name the environment "
                f"variables holding them in [login], e.g. {example}"
            )
        if unset:
            errors.append(
                f"login：{where}网页登录需要的环境变量没有设置：{', '.join('$' + n for n in unset)}"
                if zh else
                f"login: page sign-in on {platform} needs these environment variables, which are not set: "
                f"{', '.join('$' + n for n in unset)}"
            )
    return errors
