"""What the replicas of one deployment share through Redis, when `[redis]` is configured.

Two things, both also correct per process (the database's unique key is what makes a message count
once); sharing them saves repeated work across replicas:
- the replay window: a callback's (signature, nonce) seen by one replica is refused by every other
  (DingTalk: a callback's (timestamp, sign) belongs to the first message that used it, see `claim`);
- platform access tokens: one fetch per app for the whole deployment, not one per process.

Redis is never needed for correctness: when it does not answer, each process falls back to its own
memory and says so in the log. The one thing memory cannot do across replicas: without Redis, a DingTalk
(timestamp, sign) pair used at one replica can still carry one other message at each of the others, so
run several callback-mode replicas with Redis.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "safetybot:"
TIMEOUT_SECONDS = 1.0


class SharedCache:
    """A thin async wrapper over one Redis database, with every key under `safetybot:`."""

    def __init__(self, url: str, *, client: Any = None) -> None:
        import redis.asyncio as redis

        self.client = client or redis.Redis.from_url(
            url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
        )
        self._warned = False

    def _unavailable(self, exc: Exception) -> None:
        if not self._warned:  # once, not on every callback while Redis is away
            log.warning("redis unavailable, falling back to per-process memory: %s", type(exc).__name__)
            self._warned = True

    async def add_once(self, key: str, ttl_seconds: float) -> bool | None:
        """Store the key for `ttl_seconds` unless present: True if new, False if present, None if Redis is away."""
        try:
            added = await self.client.set(PREFIX + key, b"1", nx=True, ex=max(1, int(ttl_seconds)))
        except Exception as exc:  # redis.RedisError, OSError, timeouts
            self._unavailable(exc)
            return None
        self._warned = False
        return bool(added)

    async def claim(self, key: str, value: str, ttl_seconds: float) -> str | None:
        """Store `value` for `ttl_seconds` unless the key is held (SET NX EX); return the value the key holds
        now (ours when we stored it), or None if Redis is away."""
        try:
            if await self.client.set(PREFIX + key, value, nx=True, ex=max(1, int(ttl_seconds))):
                held: Any = value
            else:
                held = await self.client.get(PREFIX + key)
        except Exception as exc:
            self._unavailable(exc)
            return None
        self._warned = False
        if held is None:  # the holder expired between the two calls: report an unknown holder, not us
            return ""
        return held.decode() if isinstance(held, bytes) else str(held)

    async def exists(self, key: str) -> bool | None:
        try:
            return bool(await self.client.exists(PREFIX + key))
        except Exception as exc:
            self._unavailable(exc)
            return None

    async def get(self, key: str) -> tuple[str, float] | None:
        """The value and its remaining lifetime in seconds, or None (absent, or Redis away)."""
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.get(PREFIX + key)  # queued: a pipeline sends both commands at execute()
                pipe.pttl(PREFIX + key)
                value, ttl_ms = await pipe.execute()
        except Exception as exc:
            self._unavailable(exc)
            return None
        if value is None or ttl_ms is None or ttl_ms <= 0:
            return None
        return value.decode() if isinstance(value, bytes) else str(value), ttl_ms / 1000

    async def put(self, key: str, value: str, ttl_seconds: float) -> None:
        try:
            await self.client.set(PREFIX + key, value, px=max(1000, int(ttl_seconds * 1000)))
        except Exception as exc:
            self._unavailable(exc)

    async def delete_if(self, key: str, value: str) -> None:
        """Delete the key if it still holds `value` (another replica may have stored a newer one)."""
        try:
            current = await self.client.get(PREFIX + key)
            if current is not None and (current.decode() if isinstance(current, bytes) else current) == value:
                await self.client.delete(PREFIX + key)
        except Exception as exc:
            self._unavailable(exc)

    async def aclose(self) -> None:
        try:
            await self.client.aclose()
        except Exception:  # closing a client whose server is gone
            pass
