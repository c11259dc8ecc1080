"""New people and new groups without touching the config: 我是 教务处, 同意 张三, 登记本群 城关一中 安全工作群 教职工.

An unknown sender in a known group (whom the platform API could not tell us about) is asked once, in one short
line, which unit they belong to, and binds themselves with `我是 教务处` as a teacher of that unit — at once, or,
with `[directory] approve = true`, after an admin's `同意 张三`. The first @ in an unknown chat answers an admin
with what to type (`登记本群 …`) and everyone else with at most one polite line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from handlers import permissions
from handlers.command import Command, CommandSpec
from handlers.context import Context
from handlers.directory import find_unit, unit_names
from handlers.messages import Reply
from models.joining import (
    bind_chat,
    bind_person,
    decide,
    note_request,
    pending_requests,
)
from models.ledger import descendants
from models.push_groups import push_key_env
from models.queries_directory import active_people
from models.tables import GroupRow, PersonRow, SeenChat

JOIN_HELP = "新同事登记：我是 单位名，如：我是 教务处（没有显示姓名时写上姓名：我是 教务处 张三）"
APPROVE_HELP = "管理员同意新同事登记：同意 张三（只发「同意」可看待同意的名单）"
REGISTER_HELP = (
    "管理员登记新群：登记本群 学校名 群名 教职工（领导群写 领导），如：登记本群 城关一中 安全工作群 教职工"
)
ASK_UNIT = "您好{name}！我还不认识您，请告诉我您的单位，回复如：我是 {example}"
_SPLIT = re.compile(r"[\s，,、；;：:]+")
_AUDIENCES = {"教职工": "staff", "教师": "staff", "老师": "staff", "全体": "staff", "员工": "staff",
              "领导": "leaders", "校领导": "leaders", "领导班子": "leaders"}
MAX_LISTED = 8


@dataclass(frozen=True, slots=True)
class Stranger:
    """Who wrote, as the platform told us: an id the directory does not know, and a display name (maybe none)."""

    platform: str
    user_id: str
    chat_id: str
    name: str


def _words(command: Command) -> list[str]:
    text = " ".join(part for part in (command.fields.unit, command.fields.responsible, command.note) if part)
    return [word for word in _SPLIT.split(text.strip()) if word]


def _known_name(stranger: Stranger) -> str:
    """The platform's display name, unless it is only the user id (some callbacks carry no name)."""
    name = stranger.name.strip()
    return "" if not name or name == stranger.user_id else name


def _listed(names: list[str]) -> str:
    shown = "、".join(names[:MAX_LISTED])
    return shown + ("等" if len(names) > MAX_LISTED else "")


def _unit_choices(session: Session, scope: set[str] | None, roots: set[str]) -> list[str]:
    """The names of the units a sender may name, the departments before the school itself."""
    names = unit_names(session, scope) if scope is not None else {}
    return sorted(set(names.values()), key=lambda name: (name in {names.get(r) for r in roots}, name))


def _admins_for(session: Session, scope: set[str] | None) -> list[PersonRow]:
    """The admins to mention when a request waits: those of the group's school, else every admin (at most three)."""
    admins = [
        person for person in active_people(session)
        if "admin" in person.role_set
    ]
    local = [person for person in admins if scope is not None and person.unit_id in scope]
    return sorted(local or admins, key=lambda p: p.id)[:3]


def unknown_sender(
    session: Session, *, stranger: Stranger, command: Command, group: GroupRow | None, roots: set[str],
    approve: bool, now: datetime,
) -> list[Reply]:
    """What an unknown sender hears: one line asking for their unit, or the result of their `我是 …`.

    `roots`: the units the group serves (none: every unit); the sender may name any unit below them.
    """
    scope = descendants(session, roots) if roots else None
    name = _known_name(stranger)
    if group is None:  # a private chat: the school's group says which school
        return [Reply("您好！请在学校的安全工作群里 @我 并发送「我是 单位名」完成登记，如：我是 教务处")]
    request = note_request(session, platform=stranger.platform, user_id=stranger.user_id, chat_id=stranger.chat_id,
                           name=name, now=now)
    choices = _unit_choices(session, scope, roots)
    example = choices[0] if choices else "教务处"
    if command.command != "join":
        if request.state == "pending":
            return [Reply(f"您的登记（{request.name}）正在等管理员同意，同意后即可使用。")]
        return [Reply(ASK_UNIT.format(name=f"，{name}" if name else "", example=example))]
    words = _words(command)
    if not words:
        return [Reply(f"请写上单位，如：我是 {example}")]
    unit = find_unit(session, words[0], among=scope)
    if unit is None:
        known = f"本群的单位有：{_listed(choices)}。" if choices else ""
        return [Reply(f"没有找到单位「{words[0]}」。{known}请回复如：我是 {example}")]
    if not name:
        name = words[1] if len(words) > 1 else ""
    if not name:
        return [Reply(f"请写上您的姓名，如：我是 {unit.name} 张三")]
    request.name, request.unit_id, request.updated_at = name[:128], unit.id, now
    if approve:
        decide(session, request, "pending", by=None, now=now)
        admins = _admins_for(session, scope)
        return [Reply(
            f"收到，{name}（{unit.name}）的登记已交给管理员。请管理员回复：同意 {name}",
            mentions=tuple(admin.id for admin in admins),
        )]
    person = bind_person(session, platform=stranger.platform, user_id=stranger.user_id, name=name, unit_id=unit.id)
    decide(session, request, "bound", by=None, now=now)
    return [Reply(f"好的，{person.name}（{unit.name}），已登记。现在可以 @我 上报隐患了，发「帮助」看用法。")]


def handle_join(command: Command, context: Context) -> list[Reply]:
    """我是 … from someone the bot knows already."""
    unit = unit_names(context.session, [context.person.unit_id]).get(context.person.unit_id, "")
    return [Reply(f"您已登记为 {context.person.name}（{unit}），可以直接上报隐患。单位不对请告诉管理员。")]


def handle_approve(command: Command, context: Context) -> list[Reply]:
    """同意 张三: an admin lets a waiting sender in; 同意 alone lists who waits."""
    if "admin" not in context.person.role_set:
        return [Reply("只有管理员可以同意新同事登记。")]
    scope = permissions.scope_units(context.session, context.person)
    chat = permissions.chat_scope(context)
    if chat is not None:
        scope = chat if scope is None else scope & chat
    waiting = pending_requests(context.session, context.platform, scope)
    units = unit_names(context.session, {r.unit_id for r in waiting if r.unit_id})
    listing = "、".join(f"{r.name}（{units.get(r.unit_id or '', '')}）" for r in waiting[:MAX_LISTED])
    words = _words(command)
    if not words:
        return [Reply(f"待同意：{listing}。回复如：同意 {waiting[0].name}" if waiting else "目前没有等待同意的登记。")]
    matches = [r for r in waiting if r.name == words[0]]
    if len(words) > 1:
        matches = [r for r in matches if units.get(r.unit_id or "") == words[1]] or matches
    if not matches:
        more = f"待同意：{listing}。" if waiting else "目前没有等待同意的登记。"
        return [Reply(f"没有等待同意的「{words[0]}」。{more}")]
    if len(matches) > 1:
        return [Reply(f"有 {len(matches)} 位「{words[0]}」在等待，请写上单位，如：同意 {words[0]} "
                      f"{units.get(matches[0].unit_id or '', '')}")]
    request = matches[0]
    person = bind_person(context.session, platform=request.platform, user_id=request.user_id, name=request.name,
                         unit_id=request.unit_id or "")
    decide(context.session, request, "bound", by=context.person.id, now=context.now)
    unit = units.get(person.unit_id, "")
    return [Reply(f"已同意：{person.name}（{unit}）现在可以 @我 上报隐患了。", mentions=(person.id,))]


# -- unknown chats -------------------------------------------------------------------------------------------


def unknown_chat(session: Session, *, person: PersonRow | None, chat: SeenChat) -> list[Reply]:
    """The first @ in a chat no group is bound to: an admin hears what to type, others one polite line once."""
    if person is not None and "admin" in person.role_set:
        return [Reply(f"本群还没有登记，我还不知道它属于哪所学校。{REGISTER_HELP}")]
    if chat.answered:
        return []
    chat.answered = True
    session.add(chat)
    return [Reply("您好！本群还没有开通安全助手，请学校管理员在群里 @我 登记后再使用。")]


def bind_here(
    session: Session, *, person: PersonRow, platform: str, chat_id: str, group: GroupRow | None, command: Command,
    robot: str | None = None,
) -> list[Reply]:
    """登记本群 城关一中 安全工作群 教职工: an admin binds the chat they write in to a school (no campaign needed)."""
    if "admin" not in person.role_set:
        return [Reply("只有管理员可以登记群。")]
    if not chat_id or platform == "console":
        return [Reply("请在要登记的群里 @我 发送。")]
    if group is not None and group.source != "chat":
        return [Reply(f"本群已经是「{group.name}」，不用再登记。")]
    words = _words(command)
    audience = "staff"
    if words and words[-1] in _AUDIENCES:
        audience = _AUDIENCES[words.pop()]
    if not words:
        return [Reply(f"请写上学校名。{REGISTER_HELP}")]
    school = find_unit(session, words[0], among=permissions.scope_units(session, person))
    if school is None:
        return [Reply(f"没有找到学校「{words[0]}」，请写您负责的学校的名称。{REGISTER_HELP}")]
    name = " ".join(words[1:]) or f"{school.name}安全工作群"
    bound = bind_chat(session, platform=platform, chat_id=chat_id, name=name[:64], kind=audience, unit_id=school.id,
                      campaign_id=None, robot=robot)
    who = "领导群" if audience == "leaders" else "教职工群"
    # WeCom pushes reminders only through the chat's 消息推送 webhook, whose key is a secret: never asked for here.
    push = (f"\n定时提醒要经本群的「消息推送」发出：请在群设置里添加消息推送，把地址中的 key 交给系统管理员，"
            f"设为环境变量 {push_key_env(bound.id)}。" if platform == "wecom" else "")
    return [Reply(f"已登记本群：{bound.name}（{school.name}，{who}）。老师们现在可以 @我 上报隐患了，"
                  f"新同事发「我是 单位名」即可登记。{push}")]


def handle_register_group(command: Command, context: Context) -> list[Reply]:
    """登记本群 … in a chat the bot knows already (re-binding a chat bound in chat)."""
    return bind_here(context.session, person=context.person, platform=context.platform, chat_id=context.chat_id,
                     group=context.group, command=command, robot=context.robot)


JOIN = CommandSpec(
    "join", ("我是",), handle_join, usage="我是 单位名", summary="新同事登记所在单位", help=JOIN_HELP,
    example_tail=" 教务处", everyday=False,
)
APPROVE = CommandSpec(
    "approve", ("同意",), handle_approve, usage="同意 姓名", summary="管理员同意新同事登记", help=APPROVE_HELP,
    example_tail=" 张三", everyday=False,
)
REGISTER_GROUP = CommandSpec(
    "register_group", ("登记本群",), handle_register_group, usage="登记本群 学校 群名 教职工",
    summary="管理员登记新群", help=REGISTER_HELP, example_tail=" 城关一中 安全工作群 教职工", everyday=False,
)
