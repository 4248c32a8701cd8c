"""The invariance benchmark varies what it says it varies, and writes what it says it writes."""
from __future__ import annotations

import csv
from pathlib import Path

import librosa
import numpy as np
import pytest

from benchmarks import invariance as inv
from benchmarks.evaluate import mir1k_clips, read_voice
from device import assets
from device.frontend import FrontendConfig
from training import corpora
from training.hum import VOICES, melody_excerpt

SR = FrontendConfig().sample_rate_hz
FRAME, HOP = 2048, 320


def f0_track(audio: np.ndarray) -> np.ndarray:
    """float64 (n_frames,): YIN f0 in Hz, NaN where the frame is quiet (below -20 dB of the
    loudest frame), so rests and breaths do not count."""
    f0 = librosa.yin(audio.astype(np.float64), fmin=40.0, fmax=2500.0, sr=SR, frame_length=FRAME,
                     hop_length=HOP, center=True)
    rms = librosa.feature.rms(y=audio, frame_length=FRAME, hop_length=HOP, center=True)[0]
    return np.where(rms > 0.1 * rms.max(), f0, np.nan)[:f0.size]


def shift_semitones(before: np.ndarray, after: np.ndarray) -> float:
    """Median frame-wise pitch change between two renditions with the same timing."""
    a, b = f0_track(before), f0_track(after)
    n = min(a.size, b.size)
    both = np.isfinite(a[:n]) & np.isfinite(b[:n])
    assert both.sum() > 50
    return float(np.median(12.0 * np.log2(b[:n][both] / a[:n][both])))


def sounding_s(audio: np.ndarray) -> float:
    """Seconds from the first to the last frame above -20 dB of the loudest."""
    rms = librosa.feature.rms(y=audio, frame_length=FRAME, hop_length=HOP, center=True)[0]
    loud = np.flatnonzero(rms > 0.1 * rms.max())
    return (loud[-1] - loud[0]) * HOP / SR


@pytest.fixture(scope="module")
def tune():
    """The notes of a written tune (no shared data needed) and a seeded neutral singer."""
    song = {s.song_id: s for s in corpora.written_tunes()}["written-ode-to-joy"]
    rng = np.random.default_rng(7)
    notes, _ = melody_excerpt(song.melody, rng, 6.0)
    return notes, inv.neutral_style(rng)


def test_neutral_style_is_a_hum_in_the_key_at_the_tempo():
    for seed in range(20):
        style = inv.neutral_style(np.random.default_rng(seed))
        assert (style.voice, style.transpose_semitones, style.tempo_factor) == ("hum", 0.0, 1.0)
        assert style.f0_centre_midi < 70  # a voice's register, not a whistler's
    assert inv.neutral_style(np.random.default_rng(3)) == inv.neutral_style(np.random.default_rng(3))


def test_synthetic_variants_are_deterministic(tune):
    notes, style = tune
    first = inv.synthetic_variant(notes, style, "tempo", 0.8, SR, 11)
    assert np.array_equal(first, inv.synthetic_variant(notes, style, "tempo", 0.8, SR, 11))
    assert not np.array_equal(first, inv.synthetic_variant(notes, style, "tempo", 0.8, SR, 12))


@pytest.mark.parametrize("semitones", [-6.0, -2.0, 5.0, 6.0])
def test_synthetic_transposition_moves_the_pitch_by_the_semitones(tune, semitones):
    notes, style = tune
    neutral = inv.synthetic_variant(notes, style, "transposition", 0.0, SR, 11)
    moved = inv.synthetic_variant(notes, style, "transposition", semitones, SR, 11)
    assert moved.size == neutral.size
    assert shift_semitones(neutral, moved) == pytest.approx(semitones, abs=0.25)


@pytest.mark.parametrize("tempo", [0.75, 1.25])
def test_synthetic_tempo_scales_the_duration_and_keeps_the_pitch(tune, tempo):
    notes, style = tune
    neutral = inv.synthetic_variant(notes, style, "tempo", 1.0, SR, 11)
    changed = inv.synthetic_variant(notes, style, "tempo", tempo, SR, 11)
    assert sounding_s(changed) == pytest.approx(sounding_s(neutral) / tempo, rel=0.04)
    assert np.nanmedian(f0_track(changed)) == pytest.approx(np.nanmedian(f0_track(neutral)), rel=0.03)


def test_synthetic_voices_keep_the_tune(tune):
    notes, style = tune
    hum = inv.synthetic_variant(notes, style, "voice", "hum", SR, 11)
    assert set(inv.AXES["voice"]) == set(VOICES)
    for voice in ("la", "oo", "whistle"):
        sung = inv.synthetic_variant(notes, style, "voice", voice, SR, 11)
        assert not np.array_equal(sung, hum)
        shift = shift_semitones(hum, sung)
        octaves = round(shift / 12.0)
        assert shift == pytest.approx(12.0 * octaves, abs=0.3)  # the same notes ...
        if voice == "whistle":  # ... whole octaves up, in a whistle's register
            assert octaves >= 2 and 600.0 < np.nanmedian(f0_track(sung)) < 2500.0
        else:  # ... in the same register
            assert octaves == 0


def test_styled_rejects_an_unknown_axis(tune):
    with pytest.raises(ValueError):
        inv.styled(tune[1], "loudness", 2.0)
    with pytest.raises(ValueError):
        inv.voice_variant(np.zeros(SR, dtype=np.float32), SR, "voice", "la")


@pytest.fixture(scope="module")
def real_voice(shared_data: Path) -> np.ndarray:
    """The first 6 s of a mir1k-dev voice (right channel)."""
    return read_voice(mir1k_clips(shared_data)[0], SR)[:6 * SR]


@pytest.mark.parametrize("semitones", [-6.0, 4.0])
def test_real_voice_transposition_moves_the_pitch(real_voice, semitones):
    moved = inv.voice_variant(real_voice, SR, "transposition", semitones)
    assert moved.size == real_voice.size
    assert shift_semitones(real_voice, moved) == pytest.approx(semitones, abs=0.3)


@pytest.mark.parametrize("tempo", [0.75, 1.25])
def test_real_voice_tempo_scales_the_duration_and_keeps_the_pitch(real_voice, tempo):
    changed = inv.voice_variant(real_voice, SR, "tempo", tempo)
    assert changed.size == round(real_voice.size / tempo)
    voiced = [np.isfinite(f0_track(a)).sum() for a in (real_voice, changed)]
    assert voiced[1] == pytest.approx(voiced[0] / tempo, rel=0.08)
    assert np.nanmedian(f0_track(changed)) == pytest.approx(np.nanmedian(f0_track(real_voice)), rel=0.03)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_tiny_run_writes_the_csvs_and_the_plot(shared_data: Path, tmp_path: Path):
    settings = inv.Settings(songs=2, mir1k_clips=1, excerpt_s=6.0, seed=5)
    summary = inv.run(corpora.written_tunes(), shared_data, assets.default_catalogue_dir(), tmp_path, settings)

    rows = read_csv(tmp_path / "invariance.csv")
    assert tuple(rows[0]) == inv.QUERY_FIELDS
    per_query = sum(len(values) for values in inv.AXES.values())
    assert len(rows) == 2 * per_query + (per_query - len(VOICES))
    for set_name, queries in (("synthetic", 2), ("mir1k", 1)):
        for axis in inv.SET_AXES[set_name]:
            for value in inv.AXES[axis]:
                group = [r for r in rows if (r["set"], r["axis"], r["value"])
                         == (set_name, axis, inv.format_value(axis, value))]
                assert len({r["query"] for r in group}) == queries == len(group)
    real = [r for r in rows if r["set"] == "mir1k"]
    assert len({r["truth"] for r in real}) == 1 and all(r["truth"] == r["query"] for r in real)
    for query in {r["query"] for r in rows}:
        mine = {(r["axis"], r["value"]): r for r in rows if r["query"] == query}
        # The neutral query is one query, reported under each axis.
        neutral = [mine[(axis, inv.format_value(axis, inv.NEUTRAL[axis]))] for axis in inv.AXES
                   if (axis, inv.format_value(axis, inv.NEUTRAL[axis])) in mine]
        assert len({(r["rank"], r["top1"], r["score"]) for r in neutral}) == 1
        # A faster query is shorter: the tempo axis reached the audio.
        slow, fast = float(mine[("tempo", "0.75")]["seconds"]), float(mine[("tempo", "1.25")]["seconds"])
        assert fast < slow * 0.75
        assert all(0 <= int(r["rank"]) <= 10 for r in mine.values())

    written = read_csv(tmp_path / "invariance_summary.csv")
    assert tuple(written[0]) == inv.SUMMARY_FIELDS
    assert len(written) == len(summary) == 2 * per_query - len(VOICES)
    for line in written:
        assert int(line["queries"]) == (2 if line["set"] == "synthetic" else 1)
        assert 0.0 <= float(line["top1"]) <= float(line["top10"]) <= 1.0
    png = (tmp_path / "invariance.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
