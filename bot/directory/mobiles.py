"""Mobiles named in `[[directory.roles]]` that the member listing did not show, looked up one by one.

WeCom apps created after 2022-06-20 get no mobiles in `user/list` without the member's consent, yet
`user/getuserid` still maps a mobile to a userid (DingTalk: `topapi/v2/user/getbymobile`). Only the
TOML's role entries are looked up: WeCom blocks the lookup for a day when over 20% of them miss.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace

from models.directory import Member

_MOBILE = re.compile(r"^1[3-9]\d{9}$")


def is_mobile(who: str) -> bool:
    return bool(_MOBILE.match(who))


def role_mobiles(whos: Iterable[str]) -> list[str]:
    """The `who` values that are mobiles."""
    return [who.strip() for who in whos if is_mobile(who.strip())]


async def attach_mobiles(
    members: list[Member], mobiles: Iterable[str], user_id_of: Callable[[str], Awaitable[str | None]]
) -> list[Member]:
    """The members, with each looked-up mobile set on the member it belongs to."""
    shown = {m.mobile for m in members if m.mobile}
    index = {m.user_id: i for i, m in enumerate(members)}
    result = list(members)
    for mobile in dict.fromkeys(mobiles):
        if mobile in shown:
            continue
        user_id = await user_id_of(mobile)
        if user_id is not None and user_id in index:
            result[index[user_id]] = replace(result[index[user_id]], mobile=mobile)
    return result
