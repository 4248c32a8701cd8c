"""Microphone input: a sounddevice InputStream whose callback only queues blocks.

The PortAudio callback runs on its own thread, where an exception would be lost: it copies
the block into a queue and counts what went wrong (input overflows, blocks dropped because
the reader fell behind); the reader takes blocks from the queue, downmixes them to mono
and reports the counts. sounddevice (and PortAudio) are imported only when a device is
used, so the rest of the runtime works without them.
"""
from __future__ import annotations

import dataclasses
import queue

import numpy as np

from device.audio import to_mono


class MicrophoneError(Exception):
    """No usable input device, or no PortAudio; the message is one line for the user."""


@dataclasses.dataclass(frozen=True)
class MicrophoneConfig:
    """How the input stream is opened.

    Attributes:
        block_seconds: audio per callback block (20 ms: a window's last samples reach the
            recognizer at most this late).
        max_channels: channels opened at most (the reader averages them to mono).
        queue_seconds: audio the queue holds before the callback drops blocks (counted).
        latency: PortAudio's suggested latency ("low", "high" or seconds).
    """

    block_seconds: float = 0.02
    max_channels: int = 2
    queue_seconds: float = 30.0
    latency: str | float = "low"


@dataclasses.dataclass(frozen=True)
class InputDevice:
    """An input device as PortAudio reports it.

    Attributes:
        index: PortAudio device index (what `--device` accepts, besides a name).
        name: device name.
        host_api: e.g. "ALSA".
        channels: maximum input channels.
        default_rate_hz: the device's default sample rate, which the stream uses.
        is_default: whether it is the default input device.
    """

    index: int
    name: str
    host_api: str
    channels: int
    default_rate_hz: float
    is_default: bool


def _sounddevice():
    """The sounddevice module, or a one-line MicrophoneError saying what is missing."""
    try:
        import sounddevice
    except OSError as exc:  # sounddevice imports fine but cannot load libportaudio
        raise MicrophoneError(f"PortAudio is not available ({exc}); install libportaudio2") from exc
    except ImportError as exc:
        raise MicrophoneError("sounddevice is not installed; install the 'device' extra "
                              "(pip install 'hum-search[device]')") from exc
    return sounddevice


def input_devices() -> list[InputDevice]:
    """Every device with at least one input channel, in PortAudio's order."""
    sd = _sounddevice()
    try:
        devices, apis = sd.query_devices(), sd.query_hostapis()
        default = sd.default.device[0]
    except sd.PortAudioError as exc:
        raise MicrophoneError(f"cannot list audio devices ({exc})") from exc
    return [InputDevice(int(d["index"]), str(d["name"]), str(apis[d["hostapi"]]["name"]),
                        int(d["max_input_channels"]), float(d["default_samplerate"]),
                        int(d["index"]) == default)
            for d in devices if d["max_input_channels"] > 0]


def find_device(spec: str | None) -> InputDevice:
    """The input device that `spec` names.

    Args:
        spec: None for the default input device; a PortAudio index ("3"); or a
            case-insensitive part of a device name ("usb"), which must pick one device
            (an exact name wins over partial ones).

    Raises:
        MicrophoneError: no such input device, or an ambiguous name.
    """
    devices = input_devices()
    if not devices:
        raise MicrophoneError("no audio input device found")
    if spec is None:
        chosen = [d for d in devices if d.is_default]
        if not chosen:
            raise MicrophoneError("no default input device; choose one with --device "
                                  "(see --list-devices)")
        return chosen[0]
    text = spec.strip()
    if text.isdigit():
        chosen = [d for d in devices if d.index == int(text)]
        if not chosen:
            raise MicrophoneError(f"no input device with index {text} (see --list-devices)")
        return chosen[0]
    exact = [d for d in devices if d.name.lower() == text.lower()]
    partial = [d for d in devices if text.lower() in d.name.lower()]
    chosen = exact or partial
    if not chosen:
        raise MicrophoneError(f"no input device matches {spec!r} (see --list-devices)")
    if len(chosen) > 1:
        names = ", ".join(f"{d.index}: {d.name}" for d in chosen)
        raise MicrophoneError(f"{spec!r} matches several input devices ({names}); give an index")
    return chosen[0]


class Microphone:
    """An open input stream; blocks wait in a queue until `read` takes them.

    Use as a context manager:

        with Microphone(find_device(None)) as mic:
            block = mic.read(timeout_s=0.1)   # float32 (n,) at mic.rate_hz, or None

    Args:
        device: from `find_device`.
        config: stream parameters.

    Raises:
        MicrophoneError: the stream cannot be opened (one-line message).
    """

    def __init__(self, device: InputDevice, config: MicrophoneConfig = MicrophoneConfig()):
        self.device = device
        self.config = config
        self.rate_hz = int(round(device.default_rate_hz))
        self.channels = max(1, min(device.channels, config.max_channels))
        self._block_samples = max(1, int(round(self.rate_hz * config.block_seconds)))
        max_blocks = max(1, int(config.queue_seconds / config.block_seconds))
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=max_blocks)
        self._input_overflows = 0
        self._dropped = 0
        self._stream = None

    def _callback(self, indata: np.ndarray, frames: int, time_info, status) -> None:
        """PortAudio thread: copy the block into the queue, count problems, nothing else."""
        if status.input_overflow:
            self._input_overflows += 1
        try:
            self._queue.put_nowait(indata.copy())
        except queue.Full:
            self._dropped += 1

    def start(self) -> None:
        sd = _sounddevice()
        try:
            self._stream = sd.InputStream(
                device=self.device.index, samplerate=self.rate_hz, channels=self.channels,
                dtype="float32", blocksize=self._block_samples, latency=self.config.latency,
                callback=self._callback)
            self._stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            self.close()
            raise MicrophoneError(f"cannot open {self.device.name!r} at {self.rate_hz} Hz "
                                  f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from exc

    def read(self, timeout_s: float | None = None) -> np.ndarray | None:
        """The next block, downmixed.

        Args:
            timeout_s: seconds to wait for a block (None: wait until one arrives).

        Returns:
            float32 (n,) at rate_hz, or None when no block arrived in time.
        """
        try:
            block = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None
        return to_mono(block)

    @property
    def input_overflows(self) -> int:
        """Blocks in which PortAudio reported lost input (the system was too slow)."""
        return self._input_overflows

    @property
    def dropped(self) -> int:
        """Blocks the callback dropped because the queue was full (the reader was too slow)."""
        return self._dropped

    @property
    def overflows(self) -> int:
        """All lost audio events: input overflows plus dropped blocks."""
        return self._input_overflows + self._dropped

    def close(self) -> None:
        if self._stream is not None:
            sd = _sounddevice()
            try:
                self._stream.stop()
                self._stream.close()
            except sd.PortAudioError:  # closing a broken stream must not hide why it broke
                pass
            self._stream = None

    def __enter__(self) -> "Microphone":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
