"""Group commit for callbacks: messages that arrive together are recorded in one INSERT and one commit.

Every callback must be durably recorded before it is acknowledged. One transaction per callback
spends most of its time in the round trip and the commit; under load, the callbacks waiting while
one batch commits go together in the next, so a commit is shared by many acknowledgements.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio

from bot.engine import Engine
from handlers.messages import Inbound
from models.db import is_busy

MAX_BATCH = 256


class Busy(Exception):
    """The database stayed locked past its busy timeout: nothing was recorded, the platform should retry.

    The web app answers it with 503 (see bot/app.py), so the platform sends the callback again.
    """


class BatchRecorder:
    """Records inbound messages for the event loop's callbacks, batching those that arrive together."""

    def __init__(self, engine: Engine, *, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._pending: list[tuple[Inbound, dict[str, Any], asyncio.Future[int | None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        # A thread of its own: handlers busy in the shared pool never delay a recording.
        self._thread = anyio.CapacityLimiter(1)

    async def record(self, msg: Inbound, route: dict[str, Any]) -> int | None:
        """The message's row id once it is committed, or None for a platform retry of a stored one."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._pending.append((msg, route, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            try:
                results = await anyio.to_thread.run_sync(
                    self.engine.record_many, [(msg, route) for msg, route, _ in batch], limiter=self._thread
                )
            except Exception as exc:  # the database is down (500) or busy (503): the platform retries either way
                error = _busy(exc) if is_busy(exc) else exc
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, _, future), recorded in zip(batch, results):
                if not future.done():  # the client may have hung up meanwhile
                    future.set_result(recorded.inbound_id)


def _busy(cause: BaseException) -> Busy:
    error = Busy("the database is busy: callback not recorded")
    error.__cause__ = cause
    return error
