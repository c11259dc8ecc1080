"""Calling WeCom's webhook API: JSON posts, file uploads, and reading its answers into delivery results."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from bot.outbox import DeliveryResult, answer_reason, platform_error
from bot.platforms.wecom.context import WeComContext
from bot.platforms.wecom.limits import FILE_MAX_BYTES, RATE_LIMITED_ERRCODES, RETRYABLE_ERRCODES


async def post_json(ctx: WeComContext, url: str, body: dict[str, Any]) -> DeliveryResult | dict[str, Any]:
    """POST JSON; a DeliveryResult for transport-level outcomes, else the decoded answer."""
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    await ctx.meter.count("wecom", _call_kind(url))
    try:
        response = await ctx.poster.post(url, data)
    except httpx.HTTPError as exc:
        return DeliveryResult.retry(ctx.redact(f"network error: {type(exc).__name__}: {exc}"))
    return answer_of(ctx, response)

def _call_kind(url: str) -> str:
    """The usage kind of a JSON post: the webhook's send, else a callback's response_url."""
    return "webhook_send" if "/cgi-bin/webhook/" in url else "response_url"


def answer_of(ctx: WeComContext, response: httpx.Response) -> DeliveryResult | dict[str, Any]:
    if response.status_code == 429:  # throttled before the API answered: wait as long as it asks
        return DeliveryResult.retry(
            "HTTP 429 Too Many Requests", rate_limited=True, retry_after=response.headers.get("Retry-After")
        )
    if response.status_code >= 500:
        return DeliveryResult.retry(f"HTTP {response.status_code}")
    if response.status_code >= 400:  # the status and WeCom's own errcode, never the body (answer_reason)
        return DeliveryResult.fail(ctx.redact(answer_reason(response.status_code, response.content)))
    try:
        answer = response.json()
    except ValueError:
        return DeliveryResult.retry(f"HTTP {response.status_code}: not JSON")
    if not isinstance(answer, dict):
        return DeliveryResult.retry("answer is not a JSON object")
    return answer

def result_of(ctx: WeComContext, answer: dict[str, Any]) -> DeliveryResult:
    code = answer.get("errcode", 0)
    if code == 0:
        return DeliveryResult.sent()
    detail = platform_error({"errcode": code, "errmsg": str(answer.get("errmsg") or "")})
    error = ctx.redact(detail or f"errcode {str(code)[:20]}")
    if code in RETRYABLE_ERRCODES:
        return DeliveryResult.retry(error, rate_limited=code in RATE_LIMITED_ERRCODES)
    return DeliveryResult.fail(error)

def webhook_url(ctx: WeComContext, payload: dict[str, Any], path: str, **query: str) -> str | None:
    key = ctx.push_key(payload.get("group_id"))  # a group bound in chat: its SAFETYBOT_PUSH_KEY_… variable
    if key is None and payload.get("webhook_url"):
        match = re.search(r"[?&]key=([^&]+)", str(payload["webhook_url"]))
        key = match.group(1) if match else None
    if not key:
        return None
    return str(httpx.URL(f"{ctx.api_base}/cgi-bin/webhook/{path}", params={"key": key, **query}))


async def upload(ctx: WeComContext, payload: dict[str, Any], data: bytes) -> str | DeliveryResult:
    if len(data) <= 5:
        return DeliveryResult.fail("file must be larger than 5 bytes")
    if len(data) > FILE_MAX_BYTES:
        return DeliveryResult.fail(f"file is {len(data) / 1024 / 1024:.1f} MB, over WeCom's 20 MB limit")
    url = webhook_url(ctx, payload, "upload_media", type="file")
    assert url is not None
    filename = str(payload.get("filename") or "file.bin")
    mime = (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        if filename.endswith(".xlsx") else "application/octet-stream"
    )
    await ctx.meter.count("wecom", "webhook_upload_media")
    try:
        response = await ctx.http.post(url, files={"media": (filename, data, mime)})
    except httpx.HTTPError as exc:
        return DeliveryResult.retry(ctx.redact(f"upload network error: {type(exc).__name__}: {exc}"))
    answer = answer_of(ctx, response)
    if isinstance(answer, DeliveryResult):
        return answer
    result = result_of(ctx, answer)
    if not result.ok:
        return DeliveryResult(ok=False, retryable=result.retryable, error=f"upload_media: {result.error}",
                              rate_limited=result.rate_limited, retry_after=result.retry_after)
    media_id = answer.get("media_id")
    return str(media_id) if media_id else DeliveryResult.retry("upload_media returned no media_id")
