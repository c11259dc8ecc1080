"""DingTalk Stream mode: one robot's outbound WebSocket through the `dingtalk-stream` SDK, with our fixes.

The SDK classes are subclassed lazily (`stream_classes`), so the app starts where dingtalk-stream is not installed.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote_plus

import anyio
import httpx

from bot.config import DingTalkRobot
from bot.logging_setup import redact
from bot.platforms.base import Runtime, Service
from bot.platforms.dingtalk.context import DingTalkContext
from bot.platforms.dingtalk.cards import CARD_TOPIC
from bot.platforms.dingtalk.inbound import Photos, Schedule, accept, accept_card_tap
from bot.platforms.dingtalk.limits import STREAM_TOPIC
from bot.platforms.dingtalk.limits import PLATFORM
from bot.untrusted import MalformedPayload

log = logging.getLogger(__name__)
SDK_LOGGER = "bot.platforms.dingtalk.stream"
RECONNECT_MAX_SECONDS = 60.0


def _open_answer(response: httpx.Response, client_secret: str) -> dict[str, Any] | None:
    """The gateway's {endpoint, ticket} from its answer to connections/open; None (logged) when unusable."""
    if response.status_code != 200:
        log.warning("dingtalk stream: open connection: HTTP %s %s", response.status_code,
                    redact(response.text[:300], client_secret))
        return None
    try:
        answer = response.json()
    except ValueError:
        return None
    if not isinstance(answer, dict) or not answer.get("endpoint") or not answer.get("ticket"):
        return None
    return answer


class _StreamClientFixes:
    """The SDK client with three changes, because the SDK hard-codes or blocks them.

    * The gateway URL comes from `dingtalk.api_base` (the SDK uses a class constant fixed at import).
    * Opening the connection uses our async httpx client (the SDK calls `requests` on the event loop).
    * `start()` is replaced: websockets' own keepalive detects dead connections (the SDK's
      ping task can hang), reconnects back off with jitter, and cancellation is not swallowed.
    Frames are still parsed and acknowledged by the SDK's classes and handlers (mixed in before
    `dingtalk_stream.DingTalkStreamClient`, see `_stream_client_class`).
    """

    # Provided by dingtalk_stream.DingTalkStreamClient:
    credential: Any
    callback_handler_map: dict[str, Any]
    system_handler: Any
    websocket: Any
    _is_event_required: bool
    get_host_ip: Callable[[], str]
    pre_start: Callable[[], None]

    def __init__(self, credential: Any, *, api_base: str, http: httpx.AsyncClient) -> None:
        super().__init__(credential, logger=logging.getLogger(SDK_LOGGER))  # type: ignore[call-arg]  # a mixin: super() is the SDK's client at run time
        self.open_connection_api = f"{api_base.rstrip('/')}/v1.0/gateway/connections/open"
        self.http = http

    async def open_connection_async(self) -> dict[str, Any] | None:
        """POST /v1.0/gateway/connections/open with the SDK's own request body."""
        from dingtalk_stream.version import VERSION_STRING

        topics = [{"type": "CALLBACK", "topic": topic} for topic in self.callback_handler_map]
        if self._is_event_required:
            topics.insert(0, {"type": "EVENT", "topic": "*"})
        body = {
            "clientId": self.credential.client_id,
            "clientSecret": self.credential.client_secret,
            "subscriptions": topics,
            "ua": f"dingtalk-sdk-python/v{VERSION_STRING}-union",
            "localIp": await anyio.to_thread.run_sync(self.get_host_ip),
        }
        try:
            response = await self.http.post(self.open_connection_api, json=body)
        except httpx.HTTPError as exc:
            log.warning("dingtalk stream: open connection failed: %s", redact(str(exc)))
            return None
        return _open_answer(response, self.credential.client_secret)

    async def route_frame(self, websocket: Any, frame: dict[str, Any]) -> None:
        """Answer one frame: ping → echo, disconnect → close, CALLBACK → handler → ACK."""
        from dingtalk_stream.frames import CallbackMessage, SystemMessage

        kind = frame.get("type", "")
        ack = None
        if kind == SystemMessage.TYPE:
            system = SystemMessage.from_dict(frame)
            ack = await self.system_handler.raw_process(system)
            if system.headers.topic == SystemMessage.TOPIC_DISCONNECT:
                log.info("dingtalk stream: the server asked to reconnect")
                await websocket.close()
                return
        elif kind == CallbackMessage.TYPE:
            callback = CallbackMessage.from_dict(frame)
            handler = self.callback_handler_map.get(callback.headers.topic)
            if handler is None:
                log.warning("dingtalk stream: no handler for topic %s", callback.headers.topic)
                return
            ack = await handler.raw_process(callback)
        else:
            log.info("dingtalk stream: ignored a %s frame", kind or "typeless")
            return
        if ack is not None:
            await websocket.send(json.dumps(ack.to_dict()))

    async def start(self) -> None:
        """Open a connection and serve it, again and again with backed-off jittered waits, until cancelled."""
        self.pre_start()
        delay = 1.0
        while True:
            connection = await self.open_connection_async()
            if connection is not None:
                uri = f'{connection["endpoint"]}?ticket={quote_plus(connection["ticket"])}'
                if await self._serve(uri):
                    delay = 1.0
            await anyio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _serve(self, uri: str) -> bool:
        """Read frames from one connection until it closes; True when it was connected at all."""
        import websockets

        connected = False
        try:
            async with websockets.connect(uri, open_timeout=15, ping_interval=30, ping_timeout=20) as websocket:
                self.websocket = websocket
                connected = True
                log.info("dingtalk stream connected")
                async with anyio.create_task_group() as frames:
                    async for raw in websocket:
                        try:
                            frame = json.loads(raw)
                        except ValueError:
                            continue
                        frames.start_soon(self._safe_route, websocket, frame)
        except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as exc:
            log.warning("dingtalk stream disconnected: %s", redact(str(exc)))
        except Exception:  # the app's task group must never see this service fail
            log.exception("dingtalk stream failed; reconnecting")
        finally:
            self.websocket = None
        return connected

    async def _safe_route(self, websocket: Any, frame: dict[str, Any]) -> None:
        import websockets

        try:
            await self.route_frame(websocket, frame)
        except websockets.exceptions.ConnectionClosed:
            pass
        except Exception:
            log.exception("dingtalk stream: handling a frame failed")


class _BotMessages:
    """Records each robot message and ACKs at once; the work runs in the service's task group.

    Mixed in before `dingtalk_stream.CallbackHandler` (see `_message_handler_class`).
    """

    def __init__(
        self, ctx: DingTalkContext, runtime: Runtime, robot: DingTalkRobot, schedule: Schedule, photos: Photos
    ) -> None:
        super().__init__()
        self.logger = logging.getLogger(SDK_LOGGER)
        self.ctx = ctx
        self.photos = photos  # a message's picture download, run after the ack
        self.runtime = runtime
        self.robot = robot
        self.schedule = schedule

    async def process(self, message: Any) -> tuple[int, str]:
        from dingtalk_stream.frames import AckMessage

        data = message.data if isinstance(message.data, dict) else {}
        await self.ctx.meter.count(PLATFORM, "stream_message")  # Stream pushes count as API calls
        try:
            await accept(self.ctx, self.runtime, data, self.robot, self.schedule, self.photos)
        except MalformedPayload as exc:  # sending it again would not make it readable
            log.warning("dingtalk stream: ignored a message: %s", exc)
            return AckMessage.STATUS_OK, "OK"
        except Exception:
            log.exception("dingtalk stream: recording a message failed")
            return AckMessage.STATUS_SYSTEM_EXCEPTION, "error"
        return AckMessage.STATUS_OK, "OK"


class _CardTaps(_BotMessages):
    """Records each tap on one of our interactive cards (topic /v1.0/card/instances/callback) and ACKs at once."""

    async def process(self, message: Any) -> tuple[int, str]:
        from dingtalk_stream.frames import AckMessage

        data = message.data if isinstance(message.data, dict) else {}
        message_id = str(getattr(message.headers, "message_id", "") or "")
        try:
            await accept_card_tap(self.ctx, self.runtime, data, self.robot, self.schedule, message_id)
        except Exception:
            log.exception("dingtalk stream: recording a card tap failed")
            return AckMessage.STATUS_SYSTEM_EXCEPTION, "error"
        return AckMessage.STATUS_OK, "OK"


def _stream_client_class() -> type:
    """`_StreamClientFixes` on the SDK's client class (imported only now: the app starts without the SDK)."""
    import dingtalk_stream

    return type("StreamClient", (_StreamClientFixes, dingtalk_stream.DingTalkStreamClient), {})


def _message_handler_class() -> type:
    """`_BotMessages` on the SDK's callback handler class."""
    import dingtalk_stream

    return type("BotMessageHandler", (_BotMessages, dingtalk_stream.CallbackHandler), {})


@functools.cache
def stream_classes() -> tuple[type, type]:
    """(StreamClient, BotMessageHandler), built once, on first use."""
    return _stream_client_class(), _message_handler_class()


@functools.cache
def card_tap_handler_class() -> type:
    """`_CardTaps` on the SDK's callback handler class (issue 15)."""
    import dingtalk_stream

    return type("CardTapHandler", (_CardTaps, dingtalk_stream.CallbackHandler), {})


async def _safely(job: Callable[..., Awaitable[None]], *args: Any) -> None:
    try:
        await job(*args)
    except Exception:  # one message's failure must not end the connection's task group
        log.exception("dingtalk stream: handling a message failed")


def stream_service(ctx: DingTalkContext, robot: DingTalkRobot, runtime: Runtime, photos: Photos) -> Service:
    """A long-running job keeping one robot's Stream connection (started with the app)."""

    async def run() -> None:
        creds = ctx.app_credentials(robot_id=robot.id)
        if creds is None:
            log.error("dingtalk robot %s (stream): app_key / app_secret not set; not connecting", robot.id)
            return
        import dingtalk_stream

        client_class, handler_class = stream_classes()
        client = client_class(
            dingtalk_stream.Credential(creds.app_key, creds.app_secret), api_base=ctx.config.dingtalk.api_base,
            http=ctx.http,
        )
        async with anyio.create_task_group() as work:
            schedule: Schedule = lambda job, *args: work.start_soon(_safely, job, *args)  # noqa: E731
            client.register_callback_handler(STREAM_TOPIC, handler_class(ctx, runtime, robot, schedule, photos))
            if ctx.config.cards.enabled and ctx.config.cards.dingtalk_template_id:  # taps on our cards (issue 15)
                client.register_callback_handler(CARD_TOPIC, card_tap_handler_class()(ctx, runtime, robot, schedule, photos))
            await client.start()

    return run
