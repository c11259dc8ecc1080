"""Shared fixtures: a private copy of the example config that keeps its database and files in tmp."""

from __future__ import annotations

import json
import os
import re
import struct
import tomllib
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from models.clock import SystemClock
from models.db import make_engine

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CONFIG = REPO_ROOT / "config.example.toml"

# Inside the example config's winter-2026 campaign (2026-11-16 … 2027-05-10): apps and `serve` subprocesses built
# on the example config start their clock here, so "期限：明天" stays within the campaign whatever the wall clock says.
CAMPAIGN_NOW = "2026-12-07T10:00+08:00"


def campaign_clock() -> SystemClock:
    """A running clock that starts at CAMPAIGN_NOW (timeouts and backoff still move at the wall clock's pace)."""
    return SystemClock.starting_at(datetime.fromisoformat(CAMPAIGN_NOW))


@dataclass(frozen=True)
class PostgresSchema:
    """A throw-away schema on the test server: `base` is TEST_DATABASE_URL, `url` the same server using the schema."""

    base: str
    name: str

    @property
    def url(self) -> str:
        return f"{self.base}{'&' if '?' in self.base else '?'}options=-csearch_path%3D{self.name}"


@contextmanager
def fresh_postgres_schema(prefix: str = "t") -> Iterator[PostgresSchema]:
    """A fresh PostgreSQL schema, dropped with all it holds afterwards; skips the test without TEST_DATABASE_URL."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set (PostgreSQL tests need a server; CI sets it)")
    schema = PostgresSchema(base, f"{prefix}_{uuid.uuid4().hex[:12]}")
    admin = make_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema.name}"'))
    try:
        yield schema
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema.name}" CASCADE'))
        admin.dispose()


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]#]+?)\s*\]\]?\s*(#.*)?$")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {_toml_value(item)}" for key, item in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot re-emit {value!r} as TOML")


def with_local_storage(
    text: str, *, db_url: str, data_dir: str, scheduler: bool = False, handler_processes: int = 0
) -> str:
    """Return the TOML text with `[database] url` and `[server] data_dir` replaced, all else unchanged.

    The campaign clock is switched off unless asked for: it runs on the real clock, and a test's
    group must not receive a reminder that happens to fall due while the test runs. Messages are
    handled inside the app unless handler processes are asked for (a test's engine may carry a test clock).
    """
    original = tomllib.loads(text)
    tables = {
        "database": {**original.get("database", {}), "url": db_url},
        "server": {**original.get("server", {}), "data_dir": data_dir, "handler_processes": handler_processes},
        "scheduler": {**original.get("scheduler", {}), "enabled": scheduler},
    }
    # Drop the two tables where they stand and append fresh ones: appending is the only place a
    # table can go without swallowing top-level keys or another table's keys.
    kept: list[str] = []
    skipping = False
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            skipping = header.group(1) == "[" and header.group(2) in tables
        if not skipping:
            kept.append(line)
    for name, values in tables.items():
        kept += ["", f"[{name}]", *(f"{key} = {_toml_value(value)}" for key, value in values.items())]
    result = "\n".join(kept) + "\n"
    assert tomllib.loads(result) == {**original, **tables}, "config rewrite changed more than the keys asked for"
    return result


@pytest.fixture
def tiny_png() -> bytes:
    """A valid 1×1 PNG, built by hand so tests need no imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xe0\x40\x30")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """A copy of config.example.toml whose database and data dir live under tmp_path."""
    path = tmp_path / "config.toml"
    path.write_text(
        with_local_storage(
            EXAMPLE_CONFIG.read_text(encoding="utf-8"),
            db_url=f"sqlite:///{tmp_path / 'safetybot.db'}",
            data_dir=str(tmp_path / "data"),
        ),
        encoding="utf-8",
    )
    return path

