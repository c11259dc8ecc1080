"""Which URLs taken from a platform callback the bot may call.

A callback body can carry URLs the bot is meant to call back (DingTalk's `sessionWebhook`, WeCom's
`response_url` and photo URLs). Whoever can get a body accepted could point them anywhere, e.g. at an
internal admin page, so the bot calls only:
- https URLs (default port) whose host is on the platform's allow-list: an exact host such as
  `oapi.dingtalk.com`, or `*.example.com` for any subdomain of example.com;
- URLs on the origin (scheme, host, port) of a configured API base, which the bot calls anyway
  (this is also how tests reach their fake platform on 127.0.0.1).
"""

from __future__ import annotations

from collections.abc import Iterable

import httpx


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port with the scheme's default filled in), or None for an unusable URL.

    Parsed by httpx, the client that would send the request, so the check and the request cannot
    disagree about which host a tricky URL (`https://a.com@b.com/`, `https://a.com\\@b.com/`) names.
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    scheme, host = parsed.scheme, parsed.host.lower().rstrip(".")
    if scheme not in ("http", "https") or not host or parsed.userinfo:
        return None
    return scheme, host, parsed.port if parsed.port is not None else (443 if scheme == "https" else 80)


def _host_matches(host: str, pattern: str) -> bool:
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])  # "*.qq.com" matches "a.qq.com", not "qq.com" or "evilqq.com"
    return host == pattern


class UrlAllowList:
    """`allows(url)`: https on an allowed host, or the origin of a trusted API base."""

    def __init__(self, hosts: Iterable[str], trusted_bases: Iterable[str] = ()) -> None:
        self.hosts = tuple(h.strip() for h in hosts if h.strip())
        self.trusted = {origin for origin in map(_origin, trusted_bases) if origin is not None}

    def allows(self, url: str | None) -> bool:
        """True when the bot may send a request to this URL."""
        origin = _origin(url or "")
        if origin is None:
            return False
        if origin in self.trusted:
            return True
        scheme, host, port = origin
        return scheme == "https" and port == 443 and any(_host_matches(host, p) for p in self.hosts)
