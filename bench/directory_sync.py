"""Directory sync: 5,000 members in 1,000 departments (50 schools) from the fake WeCom / DingTalk.

Target: a full sync (fetch + apply) < 60 s, within the platform's call limits: WeCom 10,000 calls a
minute per API and corp; DingTalk a reported 20 calls a second per app, and about 10,000 metered calls a
month on the free edition (so the figure that matters there is calls per sync).
The fetch runs at the `[directory]` defaults (calls_per_second: WeCom 50, DingTalk 20; 4 in flight)
unless --calls-per-second is given. A second, unchanged sync is timed too. SQLite in a temporary file,
or a fresh PostgreSQL schema with --postgres-url.
Run: python bench/directory_sync.py [--platform both|wecom|dingtalk] [--members 5000] [--departments 1000]
     [--schools 50] [--calls-per-second N] [--postgres-url postgresql+psycopg://root@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anyio  # noqa: E402
import httpx  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402
from sqlmodel import Session  # noqa: E402

from bot.config import Config, parse_config  # noqa: E402
from bot.directory.service import apply_in_transaction, fetch_snapshot  # noqa: E402
from bot.secrets import Secrets  # noqa: E402
from bot.sync import sync_config  # noqa: E402
from models.db import make_engine, upgrade  # noqa: E402
from tests.fakes.contacts import FakeOrg, build_org  # noqa: E402
from tests.fakes.dingtalk_server import FakeDingTalk  # noqa: E402
from tests.fakes.wecom_server import FakeWeCom  # noqa: E402

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
SECRETS = Secrets(environ={"CORP": "bench-corp", "SECRET": "bench-secret"})
CREDENTIALS = {"wecom": {"corp_id": "CORP", "secret": "SECRET"}, "dingtalk": {"app_key": "CORP", "app_secret": "SECRET"}}
DINGTALK_MONTHLY_QUOTA = 10_000
WECOM_PER_MINUTE_PER_API = 10_000


def make_config(platform: str, base_url: str, schools: dict[int, str], rate: float | None) -> Config:
    directory: dict[str, Any] = {
        "platform": platform, "credentials": CREDENTIALS[platform],
        "schools": {str(dept): unit for dept, unit in schools.items()},
    }
    if rate is not None:
        directory["calls_per_second"] = rate
    return parse_config({
        "units": [{"id": unit, "name": f"学校{unit}"} for unit in schools.values()],
        "people": [{"id": "admin", "name": "管理员", "unit": next(iter(schools.values())), "roles": ["admin"]}],
        "wecom": {"api_base": base_url},
        "dingtalk": {"api_base": base_url, "oapi_base": base_url},
        "directory": directory,
    })


@contextmanager
def database(postgres_url: str | None) -> Iterator[Engine]:
    if postgres_url is None:
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{tmp}/bench.db")
            yield engine
            engine.dispose()
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(postgres_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(postgres_url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def fake_platform(platform: str, org: FakeOrg) -> Iterator[FakeWeCom | FakeDingTalk]:
    fake: FakeWeCom | FakeDingTalk
    if platform == "wecom":
        fake = FakeWeCom()
        fake.add_corp("bench-corp", "bench-secret")
    else:
        fake = FakeDingTalk()
        fake.add_app("bench-corp", "bench-secret")
    fake.org = org
    with fake:
        yield fake


def timed_sync(config: Config, db: Engine) -> tuple[float, float, Any]:
    """(fetch seconds, apply seconds, report) of one sync."""

    async def fetch() -> Any:
        async with httpx.AsyncClient(timeout=30) as http:
            return await fetch_snapshot(config, SECRETS, http)

    started = time.perf_counter()
    snapshot = anyio.run(fetch)
    fetched = time.perf_counter()
    report = apply_in_transaction(db, config, snapshot, NOW, dry_run=False)
    return fetched - started, time.perf_counter() - fetched, report


def run(platform: str, args: argparse.Namespace) -> None:
    per_school = args.departments // args.schools - 1  # the school's own department counts too
    org, schools = build_org(
        schools=args.schools, departments_per_school=per_school, members_per_school=args.members // args.schools
    )
    with fake_platform(platform, org) as fake, database(args.postgres_url) as db:
        config = make_config(platform, fake.base_url, schools, args.calls_per_second)
        upgrade(db)
        with Session(db) as session:
            sync_config(session, config)
        fetch_s, apply_s, report = timed_sync(config, db)
        calls = dict(org.calls)
        org.calls.clear()
        refetch_s, reapply_s, again = timed_sync(config, db)
    assert config.directory is not None
    total = fetch_s + apply_s
    print(f"\n{platform}: {len(org.departments) - 1} departments, {len(org.members)} members "
          f"({config.directory.rate:g} calls/s cap, {config.directory.max_concurrency} in flight)")
    print(f"  first sync : fetch {fetch_s:6.1f} s + apply {apply_s:4.1f} s = {total:6.1f} s  "
          f"{'OK' if total < 60 else 'OVER'} (target < 60 s)")
    print(f"  next sync  : fetch {refetch_s:6.1f} s + apply {reapply_s:4.1f} s (nothing changed: "
          f"{again.people.unchanged} people unchanged)")
    print(f"  added      : {report.units.added} units, {report.people.added} people")
    print(f"  API calls  : {report.api_calls} ({report.api_calls / fetch_s:.1f}/s)")
    for path, count in sorted(calls.items()):
        print(f"    {path:40s} {count:6d}")
    if platform == "wecom":
        busiest = max(calls.values())
        per_minute = busiest / max(fetch_s, 60.0) * 60
        print(f"  busiest API: {per_minute:.0f} calls in a minute at most (limit {WECOM_PER_MINUTE_PER_API})")
    else:
        metered = sum(count for path, count in calls.items() if path.startswith("/topapi/"))
        print(f"  metered calls per sync: {metered}; a {DINGTALK_MONTHLY_QUOTA}-call monthly quota allows "
              f"{DINGTALK_MONTHLY_QUOTA // metered} syncs a month")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--platform", choices=("both", "wecom", "dingtalk"), default="both")
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--departments", type=int, default=1000)
    parser.add_argument("--schools", type=int, default=50)
    parser.add_argument("--calls-per-second", type=float)
    parser.add_argument("--postgres-url")
    args = parser.parse_args()
    for platform in ("wecom", "dingtalk") if args.platform == "both" else (args.platform,):
        run(platform, args)


if __name__ == "__main__":
    main()
