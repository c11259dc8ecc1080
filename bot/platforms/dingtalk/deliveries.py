"""DingTalk's outbox deliveries: the app robot's OpenAPI, a callback's sessionWebhook, a group's custom robot."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_plus

from bot.outbox import DeliveryResult
from bot.platforms.dingtalk.api import DingTalkApi, DingTalkError, guard, has_errcode
from bot.config import Group
from bot.platforms.dingtalk.context import DingTalkContext
from bot.platforms.dingtalk.inbound import as_int
from bot.platforms.dingtalk.limits import SESSION_GONE_CODES, SESSION_MARGIN_MS, UPLOAD_TYPES
from bot.platforms.dingtalk.signing import signed_webhook_url
from models.tables import OutboxMessage

log = logging.getLogger(__name__)


def _payload(message: OutboxMessage) -> dict[str, Any]:
    try:
        value = json.loads(message.payload or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class OpenApiDelivery:
    """dingtalk_openapi: robot group messages; images/files are uploaded at send time."""

    def __init__(self, ctx: DingTalkContext, api: DingTalkApi) -> None:
        self.ctx = ctx
        self.api = api

    async def send_markdown(self, payload: Mapping[str, Any], title: str, text: str) -> DeliveryResult:
        """Send one sampleMarkdown by the app robot (also the sessionWebhook's fallback)."""
        return await self._send(payload, "sampleMarkdown", {"title": title, "text": text}, None, "markdown")

    async def deliver(self, message: OutboxMessage) -> DeliveryResult:
        payload = _payload(message)
        if message.kind in ("card", "card_update"):  # issue 15: interactive cards
            return await self._card(payload, message.kind)
        if message.kind in ("image", "file"):
            return await self._send(payload, "", {}, message.blob, message.kind)
        return await self._send(payload, str(payload.get("msg_key") or "sampleMarkdown"),
                                dict(payload.get("msg_param") or {}), None, message.kind)

    async def _card(self, payload: Mapping[str, Any], kind: str) -> DeliveryResult:
        creds = self.ctx.app_credentials(robot_id=payload.get("robot_id"), group_id=payload.get("group_id"))
        if creds is None:
            return DeliveryResult.fail("no DingTalk app credentials (app_key / app_secret) for this robot or group")
        track, params = str(payload.get("out_track_id") or ""), dict(payload.get("params") or {})
        conversation_id, template = str(payload.get("conversation_id") or ""), str(payload.get("template_id") or "")

        async def call() -> None:
            if kind == "card":
                await self.api.send_card(creds, conversation_id, track, template, params)
            else:
                await self.api.update_card(creds, track, params)

        return await guard("card", call, creds.app_secret)

    async def _send(
        self, payload: Mapping[str, Any], msg_key: str, msg_param: dict[str, Any], blob: bytes | None, kind: str
    ) -> DeliveryResult:
        creds = self.ctx.app_credentials(robot_id=payload.get("robot_id"), group_id=payload.get("group_id"))
        conversation_id = str(payload.get("conversation_id") or "")
        if creds is None:
            return DeliveryResult.fail("no DingTalk app credentials (app_key / app_secret) for this robot or group")
        if not conversation_id:
            return DeliveryResult.fail("no conversation id (the group's chat_id) to send to")

        async def call() -> None:
            key, param = msg_key, msg_param
            if kind in ("image", "file"):
                if not blob:
                    raise DingTalkError(DeliveryResult.fail(f"{kind} message without data"))
                name = str(payload.get("file_name") or ("chart.png" if kind == "image" else "file.bin"))
                extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
                media_type = "image" if kind == "image" else "file"
                if kind == "file" and UPLOAD_TYPES.get(extension) != "file":
                    raise DingTalkError(DeliveryResult.fail(f"DingTalk does not accept .{extension} files"))
                media_id = await self.api.upload_media(creds, blob, name, media_type)
                if kind == "image":
                    key, param = "sampleImageMsg", {"photoURL": media_id}
                else:
                    key, param = "sampleFile", {"mediaId": media_id, "fileName": name, "fileType": extension}
            query_key = await self.api.group_send(creds, conversation_id, key, param)
            log.info("dingtalk group message sent (%s, processQueryKey %s)", key, query_key)

        return await guard("openapi", call, creds.app_secret)


class SessionWebhookDelivery:
    """dingtalk_session_webhook: reply by the callback's sessionWebhook; once it expired, by the group's custom
    robot (which keeps the @) when it has one, else by the OpenAPI (without the @)."""

    def __init__(
        self, ctx: DingTalkContext, api: DingTalkApi, fallback: OpenApiDelivery,
        custom: "CustomWebhookDelivery | None" = None,
    ) -> None:
        self.ctx = ctx
        self.api = api
        self.fallback = fallback
        self.custom = custom

    async def _fall_back(self, payload: Mapping[str, Any], why: str) -> DeliveryResult:
        group = self.ctx.group(payload.get("group_id"))
        body = payload.get("body")
        if (
            self.custom is not None and group is not None and isinstance(body, Mapping)
            and self.ctx.secrets.credential(group.credentials, "webhook_token")
        ):
            log.info("dingtalk %s; replying by the group's custom robot instead (with @)", why)
            return await self.custom.send(group, body)
        fallback = payload.get("fallback") or {}
        if not payload.get("conversation_id") or not isinstance(fallback, Mapping):
            return DeliveryResult.fail(why)
        log.info("dingtalk %s; replying by the OpenAPI instead (without @)", why)
        return await self.fallback.send_markdown(payload, str(fallback.get("title") or "安全助手"),
                                                 str(fallback.get("text") or ""))

    async def deliver(self, message: OutboxMessage) -> DeliveryResult:
        payload = _payload(message)
        url = str(payload.get("url") or "")
        expires = as_int(payload.get("expires")) or 0
        if not url:  # none in the callback, or one on a host that is not allowed
            return await self._fall_back(payload, "no usable sessionWebhook")
        if expires and self.ctx.clock_ms() > expires - SESSION_MARGIN_MS:
            return await self._fall_back(payload, "sessionWebhook expired")
        if not self.ctx.urls.allows(url):  # checked again at send time: rows queued before an allow-list change
            log.warning("dingtalk outbox row %s: sessionWebhook not on an allowed host; not calling it", message.id)
            return await self._fall_back(payload, "sessionWebhook not on an allowed host")
        result = await guard(
            "session webhook", lambda: self.api.post_robot(url, payload.get("body") or {}, "session webhook", url), url
        )
        if not result.ok and any(has_errcode(result.error, code) for code in SESSION_GONE_CODES):
            return await self._fall_back(payload, "sessionWebhook is gone (300001)")
        return result


class CustomWebhookDelivery:
    """dingtalk_webhook: a group's custom robot, URL signed with its SEC… secret at send time."""

    def __init__(self, ctx: DingTalkContext, api: DingTalkApi) -> None:
        self.ctx = ctx
        self.api = api

    async def deliver(self, message: OutboxMessage) -> DeliveryResult:
        payload = _payload(message)
        group = self.ctx.group(payload.get("group_id") or message.group_id)
        if group is None:
            return DeliveryResult.fail(f"no dingtalk group {payload.get('group_id')!r} in the config")
        return await self.send(group, payload.get("body") or {})

    async def send(self, group: Group, body: Mapping[str, Any]) -> DeliveryResult:
        """Post one robot message body by the group's custom robot."""
        token = self.ctx.secrets.credential(group.credentials, "webhook_token")
        secret = self.ctx.secrets.credential(group.credentials, "webhook_secret")
        if not token:
            return DeliveryResult.fail(f"group {group.id}: the webhook_token environment variable is not set")
        url = f"{self.ctx.config.dingtalk.oapi_base.rstrip('/')}/robot/send?access_token={quote_plus(token)}"
        if secret:
            url = signed_webhook_url(url, secret, self.ctx.clock_ms())
        return await guard(
            "custom robot", lambda: self.api.post_robot(url, body, "custom robot", token, secret or ""),
            token, secret,
        )
