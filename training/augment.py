"""Pitch and tempo changes of audio: a phase vocoder, then polyphase resampling.

`time_stretch` is a phase vocoder with identity phase locking (Laroche and Dolson,
"Improved phase vocoder time-scale modification of audio", 1999). Analysis frames are
taken every hop with a periodic Hann window, centred on samples 0, hop, 2 hop, ... of the
input (window // 2 zeros are padded in front, zeros behind up to the last frame needed).
Output frame m reads the analysis spectrum at fractional frame m * factor: magnitudes
are interpolated linearly between the two neighbouring frames; the phase of each
spectral peak advances by its measured instantaneous frequency over one hop, and every
other bin keeps its analysis phase relative to the peak whose region it lies in (the
nearer peak), which keeps partials coherent. Frames are overlap-added with the same
window and divided by the summed squared windows.

Pitch changes stretch by the pitch ratio and resample back (scipy's resample_poly with
an explicit Kaiser window), so that duration and pitch change in one pass.
"""
from __future__ import annotations

import fractions

import numpy as np
from scipy import signal

_WINDOW_S = 0.064  # 1024 samples at 16 kHz, rounded to a power of two at other rates
_HOPS_PER_WINDOW = 4
_MAX_RATIO_DENOMINATOR = 1000  # pitch ratios within 0.02 semitone of the request
_RESAMPLE_WINDOW = ("kaiser", 5.0)


def time_stretch(audio: np.ndarray, factor: float, *, window_samples: int = 1024,
                 hop_samples: int = 256) -> np.ndarray:
    """Changes duration without changing pitch.

    Args:
        audio: float array (n_samples,), mono, nominally in [-1, 1].
        factor: speed-up: the output lasts n_samples / factor samples (factor > 1 is faster).
        window_samples: STFT size and window length (periodic Hann).
        hop_samples: synthesis hop, also the analysis hop between stored frames.

    Returns:
        float32 array (round(n_samples / factor),), scaled down (never clipped) if its peak
        would leave [-1, 1].
    """
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected mono audio (n_samples,), got shape {x.shape}")
    if factor <= 0:
        raise ValueError(f"factor must be positive, got {factor}")
    n_out = int(round(x.size / factor))
    if factor == 1.0:
        return _within_unit(x.copy())
    window = _hann(window_samples)
    half = window_samples // 2
    out_frames = -(-n_out // hop_samples) + 1  # output frames centred on 0, hop, ... >= n_out
    positions = np.arange(out_frames) * factor  # in analysis frames
    in_frames = int(positions[-1]) + 2  # the last position interpolates with its successor
    padded = np.zeros((in_frames - 1) * hop_samples + window_samples, dtype=np.float64)
    kept = min(x.size, padded.size - half)
    padded[half:half + kept] = x[:kept]
    frames = np.lib.stride_tricks.sliding_window_view(padded, window_samples)[::hop_samples]
    spectra = np.fft.rfft(frames[:in_frames] * window, axis=1)
    magnitude, phase = np.abs(spectra), np.angle(spectra)
    expected = 2.0 * np.pi * hop_samples * np.arange(spectra.shape[1]) / window_samples
    advance = expected + _wrap(np.diff(phase, axis=0) - expected)  # radians per hop

    bins = np.arange(spectra.shape[1])
    synthesized = np.empty((out_frames, spectra.shape[1]), dtype=np.complex128)
    previous = phase[0]
    for m, position in enumerate(positions):
        i = int(position)
        frac = position - i
        mag = (1.0 - frac) * magnitude[i] + frac * magnitude[i + 1]
        if m == 0:
            out_phase = phase[0]
        else:
            peaks = np.flatnonzero((mag[1:-1] > mag[:-2]) & (mag[1:-1] >= mag[2:])) + 1
            if peaks.size == 0:
                out_phase = previous + advance[i]
            else:
                peak_phase = previous[peaks] + advance[i, peaks]
                owner = np.searchsorted(0.5 * (peaks[:-1] + peaks[1:]), bins)
                out_phase = peak_phase[owner] + phase[i] - phase[i, peaks[owner]]
        synthesized[m] = mag * np.exp(1j * out_phase)
        previous = out_phase

    pieces = np.fft.irfft(synthesized, n=window_samples, axis=1) * window
    length = (out_frames - 1) * hop_samples + window_samples
    output, weight = np.zeros(length), np.zeros(length)
    for m in range(out_frames):
        output[m * hop_samples:m * hop_samples + window_samples] += pieces[m]
        weight[m * hop_samples:m * hop_samples + window_samples] += window ** 2
    output = output[half:half + n_out] / np.maximum(weight[half:half + n_out], 1e-3)
    return _within_unit(output.astype(np.float32))


def pitch_shift(audio: np.ndarray, sample_rate_hz: int, semitones: float) -> np.ndarray:
    """Changes pitch by `semitones`, keeping the duration.

    Args:
        audio: float array (n_samples,), mono, at sample_rate_hz.

    Returns:
        float32 array (n_samples,), peak within [-1, 1].
    """
    return transpose_and_stretch(audio, sample_rate_hz, semitones, 1.0)


def transpose_and_stretch(audio: np.ndarray, sample_rate_hz: int, semitones: float,
                          tempo_factor: float) -> np.ndarray:
    """Changes pitch and tempo in one stretch and one resampling.

    The pitch ratio 2 ** (semitones / 12) is approximated by a fraction p / q with
    q <= 1000; the audio is stretched by tempo_factor * q / p and resampled by q / p.

    Args:
        audio: float array (n_samples,), mono, at sample_rate_hz.
        sample_rate_hz: sets the phase vocoder window (64 ms, a power of two) and hop.
        semitones: pitch change, positive = higher.
        tempo_factor: speed-up; the output lasts n_samples / tempo_factor samples.

    Returns:
        float32 array (round(n_samples / tempo_factor),), peak within [-1, 1].
    """
    x = np.asarray(audio, dtype=np.float32)
    ratio = fractions.Fraction(2.0 ** (semitones / 12.0)).limit_denominator(_MAX_RATIO_DENOMINATOR)
    window = 1 << int(round(np.log2(_WINDOW_S * sample_rate_hz)))
    stretched = time_stretch(x, tempo_factor / float(ratio), window_samples=window,
                             hop_samples=window // _HOPS_PER_WINDOW)
    resampled = signal.resample_poly(stretched, ratio.denominator, ratio.numerator,
                                     window=_RESAMPLE_WINDOW, padtype="constant")
    n_out = int(round(x.size / tempo_factor))
    output = np.zeros(n_out, dtype=np.float32)
    output[:min(n_out, resampled.size)] = resampled[:n_out]
    return _within_unit(output)


def _hann(n: int) -> np.ndarray:
    """float64 array (n,): periodic Hann window."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def _wrap(radians: np.ndarray) -> np.ndarray:
    """Angles wrapped into [-pi, pi)."""
    return (radians + np.pi) % (2.0 * np.pi) - np.pi


def _within_unit(audio: np.ndarray) -> np.ndarray:
    """float32 audio divided by its peak when that peak exceeds 1."""
    peak = float(np.max(np.abs(audio), initial=0.0))
    return (audio / peak if peak > 1.0 else audio).astype(np.float32)
