"""Parse one chat message into a typed `Command` (the command language of DESIGN.md §3).

The parser is total: any string gives a `Command`; what it could not understand is listed in
`Command.errors` as polite Chinese sentences that say what to change, with an example.

Order of work: normalise the text (Traditional→Simplified, widths, whitespace, @mention), find the command
word at the start (`#`/`/` allowed before it), take the hazard number for the commands that need one, then
split the rest into free text (before the first `key：`) and `key：value` fields. A message that starts with a
field instead of a command word is a report (or a 检查 record when it has 结果 and no 问题). A report or 检查
typed without any colon (部位3号楼 问题插座坏了) gets colons put back after the main keys.

Messages written as people really write (see `handlers.understand`): 部位是… / 责任人为… are keys; chit-chat is the
command `chat`; 重大 / 待验收 are 清单 questions; `#12 修好了` is a lifecycle step; a report without keys is read
from plain words with the caller's `Vocabulary` and marked `plain`, with `doubts` the handler asks back about.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from handlers.categories import DEFAULT_CATEGORIES, infer_category, normalize_category
from handlers.command import Command, CommandName, HazardFields, Level
from handlers.commands import COMMANDS_BY_NAME
from handlers.dates import looks_like_deadline, resolve_deadline, split_leading_deadline
from handlers.normalize import normalize_text
from handlers.understand import (
    EMPTY_VOCABULARY,
    Vocabulary,
    is_chitchat,
    sounds_like_a_defect,
    split_filters,
    split_school,
    understand_lifecycle,
    understand_question,
    understand_report,
)

# ---------------------------------------------------------------------------------------------------------
# Vocabulary

_COMMANDS = COMMANDS_BY_NAME  # the command table: words, which take #N, examples
_WORD_TO_COMMAND: dict[str, CommandName] = {w.lower(): s.name for s in _COMMANDS.values() for w in s.words}
_ALL_WORDS = sorted(_WORD_TO_COMMAND, key=len, reverse=True)
# Words suggested for a typo: not those that only count alone (是, 同), which resemble too many openings.
_SUGGESTIBLE_WORDS = [word for word in _ALL_WORDS if not _COMMANDS[_WORD_TO_COMMAND[word]].alone]
_NUMBERED: frozenset[CommandName] = frozenset(s.name for s in _COMMANDS.values() if s.takes_number)
_LEVEL_FROM_WORD: dict[str, Level] = {"重大隐患": "重大", "一般隐患": "一般"}

_CANONICAL_WORD: dict[CommandName, str] = {s.name: s.word for s in _COMMANDS.values()}

# (attribute, label shown in messages, synonyms). Attributes other than HazardFields' are result and note.
_FIELD_KEYS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("location", "部位", ("位置", "地点", "场所", "建筑", "隐患部位", "具体位置", "所在位置", "具体部位", "区域")),
    ("problem", "问题", ("隐患", "内容", "描述", "存在问题", "隐患问题", "存在隐患问题", "隐患描述", "问题描述",
                        "隐患内容", "具体问题")),
    ("category", "类别", ("类型", "分类", "隐患类别", "隐患类型")),
    ("level", "等级", ("级别", "隐患等级", "隐患级别")),
    ("responsible", "责任人", ("负责人", "整改人", "整改责任人")),
    ("unit", "单位", ("部门", "责任部门", "责任单位", "整改单位", "整改部门")),
    ("deadline", "期限", ("时限", "整改期限", "完成时间", "截止", "截止时间", "截止日期", "整改时限", "完成期限",
                         "完成时限", "完成日期")),
    ("measure", "措施", ("整改措施", "处理措施", "整改方案")),
    ("check_item", "检查内容", ("检查项", "检查项目")),
    ("immediate", "立即整改", ("是否立即整改", "能否立即整改", "可否立即整改", "立查立改")),
    ("closed_building", "停用", ("是否停用", "停止使用")),
    ("source", "来源", ("发现来源", "问题来源", "隐患来源")),  # 回头看 (issue 16): 督查, 县普查 …
    ("result", "结果", ("检查结果",)),
    ("note", "说明", ("备注", "原因", "整改说明", "整改情况", "完成情况", "整改完成情况", "情况说明", "处理情况",
                     "进展情况", "延期原因", "退回原因", "理由")),
)
_FIELD_EXAMPLES: dict[str, str] = {
    "location": "3号教学楼二楼东侧", "problem": "消防通道堆放杂物", "category": "消防", "level": "一般",
    "responsible": "王建国", "unit": "总务处", "deadline": "12月10日", "measure": "清理杂物", "check_item": "消防设施",
    "immediate": "是", "closed_building": "否", "result": "无隐患", "source": "督查",
}
_LABEL_TO_ATTR: dict[str, str] = {
    label: attr for attr, main, synonyms in _FIELD_KEYS for label in (main, *synonyms)
}
_ATTR_TO_LABEL: dict[str, str] = {attr: main for attr, main, _ in _FIELD_KEYS}
_LABELS_LONGEST_FIRST = sorted(_LABEL_TO_ATTR, key=len, reverse=True)
_HAZARD_ATTRS = frozenset(attr for attr, _, _ in _FIELD_KEYS) - {"result", "note"}

_LEVELS: dict[str, Level] = {"一般": "一般", "一般隐患": "一般", "重大": "重大", "重大隐患": "重大"}
_YES = frozenset(("是", "是的", "能", "可以", "对", "需要", "要", "已整改", "已改", "已停用", "停用", "y", "yes", "true",
                  "1", "√", "✓", "✔"))
_NO = frozenset(("否", "不", "不是", "不能", "不可以", "不对", "不需要", "不用", "无需", "未停用", "不停用", "没有", "无",
                 "n", "no", "false", "0", "×", "✗", "✘"))

# ---------------------------------------------------------------------------------------------------------
# Patterns

_CJK = "\u4e00-\u9fff"
_SEPARATORS = "，,；;。、"
_BOUNDARY = "\n " + _SEPARATORS
_STRONG_BOUNDARY = "\n ；;"  # where a field usually starts, unlike ，、 which also occur inside sentences
_COMMAND_RE = re.compile(r"^[#/]?[ ]*(?P<word>" + "|".join(map(re.escape, _ALL_WORDS)) + ")", re.IGNORECASE)
_HEAD_KEY_RE = re.compile(rf"^(?P<run>[{_CJK}]{{1,8}})[ ]*[:：]")
_LIST_MARKER_RE = re.compile(
    rf"(?m)^(?:\d{{1,2}}[、.)）]|[一二三四五六七八九十]{{1,2}}、|[①-⑳•·*-])[ ]*(?=[{_CJK}]{{1,8}}[ ]*[:：])"
)
_BRACKET_KEY_RE = re.compile(
    r"【[ ]*(?P<label>" + "|".join(map(re.escape, _LABELS_LONGEST_FIRST)) + r")[ ]*】[ ]*[:：]?[ ]*"
)
_NOT_A_NUMBER_AFTER_HAO = "(?![楼院馆室房栋层号])"
_NUMBER_AT_START_RE = re.compile(
    r"^(?:编号[ ]*[:：]?[ ]*)?(?:"
    rf"(?:第[ ]*)?#[ ]*(?P<a>\d+)(?:[ ]*号{_NOT_A_NUMBER_AFTER_HAO})?"
    rf"|第[ ]*(?P<b>\d+)(?:[ ]*号{_NOT_A_NUMBER_AFTER_HAO})?"
    rf"|(?P<c>\d+)[ ]*号{_NOT_A_NUMBER_AFTER_HAO}"
    r"|(?P<d>\d+)(?![\d月日天周个点.\-/:：年号时])"
    r")"
)
_HASH_NUMBER_RE = re.compile(r"#[ ]*(?P<n>\d+)(?:[ ]*号(?![楼院馆室房栋层]))?")
# 城南小学#12: a school's #12 (numbers are per school; a county chat names the school)
_SCHOOL_HASH_RE = re.compile(rf"^(?P<school>[{_CJK}A-Za-z0-9]{{1,19}}[学校中小园院])#[ ]*(?P<n>\d+)")
_LEADING_HASH_RE = re.compile(rf"^(?:#[ ]*(?P<a>\d+)|第[ ]*(?P<b>\d+)[ ]*号{_NOT_A_NUMBER_AFTER_HAO})(?:[ ]*号)?")
# Colons are on the symbol page of a phone keyboard, so a report typed with none at all (部位3号楼 问题插座坏了)
# gets them back before the main keys; only where a key starts a line or follows a space or separator.
_COLONLESS_KEYS = ("部位", "位置", "地点", "问题", "类别", "等级", "责任人", "单位", "期限", "结果")
_COLONLESS_RE = re.compile(r"(?:^|(?<=[\n ，,；;]))(" + "|".join(_COLONLESS_KEYS) + r")[ ]*(?=[^\s，,；;。、:：])")
# 部位是图书馆二楼，责任人为王建国: a key followed by 是/为 is a key followed by a colon.
_COPULA_RE = re.compile(
    r"(?:^|(?<=[\n ，,；;]))(" + "|".join(map(re.escape, _LABELS_LONGEST_FIRST)) + r")[ ]*(?:是|为)(?!否)[ ]*"
)
# Dictation glues keys to values with no space at all (部位二号楼一楼男厕所问题插座冒烟了).
_LOCATION_COPULA_RE = re.compile(r"(?:^|(?<=[\n ，,；;]))(部位|位置|地点)[ ]*在")  # 部位在五楼天台
_GLUED_KEYS = ("部位", "问题", "责任人", "单位", "期限")
_GLUED_RE = re.compile("(" + "|".join(_GLUED_KEYS) + r")(?:是|为)?(?=[^\s，,；;。、])")
_NO_HAZARD_TAIL_RE = re.compile(r"[，,；; ]+(?P<result>无隐患|未发现隐患|没有隐患|无问题|未发现问题|正常)$")
_MAX_HAZARD_NO = 999_999_999

# ---------------------------------------------------------------------------------------------------------
# Messages

_EMPTY = "消息是空的，请写上命令，例如：隐患 部位：3号教学楼二楼东侧，问题：消防通道堆放杂物；发送「帮助」查看全部命令"
_MAIN_COMMANDS = "、".join(
    f"{s.word}（上报新隐患）" if s.name == "report" else s.word + (" #23" if s.takes_number else "")
    for s in _COMMANDS.values() if s.everyday
)
_DEADLINE_EXAMPLE = "期限：12月10日、本周五或3天内"
_MISSING_HINTS = {
    "location": "缺少「部位」：请写明隐患所在位置，例如：部位：3号教学楼二楼东侧",
    "problem": "缺少「问题」：请写明存在什么隐患，例如：问题：消防通道堆放杂物",
}


def _snippet(text: str, limit: int = 20) -> str:
    first_line = text.split("\n", 1)[0]
    return first_line if len(first_line) <= limit else first_line[:limit] + "…"


def _example(name: CommandName, word: str | None = None) -> str:
    return _COMMANDS[name].example(word)


# ---------------------------------------------------------------------------------------------------------
# Splitting a body into free text and fields


@dataclass(slots=True)
class _Body:
    free_text: str
    fields: list[tuple[str | None, str, str]] = field(default_factory=list)  # (attribute or None, label, value)
    errors: list[str] = field(default_factory=list)

    def has_hazard_fields(self) -> bool:
        return any(attr in _HAZARD_ATTRS for attr, _, value in self.fields if value)


def _clean_value(value: str) -> str:
    lines = (line.strip(" " + _SEPARATORS) for line in value.split("\n"))
    return "\n".join(line for line in lines if line)


def _known_label_ending_at(body: str, end: int, floor: int) -> str | None:
    """The longest known label that ends at `end` and starts at `floor` or after."""
    for length in _LABEL_LENGTHS:
        if end - length >= floor and body[end - length:end] in _LABEL_TO_ATTR:
            return body[end - length:end]
    return None


_LABEL_LENGTHS = sorted({len(label) for label in _LABEL_TO_ATTR}, reverse=True)


_MAIN_LABELS = tuple(main for _, main, _ in _FIELD_KEYS)
# Main labels first, so that a tie (部为 is as close to 部门 as to 部位) suggests the key people mean most often.
_SUGGESTIBLE = (*_MAIN_LABELS, *(label for label in _LABEL_TO_ATTR if label not in _MAIN_LABELS))


def _closest_label(word: str) -> str | None:
    """The key `word` is probably a typo of, or None; half-similar words must share the first character."""
    best: tuple[float, str] | None = None
    matcher = difflib.SequenceMatcher(b=word)
    for label in _SUGGESTIBLE:
        matcher.set_seq1(label)
        ratio = matcher.ratio()
        # 问提→问题 and 部为→部位 keep the first character; 注意 vs 备注 shares one character but is a word of its own.
        plausible = ratio > 0.5 or (ratio == 0.5 and label[0] == word[0])
        if plausible and (best is None or ratio > best[0]):
            best = (ratio, label)
    return None if best is None else best[1]


def _unknown_key_error(run: str) -> str:
    close = _closest_label(run)
    if close is not None:
        return f"不认识的字段「{run}」，您是想写「{close}」吗？"
    return (f"不认识的字段「{run}」，可以写的字段有：" + "、".join(_ATTR_TO_LABEL.values())
            + "，例如：部位：3号教学楼二楼东侧")


@dataclass(frozen=True, slots=True)
class _Key:
    start: int  # where the key begins
    value_start: int  # just after its colon
    attr: str | None  # None for a word that is not a known key
    label: str  # as typed
    after_strong_boundary: bool


def _split_body(body: str) -> _Body:
    """Cut `body` at every `key：` (known keys anywhere, unknown ones only where they look like keys)."""
    keys: list[_Key] = []
    floor = 0
    for colon in re.finditer("[:：]", body):
        end = colon.start()
        while end > floor and body[end - 1] == " ":
            end -= 1
        label = _known_label_ending_at(body, end, floor)
        if label is not None:
            keys.append(_Key(end - len(label), colon.end(), _LABEL_TO_ATTR[label], label, after_strong_boundary=False))
            floor = colon.end()
            continue
        begin = end
        while begin > floor and "\u4e00" <= body[begin - 1] <= "\u9fff":
            begin -= 1
        if not 1 <= end - begin <= 6 or not (begin == 0 or body[begin - 1] in _BOUNDARY):
            continue
        strong = begin == 0 or body[begin - 1] in _STRONG_BOUNDARY
        keys.append(_Key(begin, colon.end(), None, body[begin:end], strong))
        floor = colon.end()

    # An unknown `word：` is a mistyped key when it resembles one, or when it starts a line or follows a space
    # or ； among real fields; otherwise (…，注意：…  or 你好：…) it is ordinary text and stays in its value.
    has_known = any(key.attr is not None for key in keys)
    kept: list[_Key] = []
    errors: list[str] = []
    for key in keys:
        if key.attr is None:
            if _closest_label(key.label) is None and not (key.after_strong_boundary and has_known):
                continue
            errors.append(_unknown_key_error(key.label))
        kept.append(key)

    parsed = _Body(free_text=_clean_value(body[: kept[0].start] if kept else body), errors=errors)
    for index, key in enumerate(kept):
        value_end = kept[index + 1].start if index + 1 < len(kept) else len(body)
        parsed.fields.append((key.attr, key.label, _clean_value(body[key.value_start : value_end])))
    return parsed


# ---------------------------------------------------------------------------------------------------------
# Field values


@dataclass(slots=True)
class _Draft:
    """What the fields of one message said, before the command-specific checks."""

    fields: HazardFields = field(default_factory=HazardFields)
    notes: list[str] = field(default_factory=list)
    result: str | None = None
    errors: list[str] = field(default_factory=list)
    deadline_rejected: bool = False  # a deadline was written but could not be used (already reported)


def _parse_bool(label: str, value: str) -> tuple[bool | None, str | None]:
    folded = value.strip().lower()
    if folded in _YES:
        return True, None
    if folded in _NO:
        return False, None
    return None, f"「{label}」只能写「是」或「否」，您写的是「{value}」，例如：{label}：是"


def _deadline_error(text: str, resolved: date | None, *, today: date, example: str) -> str | None:
    if resolved is None:
        return f"没看懂期限「{_snippet(text)}」，请写成具体日期，例如：{example}"
    if resolved < today:
        return (f"期限「{_snippet(text)}」是{resolved.isoformat()}，已经过去了，"
                f"请写今天（{today.isoformat()}）或以后的日期，例如：期限：12月10日")
    return None


def _apply_fields(body: _Body, *, today: date) -> _Draft:
    draft = _Draft(errors=list(body.errors))
    seen: set[str] = set()
    hazard = draft.fields
    for attr, label, value in body.fields:
        if attr is None or not value:
            continue
        if attr == "note":
            draft.notes.append(value)
            continue
        if attr in seen:
            main = _ATTR_TO_LABEL[attr]
            draft.errors.append(f"「{main}」写了两次，请只写一次，例如：{main}：{_FIELD_EXAMPLES[attr]}")
            continue
        seen.add(attr)
        if attr == "result":
            draft.result = value
        elif attr == "level":
            level = _LEVELS.get(value.replace(" ", ""))
            if level is None:
                draft.errors.append(f"等级只能写「一般」或「重大」，您写的是「{value}」，例如：等级：重大")
            hazard.level = level
        elif attr in ("immediate", "closed_building"):
            flag, error = _parse_bool(label, value)
            if error is not None:
                draft.errors.append(error)
            setattr(hazard, attr, flag)
        elif attr == "deadline":
            resolved = resolve_deadline(value, today=today)
            error = _deadline_error(value, resolved, today=today, example=_DEADLINE_EXAMPLE)
            if error is not None:
                draft.errors.append(error)
                draft.deadline_rejected = True
            else:
                hazard.deadline = resolved
        elif attr == "responsible":
            hazard.responsible = value.lstrip("@ ") or None
        else:
            setattr(hazard, attr, value)
    return draft


# ---------------------------------------------------------------------------------------------------------
# Commands


def _match_command(text: str) -> tuple[CommandName, str, str] | None:
    """Return (command, word as typed, rest) when `text` starts with a command word rather than a field."""
    head = _HEAD_KEY_RE.match(text)
    if head is not None and _is_field_head(head["run"]):
        return None
    match = _COMMAND_RE.match(text)
    if match is None:
        return None
    word = match["word"]
    rest = text[match.end():].lstrip(" ")
    if rest[:1] in (":", "："):
        rest = rest[1:]
    name = _WORD_TO_COMMAND[word.lower()]
    if _COMMANDS[name].alone and not _is_alone(name, rest):
        return None
    return name, word, rest.strip()


_ALONE_TAIL_RE = re.compile(r"^[ 。.！!~～啊吧呀了哈的，,]*$")


def _is_alone(name: CommandName, rest: str) -> bool:
    """Whether a word that must stand alone does (确认。 同 #12), rather than start a longer message (是否…)."""
    if name in _NUMBERED:
        school = _SCHOOL_HASH_RE.match(rest.strip())  # 同 城南小学#12 (numbers are per school)
        if school is not None:
            rest = f"#{school['n']}{rest.strip()[school.end():]}"
        number, rest = _take_number(rest)
        if number is None:  # 同 alone asks for its number; 同学们… is something else
            return not rest.strip()
    return _ALONE_TAIL_RE.match(rest) is not None


def _names_the_owner(text: str) -> bool:
    """Whether `text` starts with the 责任人 field (责任人：王建国)."""
    head = _HEAD_KEY_RE.match(text)
    return head is not None and _LABEL_TO_ATTR.get(head["run"]) == "responsible"


def _is_field_head(run: str) -> bool:
    if run in _LABEL_TO_ATTR:
        return True
    if run in _WORD_TO_COMMAND:
        return False
    # 检查部位：… is the command 检查 followed by the key 部位
    return not any(run.startswith(word) and run[len(word):] in _LABEL_TO_ATTR for word in _ALL_WORDS)


def _take_number(rest: str) -> tuple[str | None, str]:
    """Split the hazard number off `rest`: at its start in any form, or anywhere as `#N`."""
    match = _NUMBER_AT_START_RE.match(rest)
    if match is not None:
        digits = next(g for g in match.group("a", "b", "c", "d") if g is not None)
        return digits, rest[match.end():].strip().lstrip(_SEPARATORS + " ")
    found = _HASH_NUMBER_RE.search(rest)
    if found is not None:
        return found["n"], (rest[: found.start()] + " " + rest[found.end():]).strip()
    return None, rest


def _hazard_number(digits: str) -> int | None:
    """The hazard number the digits spell, or None when it is longer than any number we give out.

    The length is checked before `int()`: Python refuses to convert more than 4300 digits.
    """
    if len(digits) > len(str(_MAX_HAZARD_NO)) or int(digits) > _MAX_HAZARD_NO:
        return None
    return int(digits)


def _help_topic(rest: str) -> CommandName | None:
    topic = rest.strip().lower()
    for name in _CANONICAL_WORD:
        if topic == name:
            return name
    match = _COMMAND_RE.match(topic)
    return None if match is None else _WORD_TO_COMMAND[match["word"].lower()]


def _join_notes(parts: Sequence[str]) -> str | None:
    kept = [part for part in parts if part]
    return "；".join(kept) if kept else None


def _finish(command: Command, draft: _Draft, categories: Sequence[tuple[str, Sequence[str]]]) -> Command:
    hazard = draft.fields
    if hazard.category is not None:
        hazard.category = normalize_category(hazard.category, categories)
    elif command.command == "report":
        hazard.category = infer_category(hazard.problem, hazard.location, categories)
    command.fields = hazard
    command.result = draft.result
    command.note = _join_notes(draft.notes)
    command.errors.extend(draft.errors)
    return command


def _build(
    name: CommandName,
    word: str,
    rest: str,
    *,
    today: date,
    categories: Sequence[tuple[str, Sequence[str]]],
    hazard_no: str | None = None,
    vocabulary: Vocabulary = EMPTY_VOCABULARY,
) -> Command:
    command = Command(name)
    if name == "help":
        command.help_topic = _help_topic(rest)
        return command
    if name in _NUMBERED:
        rest = _take_hazard_number(command, name, word, rest, hazard_no)
    body = _split_body(_with_colons(name, rest))
    if name == "report" and not body.fields and body.free_text:
        return _plain_report(body.free_text, word=word, today=today, categories=categories, vocabulary=vocabulary)
    draft = _apply_fields(body, today=today)
    if name == "report":
        _report_fields(draft, body, word=word)
    elif name == "check":
        _check_fields(draft, body, word=word)
    elif name == "extend":
        _extend_fields(draft, body, word=word, today=today)
    elif name in ("list", "overdue"):
        _list_fields(command, draft, body, name=name)
    else:
        draft.notes.insert(0, body.free_text)
    _require_note(draft, name=name, word=word)
    return _finish(command, draft, categories)


def _take_hazard_number(command: Command, name: CommandName, word: str, rest: str, hazard_no: str | None) -> str:
    """Set the command's hazard number (given, or taken from `rest`), or say what is wrong with it; returns the
    rest of the text."""
    school = _SCHOOL_HASH_RE.match(rest) if hazard_no is None else None
    if school is not None:  # 城南小学#12: that school's 12 (numbers are per school)
        command.hazard_school = school["school"]
        hazard_no, rest = school["n"], rest[school.end():].strip().lstrip(_SEPARATORS + " ")
    if hazard_no is None:
        hazard_no, rest = _take_number(rest)
    number = None if hazard_no is None else _hazard_number(hazard_no)
    if hazard_no is None:
        command.errors.append(f"请写上隐患编号，例如：{_example(name, word)}")
    elif number is None:
        command.errors.append(
            f"隐患编号「{_snippet(hazard_no)}」不对：编号太长，请写清单里的编号，例如：{_example(name, word)}"
        )
    else:
        command.hazard_no = number
    if hazard_no is not None and _HASH_NUMBER_RE.search(rest):
        # 销号 #23 #24 would otherwise close #23 and quietly keep "#24" as a note.
        command.errors.append(f"一次只能写一个隐患编号，请分开发送，例如：{_example(name, word)}")
    return rest


def _with_colons(name: CommandName, rest: str) -> str:
    """A 隐患/检查 written without any colon: put colons after its keys (glued or spaced)."""
    if name == "report" and ":" not in rest and "：" not in rest:
        rest = _with_glued_keys(rest)
    if name in ("report", "check") and ":" not in rest and "：" not in rest:
        rest = _COLONLESS_RE.sub(r"\1：", rest)
    return rest


def _report_fields(draft: _Draft, body: _Body, *, word: str) -> None:
    """隐患: the level a word like 重大隐患 implies, free text as the problem, and what is missing."""
    hazard, free = draft.fields, body.free_text
    if word in _LEVEL_FROM_WORD and hazard.level is None and not any(a == "level" for a, _, _ in body.fields):
        hazard.level = _LEVEL_FROM_WORD[word]
    if free and hazard.problem is None:
        hazard.problem = free
    else:
        draft.notes.insert(0, free)
    if not body.errors:  # a mistyped key already explains what is missing
        missing = [attr for attr in ("location", "problem") if getattr(hazard, attr) is None]
        draft.errors.extend(_MISSING_HINTS[attr] for attr in missing)


def _check_fields(draft: _Draft, body: _Body, *, word: str) -> None:
    """检查: a result written at the end of the place (…无隐患), and the place it needs."""
    hazard = draft.fields
    if hazard.location is not None and draft.result is None:
        tail = _NO_HAZARD_TAIL_RE.search(hazard.location)
        if tail is not None:
            draft.result = tail["result"]
            hazard.location = hazard.location[: tail.start()] or None
    draft.notes.insert(0, body.free_text)
    if hazard.location is None and not body.errors:
        draft.errors.append(f"缺少「部位」：请写明检查了哪里，例如：{_example('check', word)}")


def _extend_fields(draft: _Draft, body: _Body, *, word: str, today: date) -> None:
    """延期: the new deadline (a field or the start of the free text), the rest is the reason."""
    draft.notes.insert(0, _extend_deadline(body.free_text, draft, word=word, today=today))
    if draft.fields.deadline is None and not draft.deadline_rejected:
        draft.errors.append(f"请写上新的期限，例如：{_example('extend', word)}")


def _list_fields(command: Command, draft: _Draft, body: _Body, *, name: CommandName) -> None:
    """清单/逾期: 重大, 待验收 or 逾期 in the free text narrow the list; what is left names a unit."""
    hazard = draft.fields
    question, unit_text = split_filters(body.free_text)
    command.command = question.command if name == "list" else name
    hazard.level = hazard.level or question.level
    command.list_status = question.status
    if unit_text and hazard.unit is None:
        hazard.unit = unit_text


_NOTE_REQUIRED: dict[CommandName, str] = {"progress": "进展情况", "reject": "退回原因", "reopen": "重开原因"}


def _require_note(draft: _Draft, *, name: CommandName, word: str) -> None:
    """进展, 退回 and 重开 must say something."""
    if name in _NOTE_REQUIRED and not _join_notes(draft.notes):
        draft.errors.append(f"请写上{_NOTE_REQUIRED[name]}，例如：{_example(name, word)}")


def _with_glued_keys(rest: str) -> str:
    """Put colons after keys glued to their values, when spaced keys alone do not give both 部位 and 问题."""
    if {"location", "problem"} <= _filled(_COLONLESS_RE.sub(r"\1：", rest)):
        return rest
    glued = _GLUED_RE.sub(r"\1：", rest)
    return glued if {"location", "problem"} <= _filled(glued) else rest


def _filled(body: str) -> set[str]:
    return {attr for attr, _, value in _split_body(body).fields if value and attr is not None}


def _plain_report(
    text: str,
    *,
    word: str,
    today: date,
    categories: Sequence[tuple[str, Sequence[str]]],
    vocabulary: Vocabulary,
) -> Command:
    """A report written without keys: what `understand_report` read, with its doubts."""
    plain = understand_report(text, today=today, vocabulary=vocabulary)
    hazard = HazardFields(
        location=plain.location, problem=plain.problem, responsible=plain.responsible, unit=plain.unit,
        deadline=plain.deadline, level=plain.level or _LEVEL_FROM_WORD.get(word),
    )
    hazard.category = infer_category(hazard.problem, hazard.location, categories)
    return Command("report", fields=hazard, plain=True, doubts=plain.doubts)


def _plain_words(clean: str, *, today: date, categories: Sequence[tuple[str, Sequence[str]]],
                 vocabulary: Vocabulary) -> Command | None:
    """A lifecycle step or a report in plain words, or None when the message is neither."""
    step = understand_lifecycle(clean)
    if step is not None:
        word = _CANONICAL_WORD[step.command]
        command = _build(step.command, word, step.rest, today=today, categories=categories, hazard_no=step.number)
        command.hazard_school = step.school  # 修好了 城南小学#12
        return command
    report = _plain_report(clean, word="隐患", today=today, categories=categories, vocabulary=vocabulary)
    fields = report.fields
    known_problem = fields.category is not None or fields.level == "重大"
    if not fields.problem or not (fields.location or known_problem):
        return None
    if not known_problem and not sounds_like_a_defect(fields.problem):
        report.doubts.append("no_keys")  # 三楼会议室开会: a place and words, but nothing wrong; ask, don't store
    return report


def _extend_deadline(free: str, draft: _Draft, *, word: str, today: date) -> str:
    """Take the new deadline from the start of 延期's free text; return the rest (the reason)."""
    if not free:
        return ""
    split = split_leading_deadline(free, today=today)
    if split is not None:
        resolved, reason = split
        written = free[: len(free) - len(reason)].strip()
        error = _deadline_error(written, resolved, today=today, example=_example("extend", word))
        if error is not None:
            draft.errors.append(error)
            draft.deadline_rejected = True
        elif draft.fields.deadline is None:
            draft.fields.deadline = resolved
        return reason
    token, _, reason = free.partition(" ")
    if draft.fields.deadline is None and looks_like_deadline(token):
        draft.errors.append(f"没看懂期限「{_snippet(token)}」，请写成具体日期，例如：{_example('extend', word)}")
        draft.deadline_rejected = True
        return reason.strip()
    return free


def _unknown_command(text: str) -> Command:
    run = re.match(rf"[#/]?[ ]*([{_CJK}A-Za-z]{{1,4}})", text)
    close = difflib.get_close_matches(run[1], _SUGGESTIBLE_WORDS, n=1, cutoff=0.5) if run else []
    if close:
        name = _WORD_TO_COMMAND[close[0]]
        error = (f"没看懂「{_snippet(text)}」，您是想写「{close[0]}」吗？例如：{_example(name, close[0])}；"
                 "发送「帮助」查看全部命令")
    else:
        error = f"没看懂「{_snippet(text)}」，消息要以命令开头，例如：{_MAIN_COMMANDS}；发送「帮助」查看全部命令"
    return Command(None, errors=[error])


def _prepare(text: str) -> str:
    text = normalize_text(text)
    text = _BRACKET_KEY_RE.sub(lambda m: m["label"] + "：", text)
    return _LIST_MARKER_RE.sub("", text)


def parse_message(
    text: str,
    *,
    today: date,
    categories: Sequence[tuple[str, Sequence[str]]] | None = None,
    vocabulary: Vocabulary | None = None,
) -> Command:
    """Parse one chat message (the @mention already stripped) into a `Command`; never raises.

    `vocabulary` (people, units, buildings by name) helps to read reports written without keys.
    """
    table = DEFAULT_CATEGORIES if categories is None else categories
    words = EMPTY_VOCABULARY if vocabulary is None else vocabulary
    several = _several_reports(text, today=today, categories=table, vocabulary=words)
    if several is not None:
        return several
    return _parse_one(text, today=today, categories=table, vocabulary=words)


def _parse_one(
    text: str, *, today: date, categories: Sequence[tuple[str, Sequence[str]]], vocabulary: Vocabulary
) -> Command:
    """One message that is one command."""
    table, words = categories, vocabulary
    clean = _LOCATION_COPULA_RE.sub(r"\1：", _COPULA_RE.sub(r"\1：", _prepare(text)))
    if not clean:
        return Command(None, errors=[_EMPTY])
    if is_chitchat(clean):
        return Command("chat")
    question = understand_question(clean)
    if question is not None:
        return Command(question.command, fields=HazardFields(level=question.level),
                       list_status=question.status)

    head = _match_command(clean)
    if head is not None and head[0] != "chat":
        name, word, rest = head
        return _build(name, word, rest, today=today, categories=table, vocabulary=words)

    school = _SCHOOL_HASH_RE.match(clean)
    if school is not None:  # 城南小学#12 …: that school's #12, read as `#12 …` is (看看城南小学#12, 城南小学#12 修好了)
        command = _parse_one(clean[school.end("school"):], today=today, categories=table, vocabulary=words)
        if command.command is not None and command.hazard_no == int(school["n"]):
            command.hazard_school = split_school(school["school"])[1] or school["school"]
        return command

    leading = _LEADING_HASH_RE.match(clean)
    if leading is not None:  # `#23` alone shows it; `#23 销号` is 销号 #23
        number = leading["a"] or leading["b"]
        rest = clean[leading.end():].strip()
        step = understand_lifecycle(clean)
        if step is not None and step.command == "reject":  # 验收不合格 starts with the word 验收 (销号)
            return _build("reject", _CANONICAL_WORD["reject"], step.rest, today=today, categories=table,
                          hazard_no=step.number)
        if not rest:
            return _build("show", "查看", "", today=today, categories=table, hazard_no=number)
        after = _match_command(rest)
        if after is not None and after[0] in _NUMBERED:
            name, word, rest = after
            return _build(name, word, rest, today=today, categories=table, hazard_no=number)
        if _names_the_owner(rest):  # `#23 责任人：王建国` gives #23 a new owner
            return _build("transfer", _CANONICAL_WORD["transfer"], rest, today=today, categories=table, hazard_no=number)
        step = understand_lifecycle(clean)
        if step is not None:
            return _build(step.command, _CANONICAL_WORD[step.command], step.rest, today=today, categories=table,
                          hazard_no=step.number)
        shown = _snippet(number, 9)
        return Command(None, errors=[
            f"没看懂「#{shown}」后面的「{_snippet(rest)}」，请把命令写在前面，例如：整改 #{shown} 已清理通道；"
            f"只看详情请发：#{shown}"
        ])

    if ":" not in clean and "：" not in clean:
        with_colons = _COLONLESS_RE.sub(r"\1：", _with_glued_keys(clean))
        fields = {attr for attr, _, value in _split_body(with_colons).fields if value}
        if {"location", "problem"} <= fields:
            clean = with_colons
    body = _split_body(clean)
    if not body.has_hazard_fields() and not body.errors:
        understood = _plain_words(clean, today=today, categories=table, vocabulary=words)
        return understood if understood is not None else _unknown_command(clean)
    has_result = any(attr == "result" and value for attr, _, value in body.fields)
    has_problem = any(attr == "problem" and value for attr, _, value in body.fields)
    implied: CommandName = "check" if has_result and not has_problem else "report"
    return _build(implied, _CANONICAL_WORD[implied], clean, today=today, categories=table)


# ---------------------------------------------------------------------------------------------------------
# Several hazards in one message

# 1. 2. / 1、 / 1) / （1） / ① / 一、 at the start of a line or after a space or separator (not 12.15, not 3号楼).
_ITEM_MARKER_RE = re.compile(
    r"(?:^|(?<=[\s，,；;。]))(?:\d{1,2}[.、．)）](?!\d)|[①-⑳]|[一二三四五六七八九十]{1,2}、|[（(]\d{1,2}[)）])[ ]*"
)
# What may come before the list: nothing, or a report word and a few words (隐患如下：, 发现以下几处隐患：).
_LIST_HEAD_RE = re.compile(
    r"^[#/]?[ ]*(?:(?:一般|重大)?(?:隐患|上报|报告|发现|反映)?(?:以下|如下|下列|几处|几个|两处|三处|这些|[一二三四五六七八九十两\d]+[处个条项])*"
    r"(?:一般|重大)?(?:隐患|问题)?(?:如下)?)[ ：:，,。\n]*$"
)


def _several_reports(
    text: str, *, today: date, categories: Sequence[tuple[str, Sequence[str]]], vocabulary: Vocabulary
) -> Command | None:
    """A message that lists several hazards (numbered, or one per line with a place and a problem each), or None.

    Each part is read as a report of its own; the command carries them as `items`.
    """
    normalized = normalize_text(text)
    markers = list(_ITEM_MARKER_RE.finditer(normalized))
    if len(markers) >= 2:
        head = normalized[: markers[0].start()]
        ends = [marker.start() for marker in markers[1:]] + [len(normalized)]
        parts = [normalized[marker.end(): end] for marker, end in zip(markers, ends)]
        numbered = True
    elif ":" not in normalized and "：" not in normalized and "\n" in normalized:
        lines = [line for line in normalized.split("\n") if line.strip()]
        head, parts, numbered = "", lines, False
        if lines and _LIST_HEAD_RE.match(lines[0]):
            head, parts = lines[0], lines[1:]
    else:
        return None
    if len(parts) < 2 or not _LIST_HEAD_RE.match(head.strip()):
        return None
    items = [_parse_one(part, today=today, categories=categories, vocabulary=vocabulary) for part in parts]
    for item in items:
        if item.command != "report" or not item.ok:
            return None
        if not numbered and not (item.fields.location and item.fields.problem and not item.doubts):
            return None
        if "重大" in head and item.fields.level is None:
            item.fields.level = "重大"
    first = items[0]
    return Command("report", fields=first.fields, note=first.note, plain=first.plain, doubts=list(first.doubts),
                   items=items)
