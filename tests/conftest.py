"""Shared fixtures. Tests that need ../shared/data skip with a reason when it is absent."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only data folder beside the repository (absent in a user's fresh clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data not found: {SHARED_DATA} (only the development machines have it)")
    return SHARED_DATA


@pytest.fixture
def pop909_song_001_root(shared_data: Path, tmp_path: Path) -> Path:
    """A POP909 folder holding only song 001 (its MIDI and its songs.csv row)."""
    source = shared_data / "pop909"
    with open(source / "songs.csv", encoding="utf-8-sig") as f:
        header, *rows = f.read().splitlines()
    (tmp_path / "songs.csv").write_text(
        "\n".join([header] + [row for row in rows if row.startswith("001,")]), encoding="utf-8")
    shutil.copy(source / "001.mid", tmp_path / "001.mid")
    return tmp_path
