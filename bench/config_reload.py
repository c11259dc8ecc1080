"""Config reload: how long `safetybot serve` takes to validate, sync and swap in a changed config.

A county of 50 schools: the example config plus 48 more schools, each with 5 departments, 40 people,
a staff group and 8 buildings (296 units, 1,928 people, 51 groups). Each reload renames one unit, so the
sync writes. Timed: the whole reload as the running server does it (`ConfigReloader.reload`: read,
validate, sync to the database, swap into engine/runtime/scheduler/sender/adapters), and its parts.
The example config alone is timed too. SQLite in a temporary file; PostgreSQL in a throw-away schema
when given.
Run: python bench/config_reload.py [--schools 50] [--runs 5] [--postgres postgresql+psycopg://root@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402
from sqlmodel import Session  # noqa: E402

from bot.app import build_engine, create_app  # noqa: E402
from bot.config import load_config  # noqa: E402
from bot.sync import sync_config  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"
DEPARTMENTS = ("安全保卫处", "总务处", "教务处", "学生处", "食堂")
PEOPLE_PER_SCHOOL = 40
BUILDINGS_PER_SCHOOL = 8


def county_toml(schools: int, db_url: str, data_dir: str) -> str:
    """The example config with its database moved and `schools - 2` more schools appended."""
    base = EXAMPLE.read_text(encoding="utf-8")
    base = base.replace('url = "sqlite:///data/safetybot.db"', f'url = "{db_url}"', 1)
    base = base.replace('data_dir = "data"', f'data_dir = "{data_dir}"', 1)
    parts = [base]
    for n in range(3, schools + 1):
        school = f"s{n:03d}"
        parts.append(f'[[units]]\nid = "{school}"\nname = "第{n}中学"\nparent = "bureau"\n')
        for d, department in enumerate(DEPARTMENTS):
            parts.append(f'[[units]]\nid = "{school}-d{d}"\nname = "{department}"\nparent = "{school}"\n')
        for p in range(PEOPLE_PER_SCHOOL):
            role = "unit_head" if p < len(DEPARTMENTS) else "teacher"
            parts.append(
                f'[[people]]\nid = "{school}-p{p:02d}"\nname = "教师{n}-{p}"\nunit = "{school}-d{p % len(DEPARTMENTS)}"\n'
                f'roles = ["{role}"]\nwecom_userid = "W{school}P{p:02d}"\n'
            )
        parts.append(
            f'[[groups]]\nid = "{school}-staff"\nname = "第{n}中学安全工作群"\nplatform = "console"\n'
            f'units = ["{school}"]\ncampaign = "winter-2026"\n'
        )
        for b in range(BUILDINGS_PER_SCHOOL):
            parts.append(f'[[buildings]]\nid = "{school}-b{b}"\nname = "{b + 1}号楼"\nunit = "{school}"\n')
    return "\n".join(parts)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def bench(label: str, config_text: str, path: Path, runs: int) -> None:
    path.write_text(config_text, encoding="utf-8")
    config = load_config(path)
    engine = build_engine(config)
    app = create_app(config, engine, config_path=path)  # migrates and syncs, as `serve` does
    reloader = app.state.reloader
    load, sync, whole = [], [], []
    try:
        for run in range(runs):
            name = f"安全保卫处{run % 2}"  # a renamed unit, so every reload writes
            text_now = config_text.replace('name = "安全保卫处"', f'name = "{name}"', 1)
            path.write_text(text_now, encoding="utf-8")
            started = time.perf_counter()
            new = load_config(path)
            load.append(time.perf_counter() - started)
            started = time.perf_counter()
            with Session(engine.db) as session:
                sync_config(session, new)
            sync.append(time.perf_counter() - started)
            path.write_text(text_now.replace(name, name + "x", 1), encoding="utf-8")
            started = time.perf_counter()
            assert reloader.reload("bench")
            whole.append(time.perf_counter() - started)
    finally:
        engine.db.dispose()
    print(
        f"{label}: {len(config.units)} units, {len(config.people)} people, {len(config.groups)} groups — "
        f"reload median {_ms(statistics.median(whole))} (min {_ms(min(whole))}, max {_ms(max(whole))}); "
        f"of which read+validate {_ms(statistics.median(load))}, sync {_ms(statistics.median(sync))}"
    )


def _postgres_schema(url: str) -> tuple[str, callable]:  # type: ignore[valid-type]
    """A URL into a fresh schema, and the function that drops it."""
    from sqlalchemy import create_engine

    schema = f"bench_reload_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in url else "?"

    def drop() -> None:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return f"{url}{separator}options=-csearch_path%3D{schema}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schools", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres", help="also time PostgreSQL (a throw-away schema at this URL)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sqlite = f"sqlite:///{root / 'bench.db'}"
        bench("example, SQLite", county_toml(2, sqlite, str(root / "data")), root / "example.toml", args.runs)
        sqlite = f"sqlite:///{root / 'county.db'}"
        bench(f"{args.schools} schools, SQLite", county_toml(args.schools, sqlite, str(root / "data")),
              root / "county.toml", args.runs)
        if args.postgres:
            url, drop = _postgres_schema(args.postgres)
            try:
                bench(f"{args.schools} schools, PostgreSQL", county_toml(args.schools, url, str(root / "data")),
                      root / "county-pg.toml", args.runs)
            finally:
                drop()


if __name__ == "__main__":
    main()
