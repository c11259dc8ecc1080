"""API calls per platform, month and kind: counted one by one or in bulk, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine
from sqlmodel import Session

from models.db import upgrade
from models.platform_usage import add_calls, budgeted_calls, count_call, month_of, usage_of_month


def test_calls_add_up_per_platform_month_and_kind(any_engine: Engine) -> None:
    upgrade(any_engine)
    for _ in range(3):
        count_call(any_engine, platform="dingtalk", month="2026-12", kind="group_send")
    add_calls(any_engine, platform="dingtalk", month="2026-12", kind="directory", calls=40)
    add_calls(any_engine, platform="dingtalk", month="2026-12", kind="directory", calls=2)
    add_calls(any_engine, platform="dingtalk", month="2026-12", kind="directory", calls=0)  # nothing to add
    count_call(any_engine, platform="dingtalk", month="2026-12", kind="webhook:custom_robot")
    count_call(any_engine, platform="dingtalk", month="2027-01", kind="group_send")
    count_call(any_engine, platform="wecom", month="2026-12", kind="webhook_send")
    with Session(any_engine) as session:
        lines = [(u.platform, u.kind, u.calls, u.budgeted) for u in usage_of_month(session, "2026-12")]
        assert lines == [
            ("dingtalk", "directory", 42, True), ("dingtalk", "group_send", 3, True),
            ("dingtalk", "webhook:custom_robot", 1, False), ("wecom", "webhook_send", 1, True),
        ]
        assert budgeted_calls(session, "dingtalk", "2026-12") == 45  # the custom robot's post is not budgeted
        assert budgeted_calls(session, "dingtalk", "2026-11") == 0


def test_the_month_is_the_config_zones() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    assert month_of(datetime.fromisoformat("2026-12-31T16:30+00:00"), shanghai) == "2027-01"
    assert month_of(datetime.fromisoformat("2026-12-31T15:59+00:00"), shanghai) == "2026-12"


def test_calls_counted_in_memory_are_written_in_one_upsert_per_kind_and_kept_when_the_write_fails(
    any_engine: Engine,
) -> None:
    from sqlalchemy import event

    from models.platform_usage import PendingCalls

    upgrade(any_engine)
    pending = PendingCalls(any_engine)
    for _ in range(250):
        pending.add(platform="dingtalk", month="2026-12", kind="group_send")
    pending.add(platform="dingtalk", month="2026-12", kind="access_token")
    with Session(any_engine) as session:
        assert budgeted_calls(session, "dingtalk", "2026-12") == 0  # nothing written yet
    statements: list[str] = []
    listen = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(any_engine, "before_cursor_execute", listen)
    try:
        pending.flush()  # what the owner (bot/usage.py CallMeter) does within a second
    finally:
        event.remove(any_engine, "before_cursor_execute", listen)
    assert len([s for s in statements if s.lstrip().upper().startswith("INSERT")]) <= 2  # an executemany of 2 rows
    assert pending.pending() == 0
    with Session(any_engine) as session:
        assert budgeted_calls(session, "dingtalk", "2026-12") == 251

    # The database is away: the counts stay in memory and go with the next flush.
    pending.add(platform="wecom", month="2026-12", kind="webhook_send", calls=3)
    broken = PendingCalls(any_engine)
    broken.db = create_engine("sqlite:///file:/nonexistent/dir/x.db?mode=ro&uri=true")
    broken.add(platform="wecom", month="2026-12", kind="webhook_send", calls=2)
    pending.flush()
    with pytest.raises(Exception):
        broken.flush()
    assert broken.pending() == 2  # kept for the next flush
    broken.db = any_engine
    broken.flush()
    with Session(any_engine) as session:
        assert [(u.kind, u.calls) for u in usage_of_month(session, "2026-12") if u.platform == "wecom"] == [
            ("webhook_send", 5)
        ]
