"""Unguessable, expiring links to hazard photos: /photos/{id}/{expires}/{signature}.

The signature is an HMAC of the photo id and expiry under a key from the environment; without
it (or after expiry) the server answers 404, the same as for a photo that does not exist.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets as random
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.untrusted import ascii_int, same_secret

log = logging.getLogger(__name__)


class PhotoLinks:
    """Signs and verifies photo links."""

    def __init__(self, *, base_url: str, key: bytes, ttl: timedelta, clock: Callable[[], datetime]) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = key
        self.ttl = ttl
        self.clock = clock

    @classmethod
    def from_secret(
        cls, *, base_url: str, secret: str | None, ttl: timedelta, clock: Callable[[], datetime]
    ) -> "PhotoLinks":
        if not secret:
            # Links still work until the next restart; say so instead of failing to start.
            log.warning("no photo link key in the environment: using a random key, links expire at restart")
            secret = random.token_urlsafe(32)
        return cls(base_url=base_url, key=secret.encode("utf-8"), ttl=ttl, clock=clock)

    def _signature(self, photo_id: int, expires: int) -> str:
        digest = hmac.new(self._key, f"{photo_id}:{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode("ascii")

    def link(self, photo_id: int) -> str:
        return f"{self.base_url}{self.path(photo_id)}"

    def path(self, photo_id: int) -> str:
        """The link without the public address, for pages this server serves itself."""
        expires = int((self.clock() + self.ttl).timestamp())
        return f"/photos/{photo_id}/{expires}/{self._signature(photo_id, expires)}"

    @property
    def key(self) -> bytes:
        """The signing key, shared with the page links (bot/pagelinks.py)."""
        return self._key

    def verify(self, photo_id: int, expires: int, signature: str) -> bool:
        if expires < self.clock().timestamp():
            return False
        return same_secret(self._signature(photo_id, expires), signature)

    def photo_id(self, photo_id: str, expires: str, signature: str) -> int | None:
        """The photo a link's path parts (as typed into the address bar) grant, or None for any other input."""
        number, until = ascii_int(photo_id), ascii_int(expires)
        if number is None or until is None or not self.verify(number, until, signature):
            return None
        return number
