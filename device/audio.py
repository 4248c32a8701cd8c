"""Audio input: decode any supported file to mono float32 at the frontend's rate."""
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


def resample(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Polyphase resampling with scipy's Kaiser-windowed FIR (explicit, never implicit).

    Args:
        audio: float32 (n_samples,) at from_hz.

    Returns:
        float32 (round(n_samples * to_hz / from_hz),) at to_hz.
    """
    if from_hz == to_hz:
        return np.asarray(audio, dtype=np.float32)
    g = math.gcd(int(from_hz), int(to_hz))
    out = signal.resample_poly(audio, to_hz // g, from_hz // g, window=("kaiser", 5.0))
    return out.astype(np.float32)


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
