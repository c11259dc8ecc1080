"""The `safetybot` command line: serve, check-config, parse, migrate, outbox, plan, export, directory sync.

Every command takes `--now` (an ISO time with a UTC offset): the command runs as if it were that
time. One-shot commands stand still at it; `serve --now` starts the bot's clock there and lets it
run forward (rehearsing a campaign in the simulator).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime, tzinfo
from typing import TYPE_CHECKING, Sequence

from models.clock import DEFAULT_TZ, Clock, FixedClock, SystemClock

if TYPE_CHECKING:
    from bot.config import Config
    from scheduler.calendar import WorkCalendar
    from scheduler.plan import PlanHazards

NOW_HELP = "run as if it were this ISO time with a UTC offset, e.g. 2023-12-05T10:00+08:00 (default: the wall clock)"


def _load_config(path: str) -> "Config | None":
    """The validated config, or None after printing every problem to stderr."""
    from bot.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        print("\n".join(exc.lines("zh")), file=sys.stderr)
        return None


def _parse_now(text: str) -> datetime | None:
    """A `--now` value as an aware datetime, or None after saying what is wrong."""
    try:
        now = datetime.fromisoformat(text)
    except ValueError:
        now = None
    if now is None or now.tzinfo is None:
        print("--now needs an ISO time with a UTC offset, e.g. 2023-12-05T10:00+08:00", file=sys.stderr)
        return None
    return now


def _clock(args: argparse.Namespace, tz: tzinfo) -> Clock:
    """The command's clock: the wall clock, or standing still at `--now`."""
    return FixedClock(args.start_at, tz) if args.start_at else SystemClock(tz)


def _cmd_check_config(args: argparse.Namespace) -> int:
    from bot.config import ConfigError, load_config, simulator_exposure
    from models.config_problems import summary

    try:
        config = load_config(args.path)
    except ConfigError as exc:
        for line in exc.lines(args.lang):
            print(line, file=sys.stderr)
        print(summary(args.path, len(exc.records), args.lang), file=sys.stderr)
        return 1
    warnings, errors = simulator_exposure(config)
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    for line in errors:
        print(line, file=sys.stderr)
    if errors:
        print(summary(args.path, len(errors), args.lang), file=sys.stderr)
        return 1
    counts = (len(config.campaigns), len(config.units), len(config.people), len(config.groups))
    if args.lang == "en":
        print(f"{args.path}: OK ({counts[0]} campaigns, {counts[1]} units, {counts[2]} people, {counts[3]} groups)")
    else:
        print(f"{args.path}: OK，配置正确（{counts[0]} 个活动、{counts[1]} 个单位、{counts[2]} 人、{counts[3]} 个群）")
    if config.campaigns:
        note = _campaign_holidays_note(config)
        if note:
            print(note)
    return 0


def _estimated_holidays_note(calendar: "WorkCalendar", first: date, last: date, *, where: str) -> str | None:
    """Which days off in [first, last] are estimates (past the official holiday data), or None if none can be."""
    from datetime import timedelta

    from scheduler.calendar import holiday_data_range, holiday_runs

    _, data_end = holiday_data_range()
    if last <= data_end:
        return None
    runs = holiday_runs(calendar.estimated_holidays(max(first, data_end + timedelta(days=1)), last))
    return (
        f"note: official holiday data ends {data_end}; days off after it {where} are estimated from the lunar "
        f"calendar (make-up workdays are not): {', '.join(runs) or 'none'}. Put the official days in [calendar] "
        "extra_holidays / extra_workdays once published, or upgrade chinesecalendar"
    )


def _campaign_holidays_note(config: "Config") -> str | None:
    """_estimated_holidays_note over the campaigns' dates."""
    from scheduler.calendar import WorkCalendar

    first = min(c.start for c in config.campaigns)
    last = max(c.end for c in config.campaigns)
    return _estimated_holidays_note(WorkCalendar.from_config(config), first, last, where="in the campaigns")


def _cmd_parse(args: argparse.Namespace) -> int:
    from handlers.parser import parse_message

    vocabulary = None
    if args.config:
        from bot.engine import vocabulary_of

        config = _load_config(args.config)
        if config is None:
            return 2
        vocabulary = vocabulary_of(config)
    command = parse_message(args.message, today=_clock(args, DEFAULT_TZ).today(), vocabulary=vocabulary)
    if args.json:
        print(json.dumps(command.to_json(), ensure_ascii=False))
    else:
        print(command)
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    from models.db import make_engine, upgrade

    config = _load_config(args.config)
    if config is None:
        return 1
    upgrade(make_engine(config.database.url))
    print("database schema is up to date")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bot.app import create_app

    config = _load_config(args.config)
    if config is None:
        return 1
    from bot.logging_setup import configure_logging
    from bot.secrets import Secrets

    # The app guards /sim by the address it really listens on, so --host/--port count as config.
    server = config.server.model_copy(
        update={"host": args.host or config.server.host, "port": args.port or config.server.port}
    )
    config = config.model_copy(update={"server": server})
    secrets = Secrets()
    configure_logging(config, secrets)
    # Not a standing clock: the bot's clock starts at --now and runs forward.
    clock = SystemClock.starting_at(args.start_at, config.tz) if args.start_at else None
    app = create_app(config, secrets=secrets, clock=clock, config_path=args.config)
    # uvicorn's access log would bypass our redacting handlers and print callback query strings.
    uvicorn.run(app, host=server.host, port=server.port, log_config=None, access_log=False)
    return 0


def _cmd_outbox(args: argparse.Namespace) -> int:
    from models import outbox as store
    from models.db import make_engine

    config = _load_config(args.config)
    if config is None:
        return 1
    tz = config.tz
    if args.requeue or args.requeue_failed_since:
        return _requeue(args, config)
    rows = store.list_messages(make_engine(config.database.url), state=args.state, limit=args.limit)
    if args.json:
        print(json.dumps([
            {
                "id": row.id, "key": row.dedupe_key, "state": row.state, "channel": row.channel,
                "robot": row.robot, "kind": row.kind, "attempts": row.attempts,
                "created_at": row.created_at.astimezone(tz).isoformat(),
                "sent_at": row.sent_at.astimezone(tz).isoformat() if row.sent_at else None,
                "last_error": row.last_error,
            }
            for row in rows
        ], ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("outbox is empty" if not args.state else f"no {args.state} messages")
    for row in rows:
        when = (row.sent_at or row.created_at).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
        error = f"  {row.last_error}" if row.last_error else ""
        print(f"{row.id:>6}  {row.state:<7} {when}  {row.channel:<24} tries={row.attempts}  {row.dedupe_key}{error}")
    return 0


def _requeue(args: argparse.Namespace, config: "Config") -> int:
    """Put given-up rows back to pending (`--requeue ID`, `--requeue-failed-since TIME`) and say what happened."""
    from datetime import timedelta

    from models import outbox as store
    from models.db import make_engine

    now = _clock(args, config.tz).now()
    since = None
    if args.requeue_failed_since:
        try:
            since = datetime.fromisoformat(args.requeue_failed_since)
        except ValueError:
            since = None
        if since is None or since.tzinfo is None:
            print("--requeue-failed-since needs an ISO time with a UTC offset, e.g. 2026-12-01T08:00+08:00",
                  file=sys.stderr)
            return 2
    db = make_engine(config.database.url)
    ids = list(dict.fromkeys([*(args.requeue or []), *(store.failed_since(db, since) if since else [])]))
    if not ids:
        print(f"no failed messages last tried since {since.isoformat()}" if since else "nothing to requeue")
        return 0
    give_up_after = timedelta(minutes=config.outbox.give_up_after_minutes)
    outcomes = store.requeue(db, ids, now=now, give_up_after=give_up_after)
    why_not = {
        "sent": "was sent already; never sent twice",
        "pending": "is pending already",
        "missing": "no such outbox row",
    }
    for outcome in outcomes:
        if outcome.outcome == "requeued":
            error = f"  (was: {outcome.last_error})" if outcome.last_error else ""
            print(f"requeued {outcome.row_id:>6}  {outcome.dedupe_key}{error}")
        else:
            print(f"skipped  {outcome.row_id:>6}  {why_not.get(outcome.outcome, outcome.outcome)}")
    requeued = sum(1 for o in outcomes if o.outcome == "requeued")
    print(f"{requeued} message(s) requeued; they are sent within the limits once `safetybot serve` runs")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    """List every push the scheduler will make in a date window (from the config alone)."""
    import logging
    from datetime import timedelta

    from scheduler.calendar import WorkCalendar
    from scheduler.plan import plan_window

    config = _load_config(args.config)
    if config is None:
        return 1
    first = args.from_ or _clock(args, config.tz).today()
    last = args.until or first + timedelta(days=14)
    if last < first:
        print(f"--until {last} is before --from {first}", file=sys.stderr)
        return 2
    # The note below says it once, for the window asked about, instead of a log line per year.
    logging.getLogger("scheduler.calendar").setLevel(logging.ERROR)
    calendar = WorkCalendar.from_config(config)
    hazards = None if args.no_db else _plan_hazards(config)
    pushes = plan_window(config, calendar, first=first, last=last, hazards=hazards)
    if args.json:
        print(json.dumps([p.to_json() for p in pushes], ensure_ascii=False, indent=2))
    else:
        campaign_width = max((len(p.campaign_id) for p in pushes), default=0)
        group_width = max((len(p.group_id) for p in pushes), default=0)
        for push in pushes:
            print(push.line(campaign_width=campaign_width, group_width=group_width))
        if not pushes:
            print(f"no pushes between {first} and {last}")
    note = _estimated_holidays_note(calendar, first, last, where="in this window")
    if note:
        print(note, file=sys.stderr)
    return 0


def _plan_hazards(config: Config) -> PlanHazards:
    """The open hazards in the config's database, for the escalations and 督办 checks `plan` names (none when
    there is no database yet)."""
    from pathlib import Path

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError
    from sqlmodel import Session

    from models.db import make_engine
    from models.ledger import open_hazard_facts
    from scheduler.escalation import LadderHazard
    from scheduler.plan import PlanHazards

    url = make_url(config.database.url)
    if url.get_backend_name() == "sqlite" and (not url.database or not Path(url.database).exists()):
        return PlanHazards()
    db = make_engine(config.database.url)
    try:
        with Session(db) as session:
            facts = open_hazard_facts(session)
    except SQLAlchemyError as exc:
        print(f"could not read the open hazards ({type(exc).__name__}); planning without them", file=sys.stderr)
        return PlanHazards()
    finally:
        db.dispose()
    tz = config.tz
    names = {unit.id: unit.name for unit in config.units}
    return PlanHazards(tuple(
        LadderHazard(f.id, f.number, f.campaign_id, f.chain, f.deadline, f.level, f.found_at.astimezone(tz).date(),
                     f.status, names.get(f.school_id or "", f.school_id or ""))
        for f in facts
    ))


def _cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sqlmodel import Session, select

    from bot.app import build_engine
    from handlers.exports import export_workbook
    from models.ledger import descendants
    from models.reports import BuildingInfo
    from models.tables import CampaignRow, UnitRow

    config = _load_config(args.config)
    if config is None:
        return 1
    engine = build_engine(config, _clock(args, config.tz))
    try:
        engine.start()  # migrate and sync, so the file matches the config's units and campaigns
        with Session(engine.db) as session:
            campaign = session.get(CampaignRow, args.campaign)
            if campaign is None:
                known = ", ".join(sorted(session.exec(select(CampaignRow.id))))
                print(f"unknown campaign {args.campaign!r}; known: {known or 'none'}", file=sys.stderr)
                return 2
            if args.unit:
                unit = session.get(UnitRow, args.unit)
                if unit is None:
                    print(f"unknown unit {args.unit!r}", file=sys.stderr)
                    return 2
                unit_ids: set[str] | None = descendants(session, [unit.id])
                unit_name = unit.name
            else:
                unit_ids = None
                tops = session.exec(
                    select(UnitRow.name).where(UnitRow.parent_id == None, UnitRow.active == True)  # noqa: E711, E712
                ).all()
                unit_name = "、".join(tops)
            buildings = [BuildingInfo(b.id, b.name, b.unit, b.built_year) for b in config.buildings]
            result = export_workbook(
                session,
                campaign=campaign,
                forms=[args.form],
                unit_ids=unit_ids,
                unit_name=unit_name,
                on=engine.now().date(),
                buildings=buildings,
            )
    finally:
        engine.db.dispose()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    partial.write_bytes(result.data)
    partial.replace(out)  # never leave a half-written file where the old one was
    rows = f", {result.ledger_rows} hazards" if args.form == "ledger" else ""
    print(f"{out}: {args.form} form of {campaign.id}{rows} ({len(result.data):,} bytes)")
    return 0


def _cmd_directory_sync(args: argparse.Namespace) -> int:
    import anyio
    import httpx
    from sqlmodel import Session

    from bot.directory.apply import SyncReport
    from bot.directory.calls import DirectoryError
    from bot.directory.service import sync_directory
    from bot.secrets import Secrets
    from bot.sync import sync_config
    from models.db import make_engine, upgrade

    config = _load_config(args.config)
    if config is None:
        return 1
    if config.directory is None:
        print("no [directory] table in the config: see docs/wecom-setup.md (从通讯录同步)", file=sys.stderr)
        return 1
    db = make_engine(config.database.url)
    upgrade(db)
    with Session(db) as session:  # the schools' units come from the TOML, as when `serve` starts
        sync_config(session, config)
    now = _clock(args, config.tz).now()

    async def run() -> SyncReport:
        async with httpx.AsyncClient(timeout=httpx.Timeout(20.0, connect=5.0)) as http:
            return await sync_directory(config, db, Secrets(), now, http=http, dry_run=args.dry_run)

    try:
        report = anyio.run(run)
    except DirectoryError as exc:
        print(f"directory sync failed, the directory was left as it was: {exc}", file=sys.stderr)
        return 1
    if args.dry_run:
        print("dry run: nothing was written")
    print("\n".join(report.lines()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safetybot", description="School safety hazard campaign bot")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("serve", help="run the bot (web callbacks, simulator at /sim)")
    p.add_argument("--config", default="config.example.toml")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("check-config", help="validate a config file")
    p.add_argument("path")
    p.add_argument("--lang", choices=("zh", "en"), default="zh", help="language of the messages (default: zh)")
    p.set_defaults(func=_cmd_check_config)

    p = sub.add_parser("parse", help="parse one chat message and print what the bot understood")
    p.add_argument("message")
    p.add_argument("--json", action="store_true")
    p.add_argument("--config", help="a config file whose people, units and buildings help to read plain words")
    p.set_defaults(func=_cmd_parse)

    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    p.add_argument("--config", default="config.example.toml")
    p.set_defaults(func=_cmd_migrate)

    p = sub.add_parser("export", help="write an official form (ledger, buildings, statistics) as XLSX")
    p.add_argument("--config", default="config.example.toml")
    p.add_argument("--campaign", required=True, help="campaign id from the config")
    p.add_argument("--form", required=True, choices=("ledger", "buildings", "statistics"),
                   help="ledger: 问题隐患自查整改清单; buildings: 排查情况汇总表; statistics: 销号统计表")
    p.add_argument("--out", required=True, help="the .xlsx file to write")
    p.add_argument("--unit", help="only this unit and the units under it (default: all)")
    p.set_defaults(func=_cmd_export)
    p = sub.add_parser("outbox", help="show outgoing messages: pending, sent, and failed with the reason")
    p.add_argument("--config", default="config.example.toml")
    p.add_argument("--state", choices=["pending", "sent", "failed"])
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.add_argument("--requeue", type=int, action="append", metavar="ID",
                   help="put this failed message back to pending (repeatable); a sent one is never sent again")
    p.add_argument("--requeue-failed-since", metavar="TIME",
                   help="requeue every failed message last tried at or after this ISO time with offset")
    p.set_defaults(func=_cmd_outbox)

    p = sub.add_parser("plan", help="list every push (reminders, nudges, digests) the bot will make")
    p.add_argument("--config", default="config.example.toml")
    p.add_argument("--from", dest="from_", type=date.fromisoformat, help="first day, YYYY-MM-DD (default: today)")
    p.add_argument("--until", type=date.fromisoformat, help="last day, YYYY-MM-DD (default: 14 days after --from)")
    p.add_argument("--json", action="store_true", help="a JSON list of {at, kind, campaign, group, summary}")
    p.add_argument("--no-db", action="store_true",
                   help="plan from the config alone: escalations and 督办 checks as daily slots, not naming hazards")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("directory", help="units and people from the WeCom/DingTalk directory ([directory])")
    directory = p.add_subparsers(dest="directory_cmd", required=True)
    d = directory.add_parser("sync", help="fetch the platform directory now and print what changed")
    d.add_argument("--config", default="config.example.toml")
    d.add_argument("--dry-run", action="store_true", help="show what would change without writing it")
    d.add_argument("--now", help=NOW_HELP, default=argparse.SUPPRESS)  # also accepted before `sync`
    d.set_defaults(func=_cmd_directory_sync)

    for command in sub.choices.values():
        command.add_argument("--now", help=NOW_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.start_at = _parse_now(args.now) if args.now else None
    if args.now and args.start_at is None:
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
