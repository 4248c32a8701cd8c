"""The seed's pitch-track path: a sung rendition, its pitch track, and a hum made from it.

Hum to Search first trained on tone-generator renditions of pitch tracks extracted from
sung melodies, then on a generator that sounded more like humming. Here the sung
rendition is synthesized from the notes (a `training.hum` voice singing "la", "da" or
"oo", with its own intonation and timing), its pitch is tracked with YIN (librosa.yin,
de Cheveigné and Kawahara 2002) behind an energy gate, and the track is played again
either by a tone generator (`tone_from_track`) or by the hum synthesizer
(`training.hum.pitch_track_hum`). Tracker mistakes (octave errors, dropouts at soft
onsets) pass into the query as they would for a real singer's track. Frames are centred
on multiples of the hop, so the rendition's hum-to-song time map holds for the result.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import librosa
import numpy as np
from scipy import ndimage

from training.hum import Hum, HumStyle, pitch_track_hum, synthesize_hum
from training.melody import Note

FRAME_RATE_HZ = 50.0  # pitch frames per second (20 ms, the MIR-1K label rate)
_FMIN_HZ, _FMAX_HZ = 65.0, 2100.0  # male humming to whistling
_WINDOW_S = 0.064
_GATE_DB = -30.0  # frames quieter than this below the loudest frame are unvoiced
_MEDIAN_FRAMES = 5
_SUNG_VOICES = ("la", "da", "oo")
_TONE_HARMONICS = (1.0, 0.3, 0.1)  # amplitudes of f0, 2 f0 and 3 f0
_TONE_RAMP_S = 0.01


def track(audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Pitch track of a monophonic voice.

    Args:
        audio: float array (n_samples,).
        sample_rate_hz: its sample rate.

    Returns:
        float64 array (1 + n_samples // hop,): MIDI pitch per frame, 0 where unvoiced;
        frame i is centred on sample i * hop, hop = sample_rate_hz / FRAME_RATE_HZ.
    """
    hop = int(round(sample_rate_hz / FRAME_RATE_HZ))
    window = int(2 ** np.ceil(np.log2(_WINDOW_S * sample_rate_hz)))
    audio = np.asarray(audio, dtype=np.float32)
    f0_hz = librosa.yin(audio, fmin=_FMIN_HZ, fmax=_FMAX_HZ, sr=sample_rate_hz,
                        frame_length=window, hop_length=hop, center=True, pad_mode="constant")
    rms = librosa.feature.rms(y=audio, frame_length=window, hop_length=hop, center=True,
                              pad_mode="constant")[0]
    voiced = rms > rms.max(initial=0.0) * 10.0 ** (_GATE_DB / 20.0)
    midi = ndimage.median_filter(librosa.hz_to_midi(f0_hz), size=_MEDIAN_FRAMES, mode="nearest")
    return np.where(voiced, midi, 0.0)


def track_at(audio: np.ndarray, sample_rate_hz: int, times_s: np.ndarray) -> np.ndarray:
    """The pitch track of a monophonic voice read at given instants.

    Args:
        audio: float array (n_samples,), the clean voice.
        times_s: float array (n,): seconds from the start of `audio`, e.g. frontend frame centres.

    Returns:
        float32 array (n,): MIDI pitch (linearly interpolated between voiced frames), 0 where
        the nearest track frame is unvoiced or beyond the audio.
    """
    f0 = track(audio, sample_rate_hz)
    position = np.asarray(times_s, dtype=np.float64) * FRAME_RATE_HZ
    nearest = np.clip(np.round(position).astype(np.int64), 0, f0.size - 1)
    lo = np.clip(np.floor(position).astype(np.int64), 0, f0.size - 1)
    hi = np.minimum(lo + 1, f0.size - 1)
    both = (f0[lo] > 0) & (f0[hi] > 0)
    frac = np.clip(position - lo, 0.0, 1.0)
    pitch = np.where(both, f0[lo] * (1 - frac) + f0[hi] * frac, f0[nearest])
    inside = (position >= 0) & (position <= f0.size - 1)
    return np.where(inside & (f0[nearest] > 0), pitch, 0.0).astype(np.float32)


def tone_from_track(f0_midi: np.ndarray, frame_rate_hz: float, sample_rate_hz: int,
                    transpose_semitones: float, rng: np.random.Generator) -> np.ndarray:
    """The seed's first generator: a plain tone that follows a pitch track.

    Args:
        f0_midi: float array (n_frames,): MIDI pitch per frame (centred on i / frame_rate_hz
            seconds), 0 where unvoiced.
        transpose_semitones: added to every voiced frame.

    Returns:
        float32 array (round(n_frames / frame_rate_hz * sample_rate_hz),), peak 0.9.
    """
    track_midi = np.asarray(f0_midi, dtype=np.float64)
    voiced = track_midi > 0
    if not voiced.any():
        raise ValueError("the pitch track has no voiced frame")
    n = int(round(track_midi.size / frame_rate_hz * sample_rate_hz))
    frame_t = np.arange(track_midi.size) / frame_rate_hz
    t = np.arange(n) / sample_rate_hz
    filled = np.interp(frame_t, frame_t[voiced], track_midi[voiced]) + transpose_semitones
    f0_hz = 440.0 * 2.0 ** ((np.interp(t, frame_t, filled) - 69.0) / 12.0)
    phase = 2.0 * np.pi * np.cumsum(f0_hz) / sample_rate_hz + rng.uniform(0.0, 2.0 * np.pi)
    gate = np.interp(t, frame_t, voiced.astype(np.float64))
    ramp = max(int(_TONE_RAMP_S * sample_rate_hz), 1)
    gate = np.convolve(gate, np.ones(ramp) / ramp, mode="same")
    tone = sum(a * np.sin(k * phase) * (k * f0_hz < 0.45 * sample_rate_hz)
               for k, a in enumerate(_TONE_HARMONICS, 1))
    audio = tone * gate
    return (0.9 * audio / max(float(np.max(np.abs(audio))), 1e-12)).astype(np.float32)


def track_hum(notes: Sequence[Note], style: HumStyle, sample_rate_hz: int,
              rng: np.random.Generator, tone: bool) -> Hum:
    """A query made along the seed's path: sing the notes, track the pitch, re-render.

    Args:
        notes: the melody excerpt (song seconds).
        style: the query's voice and choices; the rendition is sung ("la", "da" or "oo")
            with the same key, tempo and deviations, then re-rendered in `style`'s voice
            (or as a tone).
        tone: True for the tone generator, False for the hum synthesizer.

    Returns:
        A Hum whose audio is the re-rendered track and whose time map is the rendition's.
    """
    sung_style = dataclasses.replace(style, voice=str(rng.choice(_SUNG_VOICES)))
    sung = synthesize_hum(notes, sung_style, sample_rate_hz, rng)
    f0 = track(sung.audio, sample_rate_hz)
    if tone:  # already in the rendition's key and register
        audio = tone_from_track(f0, FRAME_RATE_HZ, sample_rate_hz, 0.0, rng)
    else:  # the track carries key, drift and vibrato already: the re-render adds none
        plain = dataclasses.replace(style, transpose_semitones=0.0, drift_semitones_per_10s=0.0,
                                    vibrato_depth_semitones=0.0)
        audio = pitch_track_hum(f0, FRAME_RATE_HZ, plain, sample_rate_hz, rng, first_frame_s=0.0)
    audio = np.pad(audio, (0, max(sung.audio.size - audio.size, 0)))[:sung.audio.size]
    return dataclasses.replace(sung, audio=audio)
