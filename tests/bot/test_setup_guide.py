"""docs/setup-county.md: its sample config for a 50-school county is valid and as short as the guide says."""

from __future__ import annotations

import re
from pathlib import Path

from bot.cli import main
from bot.config import load_config

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "setup-county.md"


def sample_toml() -> str:
    blocks = re.findall(r"```toml\n(.*?)```", GUIDE.read_text(encoding="utf-8"), flags=re.S)
    return blocks[0]


def test_the_county_sample_is_a_valid_config_of_50_schools_in_at_most_100_lines(tmp_path: Path) -> None:
    text = sample_toml()
    path = tmp_path / "county.toml"
    path.write_text(text, encoding="utf-8")

    config = load_config(path)

    schools = [unit for unit in config.units if unit.parent == "county"]
    assert len(schools) == 50 and len({unit.name for unit in schools}) == 50
    assert config.directory is not None and config.directory.schools == {}  # found by name
    lines = text.splitlines()
    assert len(lines) <= 100
    assert f"That is {len(lines)} lines" in GUIDE.read_text(encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
