"""Audio input: decode any supported file to mono float32 at the frontend's rate, and
resample streams block by block with the same filter as whole files."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
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


MAX_SECONDS = 1200.0  # the longest file read (20 minutes): its samples and frames fit a small board
MIN_RATE_HZ, MAX_RATE_HZ = 1000, 384_000  # sample rates read
BLOCK_SAMPLES = 1 << 18  # decoded samples (all channels) per read
FFMPEG_CPU_S = 120  # ffmpeg's CPU time limit on one file


def check_rate(rate: float, name: str) -> int:
    """The file's sample rate in Hz if this tool reads it, else AudioError."""
    if not (isinstance(rate, (int, float)) and float(rate).is_integer() and MIN_RATE_HZ <= rate <= MAX_RATE_HZ):
        raise AudioError(f"{name}: sample rate {rate} Hz is outside the {MIN_RATE_HZ}..{MAX_RATE_HZ} Hz "
                         "this tool reads")
    return int(rate)


class _Limit:
    """Mono blocks at the file's rate in, float32 blocks at `to_hz` out; refuses NaN,
    infinities and more than max_seconds."""

    def __init__(self, rate: int, to_hz: int, max_seconds: float, name: str):
        self.resampler = StreamResampler(rate, to_hz)
        self.limit = int(max_seconds * rate)
        self.name, self.max_seconds = name, max_seconds
        self.received = 0

    def push(self, mono: np.ndarray) -> np.ndarray:
        if not np.all(np.isfinite(mono)):
            raise AudioError(f"{self.name}: the audio contains NaN or infinite samples")
        self.received += mono.size
        if self.received > self.limit:
            raise AudioError(f"{self.name}: longer than the {_minutes(self.max_seconds)} this tool reads; "
                             "cut it into shorter files")
        return self.resampler.push(mono)

    def flush(self) -> np.ndarray:
        if self.received == 0:
            raise AudioError(f"{self.name}: the file holds no audio samples")
        return self.resampler.flush()


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def _libsndfile_blocks(handle: soundfile.SoundFile, limit: _Limit, name: str) -> Iterator[np.ndarray]:
    """Reads blocks until the end of the file (never trusting the header's frame count)."""
    frames = max(1, BLOCK_SAMPLES // handle.channels)
    while True:
        try:
            block = handle.read(frames, dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError, ValueError, MemoryError) as exc:
            why = getattr(exc, "error_string", str(exc))
            raise AudioError(f"{name}: damaged or truncated {handle.format} file "
                             f"(libsndfile: {' '.join(why.split())[:120]})") from exc
        if block.shape[0]:
            yield limit.push(block.mean(axis=1, dtype=np.float32))
        if block.shape[0] < frames:
            yield limit.flush()
            return


def _ffmpeg_blocks(path: Path, to_hz: int, max_seconds: float, name: str, why: str) -> Iterator[np.ndarray]:
    """Formats libsndfile lacks: ffmpeg decodes to 32-bit float at the file's own rate,
    streamed through the same resampler (never more than max_seconds is decoded)."""
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        raise AudioError(f"{name}: cannot decode audio: libsndfile does not read it ({why}) and ffmpeg, "
                         "for other formats, is not installed")
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=sample_rate",
         "-of", "csv=p=0", str(path)], capture_output=True, text=True, errors="replace", check=False,
        timeout=60)
    try:
        rate = float(probe.stdout.strip().split()[0])
    except (ValueError, IndexError) as exc:
        raise AudioError(f"{name}: cannot decode audio (libsndfile: {why}; ffmpeg finds no audio stream"
                         f"{': ' + ' '.join(probe.stderr.split())[:160] if probe.stderr.strip() else ''})") from exc
    limit = _Limit(check_rate(rate, name), to_hz, max_seconds, name)
    with tempfile.TemporaryFile() as errors:
        ffmpeg = subprocess.Popen(
            ["ffmpeg", "-nostdin", "-v", "error", "-timelimit", str(FFMPEG_CPU_S), "-i", str(path),
             "-t", f"{max_seconds + 1:.0f}", "-f", "f32le", "-ac", "1", "-"],
            stdout=subprocess.PIPE, stderr=errors)
        try:
            tail = b""
            while chunk := ffmpeg.stdout.read(4 * BLOCK_SAMPLES):
                chunk = tail + chunk
                usable = len(chunk) - len(chunk) % 4
                chunk, tail = chunk[:usable], chunk[usable:]
                yield limit.push(np.frombuffer(chunk, dtype="<f4"))
        except BaseException:  # refused, or the reader stopped early
            ffmpeg.kill()
            raise
        finally:
            ffmpeg.stdout.close()
            ffmpeg.wait()
        errors.seek(0)
        message = " ".join(errors.read(2000).decode(errors="replace").split())[:200]
    if ffmpeg.returncode != 0 or (message and limit.received == 0):
        raise AudioError(f"{name}: cannot decode audio (ffmpeg: {message or f'exit status {ffmpeg.returncode}'})")
    yield limit.flush()


def audio_blocks(path: str | Path, sample_rate_hz: int, max_seconds: float = MAX_SECONDS
                 ) -> Iterator[np.ndarray]:
    """A file (wav, flac, ogg, mp3, ...) decoded block by block to mono float32 at
    sample_rate_hz: whatever the header claims, no more than a block of the file is held
    at once. The file's own rate is read from the file and converted explicitly
    (StreamResampler: the blocks concatenated equal `resample` of the whole file).

    Raises (while iterating):
        AudioError: missing, not a regular file, empty, undecodable, damaged, longer than
            max_seconds or at a sample rate this tool does not read (one-line message).
    """
    path = Path(path)
    name = printable(str(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
    except FileNotFoundError:
        raise AudioError(f"{name}: no such file") from None
    except OSError as exc:
        raise AudioError(f"{name}: cannot open ({exc.strerror})") from None
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode) or status.st_size == 0:
        os.close(fd)
        if stat.S_ISDIR(status.st_mode):
            raise AudioError(f"{name}: is a directory, not an audio file")
        if not stat.S_ISREG(status.st_mode):
            raise AudioError(f"{name}: is not a regular file (a FIFO, socket or device); give an audio file")
        raise AudioError(f"{name}: the file is empty")
    try:
        try:
            sound = soundfile.SoundFile(fd, closefd=False)  # by descriptor: the file just checked
        except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            why = " ".join(getattr(exc, "error_string", str(exc)).split())[:120]  # without "Error opening <fd>"
        else:
            with sound:
                limit = _Limit(check_rate(sound.samplerate, name), sample_rate_hz,
                               max_seconds, name)
                yield from _libsndfile_blocks(sound, limit, name)
            return
    finally:
        os.close(fd)
    yield from _ffmpeg_blocks(path, sample_rate_hz, max_seconds, name, why)


def load_audio(path: str | Path, sample_rate_hz: int, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """A whole file as mono float32 (n_samples,) at sample_rate_hz (`audio_blocks`);
    at most max_seconds * sample_rate_hz * 4 bytes (77 MB for 20 minutes at 16 kHz).

    Raises:
        AudioError: as `audio_blocks` (one-line message).
    """
    return np.concatenate(list(audio_blocks(path, sample_rate_hz, max_seconds)))


def printable(text: str) -> str:
    """`text` safe to print on one terminal line: bytes of a file name that are not UTF-8
    (surrogate escapes) as \\xNN, other unprintable characters (newlines, escape
    sequences) as Python escapes."""
    return "".join(c if c.isprintable() else f"\\x{ord(c) - 0xDC00:02x}" if "\udc80" <= c <= "\udcff"
                   else repr(c)[1:-1] for c in text)
