"""Spectrogram frontend: the one implementation, used by the runtime and by training.

Audio (mono float32 at `sample_rate_hz`) becomes a log-frequency magnitude spectrogram
with semitone-spaced bins, then fixed-length windows normalised per window. Frames are
computed without centring: frame i covers samples [i * hop, i * hop + frame_length), so a
stream yields exactly the frames of the whole signal, in order, as soon as they are
complete.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

FFT_CHUNK_FRAMES = 128  # frames transformed at a time: about 3 MB of FFTs, whatever the input


@dataclasses.dataclass(frozen=True)
class FrontendConfig:
    """Every parameter of the frontend; the manifest stores these fields verbatim."""

    sample_rate_hz: int = 16000
    frame_length_samples: int = 2048  # FFT size; periodic Hann window of the same length
    hop_length_samples: int = 320  # 20 ms
    fmin_midi: float = 36.0  # lowest bin centre, C2 = 65.4 Hz
    bins_per_semitone: int = 2
    n_bins: int = 120  # 5 octaves: C2 .. B6 + 1/2 semitone
    floor_db: float = -80.0  # per window, values below (window max + floor_db) are clipped
    window_frames: int = 200  # 4.0 s per embedded window

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate_hz / self.hop_length_samples

    @property
    def window_seconds(self) -> float:
        return self.window_frames / self.frame_rate_hz

    def bin_centres_hz(self) -> np.ndarray:
        """float64 array (n_bins,): centre frequency of each log-frequency bin."""
        midi = self.fmin_midi + np.arange(self.n_bins) / self.bins_per_semitone
        return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@functools.lru_cache(maxsize=4)
def _filterbank(config: FrontendConfig) -> np.ndarray:
    """float32 array (frame_length // 2 + 1, n_bins): triangular log-frequency filters.

    Each filter is a triangle in log-frequency around its centre, half-width one bin;
    where FFT bins are coarser than that (low frequencies) the half-width widens to one
    FFT bin, so no filter is empty. Columns sum to 1.
    """
    fft_hz = np.arange(config.frame_length_samples // 2 + 1) * (
        config.sample_rate_hz / config.frame_length_samples)
    centres = config.bin_centres_hz()
    step = 2.0 ** (1.0 / (12.0 * config.bins_per_semitone))
    df = config.sample_rate_hz / config.frame_length_samples
    weights = np.zeros((fft_hz.size, centres.size), dtype=np.float64)
    for j, fc in enumerate(centres):
        lo = min(fc / step, fc - df)
        hi = max(fc * step, fc + df)
        rising = (fft_hz - lo) / (fc - lo)
        falling = (hi - fft_hz) / (hi - fc)
        weights[:, j] = np.clip(np.minimum(rising, falling), 0.0, None)
    weights /= weights.sum(axis=0, keepdims=True)
    return weights.astype(np.float32)


@functools.lru_cache(maxsize=4)
def _hann(n: int) -> np.ndarray:
    """Periodic Hann window, float32 (n,)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def n_frames(n_samples: int, config: FrontendConfig) -> int:
    """Number of complete frames in `n_samples` samples (no padding)."""
    if n_samples < config.frame_length_samples:
        return 0
    return 1 + (n_samples - config.frame_length_samples) // config.hop_length_samples


def log_spectrogram(audio: np.ndarray, config: FrontendConfig) -> np.ndarray:
    """Log-frequency spectrogram in dB.

    Args:
        audio: float32 array (n_samples,), mono, at config.sample_rate_hz, nominally in [-1, 1].
        config: the frontend parameters.

    Returns:
        float32 array (n_frames, n_bins): 20 * log10 of filtered magnitude, floored at -120 dB.
    """
    audio = np.asarray(audio, dtype=np.float32)
    count = n_frames(audio.size, config)
    if count == 0:
        return np.zeros((0, config.n_bins), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(
        audio, config.frame_length_samples)[::config.hop_length_samples][:count]
    out = np.empty((count, config.n_bins), dtype=np.float32)
    window, bank = _hann(config.frame_length_samples), _filterbank(config)
    for start in range(0, count, FFT_CHUNK_FRAMES):
        chunk = frames[start:start + FFT_CHUNK_FRAMES] * window
        magnitude = np.abs(np.fft.rfft(chunk, axis=1)).astype(np.float32)
        out[start:start + FFT_CHUNK_FRAMES] = magnitude @ bank
    return (20.0 * np.log10(np.maximum(out, 1e-6))).astype(np.float32)


def normalize_windows(windows_db: np.ndarray, config: FrontendConfig) -> np.ndarray:
    """Scale each window to [0, 1] relative to its own maximum.

    Args:
        windows_db: float array (..., window_frames, n_bins) of dB values.

    Returns:
        float32 array of the same shape: (dB - window max - floor_db) / -floor_db, clipped
        to [0, 1]. The maximum is taken per window over (frames, bins), never across windows.
    """
    x = np.asarray(windows_db, dtype=np.float32)
    peak = x.max(axis=(-2, -1), keepdims=True)
    return np.clip((x - peak - config.floor_db) / -config.floor_db, 0.0, 1.0)


def window_starts(total_frames: int, hop_frames: int, config: FrontendConfig) -> np.ndarray:
    """int64 array: start frames of the complete windows taken every `hop_frames` frames."""
    if total_frames < config.window_frames:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, total_frames - config.window_frames + 1, hop_frames, dtype=np.int64)


def windows(spectrogram_db: np.ndarray, hop_frames: int, config: FrontendConfig) -> np.ndarray:
    """Model inputs from a spectrogram.

    Args:
        spectrogram_db: float32 array (n_frames, n_bins) from log_spectrogram.
        hop_frames: frames between window starts.

    Returns:
        float32 array (n_windows, window_frames, n_bins), normalised per window.
    """
    starts = window_starts(spectrogram_db.shape[0], hop_frames, config)
    if starts.size == 0:
        return np.zeros((0, config.window_frames, config.n_bins), dtype=np.float32)
    stacked = np.stack([spectrogram_db[s:s + config.window_frames] for s in starts])
    return normalize_windows(stacked, config)


class FrameStream:
    """Incremental log_spectrogram: push blocks of samples, get the frames they complete.

    Concatenating every push's output equals log_spectrogram of the concatenated input,
    whatever the block sizes.
    """

    def __init__(self, config: FrontendConfig):
        self.config = config
        self._pending = np.zeros(0, dtype=np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Args: samples float32 (n,). Returns float32 (n_new_frames, n_bins) in dB."""
        self._pending = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32)])
        frames = log_spectrogram(self._pending, self.config)
        consumed = frames.shape[0] * self.config.hop_length_samples
        self._pending = self._pending[consumed:]
        return frames
