"""A disk that is full under one directory: writes into files there fail with ENOSPC, as the kernel says.

The outside world's edge for files is the `os.write` system call; everything of ours above it runs
for real (temporary files are created, then the write fails). Creating files still works, as it
usually does on a full disk whose directories already have room for another entry. Linux only
(it tells which file a descriptor is from /proc/self/fd).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from types import TracebackType


class FullDisk:
    """While entered and `full`, `os.write` into a file under `directory` raises OSError(ENOSPC)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.full = True
        self.refused = 0  # writes refused so far
        self._real_write = os.write

    def space_returns(self) -> None:
        self.full = False

    def _inside(self, fd: int) -> bool:
        try:
            target = Path(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return False
        return target.is_relative_to(self.directory)

    def _write(self, fd: int, data: bytes, /) -> int:
        if self.full and self._inside(fd):
            self.refused += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._real_write(fd, data)

    def __enter__(self) -> "FullDisk":
        os.write = self._write  # type: ignore[assignment]
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        os.write = self._real_write
