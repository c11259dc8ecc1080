"""The web application: health check, the local chat simulator, platform callbacks, the outbox sender.

`create_app` builds the services (bot/services.py), binds each platform's inbound side to the runtime, and
assembles the app from named steps: the leader check, the long-running jobs, the lifespan, the routes.
"""

from __future__ import annotations

import gc
import logging
from secrets import token_urlsafe
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
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
from bot.maintenance import maintenance_service, say_if_autovacuum_is_off
from bot.pageactions import PageActions, add_action_routes
from bot.pages import add_page_routes
from bot.photo_retry import fetch_missing_photos
from bot.platforms.base import Receiving, Runtime, Service
from bot.recorder import Busy
from bot.reload import ConfigReloader, Holders
from bot.secrets import Secrets
from bot.services import Services, build_sender, build_services
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


def _leader_check(config: Config, services: Services) -> Callable[[], bool]:
    """Whether this process leads: holds the scheduler's leader lock (or there is no scheduler to elect one)."""
    scheduler = services.scheduler
    return (lambda: scheduler.leading) if config.scheduler.enabled else (lambda: True)


def _jobs(config: Config, services: Services, receiving: list[Receiving]) -> list[Service]:
    """The long-running jobs this process runs while it leads: platforms' connections, the directory sync, the
    tables' ANALYZE and VACUUM on PostgreSQL without autovacuum."""
    jobs = [service for bound in receiving for service in bound.services]
    engine, runtime, is_leader = services.engine, services.runtime, services.sender.may_send
    if config.directory is not None and config.directory.has_api:  # the WeCom/DingTalk directory, synced by the leader
        jobs.append(directory_service(
            config, engine.db, services.secrets, clock=engine.now, is_leader=is_leader, http=runtime.http,
        ))
    if config.directory is not None and config.directory.retention_days:  # people who left lose their personal data
        jobs.append(retention_service(config, engine.db, clock=engine.now, is_leader=is_leader))
    maintenance = maintenance_service(engine.db, is_leader=is_leader)
    if maintenance is not None:
        jobs.append(maintenance)
    return jobs


def _start_pool(config: Config, services: Services) -> HandlerPool | None:
    """Start the handler processes when configured (and not already handing off); None when handling here."""
    runtime = services.runtime
    if not config.server.handler_processes or runtime.hand_off is not None:
        return None
    pool = HandlerPool(
        config, processes=config.server.handler_processes, on_replies=services.sender.kick,
        clock=services.engine.clock, secrets=services.secrets, on_alert=services.scheduler.wake,
    )
    pool.start()
    runtime.hand_off = pool
    return pool


def _lifespan(
    config: Config, services: Services, jobs: list[Service], data_dir_probe: DataDirProbe,
    reloader: ConfigReloader | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start the handler pool, sender, recovery, scheduler, reloader and the jobs; stop them all at shutdown."""
    runtime, sender, scheduler = services.runtime, services.sender, services.scheduler
    is_leader = sender.may_send

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = _start_pool(config, services)
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
            for job in jobs:
                tasks.start_soon(_when_leading, job, is_leader)
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

    return lifespan


def _add_health_and_photos(app: FastAPI, engine: Engine, data_dir_probe: DataDirProbe) -> None:
    """GET /healthz, and the signed photo links."""

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


def _share_link_key(config: Config, secrets: Secrets) -> None:
    """Without a link-signing key in the environment, one random key for this process and its handler processes,
    so a link a handler process signed (查看 #N) opens here; such links still stop working at restart."""
    name = config.server.link_secret_env
    if config.server.public_url and not secrets.get(name):
        log.warning("no link key in $%s: using a random key, photo and page links stop working at restart", name)
        secrets.provide(name, token_urlsafe(32))


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
    secrets = secrets or Secrets()
    _share_link_key(config, secrets)
    services = build_services(config, secrets, clock, engine=engine)
    if start:
        services.engine.start()
        say_if_autovacuum_is_off(services.engine.db)
    # The leader lock that elects one scheduler also elects the one sender (one rate count per robot)
    # and the one holder of each long connection (a second connection would kick the first).
    services.sender.may_send = _leader_check(config, services)
    receiving = [platform.receive(services.runtime) for platform in services.platforms]
    data_dir_probe = DataDirProbe(services.engine.data_dir)
    reloader = (
        ConfigReloader(config_path, Holders(
            engine=services.engine, runtime=services.runtime, scheduler=services.scheduler, sender=services.sender,
            platforms=services.platforms,
        ))
        if config_path is not None else None
    )
    app = FastAPI(
        title="safetybot", docs_url=None, redoc_url=None, openapi_url=None,
        lifespan=_lifespan(config, services, _jobs(config, services, receiving), data_dir_probe, reloader),
        # No OpenTelemetry here; without this, every request asks the environment for a tracer provider.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.services = services
    app.state.engine = services.engine
    app.state.runtime = services.runtime
    app.state.scheduler = services.scheduler
    app.state.wecom = services.wecom
    app.state.dingtalk = services.dingtalk
    app.state.data_dir_probe = data_dir_probe
    app.state.reloader = reloader
    app.add_exception_handler(Busy, _busy_response)
    # Platform routes first (callbacks, then /sim): the router tries routes in order, and callbacks are most
    # of the traffic.
    for bound in receiving:
        app.router.routes.extend(bound.routes)
    _add_health_and_photos(app, services.engine, data_dir_probe)
    # Issue 15: the hazard and leaders' pages behind signed links; the hazard page's sign-in and buttons.
    actions = PageActions(services.runtime)
    add_page_routes(app, services.engine, actions.hazard_panel)
    add_action_routes(app, actions)
    return app
