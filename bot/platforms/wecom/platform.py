"""`WeComPlatform`: WeCom's modules assembled into one `Platform` (built once per process)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from types import MappingProxyType
from typing import Any

from sqlmodel import Session

from bot.config import Config
from bot.outbox import Delivery, Draft
from bot.platforms.base import MediaFetcher, PlatformDeps, Receiving, Runtime, redact_httpx_logs
from bot.platforms.replies import RenderingDelivery
from bot.platforms.wecom import media, render
from bot.platforms.wecom.callbacks import CallbackReceiver
from bot.platforms.wecom.context import WeComContext
from bot.platforms.wecom.crypto import ReplayGuard
from bot.platforms.wecom.deliveries import (
    LongConnectionDelivery, PassiveDelivery, ResponseUrlDelivery, WebhookDelivery,
)
from bot.platforms.wecom.limits import CHANNEL_PASSIVE, CHANNEL_RESPONSE_URL, CHANNEL_WEBHOOK, CHANNEL_WS
from bot.platforms.wecom.longconn import WsConnection
from bot.pushes import PushRenderer
from bot.url_allowlist import UrlAllowList
from handlers.messages import Attachment, Reply
from models.clock import wall_clock_seconds


class WeComPlatform:
    """WeCom (企业微信): AI-bot and group-robot callbacks, long connections, webhook / response_url deliveries."""

    name = "wecom"

    def __init__(self, deps: PlatformDeps, *, clock: Callable[[], float] = wall_clock_seconds) -> None:
        redact_httpx_logs()
        self.ctx = WeComContext(deps)
        self.clock = clock
        self.replays = ReplayGuard(clock=clock)
        ws_url = deps.config.wecom.ws_url
        # One long connection per bot in websocket mode (a config reload does not change them: see bot/reload.py).
        self.connections: Mapping[str, WsConnection] = MappingProxyType({
            bot.id: WsConnection(self.ctx, bot, ws_url) for bot in deps.config.wecom.bots if bot.mode == "websocket"
        })
        response_url = ResponseUrlDelivery(self.ctx)
        # Replies are rendered here, when delivered (the one entry into WeCom on the way out).
        self.deliveries: Mapping[str, Delivery] = RenderingDelivery(self.render, deps.db, {
            CHANNEL_WEBHOOK: WebhookDelivery(self.ctx),
            CHANNEL_RESPONSE_URL: response_url,
            CHANNEL_PASSIVE: PassiveDelivery(self.ctx, response_url),
            CHANNEL_WS: LongConnectionDelivery(self.ctx, self.connections),
        }, deps.directory).by_channel()
        self.push_renderer: PushRenderer = render.push_drafts
        self.fetcher: MediaFetcher | None = self.fetch_media

    @property
    def config(self) -> Config:
        return self.ctx.config

    @property
    def urls(self) -> UrlAllowList:
        return self.ctx.urls

    def use_config(self, config: Config) -> None:
        self.ctx.use_config(config)

    def render(self, session: Session, replies: list[Reply], route: dict[str, Any]) -> list[Draft]:
        """Replies as drafts for the route the message came by (see render.render)."""
        return render.render(self.ctx, session, replies, route)

    async def fetch_media(self, route: dict[str, Any]) -> tuple[Attachment, ...]:
        """The photos of a recorded message (see media.fetch_media)."""
        return await media.fetch_media(self.ctx, route)

    def receive(self, runtime: Runtime) -> Receiving:
        """The callback routes and their handler task group, and each bot's long connection, on `runtime`."""
        receiver = CallbackReceiver(self.ctx, runtime, self.replays, self.clock)
        connections = [partial(connection.run_forever, runtime) for connection in self.connections.values()]
        return Receiving(routes=receiver.routes(), services=[receiver.run_handlers, *connections])

