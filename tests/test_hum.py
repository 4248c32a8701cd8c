import dataclasses

import numpy as np
import pytest
import soundfile

from device.frontend import FrontendConfig
from training.hum import VOICES, HumStyle, pitch_track_hum, synthesize_hum
from training.melody import Note

SR = FrontendConfig().sample_rate_hz
# Four notes with rests between them, starting 30 s into the song.
MELODY = (Note(60, 30.0, 30.5), Note(64, 30.7, 31.2), Note(67, 31.4, 31.9), Note(62, 32.1, 32.8))


def steady_style(voice: str, **changes) -> HumStyle:
    """A style without per-note randomness: exact timing and intonation, no vibrato."""
    style = HumStyle(
        voice=voice, transpose_semitones=2.5, f0_centre_midi=86.0 if voice == "whistle" else 51.0,
        formant_scale=1.0, tempo_factor=1.0, lead_in_s=0.3, timing_jitter_s=0.0,
        articulation_gap_s=0.03, breath_every_s=5.0, intonation_sd_semitones=0.0,
        drift_semitones_per_10s=0.0, vibrato_rate_hz=5.5, vibrato_depth_semitones=0.0,
        glide_s=0.05, attack_s=0.04, release_s=0.05, breath_level=0.03, hiss_db=-60.0)
    return dataclasses.replace(style, **changes)


def f0_hz(segment: np.ndarray, fmin_hz: float = 60.0, fmax_hz: float = 2500.0) -> float:
    """Autocorrelation pitch: the first autocorrelation peak within 15% of the highest."""
    x = (segment - segment.mean()) * np.hanning(segment.size)
    spectrum = np.fft.rfft(x, 2 * x.size)
    acf = np.fft.irfft(np.abs(spectrum) ** 2)[:x.size]
    lo, hi = int(SR / fmax_hz), int(SR / fmin_hz)
    r = acf[lo - 1:hi + 2]
    peaks = np.flatnonzero((r[1:-1] > r[:-2]) & (r[1:-1] >= r[2:])) + 1
    k = peaks[np.argmax(r[peaks] >= 0.85 * r[peaks].max())]
    a, b, c = r[k - 1], r[k], r[k + 1]
    lag = lo - 1 + k + 0.5 * (a - c) / (a - 2 * b + c)
    return SR / lag


def midi_of(hz: float) -> float:
    return 69.0 + 12.0 * np.log2(hz / 440.0)


def note_middle(hum, note: Note) -> np.ndarray:
    """The middle half of the note's span in the hum."""
    start, end = hum.hum_time(np.array([note.start_s, note.end_s]))
    quarter = 0.25 * (end - start)
    return hum.audio[int((start + quarter) * SR):int((end - quarter) * SR)]


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


@pytest.mark.parametrize("voice", VOICES)
def test_each_note_sounds_at_its_transposed_pitch(voice):
    hum = synthesize_hum(MELODY, steady_style(voice), SR, np.random.default_rng(0))
    # 2.5 semitones up, then whole octaves towards the register.
    assert (hum.pitch_offset_semitones - 2.5) % 12 == 0
    for note in MELODY:
        measured = midi_of(f0_hz(note_middle(hum, note)))
        assert abs(measured - (note.pitch + hum.pitch_offset_semitones)) < 0.6, (voice, note)


def test_pitch_holds_with_vibrato_and_a_drifting_tempo():
    style = steady_style("la", vibrato_depth_semitones=0.5, tempo_factor=0.8, timing_jitter_s=0.04)
    hum = synthesize_hum(MELODY, style, SR, np.random.default_rng(1))
    for note in MELODY:
        measured = midi_of(f0_hz(note_middle(hum, note)))
        assert abs(measured - (note.pitch + hum.pitch_offset_semitones)) < 0.6


def test_audio_is_float32_mono_with_peak_0_9():
    style = HumStyle.sample(np.random.default_rng(2))
    hum = synthesize_hum(MELODY, style, SR, np.random.default_rng(3))
    assert hum.audio.dtype == np.float32 and hum.audio.ndim == 1
    assert np.max(np.abs(hum.audio)) == pytest.approx(0.9, abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_time_map_is_monotonic_and_onsets_start_sounds(seed):
    style = HumStyle.sample(np.random.default_rng(seed))  # every note sung, rests kept clear
    style = dataclasses.replace(style, missed_note_probability=0.0,
                                timing_jitter_s=min(style.timing_jitter_s, 0.06))
    hum = synthesize_hum(MELODY, style, SR, np.random.default_rng(seed + 100))
    assert np.all(np.diff(hum.knots_hum_s) > 0) and np.all(np.diff(hum.knots_song_s) > 0)
    assert hum.knots_hum_s[0] == 0.0
    assert hum.knots_hum_s[-1] == pytest.approx(hum.audio.size / SR, abs=1.0 / SR)
    assert hum.song_time(np.array([0.0]))[0] == pytest.approx(
        MELODY[0].start_s - style.lead_in_s * style.tempo_factor)
    song_onsets = np.array([n.start_s for n in MELODY])
    np.testing.assert_allclose(hum.song_time(hum.onsets_hum_s), song_onsets)
    probe = np.linspace(0.0, hum.audio.size / SR, 50)
    np.testing.assert_allclose(hum.hum_time(hum.song_time(probe)), probe, atol=1e-9)
    for onset in hum.hum_time(song_onsets):
        before = hum.audio[int((onset - 0.05) * SR):int((onset - 0.005) * SR)]
        after = hum.audio[int((onset + 0.03) * SR):int((onset + 0.08) * SR)]
        assert rms(after) > 4.0 * rms(before), (style.voice, onset)


def test_tempo_factor_scales_hum_time():
    style = steady_style("hum", tempo_factor=1.25)
    hum = synthesize_hum(MELODY, style, SR, np.random.default_rng(4))
    song_onsets = np.array([n.start_s for n in MELODY])
    np.testing.assert_allclose(np.diff(hum.onsets_hum_s), np.diff(song_onsets) / 1.25)
    assert hum.onsets_hum_s[0] == pytest.approx(0.3)
    assert hum.audio.size / SR > (MELODY[-1].end_s - MELODY[0].start_s) / 1.25 + 0.3


def test_same_seed_same_hum_other_seed_other_hum():
    def make(seed):
        rng = np.random.default_rng(seed)
        return synthesize_hum(MELODY, HumStyle.sample(rng), SR, rng)

    first, again, other = make(7), make(7), make(8)
    np.testing.assert_array_equal(first.audio, again.audio)
    np.testing.assert_array_equal(first.knots_hum_s, again.knots_hum_s)
    assert first.audio.size != other.audio.size or not np.allclose(first.audio, other.audio)


def test_sampled_styles_cover_every_voice_and_stay_in_range():
    rng = np.random.default_rng(9)
    styles = [HumStyle.sample(rng) for _ in range(300)]
    assert {s.voice for s in styles} == set(VOICES)
    for s in styles:
        assert -6.0 <= s.transpose_semitones <= 6.0
        assert 0.8 <= s.tempo_factor <= 1.25
        assert 0.1 <= s.lead_in_s <= 0.5  # fitted deviations: tests/test_singing_stats.py


@pytest.mark.parametrize("seed", range(3))
def test_whistle_is_high(seed):
    style = dataclasses.replace(HumStyle.sample(np.random.default_rng(seed)), voice="whistle",
                                f0_centre_midi=np.random.default_rng(seed).uniform(83.0, 89.0))
    hum = synthesize_hum(MELODY, style, SR, np.random.default_rng(seed))
    pitches = np.array([midi_of(f0_hz(note_middle(hum, note))) for note in MELODY])
    assert 700.0 < 440.0 * 2.0 ** ((0.5 * (pitches.min() + pitches.max()) - 69.0) / 12.0) < 2000.0
    assert pitches.min() > midi_of(600.0)


def band_fraction(audio: np.ndarray, below_hz: float) -> float:
    power = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(audio.size, 1.0 / SR)
    return float(power[freqs < below_hz].sum() / power.sum())


def test_closed_mouth_hum_is_dark_and_sung_vowels_are_not():
    hum = synthesize_hum(MELODY, steady_style("hum"), SR, np.random.default_rng(5)).audio
    la = synthesize_hum(MELODY, steady_style("la"), SR, np.random.default_rng(5)).audio
    assert band_fraction(hum, 1000.0) > 0.9
    assert band_fraction(la, 1000.0) < band_fraction(hum, 1000.0) - 0.1


def test_rejects_unknown_voice_and_unordered_notes():
    with pytest.raises(ValueError):
        steady_style("yodel")
    with pytest.raises(ValueError):
        synthesize_hum(MELODY[::-1], steady_style("hum"), SR, np.random.default_rng(0))


def track_f0_midi(audio: np.ndarray, times_s: np.ndarray, half_window_s: float = 0.02
                  ) -> np.ndarray:
    half = int(half_window_s * SR)
    return np.array([midi_of(f0_hz(audio[int(t * SR) - half:int(t * SR) + half])) for t in times_s])


def test_pitch_track_hum_follows_a_glide_and_keeps_its_silences():
    rate = 50.0
    ramp = np.linspace(52.0, 60.0, 100)  # two seconds rising by 8 semitones
    track = np.concatenate([np.zeros(10), ramp, np.zeros(25), np.full(50, 55.0), np.zeros(10)])
    style = steady_style("hum", transpose_semitones=0.0, f0_centre_midi=56.0)
    audio = pitch_track_hum(track, rate, style, SR, np.random.default_rng(6))
    assert audio.dtype == np.float32
    assert audio.size == round((track.size - 0.5) / rate * SR)
    frames = np.arange(track.size)
    inside = (track > 0) & (np.convolve(track > 0, np.ones(7), "same") == 7)
    measured = track_f0_midi(audio, frames[inside] / rate)
    assert np.all(np.abs(measured - track[inside]) < 0.6)
    silent = frames[(track == 0) & (np.convolve(track == 0, np.ones(9), "same") == 9)]
    voiced_rms = rms(audio[int(0.5 * SR):int(1.5 * SR)])
    for frame in silent:
        t = frame / rate
        assert rms(audio[int((t - 0.01) * SR):int((t + 0.01) * SR)]) < 0.1 * voiced_rms


def test_pitch_track_hum_follows_real_singing(shared_data):
    name = "Ani_1_01"
    track = np.loadtxt(shared_data / "mir1k-dev" / "pitch" / f"{name}.pv")
    recording, rate_hz = soundfile.read(shared_data / "mir1k-dev" / "audio" / f"{name}.flac")
    assert rate_hz == SR
    voiced = track > 0
    centre = float(np.mean(np.percentile(track[voiced], [5.0, 95.0])))
    style = steady_style("oo", transpose_semitones=0.0, f0_centre_midi=centre)
    audio = pitch_track_hum(track, 50.0, style, SR, np.random.default_rng(7), first_frame_s=0.02)
    assert abs(audio.size - recording.shape[0]) < 0.05 * SR
    # Frames well inside voiced runs, where the label is steady enough for a 40 ms window.
    steady = voiced & (np.convolve(voiced, np.ones(5), "same") == 5)
    steady[1:-1] &= np.abs(track[2:] - track[:-2]) < 0.5
    frames = np.flatnonzero(steady)
    measured = track_f0_midi(audio, 0.02 + frames / 50.0)
    assert np.mean(np.abs(measured - track[frames]) < 0.6) > 0.9
