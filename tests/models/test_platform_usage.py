"""API calls per platform, month and kind: counted one by one or in bulk, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
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
