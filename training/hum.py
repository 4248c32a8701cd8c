"""Synthetic hums, sung syllables and whistles of a melody, with the hum-to-song time map.

Training pairs a query window with the recording window of the same passage, so every
hum synthesized from notes comes with a piecewise-linear map from hum time to song time.
The singer's imperfections (intonation error, drift, vibrato, glides, timing jitter) are
drawn from statistics fitted to real amateur singing (`training.singing_stats`), plus the
occasional wrong, missed or octave-jumped note; a mistake changes only what is sung, never
the time map.

The sound is a source-filter voice. A harmonic source follows a per-sample f0 (phase is
the running integral of f0; harmonics come from the Chebyshev recurrence
sin(k φ) = 2 cos φ sin((k-1) φ) - sin((k-2) φ), so no harmonic costs a sine). Each
harmonic is weighted by a spectral tilt and by formant resonances evaluated at its own
frequency at every block boundary, linearly interpolated inside the block, and every
harmonic that would pass 0.45 times the sample rate fades out before it can alias. An
amplitude envelope, consonant bursts, aspiration, inhalations in long rests and a little
hiss complete it. `synthesize_hum` (from notes) and `pitch_track_hum` (from a frame-wise
pitch track) differ only in how they build the f0 and the envelope; both render with
`_render`.
"""
from __future__ import annotations

import dataclasses
import types
from typing import Sequence

import numpy as np
from scipy import signal

from training import singing_stats
from training.melody import Note

VOICES = ("hum", "la", "da", "oo", "whistle")
_VOICE_PROBABILITIES = (0.35, 0.2, 0.15, 0.15, 0.15)
_BLOCK_SAMPLES = 64  # harmonic gains are evaluated every block: 4 ms at 16 kHz
_MAX_HARMONIC_FRACTION = 0.45  # of the sample rate; harmonics fade out over the last 0.05
_PEAK = 0.9
_VIBRATO_DELAY_S = (0.12, 0.35)  # vibrato fades in between these times after an onset
_SILENCE = 1e-3  # envelope level below which the voice counts as silent


@dataclasses.dataclass(frozen=True)
class _Timbre:
    """How one voice sounds.

    Attributes:
        tilt_db_per_octave: source spectrum slope over harmonic number.
        formants: (centre Hz, bandwidth Hz, gain) of each resonance, for formant_scale 1.
        floor: spectral envelope level between formants.
        onset_formant_ratios: each formant's centre at a syllable onset as a multiple of
            its vowel value (the consonant's locus); empty for no consonant.
        transition_s: time the formants take from the consonant to the vowel.
        onset_level: voice level during the first `onset_hold_s` of a syllable (an /l/
            murmur is weaker than the vowel); 1 for none.
        onset_hold_s: duration of that weaker onset.
        max_attack_s: cap on the style's attack time (a released stop starts fast).
        closure_s: silence before each syllable onset (the tongue closes the tract).
        burst_level: RMS of the consonant noise burst relative to the voice.
        burst_band_hz: (low, high) band of the burst.
        aspiration_band_hz: (low, high) band of the breath noise that accompanies the
            voice; None for noise centred on f0 (the airy part of a whistle).
    """

    tilt_db_per_octave: float
    formants: tuple[tuple[float, float, float], ...]
    floor: float
    onset_formant_ratios: tuple[float, ...] = ()
    transition_s: float = 0.05
    onset_level: float = 1.0
    onset_hold_s: float = 0.0
    max_attack_s: float = 1.0
    closure_s: float = 0.0
    burst_level: float = 0.0
    burst_band_hz: tuple[float, float] = (2000.0, 6000.0)
    aspiration_band_hz: tuple[float, float] | None = (1500.0, 6000.0)


_VOWEL_A = ((730.0, 90.0, 1.0), (1090.0, 110.0, 0.6), (2440.0, 160.0, 0.25), (3400.0, 250.0, 0.1))
_TIMBRES = types.MappingProxyType({
    # Closed mouth: a nasal murmur around 270 Hz, little above it.
    "hum": _Timbre(tilt_db_per_octave=-12.0,
                   formants=((270.0, 90.0, 1.0), (1250.0, 200.0, 0.05), (2200.0, 250.0, 0.03)),
                   floor=0.005, aspiration_band_hz=(300.0, 2500.0)),
    # /la/: lateral onset (low F1, raised F3, weaker murmur), open vowel.
    "la": _Timbre(tilt_db_per_octave=-6.0, formants=_VOWEL_A, floor=0.01,
                  onset_formant_ratios=(0.5, 1.05, 1.15, 1.0), transition_s=0.06,
                  onset_level=0.35, onset_hold_s=0.05, max_attack_s=0.02, closure_s=0.02,
                  burst_level=0.03, burst_band_hz=(1000.0, 4000.0)),
    # /da/: alveolar stop, F2 locus near 1700 Hz, short closure and release burst.
    "da": _Timbre(tilt_db_per_octave=-6.0, formants=_VOWEL_A, floor=0.01,
                  onset_formant_ratios=(0.45, 1.55, 1.08, 1.0), transition_s=0.04,
                  max_attack_s=0.015, closure_s=0.04, burst_level=0.25,
                  burst_band_hz=(2500.0, 7000.0)),
    # /u/: low F1 and F2, weak upper formants.
    "oo": _Timbre(tilt_db_per_octave=-8.0,
                  formants=((300.0, 70.0, 1.0), (870.0, 100.0, 0.35), (2240.0, 150.0, 0.06),
                            (3300.0, 250.0, 0.03)),
                  floor=0.005),
    # Nearly sinusoidal; the air around it is narrow-band noise on f0.
    "whistle": _Timbre(tilt_db_per_octave=-30.0, formants=(), floor=1.0,
                       aspiration_band_hz=None),
})


@dataclasses.dataclass(frozen=True)
class HumStyle:
    """The random choices for one query, fixed before synthesis.

    Per-note randomness (intonation errors, onset jitter, gaps, levels, mistakes) is
    drawn during synthesis from the generator given there, with the spreads and
    probabilities set here. At most one mistake befalls a note.

    Attributes:
        voice: one of VOICES: "hum" (closed-mouth "mmm"), "la", "da", "oo" (sung
            syllables) or "whistle".
        transpose_semitones: key change applied to every note, before octave placement.
        f0_centre_midi: the register: the transposed tune moves by whole octaves so that
            its centre (halfway between the 5th and 95th percentiles of its pitches) lands
            nearest this MIDI value. `sample` draws 49-53 for male voices, 60-65 for
            female ones and 83-89 for whistles, so centres fall within 6 semitones of
            that: about 100-250 Hz, 180-500 Hz and 700-2000 Hz.
        formant_scale: multiplies formant centres and bandwidths (about 1 for male
            voices, 1.1-1.2 for female ones).
        tempo_factor: song seconds per hum second: hum duration = song duration /
            tempo_factor, so values above 1 hum faster than the song.
        lead_in_s: hum seconds before the first note's onset.
        timing_jitter_s: standard deviation of each onset's error, in hum seconds.
        articulation_gap_s: mean silence that ends each note early (articulation).
        breath_every_s: hum seconds of singing after which the singer takes a breath at
            the next note end, unless a rest came first.
        intonation_sd_semitones: standard deviation of each note's constant pitch error.
        drift_semitones_per_10s: linear pitch drift over the hum (negative = going flat).
        vibrato_rate_hz: vibrato frequency.
        vibrato_depth_semitones: vibrato amplitude (peak deviation) on sustained notes.
        glide_s: duration of the portamento between connected notes, and of the scoop
            into a note after a rest.
        attack_s: rise time of each note's amplitude.
        release_s: fall time after each note's end.
        breath_level: RMS of aspiration noise relative to the voice; inhalations in
            rests are twice that.
        hiss_db: level of white background hiss relative to the peak of the voice.
        wrong_note_probability: chance that a note is sung 1 or 2 semitones off (up or
            down, equally likely).
        missed_note_probability: chance that a note after the first is not sung: half
            the time the previous note is held through it (when that one sounds up to
            it), otherwise the voice is silent for it.
        octave_jump_probability: chance that a note is sung an octave up or down.
    """

    voice: str
    transpose_semitones: float
    f0_centre_midi: float
    formant_scale: float
    tempo_factor: float
    lead_in_s: float
    timing_jitter_s: float
    articulation_gap_s: float
    breath_every_s: float
    intonation_sd_semitones: float
    drift_semitones_per_10s: float
    vibrato_rate_hz: float
    vibrato_depth_semitones: float
    glide_s: float
    attack_s: float
    release_s: float
    breath_level: float
    hiss_db: float
    wrong_note_probability: float = 0.0
    missed_note_probability: float = 0.0
    octave_jump_probability: float = 0.0

    def __post_init__(self):
        if self.voice not in VOICES:
            raise ValueError(f"voice {self.voice!r} is not one of {VOICES}")
        if self.tempo_factor <= 0 or self.lead_in_s <= 0 or self.formant_scale <= 0:
            raise ValueError("tempo_factor, lead_in_s and formant_scale must be positive")
        mistakes = (self.wrong_note_probability, self.missed_note_probability,
                    self.octave_jump_probability)
        if min(mistakes) < 0 or sum(mistakes) > 1:
            raise ValueError("mistake probabilities must be non-negative and sum to at most 1")

    @classmethod
    def sample(cls, rng: np.random.Generator) -> HumStyle:
        """Draws plausible amateur choices: any key, tempo 0.8-1.25, imperfect pitch.

        Timing jitter, intonation sd, drift, vibrato rate and depth and glide come from
        one clip of `singing_stats.load()` drawn at random (an empirical bootstrap, so
        they stay jointly plausible); see `_fitted` for the perturbation. The fitted
        singers sang along with an accompaniment, so they likely drift less than
        someone humming alone. Mistake probabilities cannot be fitted without scores:
        wrong notes 0-0.05, missed notes 0-0.04, octave jumps 0-0.02.
        """
        voice = str(rng.choice(VOICES, p=_VOICE_PROBABILITIES))
        if voice == "whistle":
            f0_centre_midi = rng.uniform(83.0, 89.0)
            formant_scale = 1.0
            breath_level = rng.uniform(0.05, 0.2)
        elif rng.random() < 0.5:  # female
            f0_centre_midi = rng.uniform(60.0, 65.0)
            formant_scale = rng.uniform(1.1, 1.2)
            breath_level = rng.uniform(0.01, 0.06)
        else:
            f0_centre_midi = rng.uniform(49.0, 53.0)
            formant_scale = rng.uniform(0.95, 1.05)
            breath_level = rng.uniform(0.01, 0.06)
        stats = singing_stats.load()
        clip = int(rng.integers(len(stats.clips)))
        return cls(
            voice=voice,
            transpose_semitones=rng.uniform(-6.0, 6.0),
            f0_centre_midi=f0_centre_midi,
            formant_scale=formant_scale,
            tempo_factor=float(np.exp(rng.uniform(np.log(0.8), np.log(1.25)))),
            lead_in_s=rng.uniform(0.1, 0.5),
            timing_jitter_s=_fitted(stats.timing_jitter_s, clip, rng),
            articulation_gap_s=rng.uniform(0.01, 0.06),
            breath_every_s=rng.uniform(3.0, 6.0),
            intonation_sd_semitones=_fitted(stats.intonation_sd_semitones, clip, rng),
            drift_semitones_per_10s=_fitted(stats.drift_semitones_per_10s, clip, rng,
                                            additive=True),
            vibrato_rate_hz=_fitted(stats.vibrato_rate_hz, clip, rng),
            vibrato_depth_semitones=_fitted(stats.vibrato_depth_semitones, clip, rng),
            glide_s=_fitted(stats.glide_s, clip, rng),
            attack_s=rng.uniform(0.02, 0.06),
            release_s=rng.uniform(0.03, 0.1),
            breath_level=breath_level,
            hiss_db=rng.uniform(-70.0, -50.0),
            wrong_note_probability=rng.uniform(0.0, 0.05),
            missed_note_probability=rng.uniform(0.0, 0.04),
            octave_jump_probability=rng.uniform(0.0, 0.02),
        )


def _fitted(values: np.ndarray, clip: int, rng: np.random.Generator, *,
            additive: bool = False) -> float:
    """One clip's estimate of a fitted statistic, perturbed a little.

    A clip without an estimate (NaN) borrows a random clip's. The value is multiplied by
    exp(N(0, 0.1)) (about +-10%), or for a signed statistic (additive=True) shifted by
    N(0, 0.05), then clipped to the range the clips span.

    Args:
        values: float64 array (n_clips,): the statistic per clip, NaN where missing.
        clip: index of the chosen clip.
    """
    known = values[np.isfinite(values)]
    value = values[clip] if np.isfinite(values[clip]) else rng.choice(known)
    value = value + rng.normal(0.0, 0.05) if additive else value * np.exp(rng.normal(0.0, 0.1))
    return float(np.clip(value, known.min(), known.max()))


@dataclasses.dataclass(frozen=True, eq=False)
class Hum:
    """A synthetic query and where in the song each of its instants belongs.

    The time map is piecewise linear through the knots: hum time 0, every note onset, the
    last note's nominal end, and the end of the audio. Both knot arrays strictly increase;
    song times before the first onset may be negative.

    Attributes:
        audio: float32 array (n_samples,), mono, peak 0.9.
        sample_rate_hz: sample rate of `audio`.
        knots_hum_s: float64 array (n_notes + 3,), hum seconds.
        knots_song_s: float64 array (n_notes + 3,), the song seconds they map to.
        onsets_hum_s: float64 array (n_notes,), hum second at which each note starts.
        pitch_offset_semitones: transposition plus octave placement added to every note
            (before intonation errors, drift and vibrato).
    """

    audio: np.ndarray
    sample_rate_hz: int
    knots_hum_s: np.ndarray
    knots_song_s: np.ndarray
    onsets_hum_s: np.ndarray
    pitch_offset_semitones: float

    def song_time(self, hum_t_s: np.ndarray) -> np.ndarray:
        """float64 array like `hum_t_s`: song seconds; held constant beyond the audio."""
        return np.interp(hum_t_s, self.knots_hum_s, self.knots_song_s)

    def hum_time(self, song_t_s: np.ndarray) -> np.ndarray:
        """float64 array like `song_t_s`: hum seconds, the inverse of `song_time`."""
        return np.interp(song_t_s, self.knots_song_s, self.knots_hum_s)


def synthesize_hum(notes: Sequence[Note], style: HumStyle, sample_rate_hz: int,
                   rng: np.random.Generator) -> Hum:
    """Hums a contiguous excerpt of a melody the way `style` says.

    Args:
        notes: monophonic notes with strictly increasing onsets, in song seconds (the
            excerpt need not start at 0).
        style: the query's global choices.
        sample_rate_hz: output sample rate.
        rng: source of the per-note randomness.

    Returns:
        The audio and its time map; hum time 0 is `style.lead_in_s` hum seconds before
        the first note's onset. Mistakes change pitches and the envelope only: a missed
        note keeps its onset and its knot in the time map.
    """
    if not notes:
        raise ValueError("no notes to hum")
    timbre = _TIMBRES[style.voice]
    song_on = np.array([n.start_s for n in notes], dtype=np.float64)
    song_off = np.array([n.end_s for n in notes], dtype=np.float64)
    if np.any(np.diff(song_on) <= 0) or np.any(song_off <= song_on):
        raise ValueError("notes need strictly increasing onsets and positive durations")
    count = song_on.size
    tempo = style.tempo_factor

    # Onsets: scaled song onsets plus jitter; no interval shrinks below half its size.
    nominal = style.lead_in_s + (song_on - song_on[0]) / tempo
    onsets = nominal + rng.normal(0.0, style.timing_jitter_s, count)
    onsets[0] = style.lead_in_s
    for i in range(1, count):
        onsets[i] = max(onsets[i], onsets[i - 1] + 0.5 * (nominal[i] - nominal[i - 1]))

    # Ends: the scaled duration, cut at the next onset, shortened by articulation and
    # breath gaps, never below 60% of its length.
    duration = (song_off - song_on) / tempo
    next_onsets = np.append(onsets[1:], np.inf)
    sounded = np.minimum(duration, next_onsets - onsets)
    gaps = style.articulation_gap_s * rng.uniform(0.5, 1.5, count) + timbre.closure_s
    breath_gaps = rng.uniform(0.15, 0.3, count)
    breath_after = style.breath_every_s * rng.uniform(0.7, 1.3, count)
    sung_s = 0.0  # singing since the last rest or breath
    for i in range(count - 1):
        sung_s += next_onsets[i] - onsets[i]
        if next_onsets[i] - onsets[i] - sounded[i] > 0.15:  # a rest is breath enough
            sung_s = 0.0
        elif sung_s > breath_after[i]:
            gaps[i] += breath_gaps[i]
            sung_s = 0.0
    ends = onsets + np.maximum(sounded - gaps, 0.6 * sounded)

    pitches = np.array([n.pitch for n in notes], dtype=np.float64)
    pitch_offset = _pitch_offset(pitches, style)
    note_midi = pitches + pitch_offset + rng.normal(0.0, style.intonation_sd_semitones, count)

    # Mistakes. The draws do not depend on the probabilities, so the same generator gives
    # the same hum but for the mistakes.
    kind = np.searchsorted(np.cumsum([style.octave_jump_probability, style.wrong_note_probability,
                                      style.missed_note_probability]),
                           rng.random(count), side="right")
    octave_by = rng.choice([-12.0, 12.0], count)
    wrong_by = rng.choice([-2.0, -1.0, 1.0, 2.0], count)
    held = rng.random(count) < 0.5
    note_midi += octave_by * (kind == 0) + wrong_by * (kind == 1)
    missed = kind == 2
    missed[0] = False
    # owner[i]: the sung note whose sound covers note i (itself, or the one held through
    # it), -1 where the voice is silent for it.
    owner = np.arange(count)
    segment_ends = ends.copy()
    for i in np.flatnonzero(missed):
        owner[i] = owner[i - 1] if held[i] and owner[i - 1] >= 0 else -1
        if owner[i] >= 0:
            note_midi[i] = note_midi[i - 1]
            segment_ends[owner[i]] = ends[i]
    starts_sound = owner == np.arange(count)
    sound_onsets = onsets[np.where(owner >= 0, owner, np.arange(count))]

    last_end = onsets[-1] + duration[-1]
    total_s = max(last_end, ends[-1] + style.release_s) + rng.uniform(0.2, 0.4)
    n_samples = int(np.ceil(total_s * sample_rate_hz))
    total_s = n_samples / sample_rate_hz
    t = np.arange(n_samples) / sample_rate_hz
    current = np.maximum(np.searchsorted(onsets, t, side="right") - 1, 0)
    midi = note_midi[current]

    # Portamento between connected notes, a scoop from below into a note after a rest.
    glides = style.glide_s * rng.uniform(0.6, 1.4, count)
    scoops = rng.uniform(0.3, 1.0, count) * (rng.random(count) < 0.5)
    for i in np.flatnonzero(starts_sound):
        connected = i > 0 and owner[i - 1] >= 0 and onsets[i] - segment_ends[owner[i - 1]] < 0.1
        if connected:
            begin = max(onsets[i] - 0.3 * glides[i], 0.5 * (onsets[i - 1] + onsets[i]))
            start_midi = note_midi[i - 1]
        else:
            begin = onsets[i]
            start_midi = note_midi[i] - scoops[i]
        finish = min(begin + glides[i], 0.5 * (onsets[i] + next_onsets[i]), total_s)
        a, b = int(begin * sample_rate_hz), int(finish * sample_rate_hz)
        if b > a:
            shape = 0.5 - 0.5 * np.cos(np.pi * np.arange(b - a) / (b - a))
            midi[a:b] = start_midi + (note_midi[i] - start_midi) * shape

    f0_hz = _expressive_f0(midi, t - sound_onsets[current], style, sample_rate_hz, rng)
    amplitude = _envelope(onsets[starts_sound], segment_ends[starts_sound], style, n_samples,
                          sample_rate_hz, rng)
    audio = _render(f0_hz, amplitude, onsets[starts_sound], style, sample_rate_hz, rng)

    knots_hum = np.concatenate([[0.0], onsets, [last_end, total_s]])
    knots_song = np.concatenate([
        [song_on[0] - style.lead_in_s * tempo], song_on,
        [song_off[-1], song_off[-1] + (total_s - last_end) * tempo]])
    return Hum(audio=audio, sample_rate_hz=sample_rate_hz, knots_hum_s=knots_hum,
               knots_song_s=knots_song, onsets_hum_s=onsets,
               pitch_offset_semitones=pitch_offset)


def pitch_track_hum(f0_midi: np.ndarray, frame_rate_hz: float, style: HumStyle,
                    sample_rate_hz: int, rng: np.random.Generator, *,
                    first_frame_s: float = 0.0) -> np.ndarray:
    """Renders a frame-wise pitch track in the voice of `style`, keeping its timing.

    The track is transposed and placed in the style's register like notes are, and gets
    the style's drift, vibrato (fading in after each voiced onset) and f0 jitter; each
    voiced run is one syllable. Tempo, onset jitter, intonation errors, gaps and glides
    belong to notes and are not applied: the track carries its own.

    Args:
        f0_midi: float array (n_frames,): MIDI pitch per frame, 0 where unvoiced.
        frame_rate_hz: frames per second.
        style: the voice and its choices.
        sample_rate_hz: output sample rate.
        rng: source of randomness.
        first_frame_s: time at which frame 0 is centred (0.02 for MIR-1K .pv labels).

    Returns:
        float32 array (round((first_frame_s + (n_frames - 0.5) / frame_rate_hz) *
        sample_rate_hz),): mono, peak 0.9, aligned with the track.
    """
    track = np.asarray(f0_midi, dtype=np.float64)
    voiced = track > 0
    if not voiced.any():
        raise ValueError("the pitch track has no voiced frame")
    frame_t = first_frame_s + np.arange(track.size) / frame_rate_hz
    n_samples = int(round((first_frame_s + (track.size - 0.5) / frame_rate_hz) * sample_rate_hz))
    t = np.arange(n_samples) / sample_rate_hz
    # Unvoiced frames take their voiced neighbours' pitch, so the phase runs on smoothly.
    filled = np.interp(frame_t, frame_t[voiced], track[voiced])
    midi = np.interp(t, frame_t, filled) + _pitch_offset(track[voiced], style)

    edges = np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]]))
    half_frame = 0.5 / frame_rate_hz
    starts = np.maximum(frame_t[np.flatnonzero(edges == 1)] - half_frame, 0.0)
    ends = frame_t[np.flatnonzero(edges == -1) - 1] + half_frame
    current = np.maximum(np.searchsorted(starts, t, side="right") - 1, 0)

    f0_hz = _expressive_f0(midi, t - starts[current], style, sample_rate_hz, rng)
    amplitude = _envelope(starts, ends, style, n_samples, sample_rate_hz, rng)
    return _render(f0_hz, amplitude, starts, style, sample_rate_hz, rng)


def _pitch_offset(pitches_midi: np.ndarray, style: HumStyle) -> float:
    """Semitones added to every pitch: the transposition plus the octaves that bring the
    centre of the transposed pitches nearest the style's register."""
    centre = float(np.mean(np.percentile(pitches_midi, [5.0, 95.0]))) + style.transpose_semitones
    return style.transpose_semitones + 12.0 * round((style.f0_centre_midi - centre) / 12.0)


def _smooth_noise(n_samples: int, sample_rate_hz: int, bandwidth_hz: float,
                  rng: np.random.Generator) -> np.ndarray:
    """float64 array (n_samples,): Gaussian values at 2 * bandwidth_hz per second,
    linearly interpolated; standard deviation a little below 1."""
    step = sample_rate_hz / (2.0 * bandwidth_hz)
    knots = rng.standard_normal(int(n_samples / step) + 2)
    return np.interp(np.arange(n_samples) / step, np.arange(knots.size), knots)


def _expressive_f0(midi: np.ndarray, since_onset_s: np.ndarray, style: HumStyle,
                   sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """Adds vibrato, drift and jitter to a pitch contour.

    Args:
        midi: float64 array (n_samples,): intended pitch per sample, in MIDI semitones.
        since_onset_s: float64 array (n_samples,): seconds since the current note or
            syllable began (vibrato fades in on sustained notes only).

    Returns:
        float64 array (n_samples,): f0 in Hz.
    """
    n = midi.size
    rate = style.vibrato_rate_hz * (1.0 + 0.05 * _smooth_noise(n, sample_rate_hz, 2.0, rng))
    phase = 2.0 * np.pi * np.cumsum(rate) / sample_rate_hz + rng.uniform(0.0, 2.0 * np.pi)
    lo, hi = _VIBRATO_DELAY_S
    weight = np.clip((since_onset_s - lo) / (hi - lo), 0.0, 1.0)
    t = np.arange(n) / sample_rate_hz
    contour = (midi + style.vibrato_depth_semitones * weight * np.sin(phase)
               + style.drift_semitones_per_10s * t / 10.0)
    jitter = 1.0 + 0.001 * _smooth_noise(n, sample_rate_hz, 50.0, rng)
    return 440.0 * 2.0 ** ((contour - 69.0) / 12.0) * jitter


def _envelope(starts_s: np.ndarray, ends_s: np.ndarray, style: HumStyle, n_samples: int,
              sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """Amplitude of the voice: one shaped segment per note or syllable.

    Each segment rises over the attack (after a weaker consonant murmur where the voice
    has one), sits at a level drawn per segment (sd 1.5 dB) that sags by up to 3 dB, and
    falls over the release after its end; where segments overlap the louder one wins.
    For voices with a consonant closure the release stops at the next onset.

    Args:
        starts_s, ends_s: float64 arrays (n_segments,): segment bounds in seconds, sorted.

    Returns:
        float64 array (n_samples,) in [0, ~1.3].
    """
    timbre = _TIMBRES[style.voice]
    count = starts_s.size
    levels = 10.0 ** (rng.normal(0.0, 1.5, count) / 20.0)
    sags = 10.0 ** (-rng.uniform(0.0, 3.0, count) / 20.0)
    releases = np.full(count, style.release_s)
    if timbre.closure_s > 0:
        releases = np.minimum(releases, np.append(starts_s[1:], np.inf) - ends_s)
    attack_s = min(style.attack_s, timbre.max_attack_s)
    amplitude = np.zeros(n_samples)
    for start, end, release, level, sag in zip(starts_s, ends_s, releases, levels, sags):
        a = int(start * sample_rate_hz)
        b = min(int((end + release) * sample_rate_hz), n_samples)
        if b <= a:
            continue
        tau = np.arange(b - a) / sample_rate_hz
        length = end - start
        rise = min(attack_s, 0.5 * length)
        shape = 0.5 - 0.5 * np.cos(np.pi * np.clip(tau / rise, 0.0, 1.0))
        shape *= timbre.onset_level + (1.0 - timbre.onset_level) * np.clip(
            (tau - timbre.onset_hold_s) / 0.03, 0.0, 1.0)
        shape *= 1.0 + (sag - 1.0) * np.clip(tau / length, 0.0, 1.0)
        if release > 0:
            shape *= 0.5 + 0.5 * np.cos(np.pi * np.clip((tau - length) / release, 0.0, 1.0))
        else:
            shape *= tau < length
        np.maximum(amplitude[a:b], level * shape, out=amplitude[a:b])
    return amplitude


def _formant_envelope(freq_hz: np.ndarray, formant_weight: np.ndarray, style: HumStyle
                      ) -> np.ndarray:
    """Spectral envelope (floor plus resonances) of the style's voice at given frequencies.

    Args:
        freq_hz: float64 array (n_blocks, n_harmonics).
        formant_weight: float64 array (n_blocks,): 1 at a consonant onset, 0 on the vowel.

    Returns:
        float64 array (n_blocks, n_harmonics), linear gain.
    """
    timbre = _TIMBRES[style.voice]
    envelope = np.full_like(freq_hz, timbre.floor)
    ratios = timbre.onset_formant_ratios or (1.0,) * len(timbre.formants)
    for (centre, bandwidth, gain), ratio in zip(timbre.formants, ratios):
        centre_hz = (centre * style.formant_scale * (1.0 + (ratio - 1.0) * formant_weight))[:, None]
        q = centre_hz / (bandwidth * style.formant_scale)
        x = freq_hz / centre_hz - centre_hz / np.maximum(freq_hz, 1.0)
        envelope += gain / np.sqrt(1.0 + (q * x) ** 2)  # 2-pole band-pass, peak 1 at centre
    return envelope


def _band_noise(n_samples: int, band_hz: tuple[float, float], sample_rate_hz: int,
                rng: np.random.Generator) -> np.ndarray:
    """float64 array (n_samples,): white noise through a 4th-order Butterworth band-pass,
    scaled to unit RMS."""
    sos = signal.butter(2, band_hz, btype="bandpass", output="sos", fs=sample_rate_hz)
    noise = signal.sosfilt(sos, rng.standard_normal(n_samples))
    return noise / max(float(np.sqrt(np.mean(noise ** 2))), 1e-12)


def _render(f0_hz: np.ndarray, amplitude: np.ndarray, onsets_s: np.ndarray, style: HumStyle,
            sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """The synthesis core shared by notes and pitch tracks.

    Args:
        f0_hz: float64 array (n_samples,): fundamental per sample, defined everywhere
            (also where the voice is silent).
        amplitude: float64 array (n_samples,): voice RMS per sample, 0 where silent.
        onsets_s: float64 array (n_onsets,): syllable onsets (consonants, formant
            transitions).

    Returns:
        float32 array (n_samples,): mono audio with peak 0.9.
    """
    timbre = _TIMBRES[style.voice]
    n = f0_hz.size
    block = _BLOCK_SAMPLES
    n_blocks = -(-n // block)
    padded = n_blocks * block
    f0 = np.pad(f0_hz, (0, padded - n), mode="edge")
    phase = 2.0 * np.pi * np.cumsum(f0) / sample_rate_hz + rng.uniform(0.0, 2.0 * np.pi)
    phase %= 2.0 * np.pi

    # Harmonic gains at block boundaries (n_blocks + 1 of them).
    boundary_t = np.arange(n_blocks + 1) * block / sample_rate_hz
    boundary_f0 = np.append(f0[::block], f0[-1])
    formant_weight = np.zeros(n_blocks + 1)
    if timbre.onset_formant_ratios:
        for onset in onsets_s:
            since = boundary_t - onset
            near = (since > -timbre.closure_s - 0.01) & (since < timbre.transition_s)
            formant_weight[near] = np.maximum(
                formant_weight[near], np.clip(1.0 - since[near] / timbre.transition_s, 0.0, 1.0))
    ceiling_hz = _MAX_HARMONIC_FRACTION * sample_rate_hz
    fade_hz = 0.05 * sample_rate_hz
    n_harmonics = max(int(ceiling_hz / max(boundary_f0.min(), 40.0)), 1)
    harmonic = np.arange(1, n_harmonics + 1, dtype=np.float64)
    freq = boundary_f0[:, None] * harmonic[None, :]
    gains = (harmonic ** (timbre.tilt_db_per_octave / (20.0 * np.log10(2.0)))
             * _formant_envelope(freq, formant_weight, style)
             * np.clip((ceiling_hz - freq) / fade_hz, 0.0, 1.0))
    # Unit RMS per boundary, so the voice level is the envelope whatever f0 and formants do.
    gains /= np.maximum(np.sqrt(0.5 * np.sum(gains ** 2, axis=1, keepdims=True)), 1e-12)
    audible = np.flatnonzero(gains.max(axis=0) > 1e-4)
    gains = gains[:, :audible[-1] + 1].astype(np.float32) if audible.size else gains[:, :0]

    # Only blocks where the voice sounds are synthesized.
    block_peaks = np.pad(amplitude, (0, padded - n)).reshape(n_blocks, block).max(axis=1)
    active = np.flatnonzero(block_peaks > 0)
    block_phase = phase.reshape(n_blocks, block)[active]
    start_gain, gain_step = gains[active], gains[active + 1] - gains[active]
    previous = np.zeros(block_phase.shape, dtype=np.float32)
    current = np.sin(block_phase).astype(np.float32)
    twice_cos = (2.0 * np.cos(block_phase)).astype(np.float32)
    level, slope, scratch = np.zeros_like(current), np.zeros_like(current), np.empty_like(current)
    for k in range(gains.shape[1]):
        np.multiply(current, start_gain[:, k:k + 1], out=scratch)
        level += scratch
        np.multiply(current, gain_step[:, k:k + 1], out=scratch)
        slope += scratch
        np.multiply(twice_cos, current, out=scratch)
        scratch -= previous
        previous, current, scratch = current, scratch, previous
    ramp = (np.arange(block, dtype=np.float32) / block)[None, :]
    harmonics = np.zeros((n_blocks, block), dtype=np.float64)
    harmonics[active] = level + slope * ramp
    shimmer = 1.0 + 0.03 * _smooth_noise(n, sample_rate_hz, 30.0, rng)
    voice = harmonics.reshape(-1)[:n] * amplitude * shimmer

    if timbre.aspiration_band_hz is None:
        airy = _band_noise(n, (20.0, 150.0), sample_rate_hz, rng) * np.sqrt(2.0) * np.sin(phase[:n])
    else:
        airy = _band_noise(n, timbre.aspiration_band_hz, sample_rate_hz, rng)
    voice += style.breath_level * amplitude * airy

    if timbre.burst_level > 0 and onsets_s.size:
        burst = np.zeros(n)
        decay = np.exp(-np.arange(int(0.02 * sample_rate_hz)) / (0.004 * sample_rate_hz))
        for onset in onsets_s:
            a = int(onset * sample_rate_hz)
            span = decay[:max(n - a, 0)]
            burst[a:a + span.size] = span
        noise = _band_noise(n, timbre.burst_band_hz, sample_rate_hz, rng)
        voice += timbre.burst_level * burst * noise

    # An inhalation in every rest longer than 0.3 s, ending just before the voice returns.
    silent = np.concatenate([[0], (amplitude < _SILENCE).astype(np.int8), [0]])
    run_starts = np.flatnonzero(np.diff(silent) == 1)
    run_ends = np.flatnonzero(np.diff(silent) == -1)
    inhale = np.zeros(n)
    for a, b in zip(run_starts, run_ends):
        if b >= n or (b - a) < 0.3 * sample_rate_hz:
            continue
        length = int(min(0.6 * (b - a), 0.5 * sample_rate_hz))
        stop = b - int(0.05 * sample_rate_hz)
        inhale[stop - length:stop] = rng.uniform(0.5, 1.5) * np.sin(
            np.pi * np.arange(length) / length) ** 2
    if inhale.any():
        noise = _band_noise(n, (400.0, 3000.0), sample_rate_hz, rng)
        voice += 2.0 * style.breath_level * inhale * noise

    peak = max(float(np.max(np.abs(voice))), 1e-9)
    voice += peak * 10.0 ** (style.hiss_db / 20.0) * rng.standard_normal(n)
    return (_PEAK * voice / max(float(np.max(np.abs(voice))), 1e-12)).astype(np.float32)


def hum_excerpt(melody: Sequence[Note], rng: np.random.Generator, sample_rate_hz: int,
                min_s: float = 5.0, max_s: float = 15.0) -> tuple[Hum, float]:
    """A query as evaluations use it: a hum of min_s..max_s song seconds from a random note.

    Returns:
        (the hum, the song time in seconds where the excerpt starts).
    """
    notes, start_s = melody_excerpt(melody, rng, float(rng.uniform(min_s, max_s)))
    return synthesize_hum(notes, HumStyle.sample(rng), sample_rate_hz, rng), start_s


def melody_excerpt(melody: Sequence[Note], rng: np.random.Generator, seconds: float
                   ) -> tuple[list[Note], float]:
    """The notes of `seconds` song seconds from a random onset (the whole melody if shorter).

    Returns:
        (the notes, the song second where the excerpt starts).
    """
    onsets = np.array([n.start_s for n in melody])
    first = int(rng.integers(max(1, int(np.searchsorted(onsets, onsets[-1] - seconds)))))
    return [n for n in melody[first:] if n.start_s < onsets[first] + seconds], float(onsets[first])
