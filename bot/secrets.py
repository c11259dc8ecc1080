"""Secrets by name: from the environment, or from a TOML file outside the repository.

The config only names environment variables (e.g. SAFETYBOT_WECOM_AES_KEY). A deployment can
instead point SAFETYBOT_SECRETS_FILE at a TOML file of `NAME = "value"` lines kept elsewhere.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path


class MissingSecret(LookupError):
    """A credential's environment variable is not set."""


class Secrets:
    """Looks up secrets by environment-variable name; never logs values."""

    def __init__(self, environ: Mapping[str, str] | None = None, file: str | Path | None = None) -> None:
        self._environ = environ if environ is not None else os.environ
        path = file or self._environ.get("SAFETYBOT_SECRETS_FILE")
        self._file: dict[str, str] = {}
        if path:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
            self._file = {str(k): str(v) for k, v in data.items() if not isinstance(v, dict)}

    def __getstate__(self) -> dict[str, dict[str, str]]:
        """A plain copy to hand to a handler process (os.environ itself does not pickle)."""
        return {"environ": dict(self._environ), "file": dict(self._file)}

    def __setstate__(self, state: dict[str, dict[str, str]]) -> None:
        self._environ = state["environ"]
        self._file = state["file"]

    def get(self, env_name: str) -> str | None:
        return self._environ.get(env_name) or self._file.get(env_name)

    def provide(self, env_name: str, value: str) -> None:
        """Stand in for an unset variable in this process and the handler processes it starts (a generated key)."""
        self._file[env_name] = value

    def require(self, env_name: str) -> str:
        value = self.get(env_name)
        if not value:
            raise MissingSecret(f"environment variable {env_name} is not set")
        return value

    def credential(self, credentials: Mapping[str, str], key: str) -> str | None:
        """The value of credential `key` of a group/bot, or None when not configured."""
        env_name = credentials.get(key)
        return self.get(env_name) if env_name else None
