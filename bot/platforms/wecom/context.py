"""What WeCom's modules share: the running config (swapped on reload), secrets, HTTP client and config lookups."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import httpx
from sqlalchemy import Engine as DbEngine

from bot.config import Config, Group, WeComBot
from bot.logging_setup import redact
from bot.platforms.base import PlatformDeps
from bot.platforms.http import JsonPoster
from bot.platforms.wecom.crypto import CallbackCredentials
from bot.secrets import Secrets
from bot.shared import SharedCache
from bot.url_allowlist import UrlAllowList
from bot.usage import CallMeter
from models.push_groups import push_key_env

log = logging.getLogger(__name__)


class WeComContext:
    """One process's WeCom settings: `config` and the URL allow-list change together on a reload."""

    def __init__(self, deps: PlatformDeps) -> None:
        self.secrets: Secrets = deps.secrets
        self.http: httpx.AsyncClient = deps.http
        self.poster = JsonPoster(deps.http)  # the webhook and response_url posts (one per reply delivered)
        self.db: DbEngine = deps.db
        self.now: Callable[[], datetime] = deps.now
        self.shared: SharedCache | None = deps.shared
        self.meter = CallMeter(deps.db, deps.config.tz, deps.now)  # API calls per month (outbox --usage)
        self.use_config(deps.config)

    def use_config(self, config: Config) -> None:
        """Take a (reloaded) config and the allow-list built from it."""
        self.config = config
        self.api_base = config.wecom.api_base.rstrip("/")
        # response_url and photo URLs come from the callback body: only WeCom's hosts (and api_base) are called.
        self.urls = UrlAllowList(config.wecom.callback_url_hosts, (self.api_base,))

    def group(self, group_id: str | None) -> Group | None:
        return next((g for g in self.config.groups if g.id == group_id and g.platform == "wecom"), None)

    def group_for_chat(self, chat_id: str) -> Group | None:
        return next((g for g in self.config.groups if g.platform == "wecom" and g.chat_id == chat_id), None)

    def webhook_key(self, group: Group | None) -> str | None:
        return self.secrets.credential(group.credentials, "webhook_key") if group else None

    def push_key(self, group_id: str | None) -> str | None:
        """The webhook key of a group: a configured group's `credentials.webhook_key`, else (a group bound in chat,
        which has no TOML entry) the variable named by models.push_groups.push_key_env."""
        if not group_id:
            return None
        group = self.group(group_id)
        return self.webhook_key(group) if group is not None else self.secrets.get(push_key_env(group_id))

    def bot(self, bot_id: str | None) -> WeComBot | None:
        return next((b for b in self.config.wecom.bots if b.id == bot_id), None)

    def callback_credentials(self) -> list[CallbackCredentials]:
        """Every configured callback receiver whose token and EncodingAESKey are set."""
        found: list[CallbackCredentials] = []
        for bot in self.config.wecom.bots:
            if bot.mode != "callback":
                continue
            token = self.secrets.credential(bot.credentials, "token")
            key = self.secrets.credential(bot.credentials, "encoding_aes_key")
            if token and key:
                found.append(CallbackCredentials(bot.id, token, key, bot=bot.id))
        for group in self.config.groups:
            if group.platform != "wecom":
                continue
            token = self.secrets.credential(group.credentials, "token")
            key = self.secrets.credential(group.credentials, "encoding_aes_key")
            if token and key:
                found.append(CallbackCredentials(f"group:{group.id}", token, key, group=group.id))
        return found

    def _all_secrets(self) -> list[str]:
        values: list[str] = []
        holders: list[WeComBot | Group] = [*self.config.wecom.bots, *(g for g in self.config.groups if g.platform == "wecom")]
        for holder in holders:
            for env in holder.credentials.values():
                value = self.secrets.get(env)
                if value:
                    values.append(value)
        return values

    def redact(self, text: str) -> str:
        """The text without any configured WeCom secret in it."""
        return redact(text, *self._all_secrets())

    def allowed(self, url: str, what: str) -> bool:
        """Whether a URL from a callback may be called; a refused one is logged (host only, never the URL)."""
        if self.urls.allows(url):
            return True
        try:
            host = httpx.URL(url).host or "?"
        except (httpx.InvalidURL, TypeError, ValueError):
            host = "?"
        log.warning("wecom: a callback's %s points at %s, not a host in wecom.callback_url_hosts; not calling it",
                    what, host)
        return False
