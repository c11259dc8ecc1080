"""The hazard page's buttons after signing in through the platform's in-app login (issue 15).

Routes under a page's signed link /p/h/{id}/{expires}/{signature}: `/login` starts the platform's sign-in
(bot/pagelogin.py), `/act` runs a button. The platforms come back to /p/auth/wecom and /p/auth/dingtalk.

A button is the command a person would type (`销号 城关一中#12`), sent as that person in the group the hazard
was reported in: recorded and handled through the same runtime and engine as a card tap, so the permission
checks, the exactly-once guarantee (the form's own message id: a second submit finds it recorded) and what the
group sees (the reply, the owner's @) are the chat's. The answer is shown on the page.
"""

from __future__ import annotations

import json
import logging
import secrets as random
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from bot.pagelinks import HAZARD
from bot.pagelogin import (
    NONCE_COOKIE, PLATFORM_NAMES, SESSION_COOKIE, STATE_SECONDS, LoginFailed, PageLogin, SessionProblem, Viewer,
)
from bot.pages import error_page, hazard_page, hazard_ref, link_refusal, page
from bot.platforms.base import Runtime
from bot.platforms.dingtalk.limits import CH_SESSION
from bot.platforms.dingtalk.render import robot_bucket
from bot.platforms.wecom.limits import CHANNEL_WEBHOOK
from bot.platforms.wecom.render import webhook_robot
from handlers.buttons import PAGE_FIELDS, page_buttons
from handlers.messages import Inbound, as_platform
from models.pages import answer_of, hazard_group
from models.queries_directory import person_for_sender
from models.tables import GroupRow, Hazard

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 8 * 1024
MAX_WORDS = 200
PAGE_WORDS = frozenset(PAGE_FIELDS) | {"销号"}
ALT = ' class="alt"'


@dataclass(frozen=True, slots=True)
class Found:
    """A page link's hazard and the group its buttons act in."""

    hazard: Hazard
    group: GroupRow | None


class PageActions:
    """Signing in and the buttons, for the hazard pages of one running bot."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.engine = runtime.engine
        links = self.engine.photo_links
        self.login: PageLogin | None = None
        if links is not None:
            self.login = PageLogin(config=lambda: self.engine.config, secrets=runtime.secrets, http=runtime.http,
                                   link_key=links.key, clock=self.engine.now, shared=runtime.shared)

    def offered(self, group: GroupRow | None) -> str | None:
        """The platform whose sign-in the hazard's page offers; None: the page only reads."""
        if group is None or not group.chat_id or self.login is None or not self.login.available(group.platform):
            return None
        return group.platform

    # -- what the page shows -----------------------------------------------------------------------------

    def panel(self, session: Session, found: Found, request: Request, page_path: str) -> str:
        """The sign-in button, or the signed-in viewer's buttons for the hazard's state ("" when sign-in is off)."""
        platform = self.offered(found.group)
        if platform is None or self.login is None:
            return ""
        where = PLATFORM_NAMES[platform]
        sign_in = (f'<a class="btn" href="{escape(page_path)}/login">用{where}登录后操作</a>'
                   f'<p class="muted">登录后可以在这里整改、验收销号、退回、报进展。</p>')
        try:
            viewer = self.login.viewer(request.cookies.get(SESSION_COOKIE))
        except SessionProblem as problem:
            hours = self.engine.config.login.session_hours
            why = f"登录已过期（{hours}小时内有效），请重新登录。" if problem.expired else "登录状态无效，请重新登录。"
            return f'<section class="acts"><p>{why}</p>{sign_in}</section>'
        if viewer is None:
            return f'<section class="acts">{sign_in}</section>'
        if viewer.platform != platform:
            return (f'<section class="acts"><p>这条隐患在{where}群里登记，你登录的是{PLATFORM_NAMES[viewer.platform]}'
                    f"账号。请用{where}登录。</p>{sign_in}</section>")
        person = person_for_sender(session, viewer.platform, viewer.user_id)
        if person is None:
            return ('<section class="acts"><p>你已登录，但你的账号不在机器人的通讯录里，只能查看这条隐患。'
                    "如需操作，请联系学校管理员把你加入通讯录。</p></section>")
        buttons = page_buttons(session, person, found.hazard, hazard_ref(session, found.hazard),
                               verify_by_other=self.engine.policy.verify_by_other)
        head = f'<h2>操作</h2><p class="muted">已登录：{escape(person.name)}</p>'
        if not buttons:
            return (f'<section class="acts">{head}<p>这条隐患现在没有需要你做的操作。</p></section>')
        csrf = self.login.csrf(viewer, found.hazard.id or 0)
        forms = []
        for index, button in enumerate(buttons):
            word = button.command.split(maxsplit=1)[0]
            field = PAGE_FIELDS.get(word)
            words = ""
            if field is not None:
                label, example, required = field
                words = (f'<label>{escape(label)}<input type="text" name="words" maxlength="{MAX_WORDS}" '
                         f'placeholder="例如：{escape(example)}"{" required" if required else ""}></label>')
            forms.append(
                f'<form method="post" action="{escape(page_path)}/act">'
                f'<input type="hidden" name="csrf" value="{csrf}">'
                f'<input type="hidden" name="nonce" value="{random.token_hex(16)}">'
                f'<input type="hidden" name="command" value="{escape(word)}">{words}'
                f'<button type="submit"{"" if index == 0 else ALT}>{escape(button.label)}</button></form>'
            )
        return f'<section class="acts">{head}{"".join(forms)}</section>'

    def hazard_panel(self, session: Session, hazard: Hazard, request: Request, page_path: str) -> str:
        """`panel` for a hazard read in `session` (the pages' GET route)."""
        return self.panel(session, Found(hazard, hazard_group(session, hazard)), request, page_path)

    # -- running a button ---------------------------------------------------------------------------------

    def _route(self, group: GroupRow) -> dict[str, Any]:
        """Where the answer goes besides the page: the group, as a push by the group's robot (a form has no
        callback to answer)."""
        if group.platform == "wecom":
            return {"mode": "webhook", "channel": CHANNEL_WEBHOOK, "robot": webhook_robot(group.id),
                    "group_id": group.id, "chat_type": "group", "page": True}
        configured = next((g for g in self.engine.config.groups if g.id == group.id), None)
        robot_id = (configured.bot if configured is not None else None) or (
            self.engine.config.dingtalk.robots[0].id if self.engine.config.dingtalk.robots else "group")
        return {"channel": CH_SESSION, "robot": robot_bucket(robot_id, group.id, group.chat_id or ""),
                "robot_id": robot_id, "group_id": group.id, "conversation_id": group.chat_id,
                "session_webhook": "", "chat_type": "group", "page": True}

    async def act(self, found: Found, viewer: Viewer, form: dict[str, str]) -> tuple[int, str]:
        """Run the button's command as the viewer; (HTTP status, the notice to show above the page)."""
        group = found.group
        assert group is not None and group.chat_id is not None
        word, nonce = form.get("command", ""), form.get("nonce", "")
        if word not in PAGE_WORDS or len(nonce) != 32 or not all(c in "0123456789abcdef" for c in nonce):
            return 400, _notice("没有这个操作", "请刷新页面后，点页面上的按钮操作。")
        words = " ".join(form.get("words", "").split())[:MAX_WORDS]  # one line: it cannot start another command
        with Session(self.engine.db) as session:
            person = person_for_sender(session, viewer.platform, viewer.user_id)
            ref = hazard_ref(session, found.hazard)
        if person is None:
            return 403, _notice("无法操作", "你的账号不在机器人的通讯录里，只能查看。请联系学校管理员把你加入通讯录。")
        msg_id = f"page:{viewer.platform}:{viewer.user_id}:{nonce}"
        inbound = Inbound(
            platform=as_platform(viewer.platform), msg_id=msg_id, chat_id=group.chat_id,
            sender_id=viewer.user_id, sender_name=person.name, text=f"{word} {ref} {words}".strip(),
            received_at=self.engine.now(),
        )
        inbound_id = await self.runtime.record(inbound, self._route(group))
        if inbound_id is None:  # the same form again (a double tap, a reload): nothing runs twice
            with Session(self.engine.db) as session:
                earlier = answer_of(session, viewer.platform, msg_id)
            text = earlier[1] if earlier is not None and earlier[1] else "（还在处理中，请稍后刷新页面查看。）"
            return 200, _notice("这个操作已经提交过了，不会重复执行。当时的答复：", text)
        replies = await anyio.to_thread.run_sync(self.engine.process, inbound, inbound_id)
        if replies:
            self.runtime.sender.kick()
        text = "\n\n".join(r.text for r in replies if r.text.strip()) or "已收到。"
        return 200, _notice("机器人的答复", text)


def _notice(title: str, text: str) -> str:
    return f'<section class="result"><h2>{escape(title)}</h2><p>{escape(text)}</p></section>'


def _dingtalk_sign_in(login: PageLogin, state: str) -> HTMLResponse:
    """The page that asks the DingTalk client for a 免登 code and posts it back (only inside DingTalk)."""
    nonce = random.token_urlsafe(16)
    jsapi = login.config.login.dingtalk_jsapi_url
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(jsapi))

    def js(value: str | None) -> str:
        return json.dumps(value or "").replace("<", "\\u003c")

    script = (
        "(function(){var f=document.getElementById('f'),m=document.getElementById('m');"
        "function fail(){m.textContent='没能从钉钉取得登录码：请在钉钉里打开隐患页面，再点「用钉钉登录后操作」。';}"
        "if(typeof dd==='undefined'||!dd.runtime){fail();return;}"
        "dd.ready(function(){dd.runtime.permission.requestAuthCode({corpId:" + js(login.credential("dingtalk", "corp_id"))
        + ",clientId:" + js(login.credential("dingtalk", "app_key"))
        + ",onSuccess:function(r){f.code.value=r.code;f.submit();},onFail:fail});});dd.error(fail);})();"
    )
    body = (
        '<section class="err"><h1>正在用钉钉登录…</h1><p id="m">请稍候。</p>'
        '<form id="f" method="post" action="/p/auth/dingtalk">'
        f'<input type="hidden" name="state" value="{escape(state)}"><input type="hidden" name="code" value="">'
        f'</form></section><script src="{escape(jsapi)}"></script><script nonce="{nonce}">{script}</script>'
    )
    return page("钉钉登录", body, script=f"'nonce-{nonce}' {origin}")


def add_action_routes(app: FastAPI, actions: PageActions) -> None:
    """/p/h/…/login, /p/h/…/act, and the platforms' way back (/p/auth/wecom, /p/auth/dingtalk)."""
    engine = actions.engine

    def open_link(hazard_id: str, expires: str, signature: str) -> Found | HTMLResponse:
        refusal = link_refusal(engine, HAZARD, hazard_id, expires, signature)
        if refusal is not None:
            return refusal
        with Session(engine.db) as session:
            row = session.get(Hazard, int(hazard_id))
            if row is None:
                return error_page(404, "没有找到这条隐患，它可能已被删除。")
            session.expunge(row)
            group = hazard_group(session, row)
            if group is not None:
                session.expunge(group)
        return Found(row, group)

    def cookie(response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/p/", httponly=True, samesite="lax",
                            secure=actions.login is not None and actions.login.secure)

    @app.get("/p/h/{hazard_id}/{expires}/{signature}/login", include_in_schema=False)
    def start_login(hazard_id: str, expires: str, signature: str) -> Response:
        found = open_link(hazard_id, expires, signature)
        if isinstance(found, HTMLResponse):
            return found
        platform = actions.offered(found.group)
        if platform is None or actions.login is None:
            return error_page(404, "这条隐患所在的群没有开启网页登录，页面只能查看。整改、销号请在群里发消息。")
        state, nonce = actions.login.new_state(platform, found.hazard.id or 0)
        response: Response
        if platform == "wecom":
            response = RedirectResponse(actions.login.wecom_authorize_url(state), status_code=302)
        else:
            response = _dingtalk_sign_in(actions.login, state)
        cookie(response, NONCE_COOKIE, nonce, STATE_SECONDS)
        return response

    async def finish_login(platform: str, request: Request, code: str, state: str) -> Response:
        login = actions.login
        if login is None or not login.available(platform):
            return error_page(404, "本机器人没有开启网页登录。")
        try:
            hazard_id = login.check_state(platform, state, request.cookies.get(NONCE_COOKIE))
            if not await login.use_once("state", state, STATE_SECONDS):
                raise LoginFailed(400, "这个登录请求已经用过了。请回到隐患页面，重新点「登录」。")
            user_id = await login.user_of(platform, code)
        except LoginFailed as failed:
            return error_page(failed.status, failed.message)
        links = engine.page_links
        assert links is not None
        response = RedirectResponse(links.path(HAZARD, str(hazard_id)), status_code=303)
        cookie(response, SESSION_COOKIE, login.session_cookie(platform, user_id), login.session_seconds)
        response.delete_cookie(NONCE_COOKIE, path="/p/")
        log.info("page login: a %s user signed in", platform)
        return response

    @app.get("/p/auth/wecom", include_in_schema=False)
    async def wecom_back(request: Request, code: str = "", state: str = "") -> Response:
        return await finish_login("wecom", request, code, state)

    @app.post("/p/auth/dingtalk", include_in_schema=False)
    async def dingtalk_back(request: Request) -> Response:
        form = await _small_form(request)
        if form is None:
            return error_page(413, "提交的内容太大。")
        return await finish_login("dingtalk", request, form.get("code", ""), form.get("state", ""))

    @app.post("/p/h/{hazard_id}/{expires}/{signature}/act", include_in_schema=False)
    async def act(hazard_id: str, expires: str, signature: str, request: Request) -> Response:
        found = await anyio.to_thread.run_sync(open_link, hazard_id, expires, signature)
        if isinstance(found, HTMLResponse):
            return found
        login = actions.login
        platform = actions.offered(found.group)
        if platform is None or login is None:
            return error_page(404, "这条隐患所在的群没有开启网页登录，页面只能查看。整改、销号请在群里发消息。")
        page_path = f"/p/h/{hazard_id}/{expires}/{signature}"
        again = f'<p><a href="{escape(page_path)}">回到隐患页面</a></p>'
        try:
            viewer = login.viewer(request.cookies.get(SESSION_COOKIE))
        except SessionProblem as problem:
            why = "登录已过期，请回到隐患页面重新登录后再操作。" if problem.expired else "登录状态无效，请回到隐患页面重新登录。"
            return _refusal(401 if problem.expired else 403, why, again)
        if viewer is None:
            return _refusal(401, "请先登录：回到隐患页面，点「登录后操作」。", again)
        if viewer.platform != platform:
            return _refusal(403, f"这条隐患在{PLATFORM_NAMES[platform]}群里登记，请用{PLATFORM_NAMES[platform]}登录后操作。", again)
        form = await _small_form(request)
        if form is None:
            return error_page(413, "提交的内容太大。")
        if not login.csrf_ok(viewer, found.hazard.id or 0, form.get("csrf", "")):
            return _refusal(403, "页面已过期或表单无效，操作没有执行。请刷新隐患页面后再点按钮。", again)
        status, notice = await actions.act(found, viewer, form)

        def render() -> HTMLResponse:
            with Session(engine.db) as session:
                row = session.get(Hazard, found.hazard.id)
                assert row is not None
                fresh = Found(row, found.group)
                return hazard_page(engine, session, row, panel=actions.panel(session, fresh, request, page_path),
                                   notice=notice)

        shown = await anyio.to_thread.run_sync(render)
        shown.status_code = status
        return shown


def _refusal(status: int, message: str, extra: str = "") -> HTMLResponse:
    return page("无法操作", f'<section class="err"><h1>操作没有执行</h1><p>{escape(message)}</p>{extra}</section>',
                status=status)


async def _small_form(request: Request) -> dict[str, str] | None:
    """A urlencoded form of at most MAX_FORM_BYTES, as text fields (None when larger)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM_BYTES):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}
    return {key: value for key, value in pairs}
