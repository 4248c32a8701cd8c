"""Audio input: decode any supported file to mono float32 at the frontend's rate, and
resample streams block by block with the same filter as whole files."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile
import soxr


class AudioError(Exception):
    """An input that cannot be read as audio; the message is one line for the user."""


def to_mono(audio: np.ndarray) -> np.ndarray:
    """float32 (n_samples,) from (n_samples,) or (n_samples, n_channels) by averaging channels."""
    audio = np.asarray(audio, dtype=np.float32)
    return audio.mean(axis=1) if audio.ndim == 2 else audio


RESAMPLE_QUALITY = "HQ"  # soxr's high quality: 20-bit precision, pass band to 91% of Nyquist


def resample(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Band-limited resampling with libsoxr (explicit, never implicit).

    Args:
        audio: float32 (n_samples,) at from_hz.

    Returns:
        float32 (round(n_samples * to_hz / from_hz),) at to_hz.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if from_hz == to_hz:
        return audio
    return soxr.resample(audio, int(from_hz), int(to_hz), quality=RESAMPLE_QUALITY)


class StreamResampler:
    """`resample` block by block: push blocks of samples, get the output they complete.

    libsoxr's stream has the one-shot filter and state, so concatenating every push's
    output and `flush()` equals `resample(whole input)` whatever the block sizes. Output
    comes once the filter has seen enough input (a few milliseconds behind).

    Args:
        from_hz: input rate in Hz.
        to_hz: output rate in Hz.
    """

    def __init__(self, from_hz: int, to_hz: int):
        self.from_hz, self.to_hz = int(from_hz), int(to_hz)
        self.reset()

    def reset(self) -> None:
        """Forgets the stream: the next push starts a new signal."""
        self._stream = None
        if self.from_hz != self.to_hz:
            self._stream = soxr.ResampleStream(self.from_hz, self.to_hz, 1, dtype="float32",
                                               quality=RESAMPLE_QUALITY)
        self._flushed = False

    def push(self, block: np.ndarray) -> np.ndarray:
        """Adds input samples.

        Args:
            block: float32 (n,) at from_hz, any n >= 0.

        Returns:
            float32 (m,) at to_hz: the output this input completes.
        """
        if self._flushed:
            raise ValueError("StreamResampler: push after flush; call reset() first")
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        if self._stream is None:
            return block.copy()
        return self._stream.resample_chunk(block)

    def flush(self) -> np.ndarray:
        """Ends the stream: the remaining output.

        Returns:
            float32 (m,): the rest of `resample`'s output for everything pushed.
        """
        if self._flushed or self._stream is None:
            self._flushed = True
            return np.zeros(0, dtype=np.float32)
        self._flushed = True
        return self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


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
