"""What DingTalk's modules share: the running config (swapped on reload), secrets, clocks and config lookups."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx

from bot.config import Config, DingTalkRobot, Group
from bot.platforms.base import PlatformDeps
from bot.platforms.dingtalk.limits import PLATFORM
from bot.secrets import Secrets
from bot.shared import SharedCache
from bot.url_allowlist import UrlAllowList
from bot.usage import CallMeter
from models.clock import wall_clock_ms


@dataclass(frozen=True, slots=True)
class AppCredentials:
    """An internal app's Client ID / Client Secret and its robot code (= Client ID unless set)."""

    app_key: str
    app_secret: str
    robot_code: str



def callback_urls(config: Config) -> UrlAllowList:
    """The URLs a callback may make the bot call: DingTalk's hosts, and the configured API bases."""
    dingtalk = config.dingtalk
    return UrlAllowList(dingtalk.callback_url_hosts, (dingtalk.api_base, dingtalk.oapi_base))


class DingTalkContext:
    """One process's DingTalk settings: `config`, the callback window and the URL allow-list change together."""

    def __init__(self, deps: PlatformDeps, clock_ms: Callable[[], int] | None = None) -> None:
        self.secrets: Secrets = deps.secrets
        self.http: httpx.AsyncClient = deps.http
        self.now: Callable[[], datetime] = deps.now
        self.shared: SharedCache | None = deps.shared
        self.clock_ms: Callable[[], int] = clock_ms or wall_clock_ms
        self.meter = CallMeter(deps.db, deps.config.tz, deps.now)  # API calls per month against the budget
        self.use_config(deps.config)

    def use_config(self, config: Config) -> None:
        """Take a (reloaded) config, with the callback window and the allow-list built from it."""
        self.config = config
        self.window_ms = config.dingtalk.callback_window_seconds * 1000
        self.urls = callback_urls(config)

    def group(self, group_id: str | None) -> Group | None:
        return _group(self.config, group_id)

    def group_by_chat(self, chat_id: str) -> Group | None:
        return next((g for g in self.config.groups if g.platform == PLATFORM and g.chat_id == chat_id), None)

    def callback_secrets(self) -> list[tuple[DingTalkRobot, str]]:
        """(robot, app secret) of every robot in HTTP-callback mode whose secret is set."""
        result: list[tuple[DingTalkRobot, str]] = []
        for robot in self.config.dingtalk.robots:
            if robot.mode != "callback":
                continue
            secret = self.secrets.credential(robot.credentials, "app_secret")
            if secret:
                result.append((robot, secret))
        return result

    def app_credentials(self, *, robot_id: str | None = None, group_id: str | None = None) -> AppCredentials | None:
        """The app robot's credentials: the robot's own, else (for pushes) the group's or its bot's."""
        names: dict[str, str] = {}
        group = _group(self.config, group_id)
        if group is not None:
            names.update(group.credentials)
            robot_id = robot_id or group.bot
        robot = _robot(self.config, robot_id)
        if robot is not None:
            names.update(robot.credentials)
        app_key = self.secrets.credential(names, "app_key")
        app_secret = self.secrets.credential(names, "app_secret")
        if not app_key or not app_secret:
            return None
        return AppCredentials(app_key, app_secret, self.secrets.credential(names, "robot_code") or app_key)


def _group(config: Config, group_id: str | None) -> Group | None:
    return next((g for g in config.groups if g.id == group_id and g.platform == PLATFORM), None) if group_id else None


def _robot(config: Config, robot_id: str | None) -> DingTalkRobot | None:
    return next((r for r in config.dingtalk.robots if r.id == robot_id), None) if robot_id else None

