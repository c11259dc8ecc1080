"""The `safetybot` command line: serve, check-config, parse, migrate."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Sequence


def _cmd_check_config(args: argparse.Namespace) -> int:
    from bot.config import ConfigError, load_config

    try:
        config = load_config(args.path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{args.path}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return 1
    print(
        f"{args.path}: OK ({len(config.campaigns)} campaigns, {len(config.units)} units, "
        f"{len(config.people)} people, {len(config.groups)} groups)"
    )
    return 0


def _cmd_parse(args: argparse.Namespace) -> int:
    from handlers.parser import parse_message

    now = datetime.fromisoformat(args.now) if args.now else datetime.now().astimezone()
    if now.tzinfo is None:
        print("--now needs a UTC offset, e.g. 2023-12-05T10:00+08:00", file=sys.stderr)
        return 2
    command = parse_message(args.message, today=now.date())
    if args.json:
        print(json.dumps(command.to_json(), ensure_ascii=False))
    else:
        print(command)
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    from bot.config import ConfigError, load_config
    from models.db import make_engine, upgrade

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 1
    upgrade(make_engine(config.database.url))
    print("database schema is up to date")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bot.app import create_app
    from bot.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 1
    from bot.logging_setup import configure_logging
    from bot.secrets import Secrets

    secrets = Secrets()
    configure_logging(config, secrets)
    app = create_app(config, secrets=secrets)
    # uvicorn's access log would bypass our redacting handlers and print callback query strings.
    uvicorn.run(
        app, host=args.host or config.server.host, port=args.port or config.server.port,
        log_config=None, access_log=False,
    )
    return 0


def _cmd_outbox(args: argparse.Namespace) -> int:
    from bot.config import ConfigError, load_config
    from models import outbox as store
    from models.db import make_engine

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 1
    tz = config.tz
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
    p.set_defaults(func=_cmd_check_config)

    p = sub.add_parser("parse", help="parse one chat message and print what the bot understood")
    p.add_argument("message")
    p.add_argument("--now", help="ISO time with offset, e.g. 2023-12-05T10:00+08:00")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_parse)

    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    p.add_argument("--config", default="config.example.toml")
    p.set_defaults(func=_cmd_migrate)
    p = sub.add_parser("outbox", help="show outgoing messages: pending, sent, and failed with the reason")
    p.add_argument("--config", default="config.example.toml")
    p.add_argument("--state", choices=["pending", "sent", "failed"])
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_outbox)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
