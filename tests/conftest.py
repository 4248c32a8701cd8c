"""Shared fixtures. Tests that need ../shared/data skip with a reason when it is absent."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory) -> Path:
    """The notes of models that have run in a child process go to a fresh folder, not
    the user's ~/.cache (the variable reaches the CLI's subprocesses too)."""
    import os
    folder = tmp_path_factory.mktemp("xdg_cache")
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    yield folder
    if previous is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = previous


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


@pytest.fixture(scope="session")
def written_catalogue(tmp_path_factory) -> Path:
    """A catalogue of the written-out tunes (no ../shared needed), rendered with FluidSynth
    and built by `hum-search index build` with the shipped model; titles upper-cased."""
    import csv
    import subprocess
    import sys

    import soundfile

    from device.frontend import FrontendConfig
    from training import corpora
    from training.render import Renderer, find_soundfonts
    rate = FrontendConfig().sample_rate_hz
    audio_dir = tmp_path_factory.mktemp("written_audio")
    songs = corpora.written_tunes()
    with Renderer(find_soundfonts()[0], rate) as renderer:
        for song in songs:
            soundfile.write(audio_dir / f"{song.song_id}.flac", renderer.render(song, seed=3), rate)
    with open(audio_dir / "meta.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["song_id", "title", "artist"])
        writer.writerows([[s.song_id, s.title.upper(), "Trad."] for s in songs])
    out = tmp_path_factory.mktemp("catalogues") / "written"
    result = subprocess.run([sys.executable, "-m", "device.cli", "index", "build", str(audio_dir), "--out",
                             str(out), "--metadata", str(audio_dir / "meta.csv")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return out


def tone(path: Path, midi: list[float], seconds_each: float = 1.5) -> Path:
    """A few sung-like notes (three harmonics each) at the frontend's rate: enough melody to
    index, no renderer needed."""
    import numpy as np
    import soundfile

    from device.frontend import FrontendConfig
    rate = FrontendConfig().sample_rate_hz
    t = np.arange(int(rate * seconds_each)) / rate
    notes = [sum(0.2 / k * np.sin(2 * np.pi * k * 440 * 2 ** ((m - 69) / 12) * t) for k in (1, 2, 3))
             for m in midi]
    soundfile.write(path, np.concatenate(notes).astype(np.float32), rate)
    return path


@pytest.fixture(scope="session")
def tone_songs(tmp_path_factory) -> Path:
    """A folder of two recordings of 16 notes each (24 s: enough shortlist windows for an
    Annoy index with splits and item lists)."""
    folder = tmp_path_factory.mktemp("tone_songs")
    tone(folder / "rising.wav", [60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60, 65, 69, 72, 74, 76])
    tone(folder / "falling.wav", [72, 71, 69, 67, 65, 64, 62, 60, 64, 67, 71, 69, 65, 62, 59, 57])
    return folder


@pytest.fixture(scope="session")
def tone_catalogue(tone_songs, tmp_path_factory) -> Path:
    """A catalogue of `tone_songs` built with the shipped model (read it, never change it)."""
    from device import indexing
    from device.assets import default_model_dir
    out = tmp_path_factory.mktemp("tone_catalogue") / "cat"
    indexing.build(tone_songs, out, default_model_dir(), log=lambda line: None)
    return out
