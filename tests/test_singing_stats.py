import json
from pathlib import Path

import numpy as np
import pytest

from device.frontend import FrontendConfig
from training import singing_stats
from training.hum import HumStyle, synthesize_hum
from training.melody import Note

SR = FrontendConfig().sample_rate_hz
RATE = singing_stats.FRAME_RATE_HZ
# A singer with known habits, for the synthetic tracks.
INTONATION_SD = 0.15
DRIFT_PER_10S = -0.8
VIBRATO_HZ = 5.5
VIBRATO_DEPTH = 0.3
GLIDE_S = 0.1
JITTER_S = 0.02
BEAT_S = 0.4


def synthetic_track(rng: np.random.Generator, intonation_sd: float = INTONATION_SD,
                    drift_per_10s: float = DRIFT_PER_10S, vibrato_depth: float = VIBRATO_DEPTH,
                    n_phrases: int = 4) -> np.ndarray:
    """float64 array (n_frames,): 50 frames/s of phrases of six notes with rests between.

    Notes are 1 or 2 beats long with onsets jittered by JITTER_S, pitches on a grid 0.3
    semitone sharp with Gaussian errors, a linear drift, vibrato at VIBRATO_HZ on every
    frame, and raised-cosine glides of GLIDE_S centred on each connected onset.
    """
    onsets, pitches, phrase_ends = [], [], []
    t, pitch = 0.5, 62
    for _ in range(n_phrases):
        for _ in range(6):
            onsets.append(t + rng.normal(0.0, JITTER_S))
            pitches.append(pitch + 0.3 + rng.normal(0.0, intonation_sd))
            t += BEAT_S * rng.choice([1, 2])
            pitch = int(np.clip(pitch + rng.choice([-4, -3, -2, -1, 1, 2, 3, 4]), 55, 70))
        phrase_ends.append(t - 0.3)
        t += 0.4
    frame_t = singing_stats.FIRST_FRAME_S + np.arange(int((t + 0.5) * RATE)) / RATE
    onsets, pitches = np.array(onsets), np.array(pitches)
    current = np.searchsorted(onsets, frame_t, side="right") - 1
    track = pitches[np.maximum(current, 0)]
    for i in range(1, onsets.size):
        if i % 6 == 0:
            continue
        inside = np.abs(frame_t - onsets[i]) < 0.5 * GLIDE_S
        shape = 0.5 - 0.5 * np.cos(np.pi * ((frame_t[inside] - onsets[i]) / GLIDE_S + 0.5))
        track[inside] = pitches[i - 1] + (pitches[i] - pitches[i - 1]) * shape
    track += (drift_per_10s * frame_t / 10.0
              + vibrato_depth * np.sin(2 * np.pi * VIBRATO_HZ * frame_t))
    phrase = current // 6
    sung = (current >= 0) & (frame_t < np.array(phrase_ends)[np.minimum(phrase, n_phrases - 1)])
    return np.where(sung, track, 0.0)


def test_fit_recovers_a_known_singer(tmp_path: Path):
    rng = np.random.default_rng(0)
    for clip in range(12):
        np.savetxt(tmp_path / f"synth_1_{clip:02d}.pv", synthetic_track(rng), fmt="%.4f")
    fitted = singing_stats.fit(tmp_path)
    clips = fitted["clips"]
    assert clips["singer"] == ["synth"] * 12
    median = {name: float(np.median([v for v in clips[name] if v is not None]))
              for name in singing_stats.STATISTICS}
    assert median["intonation_sd_semitones"] == pytest.approx(INTONATION_SD, abs=0.04)
    assert median["drift_semitones_per_10s"] == pytest.approx(DRIFT_PER_10S, abs=0.2)
    assert median["vibrato_rate_hz"] == pytest.approx(VIBRATO_HZ, abs=0.3)
    assert median["vibrato_depth_semitones"] == pytest.approx(VIBRATO_DEPTH, abs=0.06)
    assert median["glide_s"] == pytest.approx(GLIDE_S, abs=0.03)
    # Vibrato across the transitions blurs the onsets (the steady test checks timing).
    assert JITTER_S < median["timing_jitter_s"] < 2.0 * JITTER_S
    assert fitted["summary"]["glide_s"]["n"] == 12


def test_steady_singing_has_no_vibrato_and_no_drift(tmp_path: Path):
    rng = np.random.default_rng(1)
    for clip in range(6):
        track = synthetic_track(rng, drift_per_10s=0.0, vibrato_depth=0.0)
        np.savetxt(tmp_path / f"steady_1_{clip:02d}.pv", track, fmt="%.4f")
    clips = singing_stats.fit(tmp_path)["clips"]
    assert all(v == 0.0 for v in clips["vibrato_depth_semitones"])
    assert all(v is None for v in clips["vibrato_rate_hz"])
    assert abs(clips["drift_semitones_per_10s"][0]) < 0.1
    assert np.median(clips["timing_jitter_s"]) == pytest.approx(JITTER_S, abs=0.006)
    assert np.median(clips["glide_s"]) == pytest.approx(GLIDE_S, abs=0.02)


def test_notes_off_any_grid_leave_intonation_unresolved(tmp_path: Path):
    rng = np.random.default_rng(2)
    for clip in range(12):
        track = synthetic_track(rng, intonation_sd=5.0)  # fractional parts all but uniform
        np.savetxt(tmp_path / f"lost_1_{clip:02d}.pv", track, fmt="%.4f")
    clips = singing_stats.fit(tmp_path)["clips"]
    assert clips["intonation_sd_semitones"][0] == singing_stats._MAX_INTONATION_SD
    assert clips["drift_semitones_per_10s"][0] is None


def test_packaged_statistics_are_plausible():
    stats = singing_stats.load()
    assert len(stats.clips) == len(stats.singers) == stats.glide_s.size > 100
    assert not stats.glide_s.flags.writeable
    assert 0.15 < np.nanmedian(stats.intonation_sd_semitones) <= 0.45
    assert abs(np.nanmedian(stats.drift_semitones_per_10s)) < 0.5
    assert 3.5 < np.nanmedian(stats.vibrato_rate_hz) < 7.5
    assert 0.0 <= np.nanmedian(stats.vibrato_depth_semitones) < 0.5
    assert 0.03 < np.nanmedian(stats.glide_s) < 0.3
    assert 0.01 < np.nanmedian(stats.timing_jitter_s) < 0.12
    assert 0.1 < np.nanmedian(stats.note_duration_s) < 0.6


def test_packaged_statistics_are_the_fit_of_the_shared_labels(shared_data: Path):
    fitted = singing_stats.fit(shared_data / "mir1k-dev" / "pitch")
    packaged = json.loads(Path(singing_stats.__file__).with_name("singing_stats.json").read_text())
    assert fitted["clips"] == packaged["clips"]


def test_sampled_styles_stay_within_the_fitted_ranges():
    stats = singing_stats.load()
    styles = [HumStyle.sample(np.random.default_rng(seed)) for seed in range(300)]
    for field in ("timing_jitter_s", "intonation_sd_semitones", "drift_semitones_per_10s",
                  "vibrato_rate_hz", "vibrato_depth_semitones", "glide_s"):
        fitted = getattr(stats, field)
        drawn = np.array([getattr(s, field) for s in styles])
        assert np.all(drawn >= np.nanmin(fitted)) and np.all(drawn <= np.nanmax(fitted)), field
        assert np.unique(drawn).size > 30, field  # perturbed, not copied
    assert all(0.0 <= s.wrong_note_probability <= 0.05 for s in styles)
    assert all(0.0 <= s.missed_note_probability <= 0.04 for s in styles)
    assert all(0.0 <= s.octave_jump_probability <= 0.02 for s in styles)


MELODY = (Note(60, 10.0, 10.6), Note(64, 10.7, 11.3), Note(67, 11.4, 12.0), Note(62, 12.1, 12.8),
          Note(65, 12.9, 13.5))


def whistle(**mistakes) -> HumStyle:
    """A whistled style without per-note randomness other than the mistakes."""
    return HumStyle(
        voice="whistle", transpose_semitones=0.0, f0_centre_midi=86.0, formant_scale=1.0,
        tempo_factor=1.0, lead_in_s=0.3, timing_jitter_s=0.0, articulation_gap_s=0.03,
        breath_every_s=5.0, intonation_sd_semitones=0.0, drift_semitones_per_10s=0.0,
        vibrato_rate_hz=5.5, vibrato_depth_semitones=0.0, glide_s=0.05, attack_s=0.04,
        release_s=0.05, breath_level=0.03, hiss_db=-60.0, **mistakes)


def note_middles(hum) -> list[np.ndarray]:
    """The middle half of each note's span in the hum."""
    spans = hum.hum_time(np.array([[n.start_s, n.end_s] for n in MELODY]))
    return [hum.audio[int((a + 0.25 * (b - a)) * SR):int((b - 0.25 * (b - a)) * SR)]
            for a, b in spans]


def peak_midi(segment: np.ndarray) -> float:
    """MIDI pitch of the strongest FFT peak (a whistle is nearly a sine)."""
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(segment.size), 8 * segment.size))
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1:k + 2])
    hz = (k + 0.5 * (a - c) / (a - 2 * b + c)) * SR / (8 * segment.size)
    return 69.0 + 12.0 * np.log2(hz / 440.0)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def test_octave_jumps_move_every_note_and_keep_the_time_map():
    plain = synthesize_hum(MELODY, whistle(), SR, np.random.default_rng(3))
    jumped = synthesize_hum(MELODY, whistle(octave_jump_probability=1.0), SR,
                            np.random.default_rng(3))
    np.testing.assert_array_equal(jumped.knots_hum_s, plain.knots_hum_s)
    np.testing.assert_array_equal(jumped.knots_song_s, plain.knots_song_s)
    shifts = [peak_midi(j) - peak_midi(p)
              for j, p in zip(note_middles(jumped), note_middles(plain))]
    assert all(abs(abs(shift) - 12.0) < 0.3 for shift in shifts), shifts


def test_wrong_notes_are_one_or_two_semitones_off():
    plain = synthesize_hum(MELODY, whistle(), SR, np.random.default_rng(4))
    wrong = synthesize_hum(MELODY, whistle(wrong_note_probability=1.0), SR,
                           np.random.default_rng(4))
    np.testing.assert_array_equal(wrong.knots_hum_s, plain.knots_hum_s)
    shifts = np.abs([peak_midi(w) - peak_midi(p)
                     for w, p in zip(note_middles(wrong), note_middles(plain))])
    assert all(min(abs(s - 1.0), abs(s - 2.0)) < 0.3 for s in shifts), shifts


def test_missed_notes_are_held_over_or_silent():
    seed = 10  # a seed whose draws hold some missed notes and leave others silent
    plain = synthesize_hum(MELODY, whistle(), SR, np.random.default_rng(seed))
    missed = synthesize_hum(MELODY, whistle(missed_note_probability=1.0), SR,
                            np.random.default_rng(seed))
    np.testing.assert_array_equal(missed.knots_hum_s, plain.knots_hum_s)
    np.testing.assert_array_equal(missed.onsets_hum_s, plain.onsets_hum_s)
    first, *rest = note_middles(missed)
    assert abs(peak_midi(first) - peak_midi(note_middles(plain)[0])) < 0.1
    kinds = []
    for onset, middle in zip(missed.onsets_hum_s[1:], rest):  # every later note is missed
        if rms(middle) < 0.01 * rms(first):
            kinds.append("silent")
            continue
        kinds.append("held")
        assert abs(peak_midi(middle) - peak_midi(first)) < 0.3
        # Held through: no articulation gap before the missed onset.
        before = missed.audio[int((onset - 0.04) * SR):int((onset - 0.005) * SR)]
        assert rms(before) > 0.3 * rms(first)
    assert "held" in kinds and "silent" in kinds
    # Holding needs a sound to hold: after a silence every missed note stays silent.
    assert "held" not in kinds[kinds.index("silent"):]
