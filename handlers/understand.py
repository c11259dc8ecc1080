"""Understand messages written as teachers really write them: no keys, no command word, dictation, chit-chat.

Pure text work like the parser (no database): what the school calls its people, units and buildings comes in a
small `Vocabulary` built by the caller. Everything here returns plain data; `handlers.parser` turns it into a
`Command`. A report read from plain words carries `doubts` (codes such as ``no_location`` or
``unknown_person:王建图>王建国``): such a report is not stored but shown back for the sender to confirm.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date

from handlers.command import HazardFields, Level
from handlers.dates import find_deadline


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The names a school uses, for telling a person, a unit or a building apart from ordinary words."""

    people: tuple[str, ...] = ()
    units: tuple[str, ...] = ()  # names and aliases
    buildings: tuple[str, ...] = ()  # names and aliases


EMPTY_VOCABULARY = Vocabulary()

_CJK = "\u4e00-\u9fff"
_CLAUSE_SPLIT_RE = re.compile(r"[，,；;。！!？?\n ]+")

# ---------------------------------------------------------------------------------------------------------
# Chit-chat

_CHITCHAT = frozenset((
    "谢谢", "谢谢你", "谢谢啦", "谢了", "多谢", "感谢", "非常感谢", "谢谢老师", "收到", "收到收到", "已收到", "好的",
    "好", "好滴", "好嘞", "好吧", "行", "可以", "嗯", "嗯嗯", "哦", "噢", "ok", "okay", "好的谢谢", "收到谢谢",
    "辛苦了", "辛苦", "辛苦啦", "大家辛苦了", "明白", "明白了", "知道了", "了解", "没问题", "哈哈", "赞", "棒",
))
_PARTICLES_RE = re.compile(r"[啊呀哈哦噢呢啦嘛~～…]+$")
# Words that only soften or address an acknowledgement: 好的收到, 谢谢大家, 收到，马上去.
_CHITCHAT_TAILS = ("大家", "各位", "老师们", "马上去", "马上办", "这就去", "马上落实", "立即落实", "马上处理")
_CHITCHAT_TOKENS = sorted({*_CHITCHAT, *_CHITCHAT_TAILS}, key=len, reverse=True)


def _without_symbols(text: str) -> str:
    """`text` without punctuation, emoji and spaces (👍, 🙏, 。！)."""
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PSZC")


def is_chitchat(text: str) -> bool:
    """Whether `text` is a thank-you, an acknowledgement or a greeting, with nothing to record."""
    core = _without_symbols(text).lower()
    if not core:  # only emoji (👍 🙏), not a lone ？ (that asks for help)
        return any(unicodedata.category(ch) == "So" for ch in text)
    trimmed = _PARTICLES_RE.sub("", core) or core
    return core in _CHITCHAT or trimmed in _CHITCHAT or _only_chitchat_words(trimmed)


def _only_chitchat_words(text: str) -> bool:
    """Whether `text` is made of acknowledgement words only, the first a real one (好的收到, not 大家)."""
    position, first = 0, True
    while position < len(text):
        word = next((w for w in _CHITCHAT_TOKENS if text.startswith(w, position)), None)
        if word is None or (first and word not in _CHITCHAT):
            return False
        position, first = position + len(word), False
    return True


# ---------------------------------------------------------------------------------------------------------
# Leaders' questions and plain-words lifecycle


@dataclass(slots=True)
class Question:
    """A 清单 / 逾期 question in plain words: what to list."""

    command: str  # "list" or "overdue"
    level: Level | None = None
    status: str | None = None  # "rectified" for 待验收
    unit: str | None = None


_FILTER_WORDS: dict[str, tuple[Level | None, str | None, bool]] = {
    # word: (level, status, overdue only)
    "重大隐患": ("重大", None, False), "重大": ("重大", None, False),
    "待验收": (None, "rectified", False), "已整改": (None, "rectified", False),
    "逾期": (None, None, True), "超期": (None, None, True), "过期": (None, None, True),
}
_FILTER_RE = re.compile("|".join(sorted(_FILTER_WORDS, key=len, reverse=True)))
_LIST_FILLER_RE = re.compile(r"^(?:的|有哪些|有多少|还有|清单|列表|情况|单位[:：]?)+|(?:的|有哪些|有多少|清单|列表|情况|吗|呢|[?？])+$")


def split_filters(text: str) -> tuple[Question, str]:
    """Take 重大 / 待验收 / 逾期 out of the words after 清单; the rest is a unit name (or nothing)."""
    question = Question("list")
    for match in _FILTER_RE.finditer(text):
        level, status, overdue = _FILTER_WORDS[match.group()]
        question.level = question.level or level
        question.status = question.status or status
        if overdue:
            question.command = "overdue"
    rest = _FILTER_RE.sub(" ", text)
    rest = " ".join(_LIST_FILLER_RE.sub("", part) for part in rest.split())
    return question, rest.strip()


_QUESTION_RE = re.compile(r"^(?:有哪些|还有哪些|看看|查看|查一下|列出)?(?P<what>重大隐患|重大|待验收)(?:清单|有哪些|的|隐患|[?？])*$")


def understand_question(text: str) -> Question | None:
    """重大 / 重大隐患 / 待验收 alone: the open hazards of that kind (not a new report)."""
    match = _QUESTION_RE.match(_without_symbols(text))
    if match is None:
        return None
    question, _ = split_filters(match["what"])
    return question


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """A step on a numbered hazard said in plain words (#12 修好了)."""

    command: str
    number: str
    rest: str  # what the handler gets after the number (reason, new deadline, note)
    school: str | None = None  # 城南小学#12: the school whose number it is (a county chat)


_NUMBER_RE = re.compile(
    rf"(?:(?P<school>[{_CJK}A-Za-z0-9]{{1,19}}[学校中小园院])[ ]*)?#[ ]*(?P<a>\d+)[ ]*号?"
    r"|第[ ]*(?P<b>\d+)[ ]*号(?:隐患)?|(?P<c>\d+)[ ]*号隐患"
)
# 看看城南小学#12: words asking to see it are not part of the school's name
ASKING_WORDS_RE = re.compile(r"^(?:请|麻烦)?(?:看看|看一下|查一下|查询|详情|问一下)?")
# Checked in order: 验收不合格 before 验收合格, 延期 before 整改.
_LIFECYCLE_VERBS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(pattern)) for name, pattern in (
    ("reject", r"验收不合格|验收没通过|验收未通过|不合格|没改好|没有改好|还没改好|退回"),
    ("close", r"验收合格|验收通过|验收没问题|可以销号|同意销号|销号"),
    ("extend", r"(?:申请)?(?:延期|延长|推迟|推后)(?:到|至)?"),
    ("withdraw", r"报错了?|撤销|撤回|删掉|删除|作废|误报"),
    ("rectify", r"修好了?|修复了?|已修复|已维修|整改完成|整改完毕|整改好了|整改了|已整改|弄好了?|处理好了?|已处理|"
                r"处理完了?|搞定了?|换好了?|已更换|更换了|清理完了?|已清理|清理干净了?|完成整改|已完成"),
    ("show", r"看看|看一下|查看|查一下|什么情况|怎么样了|详情|进度"),
))
_EDGE = "，,；;。！!、 "


def understand_lifecycle(text: str) -> Lifecycle | None:
    """`#12 修好了`, `12号隐患整改完成`, `#12 延期到月底 等配件`, `看看#12` …; None when it is not one."""
    numbers = list(_NUMBER_RE.finditer(text))
    if len(numbers) != 1:
        return None
    found = numbers[0]
    number = found["a"] or found["b"] or found["c"]
    words, school = split_school(found["school"] or "")
    around = (text[: found.start()] + words + " " + text[found.end():]).strip(_EDGE)
    for name, pattern in _LIFECYCLE_VERBS:
        verb = pattern.search(around)
        if verb is None:
            continue
        before = around[: verb.start()].strip(_EDGE)
        after = around[verb.end():].strip(_EDGE)
        if name == "rectify":
            return Lifecycle(name, number, around, school)
        if name == "withdraw":
            return Lifecycle(name, number, " ".join(p for p in (before, after) if p), school)
        return Lifecycle(name, number, after, school)
    return None


def split_school(typed: str) -> tuple[str, str | None]:
    """`修好了城南小学` before `#12`: (the words in front, the school's name) — verbs and asking words first."""
    rest = typed.strip(_EDGE)
    while rest:
        cut = max((m.end() for m in (p.match(rest) for p in (ASKING_WORDS_RE, *(v for _, v in _LIFECYCLE_VERBS)))
                   if m is not None), default=0)
        if cut == 0 or cut >= len(rest):
            break
        rest = rest[cut:].strip(_EDGE)
    return typed[: len(typed) - len(rest)], rest or None


# ---------------------------------------------------------------------------------------------------------
# Reports in plain words


@dataclass(slots=True)
class PlainReport:
    """What a report written without keys said, and what we are not sure of."""

    location: str | None = None
    problem: str | None = None
    responsible: str | None = None
    unit: str | None = None
    deadline: date | None = None
    level: Level | None = None
    doubts: list[str] = field(default_factory=list)


_PLACE_SUFFIXES = (
    "实验室", "办公室", "卫生间", "洗手间", "门卫室", "配电房", "配电室", "消控室", "宿舍楼", "教学楼", "综合楼",
    "图书馆", "体育馆", "报告厅", "运动场", "停车场", "篮球场", "足球场", "游泳池", "地下室", "楼梯间", "楼梯口",
    "楼道", "楼梯", "走廊", "过道", "通道", "门口", "大门", "后门", "侧门", "前门", "操场", "食堂", "厨房", "厕所",
    "后厨", "冷库", "看台", "跑道", "小卖部", "尽头", "路口", "幼儿园", "校门口", "大门口",
    "宿舍", "教室", "车棚", "围墙", "屋顶", "天台", "阳台", "花园", "校门", "门卫", "锅炉房", "机房", "仓库", "库房",
    "东侧", "西侧", "南侧", "北侧", "东边", "西边", "南边", "北边", "旁边", "附近", "后面", "前面", "对面", "里面",
    "楼", "层", "室", "馆", "厅", "房", "间", "栋", "场", "院", "棚", "处", "角", "边", "侧", "顶", "墙", "内", "外",
)
_PLACE_UNIT = "(?:" + "|".join(map(re.escape, sorted(_PLACE_SUFFIXES, key=len, reverse=True))) + ")"
# A place is a run of short segments each ending in a place word: 二号楼 一楼 男厕所, 三楼 东侧.
_SEGMENT_RE = re.compile(rf"[{_CJK}0-9A-Za-z#\-]{{0,6}}?{_PLACE_UNIT}(?:[上里下]?的)?")
_LEADING_FILLER_RE = re.compile(r"^(?:报告一下|报告|一下|反映一下|反映|发现|麻烦|那个|这个|老师|你好|您好|请问|注意|我们|我发现|刚才|刚刚|今天)+")
_TRAILING_FILLER_RE = re.compile(r"(?:了|啊|呀|哦|吧|呢|啦|的|，|,|。|！|!|~)+$")
_ASK_TO_FIX_RE = re.compile(
    r"^(?:请|麻烦|需要|要|赶紧|尽快|马上)?(?:尽快|赶紧|及时)?"
    r"(?:处理|整改|维修|修一下|修理|解决|看一下|弄好|修好|弄一下|处理一下|更换|换掉|换新|换一下|清理|完成|落实)+(?:一下)?$"
)
_NAME = rf"[{_CJK}]{{2,3}}"
_PERSON_PATTERNS: tuple[re.Pattern[str], ...] = tuple(re.compile(p) for p in (
    rf"(?:责任人|负责人|整改人)(?:是|为|[:：])?(?P<name>{_NAME}?)(?:老师)?(?=$|[，,；; 。]|负责)",
    rf"(?:请|让|叫|由|交给|交由|麻烦)(?P<name>{_NAME}?)(?:老师)?(?:负责|处理|整改|跟进|维修|修理|去处理|来处理|看一下)",
    rf"交给(?P<name>{_NAME}?)(?:老师)?(?=$|[，,；; 。])",
    rf"(?<![了的是在和])(?P<name>{_NAME})(?:老师)?(?:负责|跟进)",
))
_NOT_A_NAME = frozenset(("大家", "我们", "你们", "他们", "学校", "后勤", "物业", "保安", "电工", "师傅", "老师", "班主任"))


def _strip_filler(text: str) -> str:
    text = _LEADING_FILLER_RE.sub("", text.strip(_EDGE))
    return _TRAILING_FILLER_RE.sub("", text).strip(_EDGE)


def _cut(text: str, start: int, end: int) -> str:
    return text[:start] + "，" + text[end:]


def _find_person(text: str, vocabulary: Vocabulary) -> tuple[str | None, str, str | None]:
    """(the person named, the text without that phrase, a doubt) — a directory name wins over a pattern."""
    for pattern in _PERSON_PATTERNS:
        match = pattern.search(text)
        if match is None or match["name"] in _NOT_A_NAME or not match["name"]:
            continue
        name = match["name"]
        known = next((person for person in vocabulary.people if name.startswith(person)), None)
        if known is not None:
            return known, _cut(text, match.start(), match.end()), None
        if vocabulary.people:
            close = difflib.get_close_matches(name, vocabulary.people, n=2, cutoff=0.5)
            return name, _cut(text, match.start(), match.end()), f"unknown_person:{name}>{'|'.join(close)}"
        return name, _cut(text, match.start(), match.end()), None
    for person in sorted(vocabulary.people, key=len, reverse=True):
        at = text.find(person)
        if at >= 0:
            end = at + len(person)
            end += 2 if text.startswith("老师", end) else 0
            return person, _cut(text, at, end), None
    return None, text, None


_ASSIGN_BEFORE = r"(?:请|由|交给|交由|让|麻烦)?"
_ASSIGN_AFTER = r"(?:尽快|及时|马上)?(?:负责|处理一下|处理|来处理|整改|跟进|维修)?"


def _find_unit(text: str, vocabulary: Vocabulary) -> tuple[str | None, str]:
    """The unit named anywhere (总务处负责, 请后勤处理), and the text without that phrase."""
    for unit in sorted(vocabulary.units, key=len, reverse=True):
        match = re.search(_ASSIGN_BEFORE + re.escape(unit) + _ASSIGN_AFTER, text)
        if match is not None:
            return unit, _cut(text, match.start(), match.end())
    return None, text


def _find_place(clause: str, vocabulary: Vocabulary) -> tuple[str | None, str]:
    """(the place a clause starts with, the rest of the clause)."""
    start = 0
    for building in sorted(vocabulary.buildings, key=len, reverse=True):
        if clause.startswith(building):
            start = len(building)
            break
    ends = _segment_ends(clause, start)
    if not ends:
        return (clause[:start], clause[start:]) if start else (None, clause)
    end = ends[-1]
    # 有人翻墙 ends in 墙 too: a place must leave something to be the problem.
    if end == len(clause) and len(ends) >= 2:
        end = ends[-2]
    # 操场北边的围墙倾斜, 体育馆的消防通道被器材堵了: what follows 的 (or comes before 被) is the thing at fault.
    of = clause.rfind("的", 0, end - 1)
    if of > 0:
        end = of + 1
    elif clause.startswith("被", end) and len(ends) >= 2:
        end = ends[-2]
    place = clause[:end]
    return place.removesuffix("的"), clause[end:]


def _segment_ends(clause: str, start: int) -> list[int]:
    """Where each place segment of the clause ends (二号楼|一楼|男厕所), from `start`."""
    ends: list[int] = []
    position = start
    while (segment := _SEGMENT_RE.match(clause, position)) is not None and segment.end() > position:
        position = segment.end()
        ends.append(position)
    return ends


# Words that say something is wrong; without one (三楼会议室开会) a message with no command word is not stored.
_DEFECT_RE = re.compile(
    r"坏|漏|松|破|断|堵|过期|没|不|无|裂|脱落|掉|冒烟|积水|隐患|危险|锈|倾斜|歪|缺|丢|失灵|异味|乱|堆|占用|老化|裸露|"
    r"翻|滑|霉|满|翘|烧|晃|损|故障|坑|挡|锁|拆|私拉|超|违规|未|隐|险"
)


def sounds_like_a_defect(problem: str) -> bool:
    """Whether the problem text says something is wrong (not just that something happens somewhere)."""
    return _DEFECT_RE.search(problem) is not None


def understand_report(text: str, *, today: date, vocabulary: Vocabulary = EMPTY_VOCABULARY) -> PlainReport:
    """Read a report written in plain words: place first, then the problem; person, unit, deadline anywhere."""
    report = PlainReport()
    if "重大" in text:
        report.level = "重大"
    deadline = find_deadline(text, today=today)
    if deadline is not None:
        report.deadline, start, end = deadline
        text = _cut(text, start, end)
        if report.deadline < today:
            report.doubts.append("past_date")
    report.unit, text = _find_unit(text, vocabulary)  # before people: 总务处负责 is a unit, not a name
    report.responsible, text, doubt = _find_person(text, vocabulary)
    if doubt is not None:
        report.doubts.append(doubt)

    problems: list[str] = []
    for clause in _CLAUSE_SPLIT_RE.split(text):
        clause = _strip_filler(clause.replace("重大隐患", "").replace("重大", ""))
        if not clause or _ASK_TO_FIX_RE.match(clause):
            continue
        if report.location is None and not problems:
            place, clause = _find_place(clause, vocabulary)
            report.location = place
            clause = _strip_filler(clause)
            if not clause:
                continue
        problems.append(clause)
    report.problem = "，".join(problems) or None
    if report.location is None:
        report.doubts.append("no_location")
    if report.problem is None:
        report.doubts.append("no_problem")
    return report


# ---------------------------------------------------------------------------------------------------------
# Saying what was understood


def doubt_text(doubt: str) -> str:
    """One short Chinese sentence for a doubt code."""
    code, _, detail = doubt.partition(":")
    if code == "unknown_person":
        name, _, close = detail.partition(">")
        guess = f"，是「{'」还是「'.join(close.split('|'))}」吗" if close else ""
        return f"人员名单里没有「{name}」{guess}？"
    return {
        "no_location": "没找到隐患在哪里（部位）。",
        "no_problem": "没看出是什么问题。",
        "no_keys": "没看出这是不是隐患。",
        "past_date": "期限已经过去了。",
        "after_campaign": "期限晚于本次排查整治的结束日期。",
    }.get(code, doubt)


def suggested_person(doubts: list[str], written: str | None) -> str | None:
    """The directory name closest to an unknown person, to prefill the template with."""
    for doubt in doubts:
        code, _, detail = doubt.partition(":")
        if code == "unknown_person":
            close = detail.partition(">")[2]
            return close.split("|")[0] if close else written
    return written


def _as_template(fields: HazardFields, doubts: list[str]) -> str:
    """The sender's own report rewritten in the keyed form, one line, ready to copy and correct."""
    person = suggested_person(doubts, fields.responsible)
    parts = [
        f"部位：{fields.location or '（请写位置，如3号教学楼二楼东侧）'}",
        f"问题：{fields.problem or '（请写问题，如消防通道堆放杂物）'}",
    ]
    if fields.level == "重大":
        parts.append("等级：重大")
    if person:
        parts.append(f"责任人：{person}")
    if fields.unit:
        parts.append(f"单位：{fields.unit}")
    if fields.deadline is not None and "past_date" not in doubts and "after_campaign" not in doubts:
        parts.append(f"期限：{fields.deadline.month}月{fields.deadline.day}日")
    elif fields.deadline is not None:
        parts.append("期限：（请写今天以后、活动结束前的日期）")
    return "隐患 " + "，".join(parts)


def doubts_reply(fields: HazardFields, doubts: list[str]) -> str:
    """At most four lines: what was understood, what is unsure, and the message to send back to confirm."""
    understood = [
        f"{label}「{value}」"
        for label, value in (("部位", fields.location), ("问题", fields.problem), ("责任人", fields.responsible),
                             ("单位", fields.unit), ("等级", fields.level))
        if value
    ]
    if fields.deadline is not None:
        understood.append(f"期限{fields.deadline.isoformat()}")
    return "\n".join([
        "我理解的是：" + ("，".join(understood) or "（没看出内容）") + "。",
        "还不确定：" + "".join(doubt_text(doubt) for doubt in doubts),
        "这次没有登记。请核对后复制下面这行发送（可直接修改）：",
        _as_template(fields, doubts),
    ])
