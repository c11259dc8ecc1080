"""Handler processes: the web process verifies, records and acknowledges; these handle what was recorded.

Handling a report costs milliseconds of CPU. Inside the web process it would compete with the
acknowledgements for the interpreter lock, and a burst would keep the platform waiting for its 200
(WeCom retries after 5 s). A handler process runs at a lower CPU priority, so the web process
answers at once and handling catches up in the gaps.

The database stays the truth: a handed-off id is only a hint to look at that row now. The web
process keeps the ids it handed off until their process reports them done; when a handler process
dies, its ids go to the one started in its place, and if the whole server dies, recovery finds the
rows still marked "received".

The result pipe carries ("done", index, inbound id, replies enqueued?) for each message, and
("alert", index, hazard id) when a 重大 report committed its alert: the web process then wakes its
scheduler, so the leaders hear within seconds, not at the next minute's tick.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import MappingProxyType
from typing import Any

import anyio

from bot.config import Config
from bot.secrets import Secrets
from bot.services import build_services
from handlers.messages import AlertLeaders, Effect
from models.clock import Clock, SystemClock

log = logging.getLogger(__name__)

# Below the web process, which must answer callbacks at once; handling may wait a few hundred ms.
HANDLER_NICE = 10
# Messages handled at once inside one handler process (their database waits overlap; the CPU part is serial).
HANDLER_SLOTS = 4
RESTART_BACKOFF_SECONDS = 5.0
STOP = None  # sentinel on a handler's inbox


@dataclass
class _Slot:
    """One handler process, its inbox, and the ids handed to it and not yet reported done."""

    index: int
    inbox: Any = None  # multiprocessing.Queue[int | None], written by this process only
    # What the handler finished or asks for (see the module doc), one pipe per handler process, so a
    # handler killed mid-write cannot leave a lock held that its replacement would wait on forever.
    results: Connection | None = None
    process: BaseProcess | None = None
    outstanding: set[int] = field(default_factory=set)
    started_at: float = 0.0
    reloading: bool = False  # stopped on purpose to start again with a reloaded config


class HandlerPool:
    """Starts, feeds and restarts the handler processes of one web process (a `HandOff`)."""

    def __init__(
        self,
        config: Config,
        *,
        processes: int,
        on_replies: Callable[[], None],
        clock: Clock | None = None,
        secrets: Secrets | None = None,
        on_alert: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.on_alert = on_alert  # a handler committed a 重大 alert: make the scheduler tick now
        self.clock = clock or SystemClock(config.tz)  # handlers read the web process's clock (e.g. `serve --now`)
        # Handed to each handler process, so it signs photo links (and calls platforms) with the web process's keys.
        self.secrets = secrets if secrets is not None else Secrets()
        self.on_replies = on_replies
        self._context = multiprocessing.get_context("spawn")  # no forked copy of the web server's threads
        self._stopping = False
        self._slots = [_Slot(index) for index in range(processes)]
        self._next = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: threading.Thread | None = None

    # -- HandOff ------------------------------------------------------------------------------

    def submit(self, inbound_id: int) -> None:
        """Hand a recorded message to the next handler process (round robin)."""
        slot = self._slots[self._next % len(self._slots)]
        self._next += 1
        slot.outstanding.add(inbound_id)
        slot.inbox.put(inbound_id)  # never blocks: a feeder thread writes to the pipe

    def pending(self) -> set[int]:
        """Ids handed off and not reported done (recovery leaves them to their handler)."""
        return set().union(*(slot.outstanding for slot in self._slots))

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start every handler process and the thread that hears what they finished."""
        self._loop = asyncio.get_running_loop()
        for slot in self._slots:
            self._spawn(slot)
        self._reader = threading.Thread(target=self._read_done, name="handler-results", daemon=True)
        self._reader.start()

    async def supervise(self) -> None:
        """App service: replace a handler process that died, handing it the dead one's messages."""
        while True:
            await anyio.sleep(1.0)
            for slot in self._slots:
                process = slot.process
                if process is None or process.is_alive():
                    continue
                if time.monotonic() - slot.started_at < RESTART_BACKOFF_SECONDS:
                    continue
                level = logging.INFO if slot.reloading else logging.ERROR
                log.log(level, "handler process %d exited (code %s%s); starting another with its %d messages",
                        slot.index, process.exitcode, ", config reloaded" if slot.reloading else "",
                        len(slot.outstanding))
                slot.reloading = False
                self._spawn(slot)
                for inbound_id in sorted(slot.outstanding):
                    slot.inbox.put(inbound_id)

    def use_config(self, config: Config) -> None:
        """Restart each handler process with a reloaded config: it finishes what it holds, then `supervise`
        starts its successor at once with the new config and the messages still outstanding."""
        self.config = config
        for slot in self._slots:
            if slot.process is not None and slot.process.is_alive():
                slot.reloading = True
                slot.started_at = 0.0  # no restart back-off for a planned restart
                slot.inbox.put(STOP)

    def stop(self, timeout: float = 10.0) -> None:
        """Let each handler finish what it holds, then end it (terminate after `timeout`)."""
        for slot in self._slots:
            if slot.process is not None and slot.process.is_alive():
                slot.inbox.put(STOP)
        deadline = time.monotonic() + timeout
        for slot in self._slots:
            if slot.process is None:
                continue
            slot.process.join(max(0.1, deadline - time.monotonic()))
            if slot.process.is_alive():
                slot.process.terminate()
                slot.process.join(5)
        self._stopping = True
        if self._reader is not None:
            self._reader.join(5)

    def _spawn(self, slot: _Slot) -> None:
        slot.inbox = self._context.Queue()
        results, child_end = self._context.Pipe(duplex=False)
        slot.process = self._context.Process(
            target=run_handler_process,
            args=(self.config, slot.index, slot.inbox, child_end, os.getpid(), self.clock, self.secrets),
            name=f"safetybot-handler-{slot.index}",
            daemon=True,
        )
        slot.started_at = time.monotonic()
        slot.process.start()
        child_end.close()  # the handler holds the only writing end: its exit reads as end-of-file here
        slot.results = results

    def _read_done(self) -> None:
        ended: set[Connection] = set()
        while not self._stopping:
            live = [slot.results for slot in self._slots if slot.results is not None and slot.results not in ended]
            for connection in wait(live, timeout=0.5):
                assert isinstance(connection, Connection)
                try:
                    item = connection.recv()
                except (EOFError, OSError):  # that handler exited; its replacement brings a new pipe
                    ended.add(connection)
                    connection.close()
                    continue
                assert self._loop is not None
                try:
                    self._loop.call_soon_threadsafe(self._heard, item)
                except RuntimeError:  # the event loop is closed: the server is shutting down
                    return

    def _heard(self, item: tuple[Any, ...]) -> None:
        kind, *rest = item
        if kind == "done":
            self._finished(*rest)
        elif kind == "alert" and self.on_alert is not None:
            self.on_alert()

    def _finished(self, index: int, inbound_id: int, replied: bool) -> None:
        self._slots[index].outstanding.discard(inbound_id)
        if replied:
            self.on_replies()


# -- inside a handler process --------------------------------------------------------------------


def run_handler_process(
    config: Config,
    index: int,
    inbox: Any,
    done: Connection,
    parent_pid: int,
    clock: Clock | None = None,
    secrets: Secrets | None = None,
) -> None:
    """Entry point of a handler process: the same runtime as the web process, minus the web server.

    `secrets` are the web process's (else read again from the environment and SAFETYBOT_SECRETS_FILE).
    """
    from bot.logging_setup import configure_logging

    try:
        os.nice(HANDLER_NICE)
    except OSError:
        pass
    secrets = secrets if secrets is not None else Secrets()
    configure_logging(config, secrets)
    results = _Results(done)
    # No engine.start(): the web process migrated and synced.
    services = build_services(config, secrets, clock, notify=lambda effect: results.effect(index, effect))
    # Handling never calls a platform: the web process downloaded the photos before handing a message over
    # (recovery, which downloads those it never did, runs in the web process).
    runtime = replace(services.runtime, fetchers=MappingProxyType({}))
    gc.collect()
    gc.freeze()  # as in the web process: long-lived objects stay out of full collections
    log.info("handler process %d started (pid %d)", index, os.getpid())
    _handle_forever(runtime, index, inbox, results, parent_pid)


class _Results:
    """The handler's end of the result pipe; sends come from the event loop and from worker threads."""

    def __init__(self, done: Connection) -> None:
        self._done = done
        self._lock = threading.Lock()

    def finished(self, index: int, inbound_id: int, replied: bool) -> None:
        self._send(("done", index, inbound_id, replied))

    def effect(self, index: int, effect: Effect) -> None:
        if isinstance(effect, AlertLeaders):
            self._send(("alert", index, effect.hazard_id))

    def _send(self, item: tuple[Any, ...]) -> None:
        with self._lock:
            self._done.send(item)


def _next_ids(inbox: Any, parent_pid: int) -> tuple[list[int], bool]:
    """The ids waiting in the inbox (waits up to 1 s for the first), and whether to stop after them."""
    try:
        first = inbox.get(timeout=1.0)
    except queue.Empty:
        # An orphan (the web process was killed) stops: recovery in the next server handles the rest.
        return [], os.getppid() != parent_pid
    items = [first]
    while len(items) < 1000:
        try:
            items.append(inbox.get_nowait())
        except queue.Empty:
            break
    return [item for item in items if item is not STOP], STOP in items


def _handle_forever(runtime: Any, index: int, inbox: Any, results: _Results, parent_pid: int) -> None:
    """Hand each id from the inbox to one of HANDLER_SLOTS worker threads until STOP (or the web process is gone).

    Plain threads, no event loop: handling is synchronous (`Engine.work`) and calls no platform, so an event
    loop would only add a task, a limiter and a thread handoff per message (~20 % of this process's CPU).
    Replies need no kick here: the web process's sender hears of them through the result pipe.
    """
    work: queue.SimpleQueue[int | None] = queue.SimpleQueue()

    def handle_each() -> None:
        while (inbound_id := work.get()) is not None:
            replied = False
            try:
                replied = bool(runtime.engine.work(inbound_id))
            except Exception:  # e.g. the database is away: the row stays "received" for recovery
                log.exception("handler process %d: inbound message %s failed", index, inbound_id)
            finally:
                results.finished(index, inbound_id, replied)

    workers = [
        threading.Thread(target=handle_each, name=f"handler-{index}-{slot}", daemon=True)
        for slot in range(HANDLER_SLOTS)
    ]
    for worker in workers:
        worker.start()
    try:
        stop = False
        while not stop:
            ids, stop = _next_ids(inbox, parent_pid)
            for inbound_id in ids:
                work.put(inbound_id)
    finally:
        for _ in workers:
            work.put(None)  # each worker finishes what it holds, then stops
        for worker in workers:
            worker.join()
        asyncio.run(runtime.http.aclose())
