"""The pitch-track path: YIN tracking, the tone generator, and hums re-rendered from tracks."""
import numpy as np
import pytest

from training.corpora import written_tunes
from training.hum import HumStyle
from training.pitch_track import FRAME_RATE_HZ, tone_from_track, track, track_hum

SR = 16000


def test_track_finds_a_tone_and_silence():
    t = np.arange(2 * SR) / SR
    audio = np.where(t < 1.0, 0.5 * np.sin(2 * np.pi * 220.0 * t), 0.0)  # A3 then silence
    f0 = track(audio, SR)
    assert f0.size == 1 + audio.size // (SR // 50)
    frame_t = np.arange(f0.size) / FRAME_RATE_HZ
    assert np.all(np.abs(f0[(frame_t > 0.1) & (frame_t < 0.9)] - 57.0) < 0.1)
    assert np.all(f0[frame_t > 1.1] == 0)


def test_tone_follows_the_track_it_was_made_from():
    frames = np.concatenate([np.full(50, 60.0), np.zeros(10), np.linspace(62.0, 67.0, 60)])
    audio = tone_from_track(frames, FRAME_RATE_HZ, SR, transpose_semitones=2.0,
                            rng=np.random.default_rng(0))
    assert audio.dtype == np.float32 and audio.size == round(frames.size / FRAME_RATE_HZ * SR)
    back = track(audio, SR)[:frames.size]
    inner = np.zeros(frames.size, bool)
    inner[3:47] = inner[63:117] = True  # away from the gaps' edges
    assert np.all(np.abs(back[inner] - (frames[inner] + 2.0)) < 0.3)
    assert np.all(back[52:58] == 0)


@pytest.mark.parametrize("tone", [True, False])
def test_track_hum_sings_the_notes_on_the_renditions_time_map(tone):
    song = next(s for s in written_tunes() if s.song_id == "written-ode-to-joy")
    notes = song.melody[:16]
    rng = np.random.default_rng(3)
    style = HumStyle.sample(rng)
    hum = track_hum(notes, style, SR, rng, tone=tone)
    f0 = track(hum.audio, SR)
    song_t = hum.song_time(np.arange(f0.size) / FRAME_RATE_HZ)
    onsets = np.array([n.start_s for n in notes])
    index = np.searchsorted(onsets, song_t, side="right") - 1
    truth = np.array([notes[max(i, 0)].pitch for i in index]) + hum.pitch_offset_semitones
    voiced = (f0 > 0) & (index >= 0)
    assert voiced.mean() > 0.6
    assert np.mean(np.abs(f0[voiced] - truth[voiced]) < 1.0) > 0.85
