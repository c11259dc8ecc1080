"""Downloading and decrypting the photos of a recorded WeCom message (after the acknowledgement, by the
receiving side; again by recovery and for photos that could not be written)."""

from __future__ import annotations

import base64
import logging
from functools import partial
from typing import Any

import httpx

from bot.platforms.base import Download
from bot.platforms.wecom.context import WeComContext
from bot.platforms.wecom.crypto import aes_key, decrypt_media
from bot.platforms.wecom.inbound import MediaRef
from bot.platforms.wecom.limits import MEDIA_MAX_BYTES
from handlers.messages import Attachment

log = logging.getLogger(__name__)


def sniff_image(data: bytes) -> tuple[str, str]:
    """(content type, extension) of a decrypted photo, by its first bytes."""
    if data.startswith(b"\x89PNG"):
        return "image/png", "png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg", "jpg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif", "gif"
    return "application/octet-stream", "bin"


def download_of(ctx: WeComContext, route: dict[str, Any]) -> Download | None:
    """The download of a recorded message's photos, for the receiving side to run; None when it has none."""
    if not route.get("media"):
        return None
    return partial(fetch_media, ctx, route)


async def fetch_media(ctx: WeComContext, route: dict[str, Any]) -> tuple[Attachment, ...]:
    """Download and decrypt the photos a recorded message's route names (after the acknowledgement)."""
    media = [MediaRef(url=str(item.get("url", "")), aeskey=item.get("aeskey")) for item in route.get("media") or ()]
    media = [ref for ref in media if ctx.allowed(ref.url, "photo URL")]
    if not media:
        return ()
    creds = next((c for c in ctx.callback_credentials() if c.id == route.get("credential")), None)
    bot_key = aes_key(creds.encoding_aes_key) if creds else None
    found: list[Attachment] = []
    for index, ref in enumerate(media):
        key = base64.b64decode(ref.aeskey + "=" * (-len(ref.aeskey) % 4)) if ref.aeskey else bot_key
        if key is None or len(key) != 32:
            log.warning("wecom: no usable AES key for a downloaded photo")
            continue
        try:
            response = await ctx.http.get(ref.url)
            response.raise_for_status()
            if len(response.content) > MEDIA_MAX_BYTES + 32:
                log.warning("wecom: photo over %d bytes skipped", MEDIA_MAX_BYTES)
                continue
            data = decrypt_media(response.content, key)
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("wecom: photo download failed: %s", ctx.redact(f"{type(exc).__name__}: {exc}"))
            continue
        content_type, ext = sniff_image(data)
        found.append(Attachment(filename=f"photo{index + 1}.{ext}", content_type=content_type, data=data))
    return tuple(found)
