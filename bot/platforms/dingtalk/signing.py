"""DingTalk signatures: robot signs, signed webhook URLs, callback verification and the replay guard."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote_plus

from bot.platforms.dingtalk.limits import SIGN_WINDOW_MS
from bot.shared import SharedCache
from bot.untrusted import ascii_int
from models.clock import wall_clock_ms


def sign(timestamp_ms: int | str, secret: str) -> str:
    """DingTalk's robot signature: raw Base64 of HmacSHA256(secret, f"{timestamp}\\n{secret}")."""
    message = f"{timestamp_ms}\n{secret}".encode("utf-8")
    return base64.b64encode(hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()).decode("ascii")


def signed_webhook_url(url: str, secret: str, now_ms: int | None = None) -> str:
    """A custom-robot URL with `&timestamp=…&sign=…` (the sign URL-encoded exactly once)."""
    timestamp = now_ms if now_ms is not None else wall_clock_ms()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}timestamp={timestamp}&sign={quote_plus(sign(timestamp, secret))}"


def timestamp_fresh(timestamp: str | None, now_ms: int, window_ms: int = SIGN_WINDOW_MS) -> bool:
    """A callback's `timestamp` header is ASCII digits within the window of now."""
    sent_ms = ascii_int(timestamp)
    return sent_ms is not None and abs(now_ms - sent_ms) <= window_ms


def verify_callback(
    timestamp: str | None, signature: str | None, app_secret: str, now_ms: int, window_ms: int = SIGN_WINDOW_MS
) -> bool:
    """Check an HTTP callback's `timestamp` / `sign` headers (the sign is not URL-encoded)."""
    if not signature or not timestamp_fresh(timestamp, now_ms, window_ms):
        return False
    return hmac.compare_digest(sign(str(timestamp), app_secret).encode(), signature.encode())


class SignatureReplayGuard:
    """Binds each callback `(timestamp, sign)` pair to the first message that used it, for the window.

    DingTalk's sign covers only the timestamp, never the body: a pair captured once (a log, a proxy)
    would otherwise let anyone post any body, e.g. as the admin, for as long as the timestamp is fresh.
    The platform notes do not say whether DingTalk re-signs a callback it retries, so a retry may carry
    the same headers: the same pair with the same msgId is that retry (accepted again; the database's
    unique msgId records it once), the same pair with another msgId or body is a replay and refused.

    The pairs live in this process's memory and, with Redis, in Redis too (SET NX EX), so a pair used at
    one replica is refused at every other; when Redis does not answer, memory alone still guards this one.
    """

    FIRST, RETRY, REPLAY = "first", "retry", "replay"

    def __init__(self, window_ms: int, clock_ms: Callable[[], int], shared: SharedCache | None = None) -> None:
        self.window_ms = window_ms
        self.clock_ms = clock_ms
        self.shared = shared
        # (timestamp, sign) -> (message key, expiry ms), roughly in expiry order (timestamps arrive in order).
        self._pairs: OrderedDict[tuple[str, str], tuple[str, int]] = OrderedDict()

    async def check(self, timestamp: str, signature: str, message_key: str) -> str:
        """FIRST for a pair not seen before, RETRY for the same message again, REPLAY for another message."""
        now = self.clock_ms()
        while self._pairs and next(iter(self._pairs.values()))[1] <= now:
            self._pairs.popitem(last=False)
        pair = (timestamp, signature)
        known = self._pairs.get(pair)
        if known is not None:
            return self.RETRY if known[0] == message_key else self.REPLAY
        # The pair can pass the timestamp check until timestamp + window: remember it that long.
        expires = int(timestamp) + self.window_ms
        self._pairs[pair] = (message_key, expires)
        holder = message_key
        if self.shared is not None:
            key = "dingtalk:replay:" + hashlib.sha256(f"{timestamp}:{signature}".encode()).hexdigest()
            held = await self.shared.claim(key, message_key, (expires - now) / 1000 + 1)
            if held is not None:
                holder = held
                self._pairs[pair] = (held, expires)
        return self.FIRST if holder == message_key else self.REPLAY


def message_key(data: Mapping[str, Any], body: bytes) -> str:
    """What makes two callbacks the same message: its msgId, else (no usable msgId) the body's hash."""
    msg_id = data.get("msgId")
    if isinstance(msg_id, str) and msg_id:
        return "msg:" + msg_id
    return "body:" + hashlib.sha256(body).hexdigest()
