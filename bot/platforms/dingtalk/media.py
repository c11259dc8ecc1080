"""Downloading the pictures of a recorded DingTalk message by their download codes (after the acknowledgement,
by the receiving side; again by recovery and for photos that could not be written)."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import httpx

from bot.logging_setup import redact
from bot.outbox import DeliveryResult
from bot.platforms.base import Download
from bot.platforms.dingtalk.api import DingTalkApi, DingTalkError
from bot.platforms.dingtalk.context import DingTalkContext
from bot.platforms.dingtalk.limits import MAX_MEDIA_BYTES
from handlers.messages import Attachment

log = logging.getLogger(__name__)


def sniff_image(data: bytes, declared: str) -> tuple[str, str]:
    """(content type, extension) of downloaded bytes; the storage's header may be generic."""
    if data.startswith(b"\x89PNG"):
        return "image/png", ".png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg", ".jpg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif", ".gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", ".webp"
    if data.startswith(b"BM"):
        return "image/bmp", ".bmp"
    return (declared or "application/octet-stream"), ""


def download_of(ctx: DingTalkContext, api: DingTalkApi, route: dict[str, Any]) -> Download | None:
    """The download of a recorded message's pictures, for the receiving side to run; None when it has none."""
    if not route.get("download_codes"):
        return None
    return partial(fetch_media, ctx, api, route)


async def fetch_media(ctx: DingTalkContext, api: DingTalkApi, route: dict[str, Any]) -> tuple[Attachment, ...]:
    """Download the pictures a recorded message's route names (after the acknowledgement)."""
    codes = [str(code) for code in route.get("download_codes") or ()]
    if not codes:
        return ()
    robot_id = str(route.get("robot_id") or "")
    creds = ctx.app_credentials(robot_id=robot_id)
    if creds is None:
        log.warning("dingtalk robot %s has no app credentials: cannot download pictures", robot_id)
        return ()
    attachments: list[Attachment] = []
    for index, code in enumerate(codes, start=1):
        try:
            url = await api.download_url(creds, code)
            data = await _get(ctx.http, url)
        except (DingTalkError, httpx.HTTPError) as exc:
            log.warning("dingtalk picture %d of a message from %s: %s", index, robot_id, redact(str(exc)))
            continue
        content_type, extension = sniff_image(data, "")
        attachments.append(Attachment(filename=f"dingtalk-{index}{extension}", content_type=content_type, data=data))
    return tuple(attachments)


async def _get(http: httpx.AsyncClient, url: str) -> bytes:
    async with http.stream("GET", url) as response:
        if response.status_code != 200:
            raise DingTalkError(DeliveryResult.fail(f"download: HTTP {response.status_code}"))
        data = bytearray()
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > MAX_MEDIA_BYTES:
                raise DingTalkError(DeliveryResult.fail("download: larger than 20 MB"))
        return bytes(data)
