"""The directory (campaigns, units, people, groups) cached per process, checked against `directory_version`.

Handling a report looks up the sender, the chat's group and campaign, the group's units, the unit tree and
people by name; from the database that was a dozen statements per message. A `DirectoryCache` loads the
tables once and answers from memory while the database's directory version (bumped by triggers on every
change, migration 0006) is the one it was loaded at; the handler reads that version in the statement that
claims its message, so a change committed by any process shows in the next message handled.

A session handling a message carries the cache in `session.info` (`attach`); the query functions of
models/ use it when present and the database otherwise. Cached rows are detached and shared: read them,
never change them (`into_session` gives a session's own copy without a query).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import TypeVar

from sqlalchemy import Engine, select as core_select
from sqlalchemy.sql.selectable import ScalarSelect
from sqlmodel import Session, SQLModel, col, select

from models.tables import CampaignRow, DirectoryVersion, GroupRow, GroupUnit, PersonRow, UnitRow

INFO_KEY = "safetybot.directory"
_Row = TypeVar("_Row", bound=SQLModel)


def version_column() -> ScalarSelect[int]:
    """The directory version as a scalar subquery, to read along with another statement."""
    return core_select(col(DirectoryVersion.version)).where(col(DirectoryVersion.id) == 1).scalar_subquery()


def read_version(session: Session) -> int:
    value = session.execute(core_select(version_column())).scalar()
    return int(value or 0)


@dataclass(slots=True)
class DirectorySnapshot:
    """The directory tables at one version, indexed for the lookups handling needs."""

    version: int
    units: dict[str, UnitRow]
    people: dict[str, PersonRow]
    groups: dict[str, GroupRow]
    campaigns: dict[str, CampaignRow]
    group_units: dict[str, frozenset[str]]
    children: dict[str, list[str]] = field(default_factory=dict)
    people_by_name: dict[str, list[PersonRow]] = field(default_factory=dict)
    people_by_platform: dict[tuple[str, str], PersonRow] = field(default_factory=dict)
    group_by_chat: dict[tuple[str, str], GroupRow] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, version: int) -> "DirectorySnapshot":
        # In the tables' own order, as the uncached queries (which have no ORDER BY) return them.
        units = {u.id: u for u in session.exec(select(UnitRow))}
        people = {p.id: p for p in session.exec(select(PersonRow))}
        groups = {g.id: g for g in session.exec(select(GroupRow))}
        campaigns = {c.id: c for c in session.exec(select(CampaignRow))}
        members: dict[str, set[str]] = {}
        for link in session.exec(select(GroupUnit)):
            members.setdefault(link.group_id, set()).add(link.unit_id)
        snapshot = cls(version, units, people, groups, campaigns, {g: frozenset(u) for g, u in members.items()})
        for unit in units.values():
            if unit.parent_id is not None:
                snapshot.children.setdefault(unit.parent_id, []).append(unit.id)
        for person in people.values():
            if not person.active:
                continue
            snapshot.people_by_name.setdefault(person.name, []).append(person)
            if person.wecom_userid:
                snapshot.people_by_platform.setdefault(("wecom", person.wecom_userid), person)
            if person.dingtalk_staff_id:
                snapshot.people_by_platform.setdefault(("dingtalk", person.dingtalk_staff_id), person)
            snapshot.people_by_platform.setdefault(("console", person.id), person)
        for group in groups.values():
            if group.chat_id:
                snapshot.group_by_chat.setdefault((group.platform, group.chat_id), group)
        return snapshot

    # -- lookups (the same answers as the database queries in models/queries_directory.py) ------------

    def subtrees(self, roots: Iterable[str]) -> dict[str, set[str]]:
        found = {root: {root} for root in roots}
        for root, tree in found.items():
            stack = list(self.children.get(root, ()))
            while stack:
                unit_id = stack.pop()
                if unit_id not in tree:
                    tree.add(unit_id)
                    stack.extend(self.children.get(unit_id, ()))
        return found

    def parent_chains(self, unit_ids: Iterable[str]) -> dict[str, list[str]]:
        chains: dict[str, list[str]] = {}
        for unit_id in set(unit_ids):
            chain = [unit_id]
            while (unit := self.units.get(chain[-1])) is not None and unit.parent_id is not None:
                if unit.parent_id in chain:  # bad data may loop
                    break
                chain.append(unit.parent_id)
            chains[unit_id] = chain
        return chains

    def running_campaign(self, today: date) -> CampaignRow | None:
        """The campaign running today (latest start), else the latest started; None before any."""
        started = sorted((c for c in self.campaigns.values() if c.start <= today), key=lambda c: c.start, reverse=True)
        running = [c for c in started if c.end >= today]
        return running[0] if running else (started[0] if started else None)


class DirectoryCache:
    """One process's directory snapshot, reloaded when the database's version moved (thread-safe)."""

    def __init__(self, db: Engine) -> None:
        self.db = db
        self._snapshot: DirectorySnapshot | None = None
        self._lock = threading.Lock()
        self.loads = 0  # how many times the tables were read (tests and benchmarks look)

    def invalidate(self) -> None:
        with self._lock:
            self._snapshot = None

    def at_least(self, version: int) -> DirectorySnapshot | None:
        """The cached snapshot when it is at `version` or newer (no query); None when it is older or absent."""
        snapshot = self._snapshot
        return snapshot if snapshot is not None and snapshot.version >= version else None

    def at(self, session: Session, version: int) -> DirectorySnapshot:
        """The snapshot for `version`, read in `session` (the caller's transaction) when not cached."""
        snapshot = self._snapshot
        if snapshot is not None and snapshot.version == version:
            return snapshot
        with self._lock:
            snapshot = self._snapshot
            if snapshot is None or snapshot.version != version:
                # Read after `version` was: the rows are at least that new (a later version reloads them again).
                snapshot = DirectorySnapshot.load(session, version)
                for row in (*snapshot.units.values(), *snapshot.people.values(), *snapshot.groups.values(),
                            *snapshot.campaigns.values()):
                    session.expunge(row)  # detached, loaded: shared read-only by every later session
                self._snapshot = snapshot
                self.loads += 1
            return snapshot


def attach(session: Session, snapshot: DirectorySnapshot) -> None:
    """Let the query functions answer from `snapshot` for the rest of this session."""
    session.info[INFO_KEY] = snapshot


def cached(session: Session) -> DirectorySnapshot | None:
    """The snapshot attached to this session, if any."""
    snapshot = session.info.get(INFO_KEY)
    return snapshot if isinstance(snapshot, DirectorySnapshot) else None


def into_session(session: Session, row: _Row) -> _Row:
    """The session's own copy of a cached row (in its identity map; no query)."""
    return session.merge(row, load=False)
