"""Whether this server can do its work: for now, whether its data dir takes writes (photos, exports)."""

from __future__ import annotations

import errno
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path


class DataDirProbe:
    """Writes, syncs and removes a tiny file in the data dir, at most once per `ttl` seconds (cached between)."""

    def __init__(self, data_dir: Path, *, ttl: float = 5.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.data_dir = data_dir
        self.ttl = ttl
        self._monotonic = monotonic
        self._lock = threading.Lock()  # one probe at a time, however many health checks come in
        self._checked_at: float | None = None
        self._problem: str | None = None

    def problem(self) -> str | None:
        """None when the data dir takes writes, else why not (e.g. "data_dir not writable (ENOSPC)")."""
        with self._lock:
            now = self._monotonic()
            if self._checked_at is None or now - self._checked_at >= self.ttl:
                self._problem = self._probe()
                self._checked_at = now
            return self._problem

    def _probe(self) -> str | None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            handle, path = tempfile.mkstemp(dir=self.data_dir, prefix=".healthz.", suffix=".tmp")
            try:
                os.write(handle, b"ok")
                os.fsync(handle)
            finally:
                os.close(handle)
                Path(path).unlink(missing_ok=True)
        except OSError as exc:
            return f"data_dir not writable ({errno.errorcode.get(exc.errno or 0, 'OSError')})"
        return None
