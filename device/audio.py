"""Audio input: decode any supported file to mono float32 at the frontend's rate, and
resample streams block by block with the same filter as whole files."""
from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile
from scipy import signal


class AudioError(Exception):
    """An input that cannot be read as audio; the message is one line for the user."""


def to_mono(audio: np.ndarray) -> np.ndarray:
    """float32 (n_samples,) from (n_samples,) or (n_samples, n_channels) by averaging channels."""
    audio = np.asarray(audio, dtype=np.float32)
    return audio.mean(axis=1) if audio.ndim == 2 else audio


RESAMPLE_WINDOW = ("kaiser", 5.0)  # the FIR design window of resample and StreamResampler


def resample(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Polyphase resampling with scipy's Kaiser-windowed FIR (explicit, never implicit).

    Args:
        audio: float32 (n_samples,) at from_hz.

    Returns:
        float32 (ceil(n_samples * to_hz / from_hz),) at to_hz.
    """
    if from_hz == to_hz:
        return np.asarray(audio, dtype=np.float32)
    g = math.gcd(int(from_hz), int(to_hz))
    out = signal.resample_poly(audio, to_hz // g, from_hz // g, window=RESAMPLE_WINDOW)
    return out.astype(np.float32)


class StreamResampler:
    """`resample` block by block: push blocks of samples, get the output they complete.

    The filter is the one `resample_poly` designs for `resample` (a Kaiser-windowed
    low-pass of 2 * 10 * max(up, down) + 1 taps, centred), applied to the same zero-padded
    signal, so concatenating every push's output and `flush()` equals
    `resample(whole input)` whatever the block sizes. Each output sample is emitted as
    soon as the input it depends on has arrived: the delay is 10 * max(up, down) / up
    input samples (about 0.6 ms from 48 kHz to 16 kHz).

    Args:
        from_hz: input rate in Hz.
        to_hz: output rate in Hz.
    """

    def __init__(self, from_hz: int, to_hz: int):
        self.from_hz, self.to_hz = int(from_hz), int(to_hz)
        g = math.gcd(self.from_hz, self.to_hz)
        self._up, self._down = self.to_hz // g, self.from_hz // g
        rate = max(self._up, self._down)
        self._half = 10 * rate  # as resample_poly: half the filter length, in upsampled samples
        self._taps = np.ones(1, dtype=np.float32)  # equal rates: push passes blocks through
        if self._up != self._down:
            self._taps = np.asarray(signal.firwin(2 * self._half + 1, 1.0 / rate, window=RESAMPLE_WINDOW),
                                    dtype=np.float32)
            self._taps *= self._up
        self.reset()

    def reset(self) -> None:
        """Forgets the stream: the next push starts a new signal."""
        self._buffer = np.zeros(0, dtype=np.float32)
        self._first = 0  # absolute input index of self._buffer[0]
        self._received = 0  # input samples pushed
        self._emitted = 0  # output samples returned
        self._flushed = False

    def _first_input(self, out_index: int) -> int:
        """Earliest input sample that output `out_index` depends on (may be negative)."""
        return -((self._half - out_index * self._down) // self._up)  # ceil division

    def _emit(self, end: int) -> np.ndarray:
        """Output samples [emitted, end) from the buffer; drops input no longer needed."""
        if end <= self._emitted:
            return np.zeros(0, dtype=np.float32)
        up, down = self._up, self._down
        start = max(self._first, self._first_input(self._emitted), 0)
        # upfirdn on the buffered segment with `pad` leading zero taps puts output r of the
        # segment at absolute output r + shift, so the samples match the one-shot filter.
        shift = (start * up - self._half) // down
        pad = start * up - self._half - shift * down
        taps = np.concatenate([np.zeros(pad, dtype=np.float32), self._taps])
        out = signal.upfirdn(taps, self._buffer[start - self._first:], up, down)
        out = out[self._emitted - shift:end - shift].astype(np.float32)
        self._emitted = end
        keep = max(0, self._first_input(end))
        if keep > self._first:
            self._buffer = self._buffer[keep - self._first:]
            self._first = keep
        return out

    def push(self, block: np.ndarray) -> np.ndarray:
        """Adds input samples.

        Args:
            block: float32 (n,) at from_hz, any n >= 0.

        Returns:
            float32 (m,) at to_hz: every output sample whose input is now complete.
        """
        if self._flushed:
            raise ValueError("StreamResampler: push after flush; call reset() first")
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        if self._up == self._down:
            self._received += block.size
            return block.copy()
        self._buffer = np.concatenate([self._buffer, block])
        self._received += block.size
        end = (self._received * self._up - 1 - self._half) // self._down + 1
        return self._emit(end)

    def flush(self) -> np.ndarray:
        """Ends the stream: the remaining output, as if zeros followed the last input.

        Returns:
            float32 (m,): the rest of the ceil(n_in * to_hz / from_hz) output samples.
        """
        if self._flushed or self._up == self._down:
            self._flushed = True
            return np.zeros(0, dtype=np.float32)
        self._flushed = True
        total = -((-self._received * self._up) // self._down)
        self._buffer = np.concatenate([self._buffer, np.zeros(self._half // self._up + 2, dtype=np.float32)])
        return self._emit(total)


def _decode_with_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    """Fallback for formats libsndfile lacks: ffmpeg decodes to 32-bit float at the file's rate."""
    if shutil.which("ffmpeg") is None:
        raise AudioError(f"{path}: format not supported by libsndfile and ffmpeg is not installed")
    probe = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-"],
        capture_output=True, check=False)
    if probe.returncode != 0 or not probe.stdout:
        raise AudioError(f"{path}: cannot decode audio ({probe.stderr.decode(errors='replace').strip()[:200]})")
    info = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=sample_rate",
         "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=False)
    try:
        rate = int(info.stdout.strip().split()[0])
    except (ValueError, IndexError) as exc:
        raise AudioError(f"{path}: cannot read the sample rate") from exc
    return np.frombuffer(probe.stdout, dtype=np.float32).copy(), rate


def load_audio(path: str | Path, sample_rate_hz: int) -> np.ndarray:
    """Decode a file (wav, flac, ogg, mp3, ...) to mono float32 at sample_rate_hz.

    The file's own rate is read from the file and converted explicitly.

    Raises:
        AudioError: missing, empty or undecodable file (one-line message).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=False)
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        data, rate = _decode_with_ffmpeg(path)
    audio = to_mono(data)
    if audio.size == 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"{path}: the audio contains NaN or infinite samples")
    return resample(audio, int(rate), sample_rate_hz)
