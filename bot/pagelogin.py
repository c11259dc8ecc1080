"""Signing in on a hazard page through the platform's in-app login (issue 15), and the session that follows.

WeCom: OAuth2 inside the WeCom app (`connect/oauth2/authorize`, scope snsapi_base: no consent screen), which
comes back to /p/auth/wecom with a code; `GET /cgi-bin/auth/getuserinfo` turns it into the member's userid.
DingTalk: 免登, the way an enterprise-internal H5 micro-app signs people in inside the DingTalk client — the
sign-in page asks the client for an auth code (`dd.runtime.permission.requestAuthCode`, silent, no consent
screen, and it yields the userid in one call) and posts it to /p/auth/dingtalk; `POST /topapi/v2/user/getuserinfo`
turns it into the userid. (DingTalk's OAuth2 redirect flow shows a consent page and yields a unionId that needs
two more calls to become a userid; it is meant for sites outside the client.)

The `state` is signed, names the page's hazard and the platform, lives 10 minutes, is used once and must match
the nonce cookie set when the sign-in began (so nobody can sign a victim in as someone else). Codes are used
once (the platforms also refuse a second use). The session is a signed cookie (HttpOnly, SameSite=Lax, Secure
behind https) naming (platform, userid); each form carries a CSRF token bound to the session and the hazard.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets as random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from bot.config import Config
from bot.secrets import Secrets
from bot.shared import SharedCache
from bot.untrusted import ascii_int, same_secret
from models.config import LOGIN_KEYS, login_credentials

log = logging.getLogger(__name__)

SESSION_COOKIE = "sb_session"
NONCE_COOKIE = "sb_login"
STATE_SECONDS = 600  # from the sign-in button to the platform's answer
CODE_SECONDS = 300  # both platforms' codes live 5 minutes
PLATFORM_CODES = {"wecom": "w", "dingtalk": "d"}
PLATFORM_NAMES = {"wecom": "企业微信", "dingtalk": "钉钉"}
TOKEN_GONE = frozenset({40014, 42001, 40001})  # invalid / expired access_token: fetch a new one once


class LoginFailed(Exception):
    """Signing in did not work; `message` says why, in Chinese, for the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who a valid session cookie names."""

    platform: str
    user_id: str
    sid: str  # random per sign-in: CSRF tokens are bound to it


class SessionProblem(Exception):
    """A session cookie that is present but does not sign anyone in."""

    def __init__(self, expired: bool) -> None:
        super().__init__("expired" if expired else "forged")
        self.expired = expired


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


class PageLogin:
    """Sign-in URLs, state, code exchange and session cookies for the hazard pages."""

    def __init__(
        self, *, config: Callable[[], Config], secrets: Secrets, http: httpx.AsyncClient, link_key: bytes,
        clock: Callable[[], datetime], shared: SharedCache | None = None,
    ) -> None:
        self._config = config  # the running config, read at each use (a reload replaces it)
        self.secrets = secrets
        self.http = http
        self.clock = clock
        self.shared = shared
        # A key of its own, derived from the link key: a page link's signature never passes for a session.
        self._key = hmac.new(link_key, b"safetybot page login", hashlib.sha256).digest()
        self._used: dict[str, float] = {}  # single-use keys (codes, state nonces) in this process, until when
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float]] = {}  # platform -> (access token, valid until)

    # -- what is configured ----------------------------------------------------------------------

    @property
    def config(self) -> Config:
        return self._config()

    def credential(self, platform: str, key: str) -> str | None:
        name = login_credentials(self.config, platform).get(key)
        return self.secrets.get(name) if name else None

    def available(self, platform: str) -> bool:
        """Sign-in is on and has every credential it needs on this platform (and a public address)."""
        if not self.config.login.enabled or not self.config.server.public_url or platform not in LOGIN_KEYS:
            return False
        return all(self.credential(platform, key) for key in LOGIN_KEYS[platform])

    @property
    def secure(self) -> bool:
        return (self.config.server.public_url or "").startswith("https://")

    @property
    def session_seconds(self) -> int:
        return self.config.login.session_hours * 3600

    def _now(self) -> int:
        return int(self.clock().timestamp())

    def _sign(self, kind: str, message: str) -> str:
        return _b64(hmac.new(self._key, f"{kind}:{message}".encode(), hashlib.sha256).digest()[:24])

    # -- state ---------------------------------------------------------------------------------------

    def new_state(self, platform: str, hazard_id: int) -> tuple[str, str]:
        """(state, nonce): letters and digits only, at most 128 bytes (WeCom's rule for `state`)."""
        nonce = random.token_hex(8)
        expires = self._now() + STATE_SECONDS
        body = f"{hazard_id}x{PLATFORM_CODES[platform]}x{expires}x{nonce}"
        digest = hmac.new(self._key, f"state:{body}".encode(), hashlib.sha256).hexdigest()[:32]
        return f"{body}x{digest}", nonce

    def check_state(self, platform: str, state: str, nonce_cookie: str | None) -> int:
        """The hazard id a state was made for; LoginFailed when altered, expired, from another browser."""
        parts = state.split("x")
        stale = LoginFailed(400, "登录请求无效或已超时（10分钟内有效）。请回到隐患页面，重新点「登录」。")
        if len(parts) != 5 or parts[1] != PLATFORM_CODES.get(platform):
            raise stale
        body = "x".join(parts[:4])
        digest = hmac.new(self._key, f"state:{body}".encode(), hashlib.sha256).hexdigest()[:32]
        hazard_id, expires = ascii_int(parts[0]), ascii_int(parts[2])
        if not same_secret(digest, parts[4]) or hazard_id is None or expires is None:
            raise stale
        if expires < self._now():
            raise stale
        if not nonce_cookie or not same_secret(nonce_cookie, parts[3]):
            raise LoginFailed(400, "登录没有在同一个浏览器里完成。请在企业微信/钉钉里打开隐患页面，再点「登录」。")
        return hazard_id

    async def use_once(self, kind: str, value: str, ttl: float = CODE_SECONDS) -> bool:
        """True the first time a code or state nonce is seen (across replicas when Redis is configured)."""
        key = f"login:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"
        now = self.clock().timestamp()
        with self._lock:
            for old in [k for k, until in self._used.items() if until < now]:
                del self._used[old]
            if key in self._used:
                return False
            self._used[key] = now + ttl
        if self.shared is not None:
            added = await self.shared.add_once(key, ttl)
            if added is False:
                return False
        return True

    # -- the platforms' sign-in --------------------------------------------------------------------

    def redirect_uri(self, platform: str) -> str:
        return f"{(self.config.server.public_url or '').rstrip('/')}/p/auth/{platform}"

    def wecom_authorize_url(self, state: str) -> str:
        query = urlencode({
            "appid": self.credential("wecom", "corp_id") or "", "redirect_uri": self.redirect_uri("wecom"),
            "response_type": "code", "scope": "snsapi_base", "state": state,
            "agentid": self.credential("wecom", "agent_id") or "",
        })
        return f"{self.config.login.wecom_authorize_url}?{query}#wechat_redirect"

    async def _json(self, method: str, url: str, platform: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self.http.request(method, url, timeout=10.0, **kwargs)
            body = response.json()
        except (httpx.HTTPError, ValueError):
            log.warning("page login: %s %s failed", method, httpx.URL(url).path, exc_info=True)
            body = None
        if not isinstance(body, dict):
            raise LoginFailed(502, f"暂时连不上{PLATFORM_NAMES[platform]}，无法确认你的身份。请稍后再试。")
        return body

    async def _token(self, platform: str, fresh: bool = False) -> str:
        cached = self._tokens.get(platform)
        now = self.clock().timestamp()
        if cached is not None and cached[1] > now and not fresh:
            return cached[0]
        if platform == "wecom":
            body = await self._json("GET", f"{self.config.wecom.api_base.rstrip('/')}/cgi-bin/gettoken", platform,
                                    params={"corpid": self.credential("wecom", "corp_id") or "",
                                            "corpsecret": self.credential("wecom", "secret") or ""})
            token, lifetime = body.get("access_token"), body.get("expires_in")
        else:
            body = await self._json("POST", f"{self.config.dingtalk.api_base.rstrip('/')}/v1.0/oauth2/accessToken",
                                    platform, json={"appKey": self.credential("dingtalk", "app_key") or "",
                                                    "appSecret": self.credential("dingtalk", "app_secret") or ""})
            token, lifetime = body.get("accessToken"), body.get("expireIn")
        if not isinstance(token, str) or not token:
            log.error("page login: %s refused the app credentials (%s)", platform,
                      body.get("errcode", body.get("code")))
            raise LoginFailed(502, f"机器人的{PLATFORM_NAMES[platform]}应用凭据不可用，暂时无法登录，请联系管理员。")
        seconds = lifetime if isinstance(lifetime, int) else 7200
        self._tokens[platform] = (token, now + max(60, seconds - 300))
        return token

    async def user_of(self, platform: str, code: str) -> str:
        """The userid a sign-in code stands for; LoginFailed for a bad, used or expired code."""
        bad = LoginFailed(400, "登录码无效或已经用过（每个登录码只能用一次，5分钟内有效）。"
                               "请回到隐患页面，重新点「登录」。")
        if not code or len(code) > 256 or not await self.use_once("code", f"{platform}:{code}"):
            raise bad
        for attempt in range(2):
            token = await self._token(platform, fresh=attempt > 0)
            if platform == "wecom":
                body = await self._json("GET", f"{self.config.wecom.api_base.rstrip('/')}/cgi-bin/auth/getuserinfo",
                                        platform, params={"access_token": token, "code": code})
                user = body.get("userid")
            else:
                body = await self._json("POST", f"{self.config.dingtalk.oapi_base.rstrip('/')}/topapi/v2/user/getuserinfo",
                                        platform, params={"access_token": token}, json={"code": code})
                result = body.get("result")
                user = result.get("userid") if isinstance(result, dict) else None
            errcode = body.get("errcode")
            if errcode in TOKEN_GONE and attempt == 0:
                continue
            if errcode == 0 and isinstance(user, str) and user:
                return user
            if errcode == 0:  # a WeCom visitor outside the corp (openid only)
                raise LoginFailed(403, "只有本单位通讯录里的成员才能登录。你可以继续查看页面。")
            log.info("page login: %s refused a code (errcode %s)", platform, errcode)
            raise bad
        raise bad

    # -- the session -----------------------------------------------------------------------------------

    def session_cookie(self, platform: str, user_id: str) -> str:
        expires = self._now() + self.session_seconds
        body = f"{PLATFORM_CODES[platform]}.{_b64(user_id.encode())}.{expires}.{random.token_hex(8)}"
        return f"{body}.{self._sign('session', body)}"

    def viewer(self, cookie: str | None) -> Viewer | None:
        """Who the session cookie names; None without one; SessionProblem when altered or expired."""
        if not cookie:
            return None
        parts = cookie.split(".")
        if len(parts) != 5 or not same_secret(self._sign("session", ".".join(parts[:4])), parts[4]):
            raise SessionProblem(expired=False)
        platform = next((p for p, c in PLATFORM_CODES.items() if c == parts[0]), None)
        user_id, expires = _unb64(parts[1]), ascii_int(parts[2])
        if platform is None or not user_id or expires is None:
            raise SessionProblem(expired=False)
        if expires < self._now():
            raise SessionProblem(expired=True)
        return Viewer(platform, user_id, parts[3])

    def csrf(self, viewer: Viewer, hazard_id: int) -> str:
        return self._sign("csrf", f"{viewer.sid}:{viewer.platform}:{viewer.user_id}:{hazard_id}")

    def csrf_ok(self, viewer: Viewer, hazard_id: int, token: str) -> bool:
        return bool(token) and same_secret(self.csrf(viewer, hazard_id), token)
