"""The DingTalk (钉钉) directory of the configured schools, as a Snapshot.

Calls (docs/dingtalk-setup.md, platform notes §4): an app access token (`/v1.0/oauth2/accessToken`),
per school `topapi/v2/department/get` (name, order, dept_manager_userid_list), a level-by-level walk
with `topapi/v2/department/listsub`, and per department `topapi/v2/user/list` (cursor paging, 100 a
page: name, dept_id_list, leader). Every topapi call is metered against the org's monthly quota
(about 10,000 on the free edition), so no call is made per member.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.directory.calls import ApiCaller, DirectoryError, DirectoryRefused, calls_together
from bot.directory.mobiles import attach_mobiles
from models.directory import Department, Member, Snapshot

USER_NOT_FOUND = 60121  # user/getbymobile: no member has this mobile
PAGE_SIZE = 100  # the largest page topapi/v2/user/list allows
PERMISSION_CODES = {
    60011: "the app lacks a contacts permission: grant 通讯录部门信息读权限 and 成员信息读权限 "
           "(开发者后台 → the app → 权限管理)",
    60020: "this server's IP is not on the app's whitelist (开发者后台 → 安全设置 → 服务器出口IP)",
    60003: "a school's department does not exist or is outside the app's 通讯录权限范围",
    90020: "the organisation's monthly API quota is used up: sync less often, or upgrade the edition",
}


class DingTalkDirectory:
    """Fetches one snapshot; a new instance (and a new token) per sync."""

    def __init__(self, caller: ApiCaller, *, api_base: str, oapi_base: str, app_key: str, app_secret: str) -> None:
        self.caller = caller
        self.api_base, self.oapi_base = api_base.rstrip("/"), oapi_base.rstrip("/")
        self.app_key, self.app_secret = app_key, app_secret
        self.token = ""

    async def snapshot(self, school_dept_ids: Iterable[str], *, mobiles: Iterable[str] = ()) -> Snapshot:
        """The schools' departments and members; `mobiles` (from role entries) are looked up if not shown."""
        await self._fetch_token()
        departments: dict[str, Department] = {}
        leaders: dict[str, set[str]] = {}
        members: dict[str, dict[str, Any]] = {}

        async def read_school(dept_id: str) -> None:
            info = await self._post("topapi/v2/department/get", dept_id=int(dept_id))
            parent = str(info["parent_id"]) if info.get("parent_id") else None
            departments[dept_id] = Department(dept_id, str(info["name"]), parent, int(info.get("order") or 0))
            leaders.setdefault(dept_id, set()).update(str(u) for u in info.get("dept_manager_userid_list", []))

        async def read_members(dept_id: str) -> None:
            cursor = 0
            while True:
                page = await self._post("topapi/v2/user/list", dept_id=int(dept_id), cursor=cursor, size=PAGE_SIZE)
                for user in page.get("list", []):
                    members.setdefault(str(user["userid"]), user)
                    if user.get("leader"):
                        leaders.setdefault(dept_id, set()).add(str(user["userid"]))
                if not page.get("has_more"):
                    return
                cursor = int(page["next_cursor"])

        level = list(dict.fromkeys(str(d) for d in school_dept_ids))
        async with calls_together() as tasks:
            for dept_id in level:
                tasks.start_soon(read_school, dept_id)
        while level:
            below: list[Department] = []

            async def read_children(parent: str, into: list[Department] = below) -> None:
                for order, child in enumerate(await self._post_list("topapi/v2/department/listsub", dept_id=int(parent))):
                    into.append(Department(str(child["dept_id"]), str(child["name"]), parent, order))

            async with calls_together() as tasks:
                for dept_id in level:
                    tasks.start_soon(read_children, dept_id)
                    tasks.start_soon(read_members, dept_id)
            fresh = [d for d in below if d.id not in departments]
            departments.update((d.id, d) for d in fresh)
            level = [d.id for d in fresh]
        listed = [_member(user, leaders) for user in members.values()]
        with_mobiles = await attach_mobiles(listed, mobiles, self._user_id_of)
        return Snapshot(
            platform="dingtalk",
            departments=tuple(departments.values()),
            members=tuple(with_mobiles),
            api_calls=self.caller.calls,
        )

    async def _user_id_of(self, mobile: str) -> str | None:
        """`topapi/v2/user/getbymobile`: the userid of a mobile, None when no member has it (60121)."""
        try:
            return str((await self._post("topapi/v2/user/getbymobile", mobile=mobile))["userid"])
        except DirectoryError as exc:
            if exc.code == USER_NOT_FOUND:
                return None
            raise

    async def _fetch_token(self) -> None:
        body = await self.caller.json(
            "POST", f"{self.api_base}/v1.0/oauth2/accessToken", json={"appKey": self.app_key, "appSecret": self.app_secret}
        )
        if not body.get("accessToken"):
            raise DirectoryRefused(
                "dingtalk", str(body.get("code") or "no token"),
                "the app_key / app_secret were refused: copy them from 开发者后台 → the app → 凭证与基础信息",
            )
        self.token = str(body["accessToken"])

    async def _call(self, api: str, **payload: Any) -> Any:
        body = await self.caller.json(
            "POST", f"{self.oapi_base}/{api}", params={"access_token": self.token}, json=payload
        )
        code = int(body.get("errcode", 0) or 0)
        if code in PERMISSION_CODES:
            raise DirectoryRefused("dingtalk", code, f"{api}: {PERMISSION_CODES[code]}")
        if code:
            raise DirectoryError("dingtalk", code, f"{api} failed")
        return body.get("result")

    async def _post(self, api: str, **payload: Any) -> dict[str, Any]:
        result = await self._call(api, **payload)
        return result if isinstance(result, dict) else {}

    async def _post_list(self, api: str, **payload: Any) -> list[dict[str, Any]]:
        result = await self._call(api, **payload)
        return result if isinstance(result, list) else []


def _member(user: dict[str, Any], leaders: dict[str, set[str]]) -> Member:
    """A Member from a `user/list` entry; departments in DingTalk's order, led ones from both sources."""
    user_id = str(user["userid"])
    departments = tuple(str(d) for d in user.get("dept_id_list", []))
    return Member(
        user_id=user_id,
        name=str(user.get("name") or user_id),
        department_ids=departments,
        leader_of=tuple(d for d in departments if user_id in leaders.get(d, ())),
        mobile=str(user["mobile"]) if user.get("mobile") else None,
    )
