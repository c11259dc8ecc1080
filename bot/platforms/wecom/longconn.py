"""WeCom's 智能机器人 long connection (WebSocket): subscribe, heartbeat, receive callbacks, send frames."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
from anyio.abc import TaskGroup

from bot.config import WeComBot
from bot.platforms.base import Runtime
from bot.platforms.wecom.context import WeComContext
from bot.platforms.wecom.inbound import parse_aibot_message, parse_card_event, to_inbound
from bot.platforms.wecom.media import download_of
from bot.platforms.wecom.limits import HEARTBEAT_SECONDS, WS_ACK_TIMEOUT_SECONDS, WS_RECONNECT_MAX_SECONDS

log = logging.getLogger(__name__)


@dataclass
class WsConnection:
    """One 智能机器人 long connection: subscribe, heartbeat, receive callbacks, send replies."""

    ctx: WeComContext
    bot: WeComBot
    url: str
    heartbeat_seconds: float = HEARTBEAT_SECONDS
    ready: bool = False
    _ws: Any = None
    _pending: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def run_forever(self, runtime: Runtime) -> None:
        """Connect, and reconnect with back-off, until cancelled; never raises into the app.

        Messages received are recorded and worked on through `runtime`."""
        try:
            from websockets.asyncio.client import connect
        except ImportError:
            log.error("wecom bot %s: mode=websocket needs the 'websockets' package", self.bot.id)
            return
        secrets = self.ctx.secrets
        bot_id = secrets.credential(self.bot.credentials, "bot_id")
        secret = secrets.credential(self.bot.credentials, "secret")
        if not bot_id or not secret:
            log.error("wecom bot %s: credentials.bot_id / credentials.secret are not set", self.bot.id)
            return
        delay = 1.0
        async with anyio.create_task_group() as work:
            while True:
                try:
                    async with connect(self.url, open_timeout=10, ping_interval=None, max_size=16 * 1024 * 1024) as ws:
                        self._ws = ws
                        await self._session(ws, bot_id, secret, work, runtime)
                        delay = 1.0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("wecom bot %s long connection: %s", self.bot.id,
                                self.ctx.redact(f"{type(exc).__name__}: {exc}"))
                finally:
                    self.ready = False
                    self._ws = None
                    for future in self._pending.values():
                        if not future.done():
                            future.set_exception(ConnectionError("long connection closed"))
                    self._pending.clear()
                await anyio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, WS_RECONNECT_MAX_SECONDS)

    async def _session(self, ws: Any, bot_id: str, secret: str, work: TaskGroup, runtime: Runtime) -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._reader, ws, work, runtime)
            ack = await self.request(
                {"cmd": "aibot_subscribe", "headers": {"req_id": f"aibot_subscribe_{uuid.uuid4().hex}"},
                 "body": {"bot_id": bot_id, "secret": secret}},
                ready_required=False,
            )
            if ack.get("errcode", 0) != 0:
                raise ConnectionError(f"subscribe refused: errcode {ack.get('errcode')} {ack.get('errmsg', '')}")
            log.info("wecom bot %s: long connection subscribed", self.bot.id)
            self.ready = True
            runtime.sender.kick()
            tasks.start_soon(self._heartbeat, ws)

    async def _heartbeat(self, ws: Any) -> None:
        missed = 0
        while True:
            await anyio.sleep(self.heartbeat_seconds)
            try:
                await self.request({"cmd": "ping", "headers": {"req_id": f"ping_{uuid.uuid4().hex}"}},
                                   ready_required=False)
                missed = 0
            except TimeoutError:
                missed += 1
                if missed >= 2:
                    await ws.close()
                    return

    async def _reader(self, ws: Any, work: TaskGroup, runtime: Runtime) -> None:
        async for raw in ws:
            try:
                frame = json.loads(raw)
            except ValueError:
                log.warning("wecom bot %s: a frame that is not JSON was ignored", self.bot.id)
                continue
            if not isinstance(frame, dict):
                continue
            cmd = frame.get("cmd")
            req_id = str((frame.get("headers") or {}).get("req_id", ""))
            if cmd == "aibot_msg_callback":
                await self._on_message(frame.get("body") or {}, req_id, work, runtime)
            elif cmd == "aibot_event_callback":
                event = ((frame.get("body") or {}).get("event") or {}).get("eventtype")
                if event == "disconnected_event":
                    log.warning("wecom bot %s: another connection took over this bot", self.bot.id)
                elif event == "template_card_event":  # a tap on a card's button (issue 15)
                    await self._on_card_event(frame.get("body") or {}, req_id, work, runtime)
            elif not cmd:
                future = self._pending.pop(req_id, None)
                if future is not None and not future.done():
                    future.set_result(frame)
        raise ConnectionError("closed by server")

    async def _on_message(self, body: dict[str, Any], req_id: str, work: TaskGroup, runtime: Runtime) -> None:
        parsed = parse_aibot_message(body) if isinstance(body, dict) else None
        if parsed is None:
            return
        msg, route = to_inbound(self.ctx, parsed, None, ws_bot=self.bot.id, req_id=req_id)
        inbound_id = await runtime.record(msg, route)
        if inbound_id is not None:  # the photos are downloaded here, after the ack, then the message handed over
            runtime.after_ack(
                inbound_id, work.start_soon, partial(self._work, runtime=runtime), download_of(self.ctx, route)
            )

    async def _on_card_event(self, body: dict[str, Any], req_id: str, work: TaskGroup, runtime: Runtime) -> None:
        """A tap is recorded and handled as the command its button stands for; the answer updates the card."""
        parsed = parse_card_event(body) if isinstance(body, dict) else None
        if parsed is None:
            return
        msg, route = to_inbound(self.ctx, parsed, None, ws_bot=self.bot.id, req_id=req_id)
        inbound_id = await runtime.record(msg, route)
        if inbound_id is not None:  # None: WeCom repeated the same event; it was handled the first time
            runtime.after_ack(inbound_id, work.start_soon, partial(self._work, runtime=runtime))

    async def _work(self, inbound_id: int, runtime: Runtime) -> None:
        # A failure here must not tear down the long connection's task group (and with it the app).
        try:
            await runtime.work(inbound_id)
        except Exception:
            log.exception("wecom bot %s: handling inbound message %s failed", self.bot.id, inbound_id)

    async def request(
        self, frame: dict[str, Any], *, timeout: float = WS_ACK_TIMEOUT_SECONDS, ready_required: bool = True
    ) -> dict[str, Any]:
        """Send a frame and wait for its ack (same req_id); frames of one req_id go one at a time."""
        ws = self._ws
        if ws is None or (ready_required and not self.ready):
            raise ConnectionError("not connected")
        req_id = str(frame["headers"]["req_id"])
        lock = self._locks.setdefault(req_id, asyncio.Lock())
        async with lock:
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending[req_id] = future
            try:
                await ws.send(json.dumps(frame, ensure_ascii=False))
                return await asyncio.wait_for(future, timeout)
            finally:
                self._pending.pop(req_id, None)
        if not lock.locked():
            self._locks.pop(req_id, None)
