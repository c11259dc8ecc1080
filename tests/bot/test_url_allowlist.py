"""Which URLs from a callback the bot may call: https on allowed hosts, or a configured API base's origin."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_config
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


@pytest.mark.parametrize("host", ["https://oapi.dingtalk.com/", "oapi.dingtalk.com:443", "*.com", "localhost", "a b.com"])
def test_config_refuses_what_is_not_a_host(config_path: Path, host: str) -> None:
    config_path.write_text(config_path.read_text(encoding="utf-8") + f'\n[dingtalk]\ncallback_url_hosts = ["{host}"]\n',
                           encoding="utf-8")
    with pytest.raises(ConfigError, match=r"dingtalk\.callback_url_hosts\[0\]: not a host name"):
        load_config(config_path)


def test_config_defaults_are_the_platforms_hosts(config_path: Path) -> None:
    config = load_config(config_path)
    assert config.dingtalk.callback_url_hosts == ["oapi.dingtalk.com", "api.dingtalk.com"]
    assert config.dingtalk.callback_window_seconds == 300
    assert "qyapi.weixin.qq.com" in config.wecom.callback_url_hosts
