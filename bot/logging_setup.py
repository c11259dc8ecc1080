"""Logging that never prints a secret: every configured credential value is masked."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from bot.config import Config
from bot.secrets import Secrets

# Query parameters that carry credentials in platform URLs (webhook keys, access tokens, signatures).
_SECRET_PARAMS = re.compile(r"(?i)\b(key|access_token|sign|secret|token|ticket)=([^&\s\"']+)")


class RedactingFilter(logging.Filter):
    """Replaces known secret values and credential-looking URL parameters with ***."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _SECRET_PARAMS.sub(lambda m: f"{m.group(1)}=***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def secret_values(config: Config, secrets: Secrets) -> list[str]:
    """Every secret value the config points at through environment-variable names."""
    names: set[str] = {config.server.link_secret_env}
    for group in config.groups:
        names.update(group.credentials.values())
    for bot in config.wecom.bots:
        names.update(bot.credentials.values())
    for robot in config.dingtalk.robots:
        names.update(robot.credentials.values())
    return [value for name in names if (value := secrets.get(name))]


def configure_logging(config: Config, secrets: Secrets, *, level: int = logging.INFO) -> RedactingFilter:
    """Log to stderr with secrets masked on every handler."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redactor = RedactingFilter(secret_values(config, secrets))
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)
    return redactor
