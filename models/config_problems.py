"""Config problems as small records (where, code, params), rendered in Chinese or English from one catalogue.

A problem names its entry by id and name, as the admin wrote it (`people「王建国」(wang_jianguo).unit`),
not by position (`people[5].unit`), and says in one line what is wrong and how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Lang = Literal["zh", "en"]
LANGS: tuple[str, ...] = ("zh", "en")
Loc = tuple[int | str, ...]


class Ref(tuple[int | str, ...]):
    """A param that points at another entry (a TOML path); rendered like a problem's location."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the config: at `loc` (a TOML path), of kind `code`, with the details in `params`."""

    loc: Loc
    code: str
    params: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def problem(*loc: int | str, code: str, **params: Any) -> Problem:
    return Problem(tuple(loc), code, params)


# -- the catalogue: code -> (zh, en) ----------------------------------------------------------------
# Templates use str.format; `{x!r}` quotes a value as Python would ('school3'), which the admin can copy.

MESSAGES: dict[str, tuple[str, str]] = {
    # the file itself
    "file_missing": ("找不到文件 {path}；请检查路径，例如 safetybot check-config config.toml", "{path} does not exist"),
    "file_encoding": ("{path} 不是 UTF-8 文本；请用 UTF-8 编码另存", "{path} is not UTF-8 text; save it as UTF-8"),
    "file_unreadable": ("无法读取 {path}：{reason}", "cannot read {path}: {reason}"),
    "toml": ("不是有效的 TOML：{detail}；请检查引号和括号是否成对", "not valid TOML: {detail}"),
    # references and duplicates
    "unknown_unit": (
        "没有 id 为 {value!r} 的单位；请写 [[units]] 里已有的 id",
        "unknown unit {value!r}",
    ),
    "unknown_campaign": (
        "没有 id 为 {value!r} 的活动；请写 [[campaigns]] 里已有的 id", "unknown campaign {value!r}"
    ),
    "unknown_bot": ("{table} 里没有 id 为 {value!r} 的机器人", "unknown {table} id {value!r}"),
    "bot_not_platform": (
        "只有 wecom 和 dingtalk 群才有接收机器人；请删掉 bot 这一行",
        "only wecom and dingtalk groups have a receiving bot",
    ),
    "duplicate_id": (
        "id {value!r} 重复（{other} 也用了）；每个 id 只能用一次，例如改成 {value}2",
        "duplicate id {value!r} (also {other})",
    ),
    "unit_cycle": (
        "上级单位绕成了圈：{chain}；单位必须构成一棵树，请改掉其中一个 parent",
        "cycle {chain} (units must form a tree)",
    ),
    "unit_label_clash": (
        "{label!r} 也是 {other} 的名称（{scope_zh}）；大家会分不清指哪个单位，请改用不同的名称或别名",
        "{label!r} also names {other} in {scope}; people could not say which unit they mean",
    ),
    "end_before_start": (
        "结束日期 {end} 早于开始日期 {start}；请把 end 改到 start 之后",
        "before start ({end} < {start})",
    ),
    "outside_campaign": (
        "{day} 不在活动期间（{start} → {end}）内；请改到这段日期之内",
        "{day} is outside the campaign (the campaign runs {start} → {end})",
    ),
    "negative_nudge": (
        "{days} 是负数；请写截止日前的天数（0 表示当天），例如 [3, 1, 0]",
        "{days} is negative; give days before a deadline (0 = on the day)",
    ),
    "no_roles": (
        "至少写一个角色（{roles}），例如 roles = [\"teacher\"]", "give at least one role ({roles})"
    ),
    "duplicate_contact": (
        "{value!r} 与 {other}.{key} 相同；每人的 {key} 必须不同", "{value!r} is also {other}.{key}"
    ),
    "duplicate_person_name": (
        "{name!r} 与 {other} 同名（{scope_zh}）；“责任人：{name}”会有歧义，请把名字区分开，例如 {name}2",
        "{name!r} is also {other} in {scope}; 责任人：{name} would be ambiguous, so make the names differ "
        "(e.g. {name}2)",
    ),
    "no_admin": (
        "没有人有 admin 角色；请至少给一个人写 roles = [\"admin\"]",
        'nobody has the admin role; give at least one person roles = ["admin"]',
    ),
    "needs_credentials": (
        "{platform} 群需要 credentials（写保存密钥的环境变量名），例如 "
        "credentials = {{ webhook_key = \"SAFETYBOT_WECOM_WEBHOOK_KEY\" }}",
        "a {platform} group needs credentials (the NAMES of the environment variables holding its keys)",
    ),
    "duplicate_chat_id": (
        "{value!r} 与 {other}.chat_id 相同；每个群的 chat_id 必须不同", "{value!r} is also {other}.chat_id"
    ),
    "duplicate_category": (
        "类别 {name!r} 重复（{other} 也是）；请删掉或改名", "duplicate category {name!r} (also {other})"
    ),
    "keyword_clash": (
        "{keyword!r} 也是 {other} 的关键词；机器人分不清报告属于哪一类，请只保留一处",
        "{keyword!r} is also a keyword of {other}; the bot could not tell which category a report belongs to",
    ),
    "duplicate_checklist": (
        "{project} {seq} 与第 {row} 条 [[checklist]] 重复；请改用下一个序号",
        "{project} {seq} is also checklist row {row} (counting from 1); use the next free seq",
    ),
    "building_label_clash": (
        "{label!r} 也是同一单位的 {other} 的名称；请改用不同的名称或别名",
        "{label!r} also names {other} of the same unit",
    ),
    # value checks of our own (pydantic custom errors, by their type)
    "secret_in_config": (
        "这看起来是密钥（{masked}），不是环境变量名：请把密钥放进环境变量，这里只写变量名，例如 "
        "SAFETYBOT_WECOM_WEBHOOK_KEY",
        "this looks like a secret ({masked}), not an environment variable name: put the secret in an environment "
        "variable and write its NAME here, e.g. SAFETYBOT_WECOM_WEBHOOK_KEY",
    ),
    "env_var_name": (
        "{value} 不是环境变量名：只用大写字母、数字和 _，例如 SAFETYBOT_WECOM_WEBHOOK_KEY",
        "{value} is not an environment variable name: use UPPER_CASE letters, digits and _, "
        "e.g. SAFETYBOT_WECOM_WEBHOOK_KEY",
    ),
    "mobile": ("{value} 不是 11 位手机号；请写成 13800000001 这样", "{value} is not an 11-digit mobile number like 13800000001"),
    "timezone": (
        "未知时区 {value}；请写 IANA 时区名，例如 Asia/Shanghai",
        "unknown time zone {value}; use an IANA name such as Asia/Shanghai",
    ),
    "database_kind": (
        "未知数据库类型 {scheme}；请写例如 sqlite:/// 或 postgresql+psycopg://",
        "unknown database kind {scheme}; use e.g. sqlite:/// or postgresql+psycopg://",
    ),
    "database_url": (
        "不是 SQLAlchemy 数据库地址；例如 sqlite:///data/safetybot.db 或 postgresql+psycopg://user@host/dbname",
        "not a SQLAlchemy database URL; e.g. sqlite:///data/safetybot.db or postgresql+psycopg://user@host/dbname",
    ),
    "time_of_day": ("{value} 不是时刻；请写成 HH:MM，例如 \"17:00\"", "{value} is not a time of day (HH:MM)"),
    "quiet_hours": (
        '请写开始和结束时刻，例如 ["21:30", "07:30"]，不设免打扰写 []',
        'give a start and an end, e.g. ["21:30", "07:30"], or [] for none',
    ),
    "photo_levels": ('请写 "all" 或级别列表，例如 ["重大"]', 'use "all" or a list of levels such as ["重大"]'),
    "url_host": (
        "不是主机名：只写主机，例如 oapi.dingtalk.com，或 *.example.com 表示其所有子域名",
        "not a host name: write the host only, e.g. oapi.dingtalk.com, or *.example.com for its subdomains",
    ),
    "remind_before": (
        "{value} 不是提醒时间；请写成 \"-1d 16:00\"（报送日前几天，-30d 到 0d，加 HH:MM），"
        "例如 remind_before = [\"-1d 16:00\", \"0d 09:00\"]",
        "{value} is not a reminder time such as \"-1d 16:00\" (days before the report day, -30d to 0d, and HH:MM)",
    ),
    "remind_after_deadline": (
        "{value} 不在截止时间 {at} 之前；当天的提醒请早于截止，例如 \"0d 09:00\"",
        "{value} is not before the deadline {at}: remind earlier on the day, e.g. \"0d 09:00\"",
    ),
    "unknown_mention": (
        "不认识 {value!r}；请写 {kinds} 之一，或 [[people]] 里已有的 id",
        "unknown {value!r}: use one of {kinds}, or a person id from [[people]]",
    ),
    # pydantic's own errors, by their type
    "missing": ("缺少这一项（必填）；请补上", "missing (this key is required)"),
    "extra_forbidden": ("不认识的键{hint_zh}", "unknown key{hint_en}"),
    "literal_error": ("不认识的取值 {value!r}；可用的有 {expected}", "unknown value {value!r}; use one of {expected}"),
    "bad_id": (
        "{value!r} 不是有效的 id：只能用英文字母、数字、_、. 和 -（中文写在 name 里），例如 wang_jianguo",
        "{value!r} is not a valid id: use only ASCII letters, digits, '_', '.' and '-' (Chinese goes in name)",
    ),
    "date": ("不是有效的日期{got_zh}；请写成 2026-11-20", "{msg}{got_en}"),
    "time": ("不是有效的时刻{got_zh}；请写成 \"17:00\"", "{msg}{got_en}"),
    "int": ("应为整数{got_zh}，例如 10", "{msg}{got_en}"),
    "number": ("应为数字{got_zh}，例如 60", "{msg}{got_en}"),
    "bool": ("应为 true 或 false{got_zh}", "{msg}{got_en}"),
    "string": ("应为加引号的文本{got_zh}，例如 \"一中\"", "{msg}{got_en}"),
    "list": ("应为列表{got_zh}，例如 [\"school\"]", "{msg}{got_en}"),
    "table": ("应为一个表（[...] 或 {{ ... }}）{got_zh}", "{msg}{got_en}"),
    "too_short": ("不能为空{got_zh}；请填写内容", "{msg}{got_en}"),
    "too_long": ("太长{got_zh}；最多 {max_length} 个字符", "{msg}{got_en}"),
    "at_most": ("应不大于 {limit}{got_zh}", "{msg}{got_en}"),
    "at_least": ("应不小于 {limit}{got_zh}", "{msg}{got_en}"),
    "more_than": ("应大于 {limit}{got_zh}", "{msg}{got_en}"),
    "pattern": ("格式不对{got_zh}（应符合 {pattern}）", "{msg}{got_en}"),
    "invalid": ("取值不合适{got_zh}（{msg}）", "{msg}{got_en}"),
    "directory_credentials": (
        "缺少 {missing}；请写出保存凭据的环境变量名，例如 credentials = {{ {example} }}",
        "missing {missing}; e.g. credentials = {{ {example} }}",
    ),
    # legacy: a problem given as text by a check that has no code yet (same in both languages)
    "text": ("{text}", "{text}"),
}

SUGGESTION = ("；您是不是想写 {close}？", "; did you mean {close!r}?")
SUMMARY = ("{path}：共 {count} 个问题，请逐条改正后再运行 safetybot check-config", "{path}: {count} problem(s)")


def closest(value: str, known: Iterable[str]) -> str | None:
    """The known id closest to a typo (difflib), or None when nothing is close."""
    matches = difflib.get_close_matches(value, list(known), n=1, cutoff=0.6)
    return matches[0] if matches else None


# -- where: a TOML path, with each table row named by its name and id ----------------------------------


def row_label(row: Any, index: int) -> str:
    """「name」(id), 「name」 or (id) for a table row; [index] when it has neither."""
    if not isinstance(row, dict):
        return f"[{index}]"
    ident = row.get("id") if isinstance(row.get("id"), str) and row.get("id") else None
    name = row.get("name") if isinstance(row.get("name"), str) and row.get("name") else None
    if name is None and isinstance(row.get("project"), str) and isinstance(row.get("seq"), int):
        name = f"{row['project']} {row['seq']}"  # a checklist row is known by 督查项目 and 序号
    if name and ident:
        return f"「{name}」({ident})"
    if ident:
        return f"({ident})"
    return f"「{name}」" if name else f"[{index}]"


def where(data: Any, loc: Loc) -> str:
    """A TOML path such as ('people', 5, 'unit') as `people「王建国」(wang_jianguo).unit`."""
    out, node = "", data
    for part in loc:
        if isinstance(part, int):
            row = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            out += row_label(row, part)
            node = row
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


# -- rendering ---------------------------------------------------------------------------------------


def _lang_index(lang: str) -> int:
    return 1 if lang == "en" else 0


def message(problem: Problem, data: Any, lang: str = "zh") -> str:
    """What is wrong, in one language (the location not included)."""
    i = _lang_index(lang)
    params = {key: where(data, value) if isinstance(value, Ref) else value for key, value in problem.params.items()}
    text = MESSAGES[problem.code][i].format(**params)
    close = params.get("close")
    return text + SUGGESTION[i].format(close=close) if close else text


def render(problem: Problem, data: Any, lang: str = "zh") -> str:
    """`where: message` in one line."""
    return f"{where(data, problem.loc)}: {message(problem, data, lang)}"


def summary(path: Any, count: int, lang: str = "zh") -> str:
    return SUMMARY[_lang_index(lang)].format(path=path, count=count)
