"""Secrets never appear in logs."""

from __future__ import annotations

import logging

import pytest

from bot.logging_setup import RedactingFilter, secret_values
from bot.secrets import Secrets
from tests.school import make_config


def test_configured_secret_values_and_url_credentials_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    config = make_config(
        groups=[
            {
                "id": "w", "name": "企业微信群", "platform": "wecom", "units": ["school"], "chat_id": "wrX",
                "credentials": {"webhook_key": "T_WECOM_KEY"},
            }
        ]
    )
    secrets = Secrets(environ={"T_WECOM_KEY": "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"})
    redactor = RedactingFilter(secret_values(config, secrets))
    logger = logging.getLogger("test.redact")
    logger.addFilter(redactor)
    with caplog.at_level(logging.INFO, logger="test.redact"):
        logger.info("POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=%s failed", "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa")
        logger.info("token refresh: access_token=abcdef123456&expires=7200")
        try:
            raise RuntimeError("bad key 693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa")
        except RuntimeError:
            logger.exception("send crashed")
    text = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    assert "693a91f6" not in text and "abcdef123456" not in text
    assert "key=***" in text and "access_token=***" in text


def test_secrets_file_outside_the_repo(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "secrets.toml"
    path.write_text('SAFETYBOT_WECOM_AES_KEY = "abc"\n', encoding="utf-8")
    secrets = Secrets(environ={"SAFETYBOT_SECRETS_FILE": str(path)})
    assert secrets.get("SAFETYBOT_WECOM_AES_KEY") == "abc"
    assert Secrets(environ={"X": "from-env"}, file=path).get("X") == "from-env"
