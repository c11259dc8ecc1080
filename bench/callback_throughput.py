"""Callback throughput: report callbacks against `safetybot serve` vs a bare verify-and-200 endpoint.

Run from the repository root:  .venv/bin/python bench/callback_throughput.py [--requests 3000] [--concurrency 32]
PostgreSQL is measured too when --postgres URL (or TEST_DATABASE_URL) is given. `--platform dingtalk` posts
signed DingTalk HTTP callbacks (timestamp + sign headers, each pair used once) instead of encrypted WeCom ones.

What is measured is what WeCom sees: the time from sending a callback to its HTTP 200 (the handler runs
after the acknowledgement). "drain" is the time from the first request until every reply reached the fake
WeCom's response_url. The bare endpoint is a separate tiny FastAPI app served by the same uvicorn settings
that only checks the signature, decrypts and answers 200: the ceiling of this stack.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hmac
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from wechatpy.enterprise.crypto import WeChatCrypto  # noqa: E402

from bot.platforms.wecom import msg_signature  # noqa: E402
from bot.platforms.dingtalk import verify_callback  # noqa: E402
from tests.bot import test_dingtalk as dt  # noqa: E402
from tests.bot.test_wecom import AES_KEY, CHAT, REPORT, SECRET_ENV, TOKEN, WEBHOOK_KEY, wecom_toml  # noqa: E402
from tests.conftest import EXAMPLE_CONFIG, with_local_storage  # noqa: E402
from tests.fakes.dingtalk_server import FakeDingTalk, callback_headers, robot_message  # noqa: E402
from tests.fakes.wecom_server import FakeWeCom, callback_query, encrypt_text  # noqa: E402

TARGET_RATE = 500.0
TARGET_P99_MS = 50.0
TARGET_RATIO = 0.5


class Platform:
    """What differs between the platforms: the fake, the config, how a callback is made, where replies land."""

    name = "wecom"
    path = "/wecom/callback"

    def __init__(self) -> None:
        self.fake = fake_wecom()

    def __enter__(self) -> "Platform":
        self.fake.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.fake.__exit__(*exc)

    def config_extra(self) -> str:
        # Every reply goes to its own single-use response_url; the per-robot limit is for group pushes.
        return wecom_toml(self.fake, window=60.0).replace("[outbox]\n", "[outbox]\nper_minute = 1000000\n")

    env = SECRET_ENV

    def prepare(self, count: int, tag: str) -> list["Prepared"]:
        return prepare(self.fake, count, tag)

    def replies(self) -> int:
        return len(self.fake.responses)


class DingTalkPlatform(Platform):
    name = "dingtalk"
    path = "/dingtalk/callback"
    env = dt.ENV

    def __init__(self) -> None:
        self.fake = FakeDingTalk()
        self.fake.add_app(dt.APP_KEY, dt.APP_SECRET)
        self.fake.add_custom_robot(dt.WEBHOOK_TOKEN, secret=dt.WEBHOOK_SECRET)

    def config_extra(self) -> str:
        return dt.dingtalk_toml(self.fake.base_url).replace("[outbox]\n", "[outbox]\nper_minute = 1000000\n")

    def prepare(self, count: int, tag: str) -> list["Prepared"]:
        prepared: list[Prepared] = []
        for i in range(count):
            msgid = f"bench-{tag}-{i}-{uuid.uuid4().hex[:8]}"
            message = robot_message(self.fake, text=distinct_report(dt.REPORT, tag, i), msg_id=msgid)
            # Each (timestamp, sign) pair once, as DingTalk signs each callback: the replay guard refuses reuse.
            headers = callback_headers(dt.APP_SECRET)
            prepared.append(Prepared(msgid, {}, json.dumps(message, ensure_ascii=False).encode(), headers))
        return prepared

    def replies(self) -> int:
        return len(self.fake.session_messages)


def fake_wecom() -> FakeWeCom:
    """The fake WeCom with Nagle off: its pre-bound socket misses asyncio's TCP_NODELAY (40 ms per reply).

    The staff group's webhook key is registered, so the replies' @-notices to the hazard's owner are accepted
    as in a real group (20 a minute per webhook: the bot merges them)."""
    fake = FakeWeCom(window=60.0)
    fake.add_webhook_key(WEBHOOK_KEY)
    fake._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return fake


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the bare endpoint (run in its own process with --bare PORT) -------------------------------------------


def serve_bare(port: int) -> None:
    """Serve POST /wecom/callback that verifies, decrypts and parses the message, then answers 200.

    Served the way `safetybot serve` serves its callbacks: a plain Starlette route first in a FastAPI app
    with telemetry off, uvicorn with its defaults (uvloop and httptools when installed), the heap frozen.
    """
    crypto = WeChatCrypto(TOKEN, AES_KEY, "")

    async def callback(request: Request) -> Response:
        params = request.query_params
        encrypt = json.loads(await request.body())["encrypt"]
        signature, timestamp, nonce = params["msg_signature"], params["timestamp"], params["nonce"]
        if not hmac.compare_digest(msg_signature(TOKEN, timestamp, nonce, encrypt), signature):
            return Response(status_code=403)
        json.loads(crypto.decrypt_message({"Encrypt": encrypt}, signature, timestamp, nonce))
        return Response(status_code=200)

    async def dingtalk_callback(request: Request) -> Response:
        headers = request.headers
        if not verify_callback(headers.get("timestamp"), headers.get("sign"), dt.APP_SECRET, int(time.time() * 1000)):
            return Response(status_code=403)
        json.loads(await request.body())
        return Response(status_code=200)

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.router.routes.append(Route("/wecom/callback", callback, methods=["GET", "POST"]))
    app.router.routes.append(Route("/dingtalk/callback", dingtalk_callback, methods=["POST"]))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    gc.collect()
    gc.freeze()
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


# -- servers ---------------------------------------------------------------------------------------------


def wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(log_path.read_text(errors="replace")[-3000:])
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not become healthy")


def start_bot(tmp: Path, platform: Platform, db_url: str, args: argparse.Namespace) -> tuple[str, subprocess.Popen[bytes], Path]:
    """`safetybot serve` as a subprocess, with a fast outbox and the fake platform."""
    config_path = tmp / "config.toml"
    base = with_local_storage(EXAMPLE_CONFIG.read_text(encoding="utf-8"), db_url=db_url, data_dir=str(tmp / "data"),
                              handler_processes=args.handler_processes)
    config_path.write_text(base + platform.config_extra(), encoding="utf-8")
    port = free_port()
    log_path = tmp / "serve.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--config", str(config_path), "--port", str(port)],
        cwd=REPO_ROOT, env={**os.environ, **platform.env, "PYTHONUNBUFFERED": "1"},
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, process, log_path)
    return url, process, log_path


def start_bare(tmp: Path) -> tuple[str, subprocess.Popen[bytes], Path]:
    port = free_port()
    log_path = tmp / "bare.log"
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--bare", str(port)],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, process, log_path)
    return url, process, log_path


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


# -- the client ------------------------------------------------------------------------------------------


@dataclass
class Prepared:
    """One encrypted callback, ready to POST (encryption is done before the clock starts)."""

    msgid: str
    params: dict[str, str]
    body: bytes
    headers: dict[str, str] | None = None


_PLACES = itertools.count(1)


def distinct_report(report: str, tag: str, i: int) -> str:
    """The test report at a place of its own (numbered across runs): the same report twice is asked about as a
    likely duplicate (a draft, not a ledger row), and the benchmark measures registering reports."""
    return report.replace("部位：3号教学楼二楼东侧", f"部位：3号教学楼二楼东侧第{next(_PLACES)}号消防柜旁")


def prepare(fake: FakeWeCom, count: int, tag: str) -> list[Prepared]:
    prepared: list[Prepared] = []
    for i in range(count):
        msgid = f"bench-{tag}-{i}-{uuid.uuid4().hex[:8]}"
        message = fake.aibot_text(
            f"@安全助手 {distinct_report(REPORT, tag, i)}", userid="ZhangWei", chatid=CHAT, msgid=msgid
        )
        encrypt = encrypt_text(AES_KEY, json.dumps(message, ensure_ascii=False))
        prepared.append(Prepared(msgid, callback_query(TOKEN, encrypt), json.dumps({"encrypt": encrypt}).encode()))
    return prepared


@dataclass
class Result:
    seconds: float
    latencies_ms: list[float]
    failures: int

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def fire(url: str, prepared: list[Prepared], concurrency: int, path: str = "/wecom/callback") -> Result:
    """POST every callback with at most `concurrency` in flight; latency per request, wall time overall."""
    latencies: list[float] = []
    failures = 0
    queue = iter(prepared)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def worker() -> None:
            nonlocal failures
            for item in queue:
                started = time.perf_counter()
                try:
                    async with session.post(f"{url}{path}", params=item.params, data=item.body,
                                            headers=item.headers or {"Content-Type": "application/json"}) as response:
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return Result(time.perf_counter() - started, latencies, failures)


def warm_up(url: str, platform: Platform, count: int, concurrency: int) -> None:
    asyncio.run(fire(url, platform.prepare(count, "warm"), concurrency, platform.path))


def add_outbox_history(db_url: str, rows: int) -> None:
    """Migrate, then store `rows` messages already sent (replies and @-notices of the bench's group, half each),
    as a bot that has served its schools for a while has: the sender's queries must not read them."""
    from models.db import make_engine, upgrade

    engine = make_engine(db_url)
    try:
        upgrade(engine)
        at = "2026-01-05T08:00:00+08:00"
        batch = 10_000
        with engine.begin() as connection:
            for start in range(0, rows, batch):
                connection.execute(text(
                    "INSERT INTO outbox (dedupe_key, platform, channel, robot, kind, payload, state, priority, attempts,"
                    " created_at, next_attempt_at, sent_at, give_up_at, last_error)"
                    " VALUES (:key, 'wecom', :channel, :robot, :kind, '{}', 'sent', 0, 1, :at, :at, :at, :at, '')"
                ), [{"key": f"history:{n}", "at": at,
                     **({"channel": "wecom_webhook", "robot": "wecom:webhook:wecom-staff", "kind": "notice"} if n % 2
                        else {"channel": "wecom_response_url", "robot": f"wecom:aibot:aibot:{CHAT}", "kind": "markdown"})}
                    for n in range(start, min(rows, start + batch))])
    finally:
        engine.dispose()


def measure_bot(name: str, db_url: str, platform: Platform, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    if args.outbox_history:
        add_outbox_history(db_url, args.outbox_history)
    url, process, log_path = start_bot(tmp, platform, db_url, args)
    try:
        before = platform.replies()
        warm_up(url, platform, 100, args.concurrency)
        wait_replies(platform, before + 100, timeout=120)
        before = platform.replies()
        prepared = platform.prepare(args.requests, name)
        cpu_before = process_cpu(process.pid)
        harness_before = time.process_time()
        started = time.perf_counter()
        result = asyncio.run(fire(url, prepared, args.concurrency, platform.path))
        cpu_acked = process_cpu(process.pid)
        drained = wait_replies(platform, before + args.requests, timeout=args.drain_timeout)
        drain = time.perf_counter() - started if drained else float("nan")
        cpu_after = process_cpu(process.pid)
        harness = (time.process_time() - harness_before) / args.requests * 1000
    finally:
        stop(process)
    errors = sum(1 for line in log_path.read_text(errors="replace").splitlines() if " ERROR " in line)
    figures = report(name, result, drain=drain, errors=errors)
    if cpu_before is not None and cpu_after is not None:
        web = (cpu_after[0] - cpu_before[0]) / args.requests * 1000
        handlers = (cpu_after[1] - cpu_before[1]) / args.requests * 1000
        print(f"{'':<22} CPU per report, callback to reply: web process {web:.2f} ms, handler processes {handlers:.2f} ms"
              f" (this script, client and fake platform: {harness:.2f} ms)", flush=True)
        if cpu_acked is not None:  # while callbacks came in: acknowledging, plus the sender's work meanwhile
            acking = (cpu_acked[0] - cpu_before[0]) / args.requests * 1000
            print(f"{'':<22} web process CPU per callback until the last was acknowledged: {acking:.2f} ms", flush=True)
    return figures


def process_cpu(pid: int) -> tuple[float, float] | None:
    """CPU seconds (user + system) used so far by a process and by its live children (/proc; None elsewhere)."""
    def seconds(one: int) -> float:
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return seconds(pid), sum(seconds(int(child)) for child in children)
    except (OSError, ValueError, IndexError):
        return None


def wait_replies(platform: Platform, count: int, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if platform.replies() >= count:
            return True
        time.sleep(0.05)
    return False


def report(name: str, result: Result, *, drain: float | None = None, errors: int = 0) -> dict[str, float]:
    figures = {
        "rate": result.rate, "p50": result.percentile(0.50), "p99": result.percentile(0.99),
        "mean": statistics.fmean(result.latencies_ms) if result.latencies_ms else float("nan"),
        "failures": float(result.failures),
    }
    line = (f"{name:<22} {figures['rate']:8.0f} msg/s   p50 {figures['p50']:6.1f} ms   p99 {figures['p99']:6.1f} ms"
            f"   failed {result.failures}")
    if drain is not None:
        line += f"   drain {drain:6.1f} s ({len(result.latencies_ms) / drain if drain == drain and drain else 0:.0f} replies/s)"
        line += f"   log errors {errors}"
    print(line, flush=True)
    return figures


def fresh_postgres_schema(url: str) -> tuple[str, str]:
    """Create a throw-away schema; returns (url using it, schema name)."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options=-csearch_path%3D{schema}", schema


def drop_postgres_schema(url: str, schema: str) -> None:
    admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url)
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--handler-processes", type=int, default=1, help="[server] handler_processes (0: in the web process)")
    parser.add_argument("--only", choices=["bare", "sqlite", "postgres"], action="append")
    parser.add_argument("--platform", choices=["wecom", "dingtalk"], default="wecom")
    parser.add_argument("--outbox-history", type=int, default=0, metavar="N",
                        help="start with N messages already sent in the outbox (a bot that has run for a while)")
    parser.add_argument("--bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        serve_bare(args.bare)
        return 0
    only = set(args.only or ["bare", "sqlite", "postgres"])
    kind = "signed DingTalk" if args.platform == "dingtalk" else "encrypted WeCom"
    print(f"{args.requests} {kind} report callbacks, {args.concurrency} in flight, {os.cpu_count()} CPUs", flush=True)
    results: dict[str, dict[str, float]] = {}
    platform = DingTalkPlatform() if args.platform == "dingtalk" else Platform()
    with platform, tempfile.TemporaryDirectory(prefix="safetybot-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if "bare" in only:
            url, process, _ = start_bare(tmp)
            try:
                warm_up(url, platform, 200, args.concurrency)
                prepared = platform.prepare(args.requests, "bare")
                results["bare"] = report("bare verify+200", asyncio.run(fire(url, prepared, args.concurrency, platform.path)))
            finally:
                stop(process)
        if "sqlite" in only:
            (tmp / "sqlite").mkdir()
            results["sqlite"] = measure_bot("serve (SQLite)", f"sqlite:///{tmp / 'sqlite' / 'safetybot.db'}", platform, args, tmp / "sqlite")
        if "postgres" in only and args.postgres:
            (tmp / "pg").mkdir()
            pg_url, schema = fresh_postgres_schema(args.postgres)
            try:
                results["postgres"] = measure_bot("serve (PostgreSQL)", pg_url, platform, args, tmp / "pg")
            finally:
                drop_postgres_schema(args.postgres, schema)
        elif "postgres" in only:
            print("serve (PostgreSQL)      skipped: pass --postgres URL or set TEST_DATABASE_URL")
    if "bare" in results:
        for name in ("sqlite", "postgres"):
            if name in results:
                figures = results[name]
                ratio = figures["rate"] / results["bare"]["rate"]
                verdict = "ok" if figures["rate"] >= TARGET_RATE and figures["p99"] < TARGET_P99_MS and ratio >= TARGET_RATIO else "MISSED"
                print(f"{name:<10} ratio to bare {ratio:4.2f}   targets (≥{TARGET_RATE:.0f}/s, p99<{TARGET_P99_MS:.0f} ms, "
                      f"ratio≥{TARGET_RATIO}): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
