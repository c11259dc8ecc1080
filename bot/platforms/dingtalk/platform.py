"""`DingTalkPlatform`: DingTalk's modules assembled into one `Platform` (built once per process)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from sqlmodel import Session

from bot.config import Config
from bot.outbox import Delivery, Draft
from bot.platforms.base import MediaFetcher, PlatformDeps, Receiving, Runtime, redact_httpx_logs
from bot.platforms.replies import RenderingDelivery
from bot.platforms.dingtalk import media
from bot.platforms.dingtalk.api import DingTalkApi
from bot.platforms.dingtalk.callbacks import callback_route
from bot.platforms.dingtalk.context import DingTalkContext
from bot.platforms.dingtalk.deliveries import CustomWebhookDelivery, OpenApiDelivery, SessionWebhookDelivery
from bot.platforms.dingtalk.limits import CH_OPENAPI, CH_SESSION, CH_WEBHOOK, PLATFORM
from bot.platforms.dingtalk.render import push_drafts, render_replies
from bot.platforms.dingtalk.signing import SignatureReplayGuard
from bot.platforms.dingtalk.stream import stream_service
from bot.pushes import PushRenderer
from bot.url_allowlist import UrlAllowList
from handlers.messages import Attachment, Reply
from models.tables import GroupRow


class DingTalkPlatform:
    """DingTalk (钉钉): app-robot HTTP callbacks and Stream connections; sessionWebhook / custom robot / OpenAPI."""

    name = PLATFORM

    def __init__(self, deps: PlatformDeps, *, clock_ms: Callable[[], int] | None = None) -> None:
        redact_httpx_logs()
        self.ctx = DingTalkContext(deps, clock_ms)
        dingtalk = deps.config.dingtalk
        self.api = DingTalkApi(deps.http, api_base=dingtalk.api_base, oapi_base=dingtalk.oapi_base, shared=deps.shared,
                               meter=self.ctx.meter)
        self.replays = SignatureReplayGuard(self.ctx.window_ms, self.ctx.clock_ms, deps.shared)
        openapi = OpenApiDelivery(self.ctx, self.api)
        custom = CustomWebhookDelivery(self.ctx, self.api)
        # Replies are rendered here, when delivered (the one entry into DingTalk on the way out).
        self.deliveries: Mapping[str, Delivery] = RenderingDelivery(self.render, deps.db, {
            CH_OPENAPI: openapi,
            CH_SESSION: SessionWebhookDelivery(self.ctx, self.api, openapi, custom),
            CH_WEBHOOK: custom,
        }, deps.directory).by_channel()
        self.push_renderer: PushRenderer = self.push_drafts
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
        """Replies as drafts when they are delivered (render.render_replies), with cards when configured (issue 15)."""
        config = self.ctx.config
        # Taps come back only over a Stream connection: cards for Stream-mode robots (or a tap's own answer).
        streamed = any(r.id == route.get("robot_id") and r.mode == "stream" for r in config.dingtalk.robots)
        on = config.cards.enabled and (streamed or bool(route.get("card_event")))
        return render_replies(session, replies, route, card_template=config.cards.dingtalk_template_id if on else "")

    def push_drafts(self, session: Session, group: GroupRow, replies: Sequence[Reply]) -> list[Draft]:
        """A push to a DingTalk group, by the running config's credentials (see render.push_drafts)."""
        return push_drafts(session, self.ctx.config, group.id, replies, row=group)

    async def fetch_media(self, route: dict[str, Any]) -> tuple[Attachment, ...]:
        """The pictures of a recorded message (see media.fetch_media)."""
        return await media.fetch_media(self.ctx, self.api, route)

    def receive(self, runtime: Runtime) -> Receiving:
        """The /dingtalk/callback route, and a Stream connection per robot in stream mode, on `runtime`."""
        photos = partial(media.download_of, self.ctx, self.api)  # run by the receiving side, after the ack
        streams = [
            stream_service(self.ctx, robot, runtime, photos)
            for robot in self.ctx.config.dingtalk.robots if robot.mode == "stream"
        ]
        return Receiving(routes=[callback_route(self.ctx, runtime, self.replays, photos)], services=streams)
