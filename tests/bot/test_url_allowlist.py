"""Which URLs from a callback the bot may call: https on allowed hosts, or a configured API base's origin."""

from __future__ import annotations

import pytest

from bot.url_allowlist import UrlAllowList

URLS = UrlAllowList(["oapi.dingtalk.com", "*.myqcloud.com"], trusted_bases=["http://127.0.0.1:8123/"])


@pytest.mark.parametrize("url", [
    "https://oapi.dingtalk.com/robot/sendBySession?session=76da36b4",
    "https://OAPI.DingTalk.com./robot/sendBySession",  # hosts are case-insensitive; a trailing dot is the same host
    "https://oapi.dingtalk.com:443/robot/sendBySession",
    "https://ww-aibot-img-1258476243.cos.ap-guangzhou.myqcloud.com/BHoPdA3/757?sign=x",
    "http://127.0.0.1:8123/robot/sendBySession?session=s",  # the configured base's origin, http included
])
def test_allowed(url: str) -> None:
    assert URLS.allows(url)


@pytest.mark.parametrize("url", [
    None,
    "",
    "not a url",
    "//oapi.dingtalk.com/robot/sendBySession",  # no scheme
    "http://oapi.dingtalk.com/robot/sendBySession",  # not https
    "https://oapi.dingtalk.com:8443/robot/sendBySession",  # another port
    "https://api.dingtalk.com/v1.0/robot/groupMessages/send",  # not on this list
    "https://oapi.dingtalk.com.evil.example/",
    "https://evil-oapi.dingtalk.com/",
    "https://oapi.dingtalk.com@127.0.0.1/",  # userinfo: the host is 127.0.0.1
    "https://oapi.dingtalk.com\\@127.0.0.1/",
    "https://user:pass@oapi.dingtalk.com/",
    "https://myqcloud.com/",  # "*." means a subdomain, not the domain itself
    "https://evilmyqcloud.com/",
    "http://127.0.0.1:8124/",  # the trusted base's host, another port
    "https://127.0.0.1:8123/",  # ... or another scheme
    "http://169.254.169.254/latest/meta-data/",
    "file:///etc/passwd",
    "javascript:alert(1)",
])
def test_refused(url: str | None) -> None:
    assert not URLS.allows(url)
