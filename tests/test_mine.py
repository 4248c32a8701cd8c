"""Version mining: versions scale exactly, the line fit finds a planted line, and the
shipped model aligns a re-arranged, re-keyed, faster tune without being told the tempo."""
import dataclasses

import numpy as np
import pytest

from device.assets import default_model_dir
from device.embedder import Embedder
from device.frontend import FrontendConfig, log_spectrogram
from training.corpora import written_tunes
from training.melody import Chord, Note, Song
from training.mine import MineConfig, Version, align, fit_line, render_version, true_map, version_of
from training.render import Renderer, find_soundfonts

FRONTEND = FrontendConfig()
UNTHRESHOLDED = dataclasses.replace(MineConfig.default(), min_confidence=-np.inf)


def test_version_of_scales_times_and_pitches():
    song = Song("s", "S", "", "written", "public-domain", True,
                melody=(Note(60, 0.5, 1.0, 80), Note(67, 1.0, 2.25)),
                accompaniment=(Note(48, 0.0, 2.0, 70),),
                chords=(Chord(0.0, 2.0, (48, 52, 55)),), beat_s=0.5, beats_per_bar=3)
    version = version_of(song, 1.25, -3)
    assert version.melody == (Note(57, 0.4, 0.8, 80), Note(64, 0.8, 1.8, 90))
    assert version.accompaniment == (Note(45, 0.0, 1.6, 70),)
    assert version.chords == (Chord(0.0, 1.6, (45, 49, 52)),)
    assert version.beat_s == 0.4 and version.beats_per_bar == 3 and version.song_id == "s"
    assert version.duration_s == pytest.approx(song.duration_s / 1.25)


def test_version_of_refuses_fractional_transpositions():
    with pytest.raises(ValueError):
        version_of(written_tunes()[0], 1.0, 0.5)


def test_fit_line_finds_a_planted_line_in_noise():
    rng = np.random.default_rng(0)
    n, m, slope, centre = 60, 52, 0.8, 26.3
    rows, cols = np.arange(n)[:, None], np.arange(m)[None, :]
    on_line = np.exp(-0.5 * (cols - (slope * (rows - (n - 1) / 2) + centre)) ** 2)
    found = fit_line(rng.normal(size=(n, m)) * 0.5 + 3.0 * on_line, MineConfig.default())
    assert found is not None
    assert found[0] == pytest.approx(slope, rel=0.01)
    assert found[1] == pytest.approx(centre, abs=0.2)  # windows


def test_fit_line_needs_the_same_passage_on_both_sides():
    """A recording far longer than any slope allows cannot be the version's passage."""
    assert fit_line(np.ones((10, 40)), MineConfig.default()) is None


@pytest.fixture(scope="module")
def embedder():
    path = default_model_dir() / "model.tflite"
    if not path.is_file():
        pytest.skip(f"no model at {path}")
    return Embedder(path)


@pytest.fixture(scope="module")
def renderer():
    soundfonts = find_soundfonts()
    if not soundfonts:
        pytest.skip("no General MIDI soundfont found")
    with Renderer(soundfonts[0], FRONTEND.sample_rate_hz) as r:
        yield r


@pytest.fixture(scope="module")
def tunes():
    return {s.song_id: s for s in written_tunes()}


def recording_db(renderer, song):
    return log_spectrogram(renderer.render(song, seed=1), FRONTEND)


@pytest.mark.parametrize("version", [Version(1.2, 2, 7), Version(0.9, -5, 2)])
def test_align_recovers_the_tempo_change(embedder, renderer, tunes, version):
    ode = tunes["written-ode-to-joy"]
    recording = recording_db(renderer, ode)
    version_db = render_version(ode, version, renderer, 0.0, ode.duration_s, FRONTEND)
    alignment = align(version_db, recording, embedder, UNTHRESHOLDED, FRONTEND)
    truth = true_map(version_db.shape[0], version.tempo_factor, FRONTEND)
    assert alignment.recording_frames.shape == truth.shape
    error = np.abs(alignment.recording_frames - truth)
    assert np.median(error) < 10 and error.max() < 25  # frames of 20 ms


def test_align_accepts_the_version_and_rejects_another_song(embedder, renderer, tunes):
    ode, other = tunes["written-ode-to-joy"], tunes["written-london-bridge"]
    version_db = render_version(ode, Version(1.2, 2, 7), renderer, 0.0, ode.duration_s, FRONTEND)
    matched = align(version_db, recording_db(renderer, ode), embedder, MineConfig.default(), FRONTEND)
    assert matched is not None and matched.confidence >= MineConfig.default().min_confidence
    wrong_db = recording_db(renderer, other)
    assert align(version_db, wrong_db, embedder, MineConfig.default(), FRONTEND) is None
    wrong = align(version_db, wrong_db, embedder, UNTHRESHOLDED, FRONTEND)
    assert wrong.confidence < matched.confidence - 0.5
