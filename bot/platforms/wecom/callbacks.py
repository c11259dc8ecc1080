"""WeCom's HTTP callbacks: URL verification, and verify → decrypt → record → acknowledge for each message."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup
from fastapi.responses import PlainTextResponse, Response
from sqlmodel import Session
from starlette.background import BackgroundTasks
from starlette.requests import Request
from starlette.routing import Route
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidSignatureException

from bot.platforms.base import Runtime
from bot.platforms.wecom.context import WeComContext
from bot.platforms.wecom.cards import pending_card
from bot.platforms.wecom.crypto import CallbackCredentials, ReplayGuard, replay_key, timestamp_ok
from bot.platforms.wecom.inbound import (
    CallbackRejected, ParsedMessage, StreamRefresh, envelope, parse_plain, stream_robot, to_inbound,
)
from bot.platforms.wecom.limits import (
    CARD_ANSWER_SECONDS, CHANNEL_PASSIVE, HANDLER_SLOTS, MAX_BODY_BYTES, PASSIVE_POLL_SECONDS, STREAM_DONE_TEXT,
    STREAM_WAIT_TEXT,
)
from bot.platforms.wecom.media import download_of
from bot.untrusted import ascii_int
from models.outbox import Held, take_held
from models.platform_queries import name_of_wecom_user

log = logging.getLogger(__name__)


def _stream_wait(stream_id: str) -> dict[str, Any]:
    """An unfinished stream: WeCom shows it and calls back for more (refreshes) for up to 6 minutes."""
    return {"msgtype": "stream", "stream": {"id": stream_id, "finish": False, "content": STREAM_WAIT_TEXT}}


class CallbackReceiver:
    """The /wecom/callback routes of one runtime, and the task group their handlers run in."""

    def __init__(
        self, ctx: WeComContext, runtime: Runtime, replays: ReplayGuard, clock: Callable[[], float]
    ) -> None:
        self.ctx = ctx
        self.runtime = runtime
        self.replays = replays
        self.clock = clock
        self._tasks: TaskGroup | None = None
        self._handler_slots: anyio.CapacityLimiter | None = None

    async def run_handlers(self) -> None:
        """App service: own the task group handlers run in, so a callback's HTTP exchange ends at the ack.

        (A BackgroundTask would keep the keep-alive connection busy until the handler finished, so the
        platform's next callback on that connection would wait for it.)
        """
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            try:
                await anyio.sleep_forever()
            finally:
                self._tasks = None

    def _start_work(self, background: BackgroundTasks, inbound_id: int, route: dict[str, Any]) -> None:
        """After the ack: download the message's photos (when it has any) here, then hand it over."""
        download = download_of(self.ctx, route)
        if self._tasks is None:  # the app's services are not running (lifespan off): after the response
            self.runtime.after_ack(inbound_id, background.add_task, self.runtime.work, download)
        else:
            self.runtime.after_ack(inbound_id, self._tasks.start_soon, self._work, download)

    async def _work(self, inbound_id: int) -> None:
        # A failure must not tear down the task group (and with it the app); recovery retries the message.
        if self._handler_slots is None:
            self._handler_slots = anyio.CapacityLimiter(HANDLER_SLOTS)
        try:
            async with self._handler_slots:
                await self.runtime.work(inbound_id)
        except Exception:
            log.exception("wecom: handling inbound message %s failed", inbound_id)

    def routes(self) -> list[Route]:
        """GET (URL verification) and POST (messages) on /wecom/callback[/{credential_id}].

        Plain Starlette routes: a callback needs no FastAPI dependency solving, and every callback pays for it.
        """

        async def endpoint(request: Request) -> Response:
            credential_id = request.path_params.get("credential_id")
            if request.method == "POST":
                return await self.callback(request, credential_id)
            return self.verify_url(request.query_params, credential_id)

        return [Route(path, endpoint, methods=["GET", "POST"], include_in_schema=False)
                for path in ("/wecom/callback", "/wecom/callback/{credential_id}")]

    def _candidates(self, credential_id: str | None) -> list[CallbackCredentials]:
        found = self.ctx.callback_credentials()
        if credential_id is not None:
            found = [c for c in found if c.id == credential_id or c.group == credential_id]
        return found

    def _authenticate(
        self, params: Any, encrypt: str, credential_id: str | None
    ) -> tuple[CallbackCredentials, str]:
        """Check timestamp and signature, then decrypt; raises CallbackRejected."""
        signature = str(params.get("msg_signature", ""))
        timestamp = str(params.get("timestamp", ""))
        nonce = str(params.get("nonce", ""))
        if not signature or not timestamp or not nonce:
            raise CallbackRejected(403, "missing msg_signature, timestamp or nonce")
        if not timestamp_ok(timestamp, self.clock()):
            raise CallbackRejected(403, "timestamp outside the allowed window")
        for creds in self._candidates(credential_id):
            if creds.matches(signature, timestamp, nonce, encrypt):
                try:
                    plain = creds.crypto().decrypt_message({"Encrypt": encrypt}, signature, timestamp, nonce)
                except (InvalidSignatureException, InvalidCorpIdException) as exc:
                    raise CallbackRejected(403, f"signature or receiveid check failed ({type(exc).__name__})")
                except Exception as exc:
                    raise CallbackRejected(400, f"cannot decrypt ({type(exc).__name__})") from None
                return creds, plain
        raise CallbackRejected(403, "bad msg_signature")

    def verify_url(self, params: Any, credential_id: str | None) -> Response:
        """The URL check: return the decrypted echostr as plain text (no quotes, no newline)."""
        echostr = str(params.get("echostr", ""))
        if not echostr:
            return PlainTextResponse("missing echostr", status_code=400)
        attempts = [echostr] if " " not in echostr else [echostr, echostr.replace(" ", "+")]
        reason = "bad msg_signature"
        for candidate in attempts:  # a doubly decoded query turns "+" into " "
            try:
                _, plain = self._authenticate(params, candidate, credential_id)
                return PlainTextResponse(plain)
            except CallbackRejected as exc:
                reason = exc.reason
                if exc.status != 403:
                    return PlainTextResponse(exc.reason, status_code=exc.status)
        log.warning("wecom URL verification refused: %s", reason)
        return PlainTextResponse("forbidden", status_code=403)

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and (ascii_int(declared) or 0) > MAX_BODY_BYTES:
            raise CallbackRejected(413, "body too large")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise CallbackRejected(413, "body too large")
            chunks.append(chunk)
        return b"".join(chunks)

    async def callback(self, request: Request, credential_id: str | None) -> Response:
        """Verify, decrypt, record and acknowledge a POSTed callback; the handler runs afterwards.

        With cards in callback mode a message is acknowledged with an unfinished stream, a stream refresh
        is answered with the held reply once it is there, and a card tap with the updated card (issue 15)."""
        started = anyio.current_time()
        try:
            body = await self._read_body(request)
            encrypt, _ = envelope(body)
            params = request.query_params
            signature, nonce = str(params.get("msg_signature", "")), str(params.get("nonce", ""))
            creds, plain = self._authenticate(params, encrypt, credential_id)
            replayed = await self._replayed(signature, nonce)
            parsed = parse_plain(plain)
        except CallbackRejected as exc:
            log.warning("wecom callback refused (%s): %s", exc.status, exc.reason)
            return PlainTextResponse(exc.reason, status_code=exc.status)
        if replayed:
            # A platform retry repeats the exact request; it was recorded the first time. A message held for
            # a stream gets the same acknowledgement again (its first may be what got lost); a replayed
            # refresh or tap gets nothing, so a replay can never take a held reply.
            log.info("wecom callback: replayed signature/nonce ignored")
            if isinstance(parsed, ParsedMessage) and parsed.card_task_id is None:
                _, route = to_inbound(self.ctx, parsed, creds)
                if route.get("mode") == "stream":
                    return self._passive(creds, _stream_wait(str(route["stream_id"])), nonce)
            return Response(status_code=200)
        if isinstance(parsed, StreamRefresh):
            await self._remember(signature, nonce)
            return self._passive(creds, await self._refresh(parsed.stream_id), nonce)
        if parsed is None or (parsed.card_task_id is not None and not creds.bot):
            # other events, unsupported types: acknowledged, nothing to do
            await self._remember(signature, nonce)
            return Response(status_code=200)
        msg, route = to_inbound(self.ctx, parsed, creds)
        inbound_id = await self.runtime.record(msg, route)
        await self._remember(signature, nonce)
        background = BackgroundTasks()
        if inbound_id is not None:
            self._start_work(background, inbound_id, route)
        else:
            log.info("wecom callback: message %s already recorded (platform retry)", parsed.msg_id)
        after = background if background.tasks else None
        if route.get("mode") == "stream":  # the reply is held for the refreshes of this stream
            return self._passive(creds, _stream_wait(str(route["stream_id"])), nonce, background=after)
        if route.get("mode") == "card":
            answer = await self._card_answer(parsed, str(route["robot"]), started + CARD_ANSWER_SECONDS)
            return self._passive(creds, answer, nonce, background=after)
        return Response(status_code=200, background=after)

    def _passive(
        self, creds: CallbackCredentials, body: dict[str, Any] | None, nonce: str, *, background: Any = None
    ) -> Response:
        """The callback's encrypted answer (with its own nonce); an empty 200 when there is nothing to say."""
        if body is None:
            return Response(status_code=200, background=background)
        answer = creds.passive_reply(body, nonce=nonce, timestamp=str(int(self.clock())))
        return Response(answer, media_type="application/json", background=background)

    async def _take(self, robot: str) -> Held:
        # Shielded: once the row is marked sent, its answer must not be lost to the caller's deadline.
        held = Held()
        with anyio.CancelScope(shield=True):
            held = await anyio.to_thread.run_sync(
                lambda: take_held(self.ctx.db, channel=CHANNEL_PASSIVE, robot=robot, now=self.ctx.now()))
        return held

    async def _refresh(self, stream_id: str) -> dict[str, Any]:
        """A stream refresh: the held reply, finished (with its card), once the handler has put it there."""
        held = await self._take(stream_robot(stream_id))
        if held.row is None and not held.done:
            return _stream_wait(stream_id)
        if held.row is None:  # given already (by response_url after the refresh window, or an earlier refresh)
            return {"msgtype": "stream", "stream": {"id": stream_id, "finish": True, "content": STREAM_DONE_TEXT}}
        payload = json.loads(held.row.payload or "{}")
        stream = {"id": stream_id, "finish": True, "content": str(payload.get("content") or "")}
        if isinstance(payload.get("card"), dict):
            return {"msgtype": "stream_with_template_card", "stream": stream, "template_card": payload["card"]}
        return {"msgtype": "stream", "stream": stream}

    async def _card_answer(self, tap: ParsedMessage, robot: str, deadline: float) -> dict[str, Any] | None:
        """Wait (until `deadline`) for the tap's answer and update the card with it; if it would come too
        late, say on the card that it is being processed (the answer then goes by the normal path).
        None: a repeated callback whose answer was already given."""
        with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
            while True:
                held = await self._take(robot)
                if held.row is not None:
                    card = json.loads(held.row.payload or "{}").get("card")
                    return {"response_type": "update_template_card", "template_card": card}
                if held.done:
                    return None
                await anyio.sleep(PASSIVE_POLL_SECONDS)
        who = await anyio.to_thread.run_sync(self._name_of, tap.user_id)
        card = pending_card(key=tap.text, who=who, task_id=str(tap.card_task_id))
        return {"response_type": "update_template_card", "template_card": card}

    def _name_of(self, userid: str) -> str:
        with Session(self.ctx.db) as session:
            return name_of_wecom_user(session, userid) or userid

    async def _replayed(self, signature: str, nonce: str) -> bool:
        """Seen within the window, by this process or (with Redis) by any replica."""
        if self.replays.seen(signature, nonce):
            return True
        shared = self.runtime.shared
        return shared is not None and bool(await shared.exists(replay_key(signature, nonce)))

    async def _remember(self, signature: str, nonce: str) -> None:
        self.replays.remember(signature, nonce)
        if self.runtime.shared is not None:
            await self.runtime.shared.add_once(replay_key(signature, nonce), 2 * self.replays.window)
