"""The platform directory: WeCom/DingTalk departments and members become units and people.

`snapshot` holds the plain data, `apply` the one place it becomes rows, `wecom`/`dingtalk` the
fetchers, `service` a whole sync and the periodic job of `serve`.
"""

from bot.directory.apply import SyncReport, apply_snapshot
from bot.directory.snapshot import Department, Member, Snapshot

__all__ = ["Department", "Member", "Snapshot", "SyncReport", "apply_snapshot"]
