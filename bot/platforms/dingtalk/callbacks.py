"""DingTalk's HTTP callback: size → signature → JSON → replay check → record → acknowledge; work runs after."""

from __future__ import annotations

import logging
from typing import Any

from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTasks
from starlette.requests import Request
from starlette.routing import Route

from bot.config import DingTalkRobot
from bot.platforms.base import Runtime
from bot.platforms.dingtalk.context import DingTalkContext
from bot.platforms.dingtalk.inbound import Photos, accept
from bot.platforms.dingtalk.limits import CALLBACK_PATH, MAX_CALLBACK_BYTES
from bot.platforms.dingtalk.signing import SignatureReplayGuard, message_key, timestamp_fresh, verify_callback
from bot.untrusted import MalformedPayload, ascii_int, load_json

log = logging.getLogger(__name__)


class CallbackRefused(Exception):
    """A callback answered with an error status (nothing stored)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _error(status: int, text: str) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=status)


async def read_body(request: Request) -> bytes:
    """The request body, refused (413) past MAX_CALLBACK_BYTES, declared or sent."""
    length = request.headers.get("content-length", "")
    if (ascii_int(length) or 0) > MAX_CALLBACK_BYTES:
        raise CallbackRefused(413, "body too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_CALLBACK_BYTES:
            raise CallbackRefused(413, "body too large")
    return bytes(body)


def signing_robot(ctx: DingTalkContext, timestamp: str | None, signature: str | None) -> DingTalkRobot:
    """The callback-mode robot whose app secret signed the `timestamp` / `sign` headers (403 otherwise)."""
    now = ctx.clock_ms()
    if not timestamp_fresh(timestamp, now, ctx.window_ms):
        raise CallbackRefused(403, "stale or missing timestamp")
    robot = next(
        (r for r, secret in ctx.callback_secrets() if verify_callback(timestamp, signature, secret, now, ctx.window_ms)),
        None,
    )
    if robot is None:
        raise CallbackRefused(403, "bad signature")
    return robot


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object (400 otherwise)."""
    try:
        data = load_json(body)
    except MalformedPayload:
        raise CallbackRefused(400, "body is not JSON (or nested too deeply)") from None
    if not isinstance(data, dict):
        raise CallbackRefused(400, "body is not a JSON object")
    return data


async def refuse_replay(
    replays: SignatureReplayGuard, timestamp: str, signature: str, data: dict[str, Any], body: bytes
) -> None:
    """403 when the timestamp/sign pair was already used by another message (see SignatureReplayGuard)."""
    verdict = await replays.check(timestamp, signature, message_key(data, body))
    if verdict == SignatureReplayGuard.REPLAY:
        log.warning("dingtalk callback refused: its timestamp/sign were already used by another message")
        raise CallbackRefused(403, "signature already used")


def callback_route(ctx: DingTalkContext, runtime: Runtime, replays: SignatureReplayGuard, photos: Photos) -> Route:
    """The /dingtalk/callback endpoint on `runtime`.

    A plain Starlette route: a callback needs no FastAPI dependency solving, and every callback pays for it.
    """

    async def dingtalk_callback(request: Request) -> Response:
        timestamp, signature = request.headers.get("timestamp"), request.headers.get("sign")
        try:
            body = await read_body(request)
            robot = signing_robot(ctx, timestamp, signature)
            data = json_object(body)
            await refuse_replay(replays, str(timestamp), str(signature), data, body)
        except CallbackRefused as refused:
            return _error(refused.status, refused.text)
        background = BackgroundTasks()
        try:
            await accept(ctx, runtime, data, robot, background.add_task, photos)
        except MalformedPayload as exc:
            log.warning("dingtalk callback refused: %s", exc)
            return _error(400, "unreadable robot message")
        return JSONResponse({}, background=background if background.tasks else None)

    return Route(CALLBACK_PATH, dingtalk_callback, methods=["POST"], include_in_schema=False)
