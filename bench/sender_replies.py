"""The outbox sender's cost of a reply: rendered at delivery (one `replies` row, expanded) vs queued rendered.

Run from the repository root:  .venv/bin/python bench/sender_replies.py [--replies 300] [--postgres URL]

Each reply is the answer to a WeCom AI-bot report: the answer by its response_url and an @-notice to the
hazard's owner by the group's webhook (two messages). "rendered" queues the two rows the engine stored before
replies were rendered at delivery; "at delivery" queues one `replies` row, which the sender renders and
expands into the same two rows. Both are drained by the bot's own sender and deliveries into the fake WeCom
(in this process, so CPU includes the fake's share, the same in both modes). Only the drain is measured:
wall and CPU ms per reply, and statements per reply (a `before_cursor_execute` listener; an executemany counts
once). As the engine does, a `replies` row carries the directory version it was handled at.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
import tomllib
from datetime import datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import anyio  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlmodel import Session  # noqa: E402

from bench.callback_throughput import drop_postgres_schema, fresh_postgres_schema  # noqa: E402
from bot.config import parse_config  # noqa: E402
from bot.outbox import REPLIES_KIND, replies_payload  # noqa: E402
from bot.secrets import Secrets  # noqa: E402
from bot.services import build_services  # noqa: E402
from handlers.messages import Reply  # noqa: E402
from models import outbox as store  # noqa: E402
from models.clock import FixedClock  # noqa: E402
from models.directory_cache import read_version  # noqa: E402
from tests.bot.test_wecom import CHAT, SECRET_ENV, WEBHOOK_KEY, wecom_toml  # noqa: E402
from tests.conftest import CAMPAIGN_NOW, EXAMPLE_CONFIG, with_local_storage  # noqa: E402
from tests.fakes.wecom_server import FakeWeCom  # noqa: E402

ANSWER = "已登记隐患 #{n}（一般·消防）\n部位：3号教学楼{n}室门口\n问题：消防通道堆放杂物\n责任人：王建国（总务基建处）\n期限：2026-12-08（周二）"


def measure(
    db_url: str, data_dir: str, replies: int, *, at_delivery: bool, profile: bool = False
) -> tuple[float, float, float]:
    """(wall ms, CPU ms, statements) per reply to drain `replies` replies through the sender."""
    with FakeWeCom(rate_limit=10**9, window=60.0) as fake:
        fake.add_webhook_key(WEBHOOK_KEY)
        text = EXAMPLE_CONFIG.read_text(encoding="utf-8") + wecom_toml(fake, window=60.0).replace(
            "[outbox]\n", "[outbox]\nper_minute = 1000000\n")
        config = parse_config(tomllib.loads(with_local_storage(text, db_url=db_url, data_dir=data_dir)))
        services = build_services(config, Secrets(environ=dict(SECRET_ENV)), FixedClock(datetime.fromisoformat(CAMPAIGN_NOW)))
        services.engine.start()
        now = services.engine.now()
        with Session(services.engine.db) as session:
            version = read_version(session)
            for n in range(replies):
                route = {"mode": "response_url", "channel": "wecom_response_url", "robot": f"wecom:aibot:aibot:{CHAT}",
                         "bot": "aibot", "response_url": fake.new_response_url(), "group_id": "wecom-staff",
                         "chat_id": CHAT}
                answer = [Reply(ANSWER.format(n=n + 1), mentions=("wang_jianguo",))]
                common = dict(platform="wecom", group_id="wecom-staff", now=now, give_up_after=timedelta(hours=1))
                if at_delivery:
                    store.enqueue(session, dedupe_key=f"reply:wecom:{n}", channel=route["channel"], robot=route["robot"],
                                  kind=REPLIES_KIND, payload=replies_payload(answer, route, directory_version=version),
                                  **common)  # type: ignore[arg-type]
                    continue
                for index, draft in enumerate(services.wecom.render(session, answer, route)):  # what the engine did
                    store.enqueue(session, dedupe_key=f"reply:wecom:{n}:{index}", channel=draft.channel or route["channel"],
                                  robot=draft.robot or route["robot"], kind=draft.kind, payload=dict(draft.payload),
                                  **common)  # type: ignore[arg-type]
            session.commit()
        sender = services.sender
        statements = [0]

        def count(*_: object) -> None:
            statements[0] += 1

        async def drain() -> tuple[float, float]:
            event.listen(services.engine.db, "before_cursor_execute", count)
            wall, cpu = time.perf_counter(), time.process_time()
            while await sender.drain_once():
                pass
            await services.aclose()  # the HTTP client's connections belong to this event loop (and counts are written)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            event.remove(services.engine.db, "before_cursor_execute", count)
            return wall, cpu

        if profile:
            profiler = cProfile.Profile(time.process_time)
            wall, cpu = profiler.runcall(anyio.run, drain)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        else:
            wall, cpu = anyio.run(drain)
        # The @-notices of one webhook go merged (several in one message): count their lines.
        notices = sum(str(s.body.get("markdown", {}).get("content", "")).count("请留意") for s in fake.sent_to(WEBHOOK_KEY))
        assert len(fake.responses) == replies and notices == replies, "not every message went out"
        services.engine.db.dispose()
    return 1000 * wall / replies, 1000 * cpu / replies, statements[0] / replies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=300)
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL", ""))
    parser.add_argument("--only", choices=("sqlite", "postgres"), help="one database only")
    parser.add_argument("--mode", choices=("rendered", "at-delivery"), help="one mode only")
    parser.add_argument("--profile", action="store_true", help="print a cProfile (CPU timer) of each drain")
    args = parser.parse_args()
    print(f"{'target':<12} {'mode':<13} {'replies':>7}  {'wall ms/reply':>13}  {'CPU ms/reply':>12}  {'statements':>10}")
    targets = [("SQLite", None)] + ([("PostgreSQL", args.postgres)] if args.postgres else [])
    targets = [t for t in targets if args.only is None or (t[1] is None) == (args.only == "sqlite")]
    modes = [m for m in (False, True) if args.mode is None or m == (args.mode == "at-delivery")]
    for name, pg in targets:
        for at_delivery in modes:
            with tempfile.TemporaryDirectory() as tmp:
                schema = fresh_postgres_schema(pg) if pg else None
                url = schema[0] if schema else f"sqlite:///{Path(tmp) / 'bench.db'}"
                try:
                    wall, cpu, statements = measure(url, str(Path(tmp) / "data"), args.replies, at_delivery=at_delivery,
                                        profile=args.profile)
                finally:
                    if schema:
                        drop_postgres_schema(pg, schema[1])  # type: ignore[arg-type]
            mode = "at delivery" if at_delivery else "rendered"
            print(f"{name:<12} {mode:<13} {args.replies:>7}  {wall:>13.2f}  {cpu:>12.2f}  {statements:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
