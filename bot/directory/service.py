"""Running a directory sync: fetch a snapshot, apply it in one transaction; and the periodic job in `serve`.

A failed or refused fetch changes nothing: the directory in the database stays as it was.
Logs carry counts and permission hints only, never a name, user id or mobile of the directory.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import httpx
from sqlalchemy import Engine
from sqlmodel import Session

from bot.config import Config
from bot.directory.apply import SyncReport, apply_snapshot
from bot.directory.calls import ApiCaller, DirectoryError
from bot.directory.dingtalk import DingTalkDirectory
from bot.directory.export_file import ExportFileError, read_export, schools_in_export
from bot.directory.mobiles import role_mobiles
from bot.directory.wecom import WeComDirectory
from bot.secrets import Secrets
from models.directory import Snapshot
from models.joining import purge_leavers
from models.platform_usage import add_calls, month_of

log = logging.getLogger(__name__)


def _credential(config: Config, secrets: Secrets, key: str) -> str:
    assert config.directory is not None
    env_name = config.directory.credentials.get(key, "")
    value = secrets.get(env_name) if env_name else None
    if not value:
        raise DirectoryError("config", "missing", f"credential {key}: environment variable {env_name or '?'} is not set")
    return value


async def fetch_snapshot(
    config: Config, secrets: Secrets, http: httpx.AsyncClient, *, on_calls: Callable[[int], None] | None = None
) -> Snapshot:
    """The configured platform's directory of the configured schools; `on_calls` is told how many API calls
    that took (also when it failed), for the month's usage."""
    directory = config.directory
    assert directory is not None
    caller = ApiCaller(http, max_concurrency=directory.max_concurrency, calls_per_second=directory.rate)
    try:
        return await _fetch(config, secrets, caller)
    finally:
        if on_calls is not None and caller.calls:
            calls = caller.calls
            await anyio.to_thread.run_sync(lambda: on_calls(calls))


async def _fetch(config: Config, secrets: Secrets, caller: ApiCaller) -> Snapshot:
    directory = config.directory
    assert directory is not None
    if directory.platform == "wecom":
        source: WeComDirectory | DingTalkDirectory = WeComDirectory(
            caller, api_base=config.wecom.api_base,
            corp_id=_credential(config, secrets, "corp_id"), secret=_credential(config, secrets, "secret"),
        )
    else:
        source = DingTalkDirectory(
            caller, api_base=config.dingtalk.api_base, oapi_base=config.dingtalk.oapi_base,
            app_key=_credential(config, secrets, "app_key"), app_secret=_credential(config, secrets, "app_secret"),
        )
    # Without `schools`, the whole visible organisation (root department 1 on both platforms) is read and the
    # schools are found by name (apply.schools_by_name).
    roots = list(directory.schools) or ["1"]
    return await source.snapshot(roots, mobiles=role_mobiles(role.who for role in directory.roles))


def purge_expired(session: Session, config: Config, now: datetime) -> int:
    """`[directory] retention_days`: blank the personal fields of people who left that long ago (0 when unset)."""
    days = config.directory.retention_days if config.directory is not None else None
    if not days:
        return 0
    return purge_leavers(session, left_before=now - timedelta(days=days))


def purge_in_transaction(db: Engine, config: Config, now: datetime) -> int:
    with Session(db) as session:
        purged = purge_expired(session, config, now)
        session.commit()
    if purged:
        log.info("directory: personal fields of %d people who left were removed (retention_days)", purged)
    return purged


def apply_in_transaction(db: Engine, config: Config, snapshot: Snapshot, now: datetime, *, dry_run: bool) -> SyncReport:
    """Apply the snapshot and commit, or roll back when only asked what would change."""
    with Session(db) as session:
        report = apply_snapshot(session, config, snapshot, now)
        report.purged = purge_expired(session, config, now)
        if dry_run:
            session.rollback()
        else:
            session.commit()
    return report


def import_export(config: Config, db: Engine, path: Path, platform: str, now: datetime, *,
                  dry_run: bool = False) -> SyncReport:
    """A console export applied as a sync; ExportFileError (nothing changed) when it cannot be used.

    An export is the whole directory, so every configured school must be in it: otherwise nothing is written
    (its people would leave).
    """
    directory = config.directory
    if directory is None:
        raise ExportFileError("配置文件里没有 [directory]：请先写上 platform 和 schools（见 docs/setup-county.md）")
    if directory.platform != platform:
        raise ExportFileError(
            f"配置的 [directory] platform 是 {directory.platform}，文件却按 {platform} 读取：请改 --platform 或配置"
        )
    snapshot = read_export(path, platform)
    as_read = config
    if directory.schools:  # else apply_snapshot finds the schools by name
        schools, problems = schools_in_export(directory, snapshot, {unit.id: unit.name for unit in config.units})
        if problems:
            raise ExportFileError("\n".join([*problems, "没有写入任何内容。"]))
        as_read = config.model_copy(update={"directory": directory.model_copy(update={"schools": schools})})
    report = apply_in_transaction(db, as_read, snapshot, now, dry_run=dry_run)
    log.info("directory: imported a %s export; %s", platform, "; ".join(report.lines()[:2]))
    return report


async def sync_directory(
    config: Config, db: Engine, secrets: Secrets, now: datetime, *, http: httpx.AsyncClient, dry_run: bool = False
) -> SyncReport:
    """One sync; raises DirectoryError (nothing changed) when the platform could not be read."""
    def counted(calls: int) -> None:
        assert config.directory is not None
        add_calls(db, platform=config.directory.platform, month=month_of(now, config.tz), kind="directory", calls=calls)

    snapshot = await fetch_snapshot(config, secrets, http, on_calls=counted)
    report = await anyio.to_thread.run_sync(
        lambda: apply_in_transaction(db, config, snapshot, now, dry_run=dry_run)
    )
    log.info("directory: synced from %s; %s", snapshot.platform, "; ".join(report.lines()[:3]))
    if report.problems:
        log.warning("directory: %d [directory] entries could not be resolved (run `safetybot directory sync`)",
                    len(report.problems))
    return report


def directory_service(
    config: Config, db: Engine, secrets: Secrets, *, clock: Callable[[], datetime], is_leader: Callable[[], bool],
    http: httpx.AsyncClient,
) -> Callable[[], Awaitable[None]]:
    """A service for the app: while this process leads, sync every `sync_every_minutes`."""
    assert config.directory is not None
    interval = config.directory.sync_every_minutes * 60

    async def run() -> None:
        while True:
            if is_leader():
                await sync_logged(config, db, secrets, clock(), http=http)
            await anyio.sleep(interval)

    return run


def retention_service(
    config: Config, db: Engine, *, clock: Callable[[], datetime], is_leader: Callable[[], bool],
) -> Callable[[], Awaitable[None]]:
    """A service for the app: while this process leads, purge expired leavers once an hour."""

    async def run() -> None:
        while True:
            if is_leader():
                try:
                    await anyio.to_thread.run_sync(lambda: purge_in_transaction(db, config, clock()))
                except Exception:
                    log.exception("directory: purging people who left failed; tried again in an hour")
            await anyio.sleep(3600)

    return run


async def sync_logged(config: Config, db: Engine, secrets: Secrets, now: datetime, *, http: httpx.AsyncClient) -> None:
    """A periodic sync that never stops the service: failures are logged, the old directory kept."""
    try:
        await sync_directory(config, db, secrets, now, http=http)
    except DirectoryError as exc:
        log.error("directory: sync failed, keeping the current directory: %s", exc)
    except Exception:
        log.exception("directory: sync failed, keeping the current directory")
