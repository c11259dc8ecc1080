"""One unknown sender looked up by id through the platform API (WeCom `user/get`, DingTalk `topapi/v2/user/get`).

Called by the engine, outside any transaction, at most once per sender id (the answer is cached in the database,
models/joining.py). Synchronous: the engine handles messages in worker threads and handler processes.
Nothing of the answer is logged: only the outcome and the errcode.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from bot.config import Config
from bot.secrets import Secrets
from models.directory import Member

log = logging.getLogger(__name__)

WECOM_NOT_FOUND = {60111, 46004}  # userid not found
DINGTALK_NOT_FOUND = {60121, 33012}  # 找不到该用户, 无效的userid
LOOKUP_TIMEOUT = httpx.Timeout(5.0, connect=3.0)


@dataclass(frozen=True, slots=True)
class LookupResult:
    """`outcome`: found, not_found, refused (no permission or credentials) or failed (try again later)."""

    outcome: str
    member: Member | None = None


class SenderLookup:
    """Looks up one user id on the configured directory platform."""

    def __init__(self, config: Config, secrets: Secrets, *, transport: httpx.BaseTransport | None = None) -> None:
        assert config.directory is not None
        self.platform = config.directory.platform
        self.config, self.secrets, self.transport = config, secrets, transport

    def __call__(self, user_id: str) -> LookupResult:
        try:
            with httpx.Client(timeout=LOOKUP_TIMEOUT, transport=self.transport) as http:
                if self.platform == "wecom":
                    return self._wecom(http, user_id)
                return self._dingtalk(http, user_id)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("directory: looking up a sender on %s failed (%s)", self.platform, type(exc).__name__)
            return LookupResult("failed")

    def _secret(self, key: str) -> str | None:
        assert self.config.directory is not None
        env_name = self.config.directory.credentials.get(key, "")
        return self.secrets.get(env_name) if env_name else None

    def _wecom(self, http: httpx.Client, user_id: str) -> LookupResult:
        corp_id, secret = self._secret("corp_id"), self._secret("secret")
        if not corp_id or not secret:
            return LookupResult("refused")
        base = self.config.wecom.api_base.rstrip("/")
        token = _json(http.get(f"{base}/cgi-bin/gettoken", params={"corpid": corp_id, "corpsecret": secret}))
        if token.get("errcode") or not token.get("access_token"):
            return _refused("wecom", "gettoken", token.get("errcode"))
        body = _json(http.get(f"{base}/cgi-bin/user/get", params={"access_token": token["access_token"], "userid": user_id}))
        code = int(body.get("errcode") or 0)
        if code in WECOM_NOT_FOUND:
            return LookupResult("not_found")
        if code:
            return _refused("wecom", "user/get", code)
        departments = [str(d) for d in body.get("department") or []]
        main = str(body.get("main_department") or (departments[0] if departments else ""))
        ordered = ([main] if main in departments else []) + [d for d in departments if d != main]
        flags = body.get("is_leader_in_dept") or []
        led = {d for d, flag in zip(departments, flags) if flag}
        active = int(body.get("status") or 1) in (1, 4)
        return LookupResult("found" if active else "not_found", Member(
            user_id=user_id, name=str(body.get("name") or user_id), department_ids=tuple(ordered),
            leader_of=tuple(d for d in ordered if d in led), active=active,
        ))

    def _dingtalk(self, http: httpx.Client, user_id: str) -> LookupResult:
        app_key, app_secret = self._secret("app_key"), self._secret("app_secret")
        if not app_key or not app_secret:
            return LookupResult("refused")
        api_base = self.config.dingtalk.api_base.rstrip("/")
        oapi_base = self.config.dingtalk.oapi_base.rstrip("/")
        token = _json(http.post(f"{api_base}/v1.0/oauth2/accessToken", json={"appKey": app_key, "appSecret": app_secret}))
        if not token.get("accessToken"):
            return _refused("dingtalk", "accessToken", token.get("code"))
        body = _json(http.post(f"{oapi_base}/topapi/v2/user/get", params={"access_token": token["accessToken"]},
                               json={"userid": user_id, "language": "zh_CN"}))
        code = int(body.get("errcode") or 0)
        if code in DINGTALK_NOT_FOUND:
            return LookupResult("not_found")
        if code:
            return _refused("dingtalk", "topapi/v2/user/get", code)
        result = body.get("result") or {}
        departments = tuple(str(d) for d in result.get("dept_id_list") or [])
        led = {str(entry.get("dept_id")) for entry in result.get("leader_in_dept") or [] if entry.get("leader")}
        return LookupResult("found", Member(
            user_id=user_id, name=str(result.get("name") or user_id), department_ids=departments,
            leader_of=tuple(d for d in departments if d in led),
        ))


def _json(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError("no JSON object")
    return body


def _refused(platform: str, api: str, code: Any) -> LookupResult:
    log.warning("directory: %s %s refused a sender lookup (code %s); the sender is asked in chat", platform, api, code)
    return LookupResult("refused")
