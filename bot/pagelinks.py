"""Signed, expiring links to the read-only web pages (issue 15): a hazard's page and a leaders' group's page.

/p/h/{hazard id}/{expires}/{signature} and /p/l/{group id}/{expires}/{signature}. The signature is an HMAC of
the page kind, its subject and the expiry, under the photo links' key. Unlike a photo (404 for anything wrong),
a page says why it does not open: 403 for a link that was altered, 410 for one that has expired.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import Enum

from bot.untrusted import ascii_int, same_secret

HAZARD = "h"
LEADER = "l"


class Verdict(Enum):
    OK = "ok"
    TAMPERED = "tampered"  # not a link this server signed (403)
    EXPIRED = "expired"  # signed here, but past its time (410)


class PageLinks:
    """Signs and verifies page links."""

    def __init__(self, *, base_url: str, key: bytes, ttl: timedelta, clock: Callable[[], datetime]) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = key
        self.ttl = ttl
        self.clock = clock

    def _signature(self, kind: str, subject: str, expires: int) -> str:
        message = f"page:{kind}:{subject}:{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode("ascii")

    def path(self, kind: str, subject: str) -> str:
        expires = int((self.clock() + self.ttl).timestamp())
        return f"/p/{kind}/{subject}/{expires}/{self._signature(kind, subject, expires)}"

    def hazard_link(self, hazard_id: int) -> str:
        return f"{self.base_url}{self.path(HAZARD, str(hazard_id))}"

    def leader_link(self, group_id: str) -> str:
        return f"{self.base_url}{self.path(LEADER, group_id)}"

    def verify(self, kind: str, subject: str, expires: str, signature: str) -> Verdict:
        """Whether a link's path parts (as typed into the address bar) open the page."""
        until = ascii_int(expires)
        if until is None or not same_secret(self._signature(kind, subject, until), signature):
            return Verdict.TAMPERED
        if until < self.clock().timestamp():
            return Verdict.EXPIRED
        return Verdict.OK
