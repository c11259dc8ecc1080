"""Calling a platform's directory API politely: few calls in flight, a rate cap, every call counted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskGroup
import httpx
from aiolimiter import AsyncLimiter


class DirectoryError(Exception):
    """The directory could not be fetched; the one in the database stays as it is."""

    def __init__(self, platform: str, code: int | str, detail: str) -> None:
        super().__init__(f"{platform} directory: {detail} (code {code})")
        self.platform, self.code, self.detail = platform, code, detail


class DirectoryRefused(DirectoryError):
    """The platform refused for want of a permission; `detail` says which one to grant."""


class ApiCaller:
    """Sends the fetchers' requests under a concurrency limit and a calls-per-second cap, counting them."""

    def __init__(self, http: httpx.AsyncClient, *, max_concurrency: int = 4, calls_per_second: float = 20.0) -> None:
        self.http = http
        self.calls = 0
        self._in_flight = anyio.CapacityLimiter(max_concurrency)
        # A bucket of about one second's calls, so a burst never exceeds the per-second cap.
        self._rate = AsyncLimiter(max(1.0, calls_per_second), 1.0)

    async def json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """The JSON body of one call; HTTP or transport failures become DirectoryError."""
        async with self._in_flight:
            await self._rate.acquire()
            self.calls += 1
            try:
                response = await self.http.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                raise DirectoryError("http", type(exc).__name__, f"{method} {_path(url)} failed") from None
        try:
            body = response.json()
        except ValueError:
            raise DirectoryError("http", response.status_code, f"{_path(url)} answered no JSON") from None
        if not isinstance(body, dict):
            raise DirectoryError("http", response.status_code, f"{_path(url)} answered no JSON object")
        return body


@asynccontextmanager
async def calls_together() -> AsyncIterator[TaskGroup]:
    """A task group for concurrent calls whose failure surfaces as the first DirectoryError, not a group."""
    try:
        async with anyio.create_task_group() as tasks:
            yield tasks
    except BaseExceptionGroup as group:
        first = _first_directory_error(group)
        if first is None:
            raise
        raise first from None


def _first_directory_error(group: BaseExceptionGroup[Any]) -> DirectoryError | None:
    for exc in group.exceptions:
        found = _first_directory_error(exc) if isinstance(exc, BaseExceptionGroup) else exc
        if isinstance(found, DirectoryError):
            return found
    return None


def _path(url: str) -> str:
    """The URL without its query (which carries the access token)."""
    return httpx.URL(url).path
