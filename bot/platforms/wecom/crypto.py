"""WeCom callback crypto: signatures, AES keys, media decryption, credentials and the replay guard."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from typing import Any

from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto

from bot.platforms.wecom.limits import TIMESTAMP_WINDOW_SECONDS
from bot.untrusted import ascii_int, same_secret
from models.clock import wall_clock_seconds

# WXBizMsgCrypt through wechatpy; receiveid is "" for robots and internal AI bots.


def msg_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """sha1 over the sorted concatenation of token, timestamp, nonce and the encrypted text."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode("utf-8")).hexdigest()


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key behind a 43-character EncodingAESKey."""
    key = base64.b64decode(encoding_aes_key + "=")
    if len(key) != 32:
        raise ValueError("EncodingAESKey must decode to 32 bytes")
    return key


def decrypt_media(data: bytes, key: bytes) -> bytes:
    """Decrypt a downloaded image/file: AES-256-CBC, IV = key[:16], PKCS#7 padded to 32 bytes."""
    if not data or len(data) % 16:
        raise ValueError("encrypted media is empty or not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= 32 or plain[-pad:] != bytes([pad]) * pad:
        raise ValueError("bad PKCS#7 padding in decrypted media")
    return plain[:-pad]


@dataclass(frozen=True, slots=True)
class CallbackCredentials:
    """Token + EncodingAESKey of one callback receiver (an AI bot, or a group's robot callback)."""

    id: str  # bot id, or "group:<group id>"
    token: str
    encoding_aes_key: str
    bot: str | None = None  # the [[wecom.bots]] id, for AI-bot callbacks
    group: str | None = None  # the group id, for group-robot callbacks

    def crypto(self) -> WeChatCrypto:
        return WeChatCrypto(self.token, self.encoding_aes_key, "")

    def matches(self, signature: str, timestamp: str, nonce: str, encrypt: str) -> bool:
        return same_secret(msg_signature(self.token, timestamp, nonce, encrypt), signature)

    def passive_reply(self, body: dict[str, Any], *, nonce: str, timestamp: str) -> str:
        """A passive answer to a callback: the JSON body encrypted, signed, with the callback's own nonce."""
        plain = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        encrypt = PrpCrypto(aes_key(self.encoding_aes_key)).encrypt(plain, "").decode("ascii")
        signature = msg_signature(self.token, timestamp, nonce, encrypt)
        return json.dumps({"encrypt": encrypt, "msgsignature": signature, "timestamp": int(timestamp), "nonce": nonce})


class ReplayGuard:
    """Remembers (msg_signature, nonce) pairs for the timestamp window: a replay within it is refused."""

    def __init__(self, window_seconds: float = TIMESTAMP_WINDOW_SECONDS, clock: Callable[[], float] = wall_clock_seconds):
        self.window = window_seconds
        self.clock = clock
        # In expiry order (every pair lives equally long), so forgetting is popping from the front.
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def seen(self, signature: str, nonce: str) -> bool:
        now = self.clock()
        while self._seen and next(iter(self._seen.values())) <= now:
            self._seen.popitem(last=False)
        expiry = self._seen.get((signature, nonce))
        return expiry is not None and expiry > now

    def remember(self, signature: str, nonce: str) -> None:
        # Twice the window: a pair stays refused for as long as its timestamp could be accepted.
        self._seen[(signature, nonce)] = self.clock() + 2 * self.window
        self._seen.move_to_end((signature, nonce))


def replay_key(signature: str, nonce: str) -> str:
    return "wecom:replay:" + hashlib.sha1(f"{signature}:{nonce}".encode()).hexdigest()


def timestamp_ok(timestamp: str, now: float, window: float = TIMESTAMP_WINDOW_SECONDS) -> bool:
    """True when a callback's Unix timestamp (ASCII digits) is within ±window seconds of now."""
    seconds = ascii_int(timestamp) if isinstance(timestamp, str) else None
    return seconds is not None and abs(now - seconds) <= window

