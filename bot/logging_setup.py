"""Logging that never prints a secret: every configured credential value is masked."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from bot.config import Config
from bot.secrets import Secrets

# Query parameters and JSON fields that carry credentials in platform URLs and bodies
# (WeCom webhook keys and response codes, DingTalk access tokens, signs, sessions and tickets), and the
# directory's personal data in lookup URLs (WeCom user/get?userid=…).
_SECRET_QUERY = re.compile(
    r"(?i)(key|response_code|access_token|secret|token|sign|ticket|session|appsecret|clientsecret|signature"
    r"|security-token|userid|mobile)=([^&\s\"'#]+)"
)
_SECRET_JSON = re.compile(r'(?i)("(?:accessToken|access_token|appSecret|clientSecret|ticket)"\s*:\s*")([^"]*)(")')


def redact(text: str, *secrets: str | None) -> str:
    """Hide credential-looking URL parameters and JSON fields, plus the given secret values."""
    text = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}=***", text)
    text = _SECRET_JSON.sub(lambda m: f"{m.group(1)}***{m.group(3)}", text)
    # Longest first, so a secret containing another is masked whole.
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    """Masks credentials (and the given secret values) in every record it sees, tracebacks included."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = tuple(secrets)

    def redact(self, text: str) -> str:
        return redact(text, *self._secrets)

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
    if config.simulator.token_env:
        names.add(config.simulator.token_env)
    if config.directory is not None:
        names.update(config.directory.credentials.values())
    return [value for name in names if (value := secrets.get(name))]


def configure_logging(config: Config, secrets: Secrets, *, level: int = logging.INFO) -> RedactingFilter:
    """Log to stderr with secrets masked on every handler."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redactor = RedactingFilter(secret_values(config, secrets))
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)
    return redactor
