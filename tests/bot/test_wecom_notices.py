"""WeCom @-notices merged per group webhook: a burst of reports costs a few webhook messages, none lost or doubled."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from sqlmodel import Session, select

from bot.config import load_config
from bot.platforms.wecom.inbound import parse_plain, to_inbound
from bot.secrets import Secrets
from bot.services import Services, build_services
from models.clock import SystemClock
from models.tables import OutboxMessage
from tests.bot.test_wecom import CHAT, SECRET_ENV, WEBHOOK_KEY, write_config
from tests.conftest import campaign_clock
from tests.fakes.wecom_server import FakeWeCom

OWNERS = ["王建国", "李娜", "赵敏", "刘洋", "陈静"]
USERIDS = {"王建国": "WangJianGuo", "李娜": "LiNa", "赵敏": "ZhaoMin", "刘洋": "LiuYang", "陈静": "ChenJing"}
NOTICE = re.compile(r"^((?:<@\w+> )+)请留意：已登记隐患 #(\d+)")


@pytest.fixture
def fake() -> Iterator[FakeWeCom]:
    with FakeWeCom(window=60.0) as server:
        server.add_webhook_key(WEBHOOK_KEY)
        yield server


@pytest.fixture
def clock() -> SystemClock:
    return campaign_clock()


@pytest.fixture
def services(config_path: Path, fake: FakeWeCom, clock: SystemClock) -> Iterator[Services]:
    config = load_config(write_config(config_path, fake, window=60.0))
    built = build_services(config, Secrets(environ=SECRET_ENV), clock)
    built.engine.start()
    yield built
    built.engine.db.dispose()


def report(services: Services, fake: FakeWeCom, text: str, *, sender: str = "ZhangWei", msgid: str | None = None) -> None:
    """A report as the callback receiver hands it on: parsed, recorded, handled, its replies in the outbox."""
    body = fake.aibot_text(text, userid=sender, chatid=CHAT, msgid=msgid)
    parsed = parse_plain(json.dumps(body, ensure_ascii=False))
    assert parsed is not None
    msg, route = to_inbound(services.wecom.ctx, parsed, None)
    recorded = services.engine.record(msg, route=route)
    if recorded.inbound_id is not None:
        services.engine.process(msg, recorded.inbound_id)


def drain(services: Services, passes: int = 5, clock: SystemClock | None = None) -> None:
    """Sender passes; with `clock`, 3 s apart (a notice that waited for another's message comes due again)."""
    async def run() -> None:
        try:
            for _ in range(passes):
                await services.sender.drain_once()
                if clock is not None:
                    clock.offset += timedelta(seconds=3)
        finally:
            await services.aclose()

    anyio.run(run)


def notice_rows(services: Services) -> list[OutboxMessage]:
    with Session(services.engine.db) as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.kind == "notice")))


def webhook_notices(fake: FakeWeCom) -> list[str]:
    return [s.content for s in fake.sent_to(WEBHOOK_KEY) if "请留意" in s.content]


def burst(services: Services, fake: FakeWeCom, count: int = 30) -> dict[int, str]:
    """`count` reports naming owners in turn; the owner's userid by hazard number."""
    for i in range(count):
        owner = OWNERS[i % len(OWNERS)]
        report(services, fake, f"隐患\n部位：{i + 1}号楼{i + 1}0{i + 1}室\n问题：第{i + 1}号灭火器压力不足\n责任人：{owner}\n期限：12月20日")
    return {i + 1: USERIDS[OWNERS[i % len(OWNERS)]] for i in range(count)}


def test_a_burst_of_reports_sends_their_notices_merged(services: Services, fake: FakeWeCom) -> None:
    owners = burst(services, fake, count=20)  # the AI bot answers 20 a minute
    assert notice_rows(services) == []  # replies are rendered when delivered
    drain(services)  # each answer goes by its response_url and queues its @-notice; the next pass merges them
    rows = notice_rows(services)
    assert len(rows) == 20 and {r.robot for r in rows} == {"wecom:webhook:wecom-staff"}
    messages = webhook_notices(fake)
    lines = [line for m in messages for line in m.split("\n")]
    per_message = max(len(m.split("\n")) for m in messages)
    assert len(messages) <= math.ceil(30 / per_message) and len(messages) <= 20  # within the webhook's 20 a minute
    assert all(len(m.encode()) <= 4096 for m in messages)
    seen = Counter()
    for line in lines:
        match = NOTICE.match(line)
        assert match, line
        seen[int(match.group(2))] += 1
        assert match.group(1).split() == [f"<@{owners[int(match.group(2))]}>"]
    assert seen == Counter(range(1, 21))  # every owner @-ed once per hazard
    assert {r.state for r in notice_rows(services)} == {"sent"}
    assert len(messages) == 1  # 20 lines fit in one markdown message


def test_a_retried_delivery_sends_nothing_twice(services: Services, fake: FakeWeCom) -> None:
    burst(services, fake, count=6)
    fake.fail_next(1, "-1")  # WeCom's "system busy": the first merged message is refused, then retried
    drain(services, passes=30)
    lines = [line for m in webhook_notices(fake) for line in m.split("\n")]
    assert sorted(int(NOTICE.match(line).group(2)) for line in lines) == list(range(1, 7))  # type: ignore[union-attr]
    assert {r.state for r in notice_rows(services)} == {"sent"}
    assert (WEBHOOK_KEY, -1) in fake.attempts


def test_no_notice_when_the_reply_names_only_the_sender(services: Services, fake: FakeWeCom) -> None:
    report(services, fake, "隐患\n部位：食堂后门\n问题：灭火器过期\n责任人：王建国\n期限：12月20日", sender="WangJianGuo")
    report(services, fake, "隐患\n部位：图书馆二楼\n问题：应急灯不亮\n责任人：李娜\n期限：12月20日", sender="WangJianGuo")
    drain(services, passes=1)  # the answers go; notices are queued behind them
    [row] = notice_rows(services)
    assert json.loads(row.payload)["content"].startswith("<@LiNa> 请留意：")


def test_merged_notices_split_at_the_markdown_limit_and_each_goes_once(
    services: Services, fake: FakeWeCom, clock: SystemClock
) -> None:

    from models import outbox as store

    long_line = "问题很长" * 120  # 1,440 bytes: two such notices fit in one 4,096-byte message, three do not
    with Session(services.engine.db) as session:
        for i in range(1, 6):
            store.enqueue(session, dedupe_key=f"reply:wecom:n{i}:notice", platform="wecom", channel="wecom_webhook",
                          robot="wecom:webhook:wecom-staff", group_id="wecom-staff", kind="notice",
                          payload={"group_id": "wecom-staff", "content": f"<@LiNa> 请留意：已登记隐患 #{i} {long_line}"},
                          now=services.engine.now(), give_up_after=timedelta(hours=1))
        # A notice rendered twice (the same line in two rows) is one line of the message.
        store.enqueue(session, dedupe_key="reply:wecom:n5b:notice", platform="wecom", channel="wecom_webhook",
                      robot="wecom:webhook:wecom-staff", group_id="wecom-staff", kind="notice",
                      payload={"group_id": "wecom-staff", "content": f"<@LiNa> 请留意：已登记隐患 #5 {long_line}"},
                      now=services.engine.now(), give_up_after=timedelta(hours=1))
        session.commit()
    drain(services, passes=8, clock=clock)
    messages = webhook_notices(fake)
    assert [len(m.split("\n")) for m in messages] == [2, 2, 1]
    assert all(len(m.encode()) <= 4096 for m in messages)
    numbers = [int(NOTICE.match(line).group(2)) for m in messages for line in m.split("\n")]  # type: ignore[union-attr]
    assert numbers == [1, 2, 3, 4, 5]
    assert {r.state for r in notice_rows(services)} == {"sent"}


def test_a_pass_of_one_webhooks_notices_sends_one_message_and_retries_no_row(
    services: Services, fake: FakeWeCom
) -> None:
    burst(services, fake, count=20)
    drain(services, passes=2)  # the answers, then one pass that holds all 20 notices of the webhook
    rows = notice_rows(services)
    assert len(rows) == 20 and {r.state for r in rows} == {"sent"}
    assert len(webhook_notices(fake)) == 1
    # None waited for another's message and came back: each row was attempted once, with nothing to report.
    assert {(r.attempts, r.last_error) for r in rows} == {(1, "")}
    assert {r.next_attempt_at for r in rows} == {r.created_at for r in rows}


def test_notices_refused_for_good_fail_with_the_message_that_carried_them(
    services: Services, fake: FakeWeCom
) -> None:
    burst(services, fake, count=20)
    fake.keys.discard(WEBHOOK_KEY)  # the group's webhook key was revoked: WeCom answers 93000
    drain(services, passes=3)
    rows = notice_rows(services)
    assert len(rows) == 20 and {r.state for r in rows} == {"failed"}
    assert {r.last_error.split(",")[0] for r in rows} == {"errcode 93000: invalid webhook url"}
    assert {r.attempts for r in rows} == {1}
    assert len([a for a in fake.attempts if a[0] == WEBHOOK_KEY]) == 1  # one call for the merged message, not 20


def test_a_throttled_webhook_hands_the_rest_of_the_lane_back_at_once(services: Services, fake: FakeWeCom) -> None:
    burst(services, fake, count=20)
    fake.fail_next(1, "45009")  # the first webhook call of the burst is throttled
    drain(services, passes=2)  # the answers by response_url, then the notices' pass
    assert [a for a in fake.attempts if a[0] == WEBHOOK_KEY] == [(WEBHOOK_KEY, 45009)]  # no other tried on its own
    rows = notice_rows(services)
    assert {r.state for r in rows} == {"pending"} and sum(r.attempts for r in rows) == 1
    assert len({r.next_attempt_at for r in rows}) == 1  # all due when the robot may send again
    assert {r.claimed_until for r in rows} == {None}
