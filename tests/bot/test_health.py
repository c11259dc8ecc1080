"""/healthz tells a load balancer when photos cannot be written; the probe behind it is cheap and cached."""

from __future__ import annotations

from pathlib import Path

from bot.health import DataDirProbe
from tests.fakes.full_disk import FullDisk


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_probe_sees_a_full_disk_after_its_cache_expires_and_leaves_no_file(tmp_path: Path) -> None:
    ticks = Ticks()
    probe = DataDirProbe(tmp_path / "data", ttl=5.0, monotonic=ticks)
    assert probe.problem() is None
    with FullDisk(tmp_path / "data") as disk:
        ticks.now += 1
        assert probe.problem() is None and disk.refused == 0  # cached: no write within the ttl
        ticks.now += 5
        assert probe.problem() == "data_dir not writable (ENOSPC)" and disk.refused == 1
        disk.space_returns()
        ticks.now += 5
        assert probe.problem() is None
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == []
