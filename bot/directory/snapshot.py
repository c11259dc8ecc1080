"""The plain data a directory source hands to `apply_snapshot` (defined in models/, so the SQL can use it).

A source (a platform fetcher, a console-export import, …) builds `Snapshot(platform, departments,
members)` and calls `bot.directory.apply_snapshot(session, config, snapshot, now)`.
"""

from models.directory import Department, Member, Snapshot

__all__ = ["Department", "Member", "Snapshot"]
