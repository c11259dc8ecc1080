"""The WeCom (企业微信) directory of the configured schools, as a Snapshot.

Calls (docs/wecom-setup.md, platform notes §4): `gettoken`, then per school `department/simplelist?id=`
(the subtree's ids), per department `department/get` (name, department_leader) and `user/list`
(members directly in it: name, department[], main_department, is_leader_in_dept, status).
`user/list_id` would need the contacts-sync secret, so it is not used.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.directory.calls import ApiCaller, DirectoryError, DirectoryRefused, calls_together
from bot.directory.mobiles import attach_mobiles
from models.directory import Department, Member, Snapshot

# What to grant when WeCom refuses (errcode → the missing permission, for the log and the CLI).
PERMISSION_CODES = {
    40001: "the secret is wrong: use the app's (or the contacts-sync) Secret from the admin console",
    40013: "the corp_id is wrong: copy 企业ID from 我的企业 → 企业信息",
    48002: "the app may not call this API: allow it under 应用管理 → the app → API 权限",
    48009: "the app may not read the contacts: grant 通讯录读取 or use the contacts-sync secret (管理工具 → 通讯录同步)",
    60011: "a school's department or member is outside the app's visible range: add it under 应用管理 → 可见范围",
    60020: "this server's IP is not trusted: add it under 应用管理 → 企业可信IP",
}
USER_NOT_FOUND = 46004  # user/getuserid: no member has this mobile
# WeCom member status: 1 active, 2 disabled, 4 not yet activated, 5 left the organisation.
_MEMBER_STATUSES = {1, 4}


class WeComDirectory:
    """Fetches one snapshot; a new instance (and a new token) per sync."""

    def __init__(self, caller: ApiCaller, *, api_base: str, corp_id: str, secret: str) -> None:
        self.caller, self.api_base = caller, api_base.rstrip("/")
        self.corp_id, self.secret = corp_id, secret
        self.token = ""

    async def snapshot(self, school_dept_ids: Iterable[str], *, mobiles: Iterable[str] = ()) -> Snapshot:
        """The schools' departments and members; `mobiles` (from role entries) are looked up if not shown."""
        self.token = str((await self._get("gettoken", corpid=self.corp_id, corpsecret=self.secret))["access_token"])
        ids: dict[str, dict[str, Any]] = {}
        for school in school_dept_ids:
            listing = await self._get("department/simplelist", id=school)
            for entry in listing.get("department_id", []):
                ids.setdefault(str(entry["id"]), entry)
        departments: dict[str, Department] = {}
        leaders: dict[str, list[str]] = {}
        members: dict[str, dict[str, Any]] = {}

        async def read_department(dept_id: str) -> None:
            info = (await self._get("department/get", id=dept_id))["department"]
            parent = str(info.get("parentid")) if info.get("parentid") else None
            departments[dept_id] = Department(dept_id, str(info["name"]), parent, int(info.get("order") or 0))
            leaders[dept_id] = [str(u) for u in info.get("department_leader", [])]
            for user in (await self._get("user/list", department_id=dept_id)).get("userlist", []):
                members.setdefault(str(user["userid"]), user)

        async with calls_together() as tasks:
            for dept_id in ids:
                tasks.start_soon(read_department, dept_id)
        listed = [_member(user, leaders) for user in members.values()]
        with_mobiles = await attach_mobiles(listed, mobiles, self._user_id_of)
        return Snapshot(
            platform="wecom",
            departments=tuple(departments[d] for d in ids),
            members=tuple(with_mobiles),
            api_calls=self.caller.calls,
        )

    async def _user_id_of(self, mobile: str) -> str | None:
        """`user/getuserid`: the userid of a mobile, None when no member has it (46004)."""
        url = f"{self.api_base}/cgi-bin/user/getuserid"
        body = await self.caller.json("POST", url, params={"access_token": self.token}, json={"mobile": mobile})
        code = int(body.get("errcode", 0) or 0)
        if code == USER_NOT_FOUND:
            return None
        self._check(code, "user/getuserid")
        return str(body["userid"])

    async def _get(self, api: str, **params: Any) -> dict[str, Any]:
        if api != "gettoken":
            params["access_token"] = self.token
        body = await self.caller.json("GET", f"{self.api_base}/cgi-bin/{api}", params=params)
        self._check(int(body.get("errcode", 0) or 0), api)
        return body

    @staticmethod
    def _check(code: int, api: str) -> None:
        if code in PERMISSION_CODES:
            raise DirectoryRefused("wecom", code, f"{api}: {PERMISSION_CODES[code]}")
        if code:
            raise DirectoryError("wecom", code, f"{api} failed")


def _member(user: dict[str, Any], leaders: dict[str, list[str]]) -> Member:
    """A Member from a `user/list` entry; main department first, led departments from both sources."""
    user_id = str(user["userid"])
    departments = [str(d) for d in user.get("department", [])]
    main = str(user.get("main_department") or (departments[0] if departments else ""))
    ordered = ([main] if main in departments else []) + [d for d in departments if d != main]
    flags = user.get("is_leader_in_dept") or []
    led = {d for d, flag in zip(departments, flags) if flag}
    led.update(d for d in departments if user_id in leaders.get(d, ()))
    return Member(
        user_id=user_id,
        name=str(user.get("name") or user_id),
        department_ids=tuple(ordered),
        leader_of=tuple(d for d in ordered if d in led),
        mobile=str(user["mobile"]) if user.get("mobile") else None,
        active=int(user.get("status", 1)) in _MEMBER_STATUSES,
    )
