"""Calling DingTalk: OpenAPI with a cached access token per app, media upload, robot posts, errors as results."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from bot.logging_setup import redact
from bot.outbox import DeliveryResult, answer_reason, platform_error
from bot.platforms.dingtalk.context import AppCredentials
from bot.platforms.dingtalk.inbound import as_int
from bot.platforms.dingtalk.limits import (
    MAX_MEDIA_BYTES, PLATFORM, RATE_LIMIT_CODES, TOKEN_CODES, TOKEN_MARGIN_SECONDS, TRANSIENT_CODES,
)
from bot.platforms.http import JsonPoster
from bot.shared import SharedCache
from bot.usage import WEBHOOK_KIND_PREFIX, CallMeter


class DingTalkError(Exception):
    """A DingTalk call failed; `result` says whether to retry (the message is already redacted)."""

    def __init__(self, result: DeliveryResult) -> None:
        super().__init__(result.error)
        self.result = result


class _TokenRejected(Exception):
    """The access token was refused (expired or revoked): refresh once and try again."""


def errcode_result(body: Mapping[str, Any], what: str) -> DeliveryResult | None:
    """None for errcode 0; otherwise retry/fail by DingTalk's legacy errcode."""
    code = as_int(body.get("errcode"))
    if code in (0, None):
        return None
    error = f"{what}: {platform_error({'errcode': code, 'errmsg': str(body.get('errmsg') or '')})}"
    if code in RATE_LIMIT_CODES:
        return DeliveryResult.retry(error, rate_limited=True)
    if code in TRANSIENT_CODES:
        return DeliveryResult.retry(error)
    return DeliveryResult.fail(error)


def has_errcode(error: str, code: int) -> bool:
    """Whether a delivery error (as `errcode_result` words it) carries this errcode."""
    return f"errcode {code}:" in error or error.endswith(f"errcode {code}")


def _token_key(creds: AppCredentials) -> str:
    return f"dingtalk:token:{creds.app_key}"


class DingTalkApi:
    """OpenAPI calls with a cached access token per app; every failure becomes a DingTalkError."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_base: str,
        oapi_base: str,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedCache | None = None,
        meter: CallMeter | None = None,
    ) -> None:
        self.http = http
        self.poster = JsonPoster(http)  # robot messages: one post per reply delivered
        self.meter = meter  # counts every call against the month's budget (bot/usage.py)
        self.shared = shared  # with Redis, one token per app for every replica
        self.api_base = api_base.rstrip("/")
        self.oapi_base = oapi_base.rstrip("/")
        self.clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._media: OrderedDict[tuple[str, str], str] = OrderedDict()  # (app, sha256) -> media_id
        self.token_requests = 0

    def _fail(self, response: httpx.Response, what: str, *secrets: str) -> DingTalkError:
        # The status and the platform's own error code are kept; the body itself never is (see answer_reason).
        error = redact(f"{what}: {answer_reason(response.status_code, response.content)}", *secrets)
        text = response.text[:500].lower()
        if response.status_code == 429 or "throttl" in text or "qpslimit" in text:
            retry_after = response.headers.get("Retry-After")
            return DingTalkError(DeliveryResult.retry(error, rate_limited=True, retry_after=retry_after))
        if response.status_code >= 500:
            return DingTalkError(DeliveryResult.retry(error))
        return DingTalkError(DeliveryResult.fail(error))

    async def access_token(self, creds: AppCredentials) -> str:
        """A cached token, fetched from /v1.0/oauth2/accessToken when missing or about to expire."""
        cached = self._tokens.get(creds.app_key)
        if cached and self.clock() < cached[1]:
            return cached[0]
        lock = self._locks.setdefault(creds.app_key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(creds.app_key)
            if cached and self.clock() < cached[1]:
                return cached[0]
            if self.shared is not None:
                found = await self.shared.get(_token_key(creds))
                if found is not None:
                    self._tokens[creds.app_key] = (found[0], self.clock() + found[1])
                    return found[0]
            self.token_requests += 1
            await self._count("access_token")
            response = await self.http.post(
                f"{self.api_base}/v1.0/oauth2/accessToken",
                json={"appKey": creds.app_key, "appSecret": creds.app_secret},
            )
            if response.status_code != 200:
                raise self._fail(response, "get access token", creds.app_secret)
            body = response.json()
            token = str(body.get("accessToken") or "")
            if not token:
                raise DingTalkError(DeliveryResult.fail("get access token: no accessToken in the answer"))
            lifetime = max(60.0, float(body.get("expireIn") or 7200) - TOKEN_MARGIN_SECONDS)
            self._tokens[creds.app_key] = (token, self.clock() + lifetime)
            if self.shared is not None:
                await self.shared.put(_token_key(creds), token, lifetime)
            return token

    async def invalidate(self, creds: AppCredentials, token: str) -> None:
        """Forget a refused token (unless another call already replaced it)."""
        cached = self._tokens.get(creds.app_key)
        if cached and cached[0] == token:
            del self._tokens[creds.app_key]
        if self.shared is not None:
            await self.shared.delete_if(_token_key(creds), token)

    async def _with_token(self, creds: AppCredentials, call: Callable[[str], Awaitable[Any]]) -> Any:
        token = await self.access_token(creds)
        try:
            return await call(token)
        except _TokenRejected:
            await self.invalidate(creds, token)
        token = await self.access_token(creds)
        try:
            return await call(token)
        except _TokenRejected:
            await self.invalidate(creds, token)
            raise DingTalkError(DeliveryResult.retry("access token refused twice")) from None

    async def _count(self, kind: str) -> None:
        if self.meter is not None:
            await self.meter.count(PLATFORM, kind)

    async def _api_post(self, token: str, path: str, body: dict[str, Any], what: str, method: str = "POST") -> dict[str, Any]:
        await self._count(what.replace(" ", "_"))
        response = await self.http.request(
            method, f"{self.api_base}{path}", json=body, headers={"x-acs-dingtalk-access-token": token}
        )
        if response.status_code == 401 or (
            response.status_code in (400, 403) and "invalidauthentication" in response.text.lower()
        ):
            raise _TokenRejected()
        if response.status_code != 200:
            raise self._fail(response, what, token)
        return dict(response.json())

    async def group_send(
        self, creds: AppCredentials, conversation_id: str, msg_key: str, msg_param: Mapping[str, Any]
    ) -> str:
        """POST /v1.0/robot/groupMessages/send; returns the processQueryKey."""
        body = {
            "msgKey": msg_key,
            "msgParam": json.dumps(msg_param, ensure_ascii=False),  # a JSON *string*, as the API requires
            "openConversationId": conversation_id,
            "robotCode": creds.robot_code,
        }
        answer = await self._with_token(
            creds, lambda token: self._api_post(token, "/v1.0/robot/groupMessages/send", body, "group send")
        )
        return str(answer.get("processQueryKey") or "")

    async def send_card(
        self, creds: AppCredentials, conversation_id: str, out_track_id: str, template_id: str, params: Mapping[str, str]
    ) -> None:
        """An interactive card (issue 15): POST /v1.0/card/instances (callbackType STREAM, so taps come back on
        the Stream topic /v1.0/card/instances/callback), then /deliver into the group as this robot."""
        create = {"cardTemplateId": template_id, "outTrackId": out_track_id, "callbackType": "STREAM",
                  "cardData": {"cardParamMap": dict(params)}}
        deliver = {"outTrackId": out_track_id, "openSpaceId": f"dtv1.card//IM_GROUP.{conversation_id}",
                   "imGroupOpenDeliverModel": {"robotCode": creds.robot_code}}

        async def call(token: str) -> None:
            await self._api_post(token, "/v1.0/card/instances", create, "card create")
            await self._api_post(token, "/v1.0/card/instances/deliver", deliver, "card deliver")

        await self._with_token(creds, call)

    async def update_card(self, creds: AppCredentials, out_track_id: str, params: Mapping[str, str]) -> None:
        """PUT /v1.0/card/instances: a tapped card shows the answer and who tapped."""
        body = {"outTrackId": out_track_id, "cardData": {"cardParamMap": dict(params)}}
        await self._with_token(
            creds, lambda token: self._api_post(token, "/v1.0/card/instances", body, "card update", method="PUT")
        )

    async def download_url(self, creds: AppCredentials, download_code: str) -> str:
        """POST /v1.0/robot/messageFiles/download: a short-lived URL of a picture a user sent."""
        body = {"downloadCode": download_code, "robotCode": creds.robot_code}
        answer = await self._with_token(
            creds, lambda token: self._api_post(token, "/v1.0/robot/messageFiles/download", body, "download")
        )
        url = str(answer.get("downloadUrl") or "")
        if not url:
            raise DingTalkError(DeliveryResult.fail("download: no downloadUrl in the answer"))
        return url

    async def upload_media(self, creds: AppCredentials, data: bytes, file_name: str, media_type: str) -> str:
        """POST oapi /media/upload (multipart `media` + `type`); the media_id is cached per content."""
        if len(data) > MAX_MEDIA_BYTES:
            raise DingTalkError(DeliveryResult.fail(f"upload: {file_name} is larger than 20 MB"))
        key = (creds.app_key, hashlib.sha256(data).hexdigest())
        if key in self._media:
            self._media.move_to_end(key)
            return self._media[key]

        async def call(token: str) -> str:
            await self._count("upload_media")
            response = await self.http.post(
                f"{self.oapi_base}/media/upload",
                params={"access_token": token, "type": media_type},
                data={"type": media_type},
                files={"media": (file_name, data, "application/octet-stream")},
            )
            if response.status_code == 401:
                raise _TokenRejected()
            if response.status_code != 200:
                raise self._fail(response, "upload", token)
            body = response.json()
            if as_int(body.get("errcode")) in TOKEN_CODES:
                raise _TokenRejected()
            problem = errcode_result(body, "upload")
            if problem is not None:
                raise DingTalkError(problem)
            media_id = str(body.get("media_id") or "")
            if not media_id:
                raise DingTalkError(DeliveryResult.fail("upload: no media_id in the answer"))
            return media_id

        media_id: str = await self._with_token(creds, call)
        self._media[key] = media_id
        while len(self._media) > 256:
            self._media.popitem(last=False)
        return media_id

    async def post_robot(self, url: str, body: Mapping[str, Any], what: str, *secrets: str) -> None:
        """POST a robot message (custom robot / sessionWebhook) and check its errcode."""
        await self._count(WEBHOOK_KIND_PREFIX + what.replace(" ", "_"))
        # Encoded as httpx's `json=` does.
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
        response = await self.poster.post(url, data)
        if response.status_code != 200:
            raise self._fail(response, what, *secrets)
        try:
            answer = response.json()
        except ValueError:
            raise DingTalkError(DeliveryResult.retry(f"{what}: HTTP 200, not JSON"))
        problem = errcode_result(answer, what)
        if problem is not None:
            raise DingTalkError(
                DeliveryResult(
                    ok=False, retryable=problem.retryable, rate_limited=problem.rate_limited,
                    error=redact(problem.error, *secrets),
                )
            )


async def guard(what: str, call: Callable[[], Awaitable[None]], *secrets: str | None) -> DeliveryResult:
    """Run a send; map DingTalk errors and network failures to a redacted DeliveryResult."""
    try:
        await call()
    except DingTalkError as exc:
        return DeliveryResult(
            ok=False, retryable=exc.result.retryable, rate_limited=exc.result.rate_limited,
            error=redact(exc.result.error, *secrets), retry_after=exc.result.retry_after,
        )
    except httpx.HTTPError as exc:
        return DeliveryResult.retry(redact(f"{what}: {type(exc).__name__}: {exc}", *secrets))
    except ValueError:  # a 200 whose body is not JSON
        return DeliveryResult.retry(f"{what}: HTTP 200, not JSON")
    return DeliveryResult.sent()

