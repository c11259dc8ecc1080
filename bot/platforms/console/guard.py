"""Guarding /sim: loopback or a token, same-origin posts, capped bodies; and whether /sim may be mounted at all."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.types import Message, Receive

from bot.config import Config, is_loopback_host
from bot.secrets import Secrets

log = logging.getLogger(__name__)

TOKEN_COOKIE = "safetybot_sim"
MIN_TOKEN_CHARS = 16  # a guessable token would make the token pointless
BODY_HEADROOM_BYTES = 64 * 1024  # the form's text fields and multipart framing beside the photo
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def _refuse(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _host_and_port(authority: str, scheme: str) -> tuple[str, int] | None:
    """("localhost", 8000) from "localhost:8000"; None when it is not a host[:port]."""
    try:
        parts = urlsplit(f"//{authority}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.path:
        return None
    return parts.hostname, port or (443 if scheme in ("https", "wss") else 80)


@dataclass(frozen=True)
class SimulatorGuard:
    """Who may use /sim: the right Host and Origin, a bounded body and, when configured, the token.

    Everything here runs before the route reads the request body.
    """

    allowed: frozenset[tuple[str, int | None]]  # (hostname, port); port None: any port
    max_body_bytes: int
    max_upload_mb: int
    port: int
    token: str | None = None

    @classmethod
    def from_config(cls, config: Config, token: str | None) -> SimulatorGuard:
        port = config.server.port
        names = set(LOOPBACK_NAMES)
        if is_loopback_host(config.server.host):
            names.add(config.server.host.strip("[]").lower())
        allowed: set[tuple[str, int | None]] = {(name, port) for name in names}
        for entry in config.simulator.allowed_hosts:
            parts = urlsplit(f"//{entry}")
            if parts.hostname:
                allowed.add((parts.hostname, parts.port))
        mb = config.simulator.max_upload_mb
        return cls(frozenset(allowed), mb * 1024 * 1024 + BODY_HEADROOM_BYTES, mb, port, token)

    def _allows(self, authority: str, scheme: str) -> bool:
        found = _host_and_port(authority, scheme)
        return found is not None and (found in self.allowed or (found[0], None) in self.allowed)

    def screen(self, request: Request) -> Response | None:
        """A refusal for a request that must not reach the simulator, else None."""
        example = f"http://127.0.0.1:{self.port}/sim"
        if not self._allows(request.headers.get("host", ""), request.url.scheme):
            return _refuse(403, f"模拟器只能通过本机地址（例如 {example}）或 [simulator] allowed_hosts 里的地址打开。")
        if not self._origin_allowed(request.headers.get("origin")):
            return _refuse(403, f"拒绝来自其他网页的请求。请直接在浏览器里打开模拟器，例如 {example}。")
        if self.token is not None and self._presented_token(request) is None:
            return _refuse(
                401,
                "模拟器需要口令：请用 /sim?token=口令 打开一次页面（之后浏览器会记住），"
                "或在请求头里带 Authorization: Bearer 口令。",
            )
        return self._declared_size_refusal(request.headers.get("content-length"))

    def _origin_allowed(self, origin: str | None) -> bool:
        """No Origin (not sent by a browser's cross-site request), or one of the allowed addresses."""
        if origin is None:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and self._allows(parts.netloc, parts.scheme)

    def _declared_size_refusal(self, declared: str | None) -> Response | None:
        if declared is None:
            return None  # a chunked body: `capped` counts it as it streams
        try:
            size = int(declared.strip(), 10)
        except ValueError:
            size = -1
        if size < 0:
            return _refuse(400, "请求头 Content-Length 不是一个数字。")
        return self.too_large() if size > self.max_body_bytes else None

    def too_large_detail(self) -> str:
        return f"上传的内容太大，请不要超过 {self.max_upload_mb} MB（例如先把照片压缩一下）。"

    def too_large(self) -> JSONResponse:
        return _refuse(413, self.too_large_detail())

    def _presented_token(self, request: Request) -> str | None:
        """Where a valid token came from ("header", "cookie", "query"), or None."""
        if self.token is None:
            return None
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        candidates = {
            "header": bearer.strip() if scheme.lower() == "bearer" else "",
            "cookie": request.cookies.get(TOKEN_COOKIE, ""),
            "query": request.query_params.get("token", ""),
        }
        expected = self.token.encode()
        for source, value in candidates.items():
            if value and hmac.compare_digest(value.encode(), expected):
                return source
        return None

    def remember_token(self, request: Request, response: Response) -> None:
        """Keep a token given as ?token= in a cookie that scripts and other sites cannot use."""
        if self.token is not None and self._presented_token(request) == "query":
            response.set_cookie(
                TOKEN_COOKIE, self.token, path="/sim", httponly=True, samesite="strict",
                secure=request.url.scheme == "https",
            )
            response.headers["Referrer-Policy"] = "no-referrer"

    def capped(self, receive: Receive) -> Receive:
        """`receive` that refuses with 413 as soon as the streamed body passes the limit (chunked bodies too)."""
        seen = 0

        async def capped_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise HTTPException(413, self.too_large_detail())
            return message

        return capped_receive


def guarded_route_class(guard: SimulatorGuard) -> type[APIRoute]:
    """A route class that screens each simulator request before FastAPI parses its body."""

    class GuardedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                refusal = guard.screen(request)
                if refusal is not None:
                    return refusal
                response = await handler(Request(request.scope, guard.capped(request.receive)))
                guard.remember_token(request, response)
                return response

            return guarded

    return GuardedRoute




def simulator_token(config: Config, secrets: Secrets) -> tuple[str | None, str | None]:
    """(the token /sim requires or None, why /sim must stay unmounted or None)."""
    sim = config.simulator
    token = secrets.get(sim.token_env) if sim.token_env else None
    if token and len(token) < MIN_TOKEN_CHARS:
        return None, f"simulator NOT mounted: ${sim.token_env} is shorter than {MIN_TOKEN_CHARS} characters"
    if token or is_loopback_host(config.server.host):
        return token or None, None
    missing = f"${sim.token_env} is empty" if sim.token_env else "no [simulator] token_env is set"
    return None, (
        f"simulator NOT mounted: server.host {config.server.host!r} listens beyond this machine and {missing}; "
        "set [simulator] token_env to the NAME of an env var holding a long random token, or enabled = false"
    )

