"""FluidSynth rendering of written tunes (no shared data needed) and of one POP909 span."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from training.corpora import load_pop909, written_tunes
from training.render import PEAK, Renderer, find_soundfonts

SR = 16000


def midi_hz(pitch: int) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12)


def band_db(audio: np.ndarray, hz: float) -> float:
    """Mean power within a quarter tone of hz, in dB above the median power of 40-2000 Hz."""
    power = np.abs(np.fft.rfft(audio.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(audio.size, 1.0 / SR)
    band = power[(freqs >= hz * 2 ** (-1 / 24)) & (freqs < hz * 2 ** (1 / 24))]
    reference = np.median(power[(freqs >= 40) & (freqs < 2000)])
    return float(10 * np.log10(band.mean() / reference))


@pytest.fixture(scope="module")
def renderer():
    soundfonts = find_soundfonts()
    if not soundfonts:
        pytest.skip("no General MIDI soundfont found")
    with Renderer(soundfonts[0], SR) as r:
        yield r


@pytest.fixture(scope="module")
def twinkle():
    return next(s for s in written_tunes() if s.song_id == "written-twinkle-twinkle")


def test_find_soundfonts_lists_existing_sf2_files():
    soundfonts = find_soundfonts()
    assert soundfonts, "pretty_midi's TimGM6mb.sf2 should always be there"
    assert all(path.is_file() and path.suffix == ".sf2" for path in soundfonts)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rendering_has_melody_and_bass(renderer, twinkle, seed):
    audio = renderer.render(twinkle, seed)
    assert audio.dtype == np.float32 and audio.shape == (round(twinkle.duration_s * SR),)
    assert np.max(np.abs(audio)) == pytest.approx(PEAK, rel=1e-5)
    for pitch in (60, 67):  # melody C4, G4
        assert band_db(audio, midi_hz(pitch)) > 20
    assert band_db(audio, midi_hz(36)) > 20  # bass root C2 of the C major chords


def test_melody_without_chords_still_gets_a_bass_line(renderer, twinkle):
    bare = dataclasses.replace(twinkle, chords=())
    audio = renderer.render(bare, 3)
    assert band_db(audio, midi_hz(36)) > 20  # C2 from chords derived from the melody


def test_same_seed_same_audio_other_seed_other_audio(renderer, twinkle):
    other = next(s for s in written_tunes() if s.song_id == "written-ode-to-joy")
    first = renderer.render(twinkle, 7)
    renderer.render(other, 8)
    again = renderer.render(twinkle, 7)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, renderer.render(twinkle, 9), atol=1e-3)


def test_span_has_requested_length(renderer, twinkle):
    audio = renderer.render(twinkle, 1, start_s=3.0, duration_s=5.0)
    assert audio.shape == (5 * SR,) and audio.dtype == np.float32
    assert np.max(np.abs(audio)) == pytest.approx(PEAK, rel=1e-5)
    silent = renderer.render(twinkle, 1, start_s=twinkle.duration_s + 1.0, duration_s=0.5)
    assert silent.shape == (SR // 2,) and not np.any(silent)


def test_pop909_span_uses_its_accompaniment(renderer, pop909_song_001_root: Path):
    (song,) = load_pop909(pop909_song_001_root)

    intro = renderer.render(song, 0, start_s=3.0, duration_s=8.0)  # piano only, before the tune
    assert intro.shape == (8 * SR,) and np.max(np.abs(intro)) == pytest.approx(PEAK, rel=1e-5)
