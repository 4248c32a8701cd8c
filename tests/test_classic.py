"""The classic baseline (pYIN + subsequence DTW): contours, key and tempo invariance, no-pitch input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from benchmarks import classic
from device.audio import resample
from training.melody import Note

RATE = 16000


def _melody(rng: np.random.Generator, n_notes: int = 40) -> list[Note]:
    """A random-walk melody around C4 with notes of 0.2-0.6 s and a few short rests."""
    notes, t, pitch = [], 0.0, 60
    for _ in range(n_notes):
        pitch = int(np.clip(pitch + rng.choice([-4, -3, -2, -1, 1, 2, 3, 4, 5, -5]), 48, 76))
        duration = float(rng.choice([0.2, 0.3, 0.4, 0.6]))
        notes.append(Note(pitch, t, t + duration))
        t += duration + float(rng.choice([0.0, 0.0, 0.0, 0.15]))
    return notes


def _tone(notes: list[Note], semitones: float, tempo: float) -> np.ndarray:
    """A sine (+ a weak 2nd harmonic) following the notes, transposed, `tempo` times faster."""
    t0 = notes[0].start_s
    n = int((notes[-1].end_s - t0) / tempo * RATE) + RATE // 2
    f0 = np.zeros(n)
    for note in notes:
        a, b = int((note.start_s - t0) / tempo * RATE), int((note.end_s - t0) / tempo * RATE)
        f0[a:b - int(0.02 * RATE)] = 440.0 * 2.0 ** ((note.pitch + semitones - 69) / 12.0)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    envelope = np.convolve((f0 > 0).astype(float), np.hanning(161) / 80.5, mode="same")
    return (0.5 * envelope * (np.sin(phase) + 0.3 * np.sin(2 * phase))).astype(np.float32)


@pytest.fixture(scope="module")
def melodies() -> dict[str, list[Note]]:
    rng = np.random.default_rng(11)
    return {f"song-{k}": _melody(rng) for k in range(8)}


@pytest.fixture(scope="module")
def matcher(melodies) -> classic.ClassicMatcher:
    return classic.ClassicMatcher({k: classic.notes_contour(v) for k, v in melodies.items()})


def test_notes_contour_holds_rests_and_caps_long_ones():
    notes = [Note(60, 0.0, 0.3), Note(62, 0.4, 0.6), Note(64, 5.0, 5.2)]
    contour = classic.notes_contour(notes)
    frames = 1.0 / classic.FRAME_RATE_HZ
    # 60 until the second onset, 62 for its note plus at most MAX_GAP_S of rest, then 64.
    expected_60 = round(0.4 / frames)
    expected_62 = round((0.2 + classic.MAX_GAP_S) / frames)
    assert contour.dtype == np.float32
    assert np.all(contour[:expected_60] == 60)
    assert np.all(contour[expected_60:expected_60 + expected_62] == 62)
    assert np.all(contour[expected_60 + expected_62:] == 64)
    assert contour.size == expected_60 + expected_62 + round(0.2 / frames)


def test_frames_contour_trims_fills_and_drops_outliers():
    frame_s = 0.02
    midi = np.full(200, 62.0)
    midi[:10] = np.nan          # leading silence: dropped
    midi[50:60] = 0.0           # a short gap: the previous pitch held
    midi[100:105] = 20.0        # a spurious low pitch: treated as unvoiced, then held
    midi[150:] = np.nan         # trailing silence: dropped
    contour = classic.frames_contour(midi, frame_s)
    assert contour.size == round(140 * frame_s * classic.FRAME_RATE_HZ)
    np.testing.assert_array_equal(contour, 62.0)
    assert classic.frames_contour(np.full(50, np.nan), frame_s).size == 0


def test_long_gaps_are_cut_to_max_gap():
    frame_s = 0.02
    midi = np.concatenate([np.full(50, 60.0), np.zeros(500), np.full(50, 67.0)])
    contour = classic.frames_contour(midi, frame_s)
    expected = (100 * frame_s + classic.MAX_GAP_S) * classic.FRAME_RATE_HZ
    assert abs(contour.size - expected) <= 1
    assert set(np.unique(contour)) == {60.0, 67.0}


def test_pv_contour_reads_mir1k_pitch_files(tmp_path: Path):
    path = tmp_path / "clip.pv"
    path.write_text("\n".join(["0"] * 5 + ["57.5"] * 50 + ["0"] * 5 + ["59.25"] * 50) + "\n")
    contour = classic.pv_contour(path)
    assert contour.size == round(105 * classic.PV_FRAME_S * classic.FRAME_RATE_HZ)
    assert contour[0] == 57.5 and contour[-1] == 59.25


@pytest.mark.parametrize("semitones, tempo", [(2.5, 1.15), (-4.0, 0.85)])
def test_tone_of_a_melody_ranks_its_own_melody_first(melodies, matcher, semitones, tempo):
    excerpt = melodies["song-3"][12:30]  # from the middle: a subsequence of the reference
    contour = classic.query_contour(_tone(excerpt, semitones, tempo), RATE)
    ranking = matcher.rank(contour)
    assert ranking[0][0] == "song-3"
    assert len(ranking) == len(melodies)
    costs = [cost for _, cost in ranking]
    assert costs == sorted(costs)
    assert costs[0] < 0.5 * costs[1]


def test_a_different_melody_does_not_match_cheaply(melodies, matcher):
    stranger = _melody(np.random.default_rng(99))[:18]
    ranking = matcher.rank(classic.query_contour(_tone(stranger, 0.0, 1.0), RATE))
    own = matcher.rank(classic.query_contour(_tone(melodies["song-5"][5:23], 0.0, 1.0), RATE))
    assert ranking[0][1] > 2 * own[0][1]


def test_ranking_is_invariant_to_key(melodies, matcher):
    contour = classic.notes_contour(melodies["song-6"])[40:120]
    base = matcher.rank(contour)
    assert base[0] == ("song-6", pytest.approx(0.0, abs=1e-4))
    for semitones in (-7.0, 0.5, 3.3, 12.0):
        shifted = matcher.rank(contour + np.float32(semitones))
        assert [k for k, _ in shifted] == [k for k, _ in base]
        np.testing.assert_allclose([c for _, c in shifted], [c for _, c in base], atol=1e-3)


@pytest.mark.parametrize("tempo", [0.75, 1.25])
def test_tempo_changes_within_25_percent_still_match(melodies, matcher, tempo):
    contour = classic.notes_contour(melodies["song-1"])[60:140]
    positions = np.arange(0, contour.size - 1, tempo)
    stretched = contour[np.round(positions).astype(int)] + np.float32(1.0)
    assert matcher.rank(stretched)[0][0] == "song-1"


def test_silence_noise_and_tiny_inputs_give_no_ranking_or_no_error(matcher):
    assert classic.query_contour(np.zeros(3 * RATE, np.float32), RATE).size == 0
    assert classic.query_contour(np.zeros(100, np.float32), RATE).size == 0
    assert matcher.rank(np.zeros(0, np.float32)) == []
    assert matcher.rank(np.array([60.0], np.float32)) == []
    noise = np.random.default_rng(0).standard_normal(2 * RATE).astype(np.float32) * 0.1
    contour = classic.query_contour(noise, RATE)
    assert contour.dtype == np.float32 and np.all(np.isfinite(contour))
    ranking = matcher.rank(contour)
    assert ranking == [] or len(ranking) == 8
    assert classic.ClassicMatcher({}).rank(np.array([60.0, 61.0], np.float32)) == []


def test_real_voice_ranks_its_own_pitch_labels_first(shared_data: Path):
    mir1k = shared_data / "mir1k-dev"
    stems = ["Ani_1_01", "Ani_1_02", "Ani_2_01", "annar_1_01", "ariel_1_01", "bug_1_01", "heycat_1_01"]
    present = [s for s in stems if (mir1k / "pitch" / f"{s}.pv").exists()]
    assert len(present) >= 3, "mir1k-dev has fewer clips than expected"
    matcher = classic.ClassicMatcher({s: classic.pv_contour(mir1k / "pitch" / f"{s}.pv") for s in present})
    stereo, rate = soundfile.read(mir1k / "audio" / f"{present[1]}.flac", dtype="float32", always_2d=True)
    contour = classic.query_contour(resample(stereo[:, 1], rate, RATE), RATE)
    assert matcher.rank(contour)[0][0] == present[1]
