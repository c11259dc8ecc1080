"""The `safetybot` command line: serve, check-config, parse, migrate, outbox, plan, export, directory sync and import.

Every command takes `--now` (an ISO time with a UTC offset): the command runs as if it were that
time. One-shot commands stand still at it; `serve --now` starts the bot's clock there and lets it
run forward (rehearsing a campaign in the simulator).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime, tzinfo
from typing import TYPE_CHECKING, Any, Sequence

from models.clock import DEFAULT_TZ, Clock, FixedClock, SystemClock

if TYPE_CHECKING:
    from sqlalchemy import Engine as DbEngine

    from bot.config import Config
    from bot.directory.apply import SyncReport
    from bot.engine import Engine
    from models.tables import CampaignRow
    from models.platform_usage import UsageLine
    from scheduler.calendar import WorkCalendar
    from scheduler.plan import PlanGroup, PlanHazards

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
    from bot.config import ConfigError, cards_notes, load_config, simulator_exposure
    from models.config_problems import summary

    try:
        config = load_config(args.path)
    except ConfigError as exc:
        for line in exc.lines(args.lang):
            print(line, file=sys.stderr)
        print(summary(args.path, len(exc.records), args.lang), file=sys.stderr)
        return 1
    warnings, errors = simulator_exposure(config, args.lang)
    # Issue 15: the public address of the signed hazard/leaders' page and photo links.
    from bot.secrets import Secrets
    from models.config import page_link_problems

    link_warnings, link_errors = page_link_problems(
        config, secret_set=bool(Secrets().get(config.server.link_secret_env)), lang=args.lang
    )
    warnings, errors = warnings + link_warnings, errors + link_errors
    warnings += cards_notes(config, args.lang)  # issue 15: where buttons cannot show
    from models.config import login_problems

    secrets = Secrets()
    errors += login_problems(config, lambda name: bool(secrets.get(name)), args.lang)  # issue 15: page sign-in
    for line in warnings:
        print(f"{'warning: ' if args.lang == 'en' else '警告：'}{line}", file=sys.stderr)
    for line in errors:
        print(line, file=sys.stderr)
    if errors:
        print(summary(args.path, len(errors), args.lang), file=sys.stderr)
        return 1
    for line in _chat_group_push_lines(config, args.lang):
        print(f"{'warning: ' if args.lang == 'en' else '警告：'}{line}", file=sys.stderr)
    counts = (len(config.campaigns), len(config.units), len(config.people), len(config.groups))
    if args.lang == "en":
        print(f"{args.path}: OK ({counts[0]} campaigns, {counts[1]} units, {counts[2]} people, {counts[3]} groups)")
    else:
        print(f"{args.path}: OK，配置正确（{counts[0]} 个活动、{counts[1]} 个单位、{counts[2]} 人、{counts[3]} 个群）")
    if config.campaigns:
        note = _campaign_holidays_note(config, args.lang)
        if note:
            print(note)
    autovacuum = _autovacuum_note(config, args.lang)
    if autovacuum:
        print(f"{'note: ' if args.lang == 'en' else '提示：'}{autovacuum}")
    return 0


def _autovacuum_note(config: "Config", lang: str) -> str | None:
    """check-config on PostgreSQL: that the bot will analyze and vacuum its own tables, when autovacuum is off."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from models.db import make_engine, normalize_url
    from models.maintenance import autovacuum_off_note

    if make_url(normalize_url(config.database.url)).get_backend_name() != "postgresql":
        return None
    # A checker must not hang on a database server it cannot reach: it then says nothing of autovacuum.
    db = make_engine(config.database.url, connect_args={"connect_timeout": 3})
    try:
        return autovacuum_off_note(db, lang)
    except SQLAlchemyError:
        return None
    finally:
        db.dispose()


def _estimated_holidays_note(
    calendar: "WorkCalendar", first: date, last: date, *, where: str, lang: str = "en"
) -> str | None:
    """Which days off in [first, last] are estimates (past the official holiday data), or None if none can be.

    `where` is English ("in the campaigns"); in Chinese the note speaks of 活动期间 (the campaigns).
    """
    from datetime import timedelta

    from scheduler.calendar import holiday_data_range, holiday_runs

    _, data_end = holiday_data_range()
    if last <= data_end:
        return None
    runs = holiday_runs(calendar.estimated_holidays(max(first, data_end + timedelta(days=1)), last))
    if lang == "zh":
        return (
            f"提示：官方节假日数据只到 {data_end}；活动期间在此之后的假日是按农历推算的（调休上班日无法推算）："
            f"{'、'.join(runs) or '无'}。官方安排公布后，请写进 [calendar] extra_holidays / extra_workdays，"
            "或升级 chinesecalendar"
        )
    return (
        f"note: official holiday data ends {data_end}; days off after it {where} are estimated from the lunar "
        f"calendar (make-up workdays are not): {', '.join(runs) or 'none'}. Put the official days in [calendar] "
        "extra_holidays / extra_workdays once published, or upgrade chinesecalendar"
    )


def _campaign_holidays_note(config: "Config", lang: str = "en") -> str | None:
    """_estimated_holidays_note over the campaigns' dates."""
    from scheduler.calendar import WorkCalendar

    first = min(c.start for c in config.campaigns)
    last = max(c.end for c in config.campaigns)
    return _estimated_holidays_note(WorkCalendar.from_config(config), first, last, where="in the campaigns", lang=lang)


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
    from bot.outbox import summary
    from models import outbox as store
    from models.db import make_engine

    config = _load_config(args.config)
    if config is None:
        return 1
    tz = config.tz
    if args.usage:
        return _usage(args, config)
    if args.requeue or args.requeue_failed_since:
        return _requeue(args, config)
    rows = store.list_messages(make_engine(config.database.url), state=args.state, limit=args.limit)
    if args.json:
        print(json.dumps([
            {
                "id": row.id, "key": row.dedupe_key, "state": row.state, "channel": row.channel,
                "robot": row.robot, "kind": row.kind, "summary": summary(row), "attempts": row.attempts,
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
        # A replies row (not yet rendered, or `expanded` into its `#1`, `#2` … rows) says what it holds.
        about = f"  [{text}]" if (text := summary(row)) else ""
        print(f"{row.id:>6}  {row.state:<8} {when}  {row.channel:<24} {row.kind:<11} tries={row.attempts}  "
              f"{row.dedupe_key}{about}{error}")
    return 0


def _usage_lines(config: "Config", month: str, used: dict[str, int] | None) -> list[str]:
    """The month's budget line of each platform with a budget (`used` None: the database was not read)."""
    budget = config.dingtalk.monthly_call_budget
    if not budget:
        return []
    if used is None:
        return [f"dingtalk API budget {month}: {budget} calls a month (usage not read)"]
    calls = used.get("dingtalk", 0)
    share = 100.0 * calls / budget
    state = (
        f"LOW: from {config.dingtalk.budget_low_percent}% on, a group's non-urgent pushes are held and go as one "
        f"message a day at {config.dingtalk.merged_push_time:%H:%M}, off the OpenAPI; 重大 alerts and escalations "
        "still go at once"
        if share >= config.dingtalk.budget_low_percent else f"pushes merge from {config.dingtalk.budget_low_percent}%"
    )
    return [f"dingtalk API budget {month}: {calls} of {budget} calls used ({share:.1f}%), {budget - calls} left; {state}"]


def _month_usage(config: "Config", month: str) -> tuple[list["UsageLine"], dict[str, int]]:
    """The month's calls by platform and kind, and each budgeted platform's total."""
    from sqlmodel import Session

    from models.db import make_engine
    from models.platform_usage import budgeted_calls, usage_of_month

    db = make_engine(config.database.url)
    try:
        with Session(db) as session:
            lines = usage_of_month(session, month)
            used = {"dingtalk": budgeted_calls(session, "dingtalk", month)}
    finally:
        db.dispose()
    return lines, used


def _usage(args: argparse.Namespace, config: "Config") -> int:
    """`outbox --usage`: the month's API calls per platform and kind, the budget and how much of it is used."""
    from models.platform_usage import month_of

    month = month_of(_clock(args, config.tz).now(), config.tz)
    lines, used = _month_usage(config, month)
    if args.json:
        print(json.dumps({
            "month": month,
            "calls": [{"platform": u.platform, "kind": u.kind, "calls": u.calls, "budgeted": u.budgeted} for u in lines],
            "budget": {"dingtalk": config.dingtalk.monthly_call_budget} if config.dingtalk.monthly_call_budget else {},
            "used": used,
        }, ensure_ascii=False, indent=2))
        return 0
    print(f"API calls in {month}")
    if not lines:
        print("  none counted")
    for platform in dict.fromkeys(u.platform for u in lines):
        mine = [u for u in lines if u.platform == platform]
        print(f"  {platform}: {sum(u.calls for u in mine)}")
        for u in mine:
            note = "" if u.budgeted else "  (not counted against the budget)"
            print(f"    {u.kind:<28} {u.calls:>7}{note}")
    for line in _usage_lines(config, month, used) or ["no monthly API budget set ([dingtalk] monthly_call_budget)"]:
        print(line)
    for line in _held_lines(config):
        print(line)
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
    """List every push the scheduler will make in a date window (to the TOML's groups and those bound in chat)."""
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
    hazards, groups = (None, None) if args.no_db else _plan_from_db(config)
    pushes = plan_window(config, calendar, first=first, last=last, hazards=hazards, groups=groups)
    if args.json:
        print(json.dumps([p.to_json() for p in pushes], ensure_ascii=False, indent=2))
    else:
        campaign_width = max((len(p.campaign_id) for p in pushes), default=0)
        group_width = max((len(p.group_id) for p in pushes), default=0)
        for push in pushes:
            print(push.line(campaign_width=campaign_width, group_width=group_width))
        if not pushes:
            print(f"no pushes between {first} and {last}")
    if not args.json:
        _print_budget_line(args, config)
    note = _estimated_holidays_note(calendar, first, last, where="in this window")
    if note:
        print(note, file=sys.stderr)
    return 0


def _print_budget_line(args: argparse.Namespace, config: "Config") -> None:
    """`plan`'s last lines: this month's API budget and how much of it is used (when a budget is set), and the
    pushes held for their group's merged message."""
    from pathlib import Path

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from models.platform_usage import month_of

    url = make_url(config.database.url)
    readable = not args.no_db and not (
        url.get_backend_name() == "sqlite" and (not url.database or not Path(url.database).exists())
    )
    if config.dingtalk.monthly_call_budget:
        month = month_of(_clock(args, config.tz).now(), config.tz)
        used: dict[str, int] | None = None
        if readable:
            try:
                used = _month_usage(config, month)[1]
            except SQLAlchemyError:
                used = None
        for line in _usage_lines(config, month, used):
            print(line)
    if readable:  # held pushes still go at their time if the budget was since removed from the config
        try:
            held = _held_lines(config)
        except SQLAlchemyError:
            held = []
        for line in held:
            print(line)


def _held_lines(config: "Config") -> list[str]:
    """Pushes held for their group's merged message (the budget runs low): when each group's message goes."""
    from itertools import groupby

    from sqlmodel import Session

    from models.db import make_engine
    from models.queries_schedule import held_pushes

    db = make_engine(config.database.url)
    try:
        with Session(db) as session:
            held = held_pushes(session)
    finally:
        db.dispose()
    if not held:
        return []
    lines = [f"held for the merged message of their group ({len(held)} push(es)):"]
    for (send_at, group_id), rows in groupby(held, key=lambda row: (row.send_at, row.group_id)):
        keys = [row.key for row in rows]
        lines.append(
            f"{send_at.astimezone(config.tz):%Y-%m-%d %H:%M}  merged  {group_id}  {len(keys)} push(es) in one message: "
            + ", ".join(keys)
        )
    return lines


def _plan_from_db(config: Config) -> tuple[PlanHazards, list[PlanGroup] | None]:
    """The open hazards and the groups bound in chat (登记本群) of the config's database, for `plan` (no hazards
    and the TOML's groups when there is no database yet)."""
    from pathlib import Path

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError
    from sqlmodel import Session

    from models.db import make_engine
    from models.push_groups import stored_groups
    from scheduler.plan import push_groups

    hazards = _plan_hazards(config)
    url = make_url(config.database.url)
    if url.get_backend_name() == "sqlite" and (not url.database or not Path(url.database).exists()):
        return hazards, None
    db = make_engine(config.database.url)
    try:
        with Session(db) as session:
            stored = stored_groups(session)
    except SQLAlchemyError as exc:
        print(f"could not read the groups bound in chat ({type(exc).__name__}); planning the config's groups",
              file=sys.stderr)
        return hazards, None
    finally:
        db.dispose()
    # The TOML's groups as they are now (the database has them as of the last start or reload), and the groups
    # bound in chat, unless the TOML has their chat by now (the next start drops those).
    return hazards, push_groups(config, stored, stored_only=False)


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

    from sqlmodel import Session

    from bot.app import build_engine
    from bot.engine import checklist_of
    from handlers.exports import export_workbook, reporting_period_form
    from handlers.periods import report_days
    from models.ledger import descendants
    from models.queries_directory import campaign_ids, top_unit_names
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
                known = ", ".join(sorted(campaign_ids(session)))
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
                tops = top_unit_names(session)
                unit_name = "、".join(tops)
            period = None
            if args.period is not None:
                period = reporting_period_form(campaign, args.period) if args.form == "statistics" else None
                if period is None:
                    why = (f"{campaign.id} has {len(report_days(campaign))} reporting periods"
                           if args.form == "statistics" else "--period goes with --form statistics")
                    print(f"--period {args.period}: {why}", file=sys.stderr)
                    return 2
            buildings = [BuildingInfo(b.id, b.name, b.unit, b.built_year) for b in config.buildings]
            result = export_workbook(
                session,
                campaign=campaign,
                forms=[args.form],
                unit_ids=unit_ids,
                unit_name=unit_name,
                on=engine.now().date(),
                buildings=buildings,
                checklist=checklist_of(config),
                period=period,
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


def _directory_database(config: "Config") -> "DbEngine":
    """The config's database, migrated, with the TOML's units in it (the schools a directory fills), as at `serve`."""
    from sqlmodel import Session

    from bot.sync import sync_config
    from models.db import make_engine, upgrade

    db = make_engine(config.database.url)
    upgrade(db)
    with Session(db) as session:
        sync_config(session, config)
    return db


def _print_directory_report(report: "SyncReport", *, dry_run: bool) -> None:
    """What a directory sync or import changed (or would change, by name too, on a dry run)."""
    if dry_run:
        print("dry run: nothing was written")
    print("\n".join(report.lines()))
    if dry_run and report.name_lines():  # what would change, by name, to check before the real run
        print("\n".join(report.name_lines()))


def _cmd_directory_sync(args: argparse.Namespace) -> int:
    import anyio
    import httpx

    from bot.directory.calls import DirectoryError
    from bot.directory.service import sync_directory
    from bot.secrets import Secrets

    config = _load_config(args.config)
    if config is None:
        return 1
    if config.directory is None:
        print("no [directory] table in the config: see docs/wecom-setup.md (从通讯录同步)", file=sys.stderr)
        return 1
    db = _directory_database(config)
    now = _clock(args, config.tz).now()

    async def run() -> SyncReport:
        async with httpx.AsyncClient(timeout=httpx.Timeout(20.0, connect=5.0)) as http:
            return await sync_directory(config, db, Secrets(), now, http=http, dry_run=args.dry_run)

    try:
        report = anyio.run(run)
    except DirectoryError as exc:
        print(f"directory sync failed, the directory was left as it was: {exc}", file=sys.stderr)
        return 1
    _print_directory_report(report, dry_run=args.dry_run)
    return 0


def _cmd_directory_import(args: argparse.Namespace) -> int:
    from pathlib import Path


    from bot.directory.export_file import ExportFileError
    from bot.directory.service import import_export

    config = _load_config(args.config)
    if config is None:
        return 1
    if config.directory is None:
        print("配置文件里没有 [directory]：请先写上 platform 和 schools（见 docs/setup-county.md）", file=sys.stderr)
        return 1
    db = _directory_database(config)
    try:
        now = _clock(args, config.tz).now()
        try:
            report = import_export(config, db, Path(args.file), args.platform, now, dry_run=args.dry_run)
        except ExportFileError as exc:
            print(f"导入失败，通讯录没有改动：{exc}", file=sys.stderr)
            return 1
    finally:
        db.dispose()
    _print_directory_report(report, dry_run=args.dry_run)
    return 0


def _cmd_groups(args: argparse.Namespace) -> int:
    from sqlmodel import Session

    from models.db import make_engine, upgrade
    from models.joining import seen_chats, units_of_group

    config = _load_config(args.config)
    if config is None:
        return 1
    db = make_engine(config.database.url)
    try:
        upgrade(db)
        with Session(db) as session:
            seen = seen_chats(session)
            rows = [
                (chat.platform, chat.chat_id, group.name if group else "", group.kind if group else "",
                 "bound" if group else "unbound", chat.messages, chat.last_seen.astimezone(config.tz))
                for chat, group in seen
            ]
            # What a group bound in chat needs before the scheduler's pushes reach it (issue 13).
            push = {chat.chat_id: _push_need(config, group.platform, group.id, robot=group.robot)
                    for chat, group in seen if group is not None and group.source == "chat"}
            units = {group.id: units_of_group(session, group.id) for _, group in seen if group is not None}
            toml = [_group_toml(chat.platform, chat.chat_id, group, units) for chat, group in seen
                    if group is None or group.source == "chat"]
    finally:
        db.dispose()
    if args.toml:
        print("\n".join(toml) if toml else "# every chat seen has its [[groups]] entry already")
        return 0
    if args.json:
        print(json.dumps([
            {"platform": p, "chat_id": c, "group": g, "kind": k, "state": st, "messages": n, "last_seen": t.isoformat(),
             **({"push": push[c][1]} if c in push else {})}
            for p, c, g, k, st, n, t in rows
        ], ensure_ascii=False))
        return 0
    if not rows:
        print("no chats seen yet: @-mention the bot in a group, then an admin sends 登记本群 there")
        return 0
    for platform, chat_id, name, kind, state, messages, last in rows:
        where = f"{name} ({kind})" if name else "-> an admin sends: 登记本群 学校名 群名 教职工"
        if chat_id in push:
            where += f"; pushes: {push[chat_id][1]}"
        print(f"{platform:<8} {state:<7} {last:%Y-%m-%d %H:%M}  {messages:>4} msgs  {chat_id}  {where}")
    return 0


def _push_need(config: Config, platform: str, group_id: str, *, robot: str | None = None) -> tuple[bool, str, str]:
    """Whether the scheduler's pushes can reach a group bound in chat (no TOML entry), and what is needed if not,
    in English and in Chinese. WeCom pushes only through the chat's 消息推送 webhook, whose key is a credential:
    it goes into an environment variable named after the group (never into the chat, whose history keeps it)."""
    from bot.secrets import Secrets
    from models.push_groups import push_key_env

    if platform == "wecom":
        env = push_key_env(group_id)
        if Secrets().get(env):
            return True, f"ready (webhook key in {env})", f"可以推送（{env} 已设置）"
        return (False, f"need the chat's 消息推送 webhook key in the environment variable {env}",
                f"要推送提醒，请在群设置里添加「消息推送」，把 webhook 地址里的 key 写进环境变量 {env}")
    if platform == "dingtalk":
        if config.dingtalk.robots:  # the robot that received the 登记本群 (as the push renderer picks it)
            ids = [r.id for r in config.dingtalk.robots]
            robot = robot if robot in ids else ids[0]
            return True, f"ready (app robot {robot} by OpenAPI)", f"可以推送（由应用机器人 {robot} 发送）"
        return (False, "need a [[dingtalk.robots]] entry, or a [[groups]] entry with webhook_token (groups --toml)",
                "要推送提醒，请在配置里添加 [[dingtalk.robots]]，或用 groups --toml 生成 [[groups]] 并写上 webhook_token")
    return True, "ready", "可以推送"


def _chat_group_push_lines(config: Config, lang: str) -> list[str]:
    """check-config: the groups bound in chat that pushes cannot reach yet (read from the config's database,
    when there is one)."""
    from pathlib import Path

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError
    from sqlmodel import Session

    from models.db import make_engine
    from models.push_groups import stored_groups

    url = make_url(config.database.url)
    sqlite = url.get_backend_name() == "sqlite"
    if sqlite and (not url.database or not Path(url.database).exists()):
        return []
    # A checker must not hang on a database server it cannot reach: it then says nothing of these groups.
    db = make_engine(config.database.url) if sqlite else make_engine(
        config.database.url, connect_args={"connect_timeout": 3}
    )
    try:
        with Session(db) as session:
            groups = [g for g in stored_groups(session) if g.source == "chat"]
    except SQLAlchemyError:
        return []
    finally:
        db.dispose()
    configured = {(g.platform, g.chat_id) for g in config.groups if g.chat_id}
    lines = []
    for group in groups:
        if (group.platform, group.chat_id) in configured:
            continue
        ready, english, chinese = _push_need(config, group.platform, group.id)
        if not ready:
            lines.append(f"group「{group.name}」({group.id}, bound in chat): {english}" if lang == "en"
                         else f"群「{group.name}」（{group.id}，在群里登记）：{chinese}")
    return lines


def _group_toml(platform: str, chat_id: str, group: Any, units: dict[str, list[str]]) -> str:
    """A [[groups]] entry for a chat, to paste into the config (for its own settings: a chat bound in chat gets the
    pushes without one)."""
    env = "SAFETYBOT_WECOM_WEBHOOK_KEY" if platform == "wecom" else "SAFETYBOT_DINGTALK_ACCESS_TOKEN"
    key = "webhook_key" if platform == "wecom" else "access_token"
    group_units = units.get(group.id, []) if group is not None else []
    return "\n".join([
        "[[groups]]",
        f'id = "{group.id if group is not None else "group-id"}"',
        f"name = {json.dumps(group.name if group is not None else '群名', ensure_ascii=False)}",
        f'platform = "{platform}"',
        f'kind = "{group.kind if group is not None else "staff"}"',
        f"units = {json.dumps(group_units or ['school-unit-id'], ensure_ascii=False)}",
        f"chat_id = {json.dumps(chat_id)}",
        f'credentials = {{ {key} = "{env}" }}',
        "",
    ])


# -- 回头看 (look-back campaigns, issue 16) -------------------------------------------------------------


def _lookback_engine(args: argparse.Namespace) -> "tuple[Config, Engine, CampaignRow] | int":
    """The config, a started engine (migrated, synced) and the campaign named by --campaign, or an exit code."""
    from sqlmodel import Session

    from bot.app import build_engine
    from models.queries_directory import campaign_ids
    from models.tables import CampaignRow

    config = _load_config(args.config)
    if config is None:
        return 1
    engine = build_engine(config, _clock(args, config.tz))
    engine.start()
    with Session(engine.db) as session:
        campaign = session.get(CampaignRow, args.campaign)
        if campaign is None:
            known = ", ".join(sorted(campaign_ids(session)))
            print(f"unknown campaign {args.campaign!r}; known: {known or 'none'}", file=sys.stderr)
            engine.db.dispose()
            return 2
        session.expunge(campaign)
    return config, engine, campaign


def _cmd_findings_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sqlmodel import Session

    from handlers.findings import FindingsError, import_findings, read_sheet
    from models.lookback import normalize_origin
    from models.tables import PersonRow

    origin = normalize_origin(args.source)
    if origin is None:
        print(f"--source {args.source!r}: unknown source; use 自查, 县普查, 市抽查, 省督查, 督查, 审计 or 通报",
              file=sys.stderr)
        return 2
    try:
        sheet = read_sheet(Path(args.file))
    except (FindingsError, OSError) as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 1
    loaded = _lookback_engine(args)
    if isinstance(loaded, int):
        return loaded
    config, engine, campaign = loaded
    try:
        with Session(engine.db) as session:
            if args.by:
                reporter = session.get(PersonRow, args.by)
            else:  # the first admin of the config files what the county handed over
                admins = [p.id for p in config.people if "admin" in p.roles]
                reporter = session.get(PersonRow, admins[0]) if admins else None
            if reporter is None:
                print("who files the findings? give --by PERSON_ID (a person of the config)", file=sys.stderr)
                return 2
            campaign = session.merge(campaign)
            units = next((c.units for c in config.campaigns if c.id == campaign.id), [])
            report = import_findings(
                session, sheet, campaign=campaign, campaign_units=units or None, reporter=reporter,
                policy=engine.policy, now=engine.now(), default_origin=origin, dry_run=args.dry_run,
            )
            if args.dry_run:
                session.rollback()
            else:
                session.commit()
    finally:
        engine.db.dispose()
    if args.dry_run:
        print("dry run: nothing was written")
    print("\n".join(report.lines()))
    return 1 if report.refused else 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from sqlmodel import Session

    from handlers.lookback import archive_lines

    loaded = _lookback_engine(args)
    if isinstance(loaded, int):
        return loaded
    _config, engine, campaign = loaded
    try:
        with Session(engine.db) as session:
            lines = archive_lines(session, session.merge(campaign), scope=None, limit=None)
    finally:
        engine.db.dispose()
    print(f"档案检查：{campaign.name}")
    print("\n".join(lines))
    return 0


def _cmd_lookback_draw(args: argparse.Namespace) -> int:
    from sqlmodel import Session

    from handlers.directory import unit_names
    from models.lookback import draw_rechecks, rechecks

    loaded = _lookback_engine(args)
    if isinstance(loaded, int):
        return loaded
    _config, engine, campaign = loaded
    try:
        with Session(engine.db) as session:
            campaign = session.merge(campaign)
            if campaign.kind != "lookback":
                print(f"{campaign.id} is not a look-back campaign (kind = \"lookback\")", file=sys.stderr)
                return 2
            _items, drawn = draw_rechecks(session, campaign, now=engine.now())
            session.commit()
            rows = rechecks(session, campaign.id)
            names = unit_names(session, {item.unit_id for item, _ in rows})
            print(("drew" if drawn else "already drawn:") + f" {len(rows)} 复查 items from "
                  + ", ".join(campaign.looked_back))
            for item, hazard in rows:
                print(f"复查 #{item.number} {names.get(item.unit_id, item.unit_id)} {hazard.campaign_id} #{hazard.number} "
                      f"{hazard.level} {hazard.location} {hazard.problem} [{item.status_label}]")
    finally:
        engine.db.dispose()
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

    p = sub.add_parser("export", help="write an official form (ledger, buildings, statistics, checklist) as XLSX")
    p.add_argument("--config", default="config.example.toml")
    p.add_argument("--campaign", required=True, help="campaign id from the config")
    p.add_argument("--form", required=True, choices=("ledger", "buildings", "statistics", "checklist"),
                   help="ledger: 问题隐患自查整改清单; buildings: 排查情况汇总表; statistics: 销号统计表; "
                        "checklist: 项目清单")
    p.add_argument("--period", type=int, metavar="N",
                   help="statistics of the N-th 报送 period only (1 = the first), beside what each school submitted")
    p.add_argument("--out", required=True, help="the .xlsx file to write")
    p.add_argument("--unit", help="only this unit and the units under it (default: all)")
    p.set_defaults(func=_cmd_export)
    p = sub.add_parser("outbox", help="show outgoing messages: pending, sent, and failed with the reason")
    p.add_argument("--config", default="config.example.toml")
    p.add_argument("--state", choices=["pending", "sent", "failed", "expanded"])
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.add_argument("--requeue", type=int, action="append", metavar="ID",
                   help="put this failed message back to pending (repeatable); a sent one is never sent again")
    p.add_argument("--usage", action="store_true",
                   help="this month's API calls per platform and kind, the monthly budget and the share used")
    p.add_argument("--requeue-failed-since", metavar="TIME",
                   help="requeue every failed message last tried at or after this ISO time with offset")
    p.set_defaults(func=_cmd_outbox)

    p = sub.add_parser("plan", help="list every push (reminders, nudges, digests) the bot will make")
    p.add_argument("--config", default="config.example.toml")
    p.add_argument("--from", dest="from_", type=date.fromisoformat, help="first day, YYYY-MM-DD (default: today)")
    p.add_argument("--until", type=date.fromisoformat, help="last day, YYYY-MM-DD (default: 14 days after --from)")
    p.add_argument("--json", action="store_true", help="a JSON list of {at, kind, campaign, group, summary}")
    p.add_argument("--no-db", action="store_true",
                   help="plan from the config alone: the TOML's groups only; escalations and 督办 checks as daily slots, "
                        "not naming hazards")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("directory", help="units and people from the WeCom/DingTalk directory ([directory])")
    directory = p.add_subparsers(dest="directory_cmd", required=True)
    d = directory.add_parser("sync", help="fetch the platform directory now and print what changed")
    d.add_argument("--config", default="config.example.toml")
    d.add_argument("--dry-run", action="store_true", help="show what would change without writing it")
    d.add_argument("--now", help=NOW_HELP, default=argparse.SUPPRESS)  # also accepted before `sync`
    d.set_defaults(func=_cmd_directory_sync)
    d = directory.add_parser("import", help="units and people from the admin console's contacts export (.xlsx)")
    d.add_argument("file", help="the .xlsx exported from 通讯录 → 导出 (WeCom or DingTalk admin console)")
    d.add_argument("--platform", required=True, choices=("wecom", "dingtalk"), help="which console wrote the file")
    d.add_argument("--config", default="config.example.toml")
    d.add_argument("--dry-run", action="store_true", help="show what would change without writing it")
    d.add_argument("--now", help=NOW_HELP, default=argparse.SUPPRESS)
    d.set_defaults(func=_cmd_directory_import)

    p = sub.add_parser("groups", help="the chats the bot was @-mentioned in, bound to a group or not")
    p.add_argument("--config", default="config.example.toml")
    p.add_argument("--json", action="store_true")
    p.add_argument("--toml", action="store_true", help="[[groups]] entries to paste, chat ids filled in")
    p.set_defaults(func=_cmd_groups)

    p = sub.add_parser("findings", help="回头看: findings of earlier inspections in (import a spreadsheet)")
    findings = p.add_subparsers(dest="findings_cmd", required=True)
    f = findings.add_parser("import", help="file the rows of an XLSX/CSV (seed 003 附件2 ledger, seed 004 汇总表, or 来源/单位/部位/问题/发现日期/期限)")
    f.add_argument("file")
    f.add_argument("--config", default="config.example.toml")
    f.add_argument("--campaign", required=True, help="the (look-back) campaign that receives the findings")
    f.add_argument("--source", default="自查", help="source of rows that name none (default: 自查)")
    f.add_argument("--by", help="person id recorded as filing them (default: the config's first admin)")
    f.add_argument("--dry-run", action="store_true", help="show what would be filed without writing it")
    f.add_argument("--now", help=NOW_HELP, default=argparse.SUPPRESS)
    f.set_defaults(func=_cmd_findings_import)

    p = sub.add_parser("audit", help="回头看: closed hazards whose record is incomplete (档案检查)")
    p.add_argument("--config", default="config.example.toml")
    p.add_argument("--campaign", required=True)
    p.set_defaults(func=_cmd_audit)

    p = sub.add_parser("lookback", help="回头看: draw the 复查 sample of a look-back campaign")
    lookback = p.add_subparsers(dest="lookback_cmd", required=True)
    d = lookback.add_parser("draw", help="draw (once) and list the closed hazards to re-check")
    d.add_argument("--config", default="config.example.toml")
    d.add_argument("--campaign", required=True)
    d.add_argument("--now", help=NOW_HELP, default=argparse.SUPPRESS)
    d.set_defaults(func=_cmd_lookback_draw)

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
