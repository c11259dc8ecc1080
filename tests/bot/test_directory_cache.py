"""The engine's per-process directory cache: read once, and again as soon as any writer changed the directory."""

from __future__ import annotations

from sqlalchemy import event
from sqlmodel import Session

from bot.engine import Engine
from models.tables import PersonRow, UnitRow
from tests.school import REPORT, Chat, chat, engine  # noqa: F401  (fixtures)

PROBLEMS = ("消防通道堆放杂物", "灭火器压力不足", "应急灯不亮", "配电箱未上锁", "窗户玻璃破损")


def report(n: int) -> str:
    """The n-th of a few different reports (the same report twice is asked about as a likely duplicate)."""
    return REPORT.replace("消防通道堆放杂物", PROBLEMS[n])


def test_reports_share_one_read_of_the_directory(engine: Engine, chat: Chat) -> None:
    for n in range(3):
        assert "已登记隐患" in chat.say("zhang_wei", report(n))
    assert engine.directory.loads == 1


def test_a_person_added_elsewhere_is_known_at_the_next_message(engine: Engine, chat: Chat) -> None:
    assert "已登记隐患" in chat.say("zhang_wei", REPORT)
    assert "不在安全助手的人员名单里" in chat.say("new_teacher", "我的")
    # The directory sync (another process) adds a colleague: no reload, no restart.
    with Session(engine.db) as other:
        other.add(PersonRow(id="new_teacher", name="钱多多", unit_id="logistics", roles="teacher"))
        other.commit()
    assert "已登记隐患" in chat.say("new_teacher", report(1).replace("王建国", "钱多多"))
    assert "责任人：钱多多" in chat.say("zhang_wei", report(2).replace("王建国", "钱多多"))
    assert engine.directory.loads == 2


def test_a_deactivated_person_or_renamed_unit_shows_at_once(engine: Engine, chat: Chat) -> None:
    assert "已登记隐患" in chat.say("zhang_wei", REPORT)
    with Session(engine.db) as other:
        unit = other.get(UnitRow, "logistics")
        assert unit is not None
        unit.name = "后勤保障处"
        other.add(unit)
        other.commit()
    assert "王建国（后勤保障处）" in chat.say("zhang_wei", report(1))
    with Session(engine.db) as other:
        person = other.get(PersonRow, "zhang_wei")
        assert person is not None
        person.active = False
        other.add(person)
        other.commit()
    assert "不在安全助手的人员名单里" in chat.say("zhang_wei", report(2))


def test_a_report_takes_a_handful_of_statements(engine: Engine, chat: Chat) -> None:
    """Claim, next number, duplicate check, hazard, event, pending photos, finish: no directory lookups once it
    is cached."""
    assert "已登记隐患" in chat.say("zhang_wei", REPORT)  # loads the directory
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(" ".join(statement.split())[:60])

    event.listen(engine.db, "before_cursor_execute", count)
    try:
        assert "已登记隐患" in chat.say("zhang_wei", report(1))
    finally:
        event.remove(engine.db, "before_cursor_execute", count)
    directory_reads = [
        s for s in statements
        if s.startswith("SELECT") and any(f"FROM {t} " in s + " " for t in ("person", "unit", "campaign", "chat_group"))
    ]
    assert directory_reads == [], statements
    assert len(statements) <= 8, statements
