"""The web application: health check, the local chat simulator, platform callbacks, the outbox sender."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import anyio
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from sqlmodel import Session

from bot.config import Config
from bot.directory.service import directory_service, retention_service
from bot.engine import Engine
from bot.handler_process import HandlerPool
from bot.health import DataDirProbe
from bot.photo_retry import fetch_missing_photos
from bot.platforms import console, dingtalk, wecom
from bot.platforms.base import Runtime
from bot.recorder import Busy
from bot.reload import ConfigReloader, Holders
from bot.secrets import Secrets
from bot.services import build_sender, build_services
from models.clock import Clock
from models.db import make_engine
from models.ledger import photo_path
from models.tables import AttachmentFile

log = logging.getLogger(__name__)


def build_engine(config: Config, clock: Clock | None = None, secrets: Secrets | None = None) -> Engine:
    """Create the message engine for a config (database, data dir, clock: the wall clock unless given; secrets
    such as the link key)."""
    return Engine(
        config=config, db=make_engine(config.database.url), data_dir=Path(config.server.data_dir), clock=clock,
        secrets=secrets,
    )


__all__ = ["build_engine", "build_sender", "create_app"]


async def _recover_forever(runtime: Runtime, data_dir: DataDirProbe) -> None:
    """Finish messages that were acknowledged but not handled (e.g. after a crash), and write missing photos."""
    while True:
        try:
            count = await runtime.recover(older_than=timedelta(seconds=30))
            if count:
                log.info("recovered %d unhandled inbound messages", count)
        except Exception:
            log.exception("inbound recovery failed")
        try:
            await fetch_missing_photos(runtime, data_dir)
        except Exception:
            log.exception("writing missing photos failed")
        await anyio.sleep(15)


async def _busy_response(request: Request, exc: Exception) -> Response:
    """A callback that could not be recorded because the database is locked: 503, so the platform retries."""
    log.warning("%s %s answered 503: the database is busy", request.method, request.url.path)
    return PlainTextResponse("busy, please retry", status_code=503, headers={"Retry-After": "1"})


def _reload_on_sighup(reloader: ConfigReloader) -> Callable[[], None]:
    """Install the SIGHUP handler (main thread only, e.g. not under a test client); returns its remover."""
    try:
        return reloader.install_signal_handler()
    except (RuntimeError, ValueError, NotImplementedError):
        log.info("config reload on SIGHUP is off here (not the main thread); file changes are still watched")
        return lambda: None


async def _when_leading(service: Callable[[], Awaitable[None]], is_leader: Callable[[], bool]) -> None:
    """Start a long-running service once this process leads."""
    while not is_leader():
        await anyio.sleep(1)
    await service()


def create_app(
    config: Config,
    engine: Engine | None = None,
    secrets: Secrets | None = None,
    *,
    start: bool = True,
    clock: Clock | None = None,
    config_path: str | Path | None = None,
) -> FastAPI:
    """Build the ASGI app; the schema is migrated and the config synced before serving (unless `start` is off).

    With `config_path`, the config is reloaded from that file on SIGHUP and when it changes (bot/reload.py).
    """
    services = build_services(config, secrets or Secrets(), clock, engine=engine)
    secrets, engine, sender, runtime, scheduler = (
        services.secrets, services.engine, services.sender, services.runtime, services.scheduler
    )
    if start:
        engine.start()
    is_leader: Callable[[], bool] = (lambda: scheduler.leading) if config.scheduler.enabled else (lambda: True)
    # The leader lock that elects one scheduler also elects the one sender (one rate count per robot)
    # and the one holder of each long connection (a second connection would kick the first).
    sender.may_send = is_leader
    if config.directory is not None and config.directory.has_api:  # the WeCom/DingTalk directory, synced by the leader
        runtime.services.append(directory_service(
            config, engine.db, secrets, clock=engine.now, is_leader=is_leader, http=runtime.http
        ))
    if config.directory is not None and config.directory.retention_days:  # people who left lose their personal data
        runtime.services.append(retention_service(config, engine.db, clock=engine.now, is_leader=is_leader))
    data_dir_probe = DataDirProbe(engine.data_dir)
    reloader = (
        ConfigReloader(config_path, Holders(engine=engine, runtime=runtime, scheduler=scheduler, sender=sender))
        if config_path is not None else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool: HandlerPool | None = None
        if config.server.handler_processes and runtime.hand_off is None:
            pool = HandlerPool(
                config, processes=config.server.handler_processes, on_replies=sender.kick, clock=engine.clock,
                secrets=secrets, on_alert=scheduler.wake,
            )
            pool.start()
            runtime.hand_off = pool
        if reloader is not None:
            reloader.holders.pool = pool
            remove_signal_handler = _reload_on_sighup(reloader)
        # Everything loaded so far lives as long as the process: keep it out of the collector's full passes,
        # which otherwise stall every request for 100+ ms now and then (measured under load).
        gc.collect()
        gc.freeze()
        async with anyio.create_task_group() as tasks:
            if pool is not None:
                tasks.start_soon(pool.supervise)
            tasks.start_soon(sender.run)
            tasks.start_soon(_recover_forever, runtime, data_dir_probe)
            tasks.start_soon(scheduler.run)  # ticks only while this process holds the leader lock
            if reloader is not None:
                tasks.start_soon(reloader.run)
            for service in runtime.services:
                tasks.start_soon(_when_leading, service, is_leader)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()
        if reloader is not None:
            remove_signal_handler()
        if pool is not None:
            runtime.hand_off = None
            await anyio.to_thread.run_sync(pool.stop)
        await services.aclose()

    app = FastAPI(
        title="safetybot", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan,
        # No OpenTelemetry here; without this, every request asks the environment for a tracer provider.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.services = services
    app.state.engine = engine
    app.state.runtime = runtime
    app.state.scheduler = scheduler
    app.state.data_dir_probe = data_dir_probe
    app.state.reloader = reloader
    app.add_exception_handler(Busy, _busy_response)
    # Platform callbacks first: the router tries routes in order, and callbacks are most of the traffic.
    wecom.install_routes(app, services.wecom)
    dingtalk.install_routes(app, services.dingtalk)

    @app.get("/healthz")
    def healthz() -> Response:
        """200 {"status": "ok"}, or 503 {"status": "degraded", "reason": …} while photos cannot be written."""
        problem = data_dir_probe.problem()
        if problem is not None:
            return JSONResponse({"status": "degraded", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/photos/{photo_id}/{expires}/{signature}")
    def photo(photo_id: str, expires: str, signature: str) -> Response:
        """A hazard photo behind a signed, expiring link; anything else (malformed parts too) is a plain 404."""
        links = engine.photo_links
        granted = links.photo_id(photo_id, expires, signature) if links is not None else None
        if granted is None:
            raise HTTPException(status_code=404)
        with Session(engine.db) as session:
            row = session.get(AttachmentFile, granted)
        path = photo_path(engine.data_dir, row.sha256) if row else None
        if row is None or path is None or not path.exists():
            raise HTTPException(status_code=404)
        return FileResponse(path, media_type=row.content_type, headers={"Cache-Control": "private, max-age=3600"})

    console.install(app, engine, secrets)  # only when [simulator] enabled, and only guarded
    if reloader is not None:
        reloader.holders.adapters.extend(
            adapter for adapter in (services.wecom, services.dingtalk) if adapter is not None
        )
    return app
