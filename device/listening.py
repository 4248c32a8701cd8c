"""The stream worker: blocks from a source -> resampler -> Recognizer.push -> events.

A source is the microphone (device.microphone.Microphone) or, for tests and benchmarks,
a recording played block by block (FileSource): both go through the same loop.
"""
from __future__ import annotations

import time
from typing import Callable, Iterator, Protocol

import numpy as np

from device.audio import StreamResampler
from device.recognizer import Event, Recognizer


class BlockSource(Protocol):
    """Where blocks come from.

    Attributes:
        rate_hz: sample rate of the blocks.
        overflows: audio blocks lost so far (never decreases).
    """

    rate_hz: int

    @property
    def overflows(self) -> int: ...

    def read(self, timeout_s: float | None = None) -> np.ndarray | None:
        """float32 (n,) mono at rate_hz, or None when nothing arrived within timeout_s."""


class FileSource:
    """A recording served in blocks, like a microphone.

    Args:
        audio: float32 (n_samples,) mono at rate_hz.
        rate_hz: its sample rate.
        block_samples: samples per block.
        loop: start again at the end (for soak runs) instead of running dry.
        realtime: hand out blocks no faster than the audio plays (for CPU measurements).
    """

    def __init__(self, audio: np.ndarray, rate_hz: int, block_samples: int, loop: bool = False,
                 realtime: bool = False):
        self._audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        self.rate_hz = int(rate_hz)
        self._block = int(block_samples)
        self._loop = loop
        self._realtime = realtime
        self._position = 0
        self._served = 0  # samples handed out, for pacing
        self._started: float | None = None

    @property
    def overflows(self) -> int:
        return 0

    def read(self, timeout_s: float | None = None) -> np.ndarray | None:
        if self._position >= self._audio.size:
            if not self._loop or self._audio.size == 0:
                if timeout_s:
                    time.sleep(timeout_s)  # a microphone that went quiet
                return None
            self._position = 0
        if self._realtime:
            if self._started is None:
                self._started = time.monotonic()
            due = self._started + (self._served + self._block) / self.rate_hz
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        block = self._audio[self._position:self._position + self._block]
        self._position += block.size
        self._served += block.size
        return block


class Listener:
    """Runs one query at a time over a source.

    Args:
        source: a BlockSource (a Microphone or a FileSource).
        recognizer: the engine; its config's max_seconds bounds each query.
        top: candidates per event.
        poll_s: how long one read waits for a block.
        on_overflow: called with the total count whenever the source lost more audio
            (from the reading thread; the audio callback itself only queues blocks).
    """

    def __init__(self, source: BlockSource, recognizer: Recognizer, top: int = 10,
                 poll_s: float = 0.1, on_overflow: Callable[[int], None] | None = None):
        self.source = source
        self.recognizer = recognizer
        self.top = top
        self.poll_s = poll_s
        self.on_overflow = on_overflow
        self._reported = source.overflows

    def events(self, wall_limit_s: float | None = None) -> Iterator[Event]:
        """One query: events as they happen, the last one final.

        Args:
            wall_limit_s: seconds of wall-clock time after which the query ends even if
                the source delivered less audio than max_seconds (a stalled device);
                None: no such limit.

        Yields:
            Recognizer events: "candidates" while the ranking grows, then one "match" or
            "no_match".
        """
        rate = self.recognizer.frontend.sample_rate_hz
        resampler = StreamResampler(self.source.rate_hz, rate)
        self.recognizer.reset()
        deadline = None if wall_limit_s is None else time.monotonic() + wall_limit_s
        while True:
            block = self.source.read(self.poll_s)
            if self.source.overflows > self._reported:
                self._reported = self.source.overflows
                if self.on_overflow is not None:
                    self.on_overflow(self._reported)
            if block is not None:
                for event in self.recognizer.push(resampler.push(block), top=self.top):
                    yield event
                    if event.final:
                        return
            if deadline is not None and time.monotonic() > deadline:
                yield self.recognizer.finish(top=self.top)
                return
