"""An in-memory organisation served by the fake WeCom and DingTalk contacts endpoints.

Both fakes read the same `FakeOrg`: departments with a parent, order and leaders; members in one or
more departments. A test changes it between syncs (rename, move, remove a member) and can refuse a
permission (`refuse` = an errcode returned by every contacts call) or hide departments from the app
(`visible`: the roots of the app's visible range; None = everything).
Answers follow the real shapes: WeCom `department/simplelist`, `department/get`, `user/list`,
`user/getuserid`, `user/get`; DingTalk `topapi/v2/department/get`, `topapi/v2/department/listsub`, `topapi/v2/user/list`
(cursor paging), `topapi/v2/user/getbymobile`, `topapi/v2/user/get`.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class OrgDepartment:
    id: int
    name: str
    parent_id: int | None
    order: int = 0
    leaders: list[str] = field(default_factory=list)  # user ids (WeCom department_leader, DingTalk managers)


@dataclass
class OrgMember:
    user_id: str
    name: str
    departments: list[int]  # the main department first
    mobile: str = ""
    status: int = 1  # WeCom: 1 active, 2 disabled, 4 not activated, 5 left


@dataclass
class FakeOrg:
    departments: dict[int, OrgDepartment] = field(default_factory=dict)
    members: dict[str, OrgMember] = field(default_factory=dict)
    refuse: int | None = None  # errcode for every contacts call (e.g. WeCom 48009, DingTalk 60011)
    visible: set[int] | None = None  # roots of the app's visible range; None = the whole organisation
    hide_mobiles: bool = False  # a WeCom app created after 2022-06-20: no mobile in user/list
    calls: Counter[str] = field(default_factory=Counter)  # path -> number of calls
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- building and changing the organisation ------------------------------------------------

    def add_department(self, dept_id: int, name: str, parent_id: int | None, order: int = 0) -> OrgDepartment:
        dept = OrgDepartment(dept_id, name, parent_id, order)
        self.departments[dept_id] = dept
        return dept

    def add_member(self, user_id: str, name: str, departments: list[int], *, mobile: str = "",
                   leader: bool = False) -> OrgMember:
        member = OrgMember(user_id, name, list(departments), mobile)
        self.members[user_id] = member
        if leader:
            self.departments[departments[0]].leaders.append(user_id)
        return member

    def remove_member(self, user_id: str) -> None:
        self.members.pop(user_id)
        for dept in self.departments.values():
            if user_id in dept.leaders:
                dept.leaders.remove(user_id)

    # -- queries the endpoints answer --------------------------------------------------------

    def children(self, dept_id: int) -> list[OrgDepartment]:
        return sorted((d for d in self.departments.values() if d.parent_id == dept_id), key=lambda d: (d.order, d.id))

    def subtree(self, dept_id: int) -> list[OrgDepartment]:
        found, queue = [], [dept_id]
        while queue:
            current = queue.pop(0)
            found.append(self.departments[current])
            queue.extend(d.id for d in self.children(current))
        return found

    def members_of(self, dept_id: int) -> list[OrgMember]:
        return sorted((m for m in self.members.values() if dept_id in m.departments), key=lambda m: m.user_id)

    def is_visible(self, dept_id: int) -> bool:
        if self.visible is None:
            return dept_id in self.departments
        cursor: int | None = dept_id
        while cursor is not None and cursor in self.departments:
            if cursor in self.visible:
                return True
            cursor = self.departments[cursor].parent_id
        return False

    def by_mobile(self, mobile: Any) -> OrgMember | None:
        return next((m for m in self.members.values() if mobile and m.mobile == mobile), None)

    def count(self, path: str) -> None:
        with self.lock:
            self.calls[path] += 1

    # -- WeCom ---------------------------------------------------------------------------------

    def wecom(self, api: str, params: dict[str, str]) -> dict[str, Any]:
        """The answer of /cgi-bin/<api> (token already checked)."""
        if self.refuse is not None:
            return _wecom_error(self.refuse, "no privilege to access/modify contact/party/agent")
        if api == "user/getuserid":
            found = self.by_mobile(params.get("mobile"))
            if found is None:
                return _wecom_error(46004, "user no exist")
            return {"errcode": 0, "errmsg": "ok", "userid": found.user_id}
        if api == "user/get":  # one member by userid
            member = self.members.get(str(params.get("userid") or ""))
            if member is None:
                return _wecom_error(60111, "userid not found")
            if not any(self.is_visible(d) for d in member.departments):
                return _wecom_error(60011, "no privilege to access/modify contact/party/agent")
            return {"errcode": 0, "errmsg": "ok", **_wecom_user(member, self.departments, self.hide_mobiles)}
        try:
            dept_id = int(params.get("id") or params.get("department_id") or 0)
        except ValueError:
            return _wecom_error(40058, "invalid Request Parameter")
        if not self.is_visible(dept_id):
            return _wecom_error(60011, "no privilege to access/modify contact/party/agent")
        if api == "department/simplelist":
            listing = [{"id": d.id, "parentid": d.parent_id or 0, "order": d.order} for d in self.subtree(dept_id)]
            return {"errcode": 0, "errmsg": "ok", "department_id": listing}
        if api == "department/get":
            d = self.departments[dept_id]
            info = {"id": d.id, "name": d.name, "name_en": "", "department_leader": list(d.leaders),
                    "parentid": d.parent_id or 0, "order": d.order}
            return {"errcode": 0, "errmsg": "ok", "department": info}
        users = [_wecom_user(m, self.departments, self.hide_mobiles) for m in self.members_of(dept_id)]
        return {"errcode": 0, "errmsg": "ok", "userlist": users}

    # -- DingTalk ------------------------------------------------------------------------------

    def dingtalk(self, api: str, body: dict[str, Any]) -> dict[str, Any]:
        """The answer of /topapi/<api> (token already checked)."""
        if self.refuse is not None:
            return {"errcode": self.refuse, "errmsg": "没有调用该接口的权限", "request_id": "fake"}
        if api == "v2/user/getbymobile":
            found = self.by_mobile(body.get("mobile"))
            if found is None:
                return {"errcode": 60121, "errmsg": "找不到该用户", "request_id": "fake"}
            return {"errcode": 0, "errmsg": "ok", "result": {"userid": found.user_id}, "request_id": "fake"}
        if api == "v2/user/get":  # one member by userid
            member = self.members.get(str(body.get("userid") or ""))
            if member is None:
                return {"errcode": 60121, "errmsg": "找不到该用户", "request_id": "fake"}
            if not any(self.is_visible(d) for d in member.departments):
                return {"errcode": 60011, "errmsg": "没有调用该接口的权限", "request_id": "fake"}
            user = _dingtalk_user(member, member.departments[0], self.departments)
            user["leader_in_dept"] = [{"dept_id": d, "leader": member.user_id in self.departments[d].leaders}
                                      for d in member.departments]
            return {"errcode": 0, "errmsg": "ok", "result": user, "request_id": "fake"}
        dept_id = body.get("dept_id")
        if not isinstance(dept_id, int) or dept_id not in self.departments:
            return {"errcode": 60003, "errmsg": "部门不存在", "request_id": "fake"}
        if not self.is_visible(dept_id):
            return {"errcode": 60011, "errmsg": "没有调用该接口的权限", "request_id": "fake"}
        if api == "v2/department/get":
            d = self.departments[dept_id]
            result: Any = {"dept_id": d.id, "name": d.name, "parent_id": d.parent_id or 1, "order": d.order,
                           "dept_manager_userid_list": list(d.leaders)}
        elif api == "v2/department/listsub":
            result = [{"dept_id": d.id, "name": d.name, "parent_id": dept_id, "auto_add_user": True,
                       "create_dept_group": False} for d in self.children(dept_id)]
        else:
            size, cursor = body.get("size"), body.get("cursor", 0)
            if not isinstance(size, int) or not 1 <= size <= 100 or not isinstance(cursor, int):
                return {"errcode": 400002, "errmsg": "无效参数", "request_id": "fake"}
            everyone = self.members_of(dept_id)
            page = everyone[cursor:cursor + size]
            more = cursor + size < len(everyone)
            result = {"has_more": more, "list": [_dingtalk_user(m, dept_id, self.departments) for m in page]}
            if more:
                result["next_cursor"] = cursor + size
        return {"errcode": 0, "errmsg": "ok", "result": result, "request_id": "fake"}


def _wecom_error(code: int, text: str) -> dict[str, Any]:
    return {"errcode": code, "errmsg": f"{text}, hint: [fake], more info at https://open.work.weixin.qq.com/devtool/query?e={code}"}


def _wecom_user(member: OrgMember, departments: dict[int, OrgDepartment], hide_mobile: bool) -> dict[str, Any]:
    user: dict[str, Any] = {
        "userid": member.user_id, "name": member.name, "department": list(member.departments),
        "order": [0] * len(member.departments), "main_department": member.departments[0],
        "is_leader_in_dept": [int(member.user_id in departments[d].leaders) for d in member.departments],
        "status": member.status, "position": "", "alias": "",
    }
    if member.mobile and not hide_mobile:  # apps created after 2022-06-20 get none without consent
        user["mobile"] = member.mobile
    return user


def _dingtalk_user(member: OrgMember, dept_id: int, departments: dict[int, OrgDepartment]) -> dict[str, Any]:
    user: dict[str, Any] = {
        "userid": member.user_id, "unionid": f"u{member.user_id}", "name": member.name,
        "dept_id_list": list(member.departments), "leader": member.user_id in departments[dept_id].leaders,
        "active": True, "admin": False, "boss": False,
    }
    if member.mobile:
        user["mobile"] = member.mobile
    return user


def build_org(*, schools: int, departments_per_school: int, members_per_school: int,
              first_dept_id: int = 1000) -> tuple[FakeOrg, dict[int, str]]:
    """A county of schools, each a department with sub-departments (half nested one level deeper).

    Returns the org and the `[directory] schools` mapping (department id -> unit id `school-N`).
    Each school's first member heads it; the first member of every department heads that department.
    """
    org = FakeOrg()
    org.add_department(1, "某县教育局", None)
    schools_map: dict[int, str] = {}
    next_id = first_dept_id
    for s in range(schools):
        school_id = next_id
        next_id += 1
        org.add_department(school_id, f"第{s + 1}学校", 1, order=s)
        schools_map[school_id] = f"school-{s + 1}"
        subs: list[int] = []
        for d in range(departments_per_school):
            parent = subs[d // 2 - 1] if d >= 2 and d % 2 == 0 else school_id  # some nested one level deeper
            org.add_department(next_id, f"学校{s + 1}部门{d + 1}", parent, order=d)
            subs.append(next_id)
            next_id += 1
        homes = [school_id, *subs]
        for m in range(members_per_school):
            dept = homes[m % len(homes)]
            leads = m < len(homes)
            org.add_member(f"s{s + 1}u{m + 1}", f"教师{s + 1}-{m + 1}", [dept], leader=leads)
    return org, schools_map
