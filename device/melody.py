"""Melody: the model's salience over a whole recording or query, and the pitch line read from it.

The model sees fixed windows; `salience` tiles any spectrogram with overlapping windows
and keeps, for each frame, the window in which it lies farthest from an edge. `pitch_line`
reads one pitch per melody frame (the salience peak, refined between bins) where the peak
is salient enough. Catalogues store that line compactly (`encode`, a byte per frame).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from device import frontend as fe
from device.model import MelodyModel

FLOOR_DB = -120.0  # what log_spectrogram floors at: the padding after a recording's end
CODE_STEPS_PER_SEMITONE = 4  # `encode` resolution
CODE_FMIN_MIDI = 36.0  # code 1; code 0 is "no melody"
LINE_FRAMES = 4  # input frames per melody frame (80 ms): the rate stored lines and the embedder assume
PUSH_FRAMES = 3200  # frames per push of `salience` (64 s): bounds the windows made at once


@dataclasses.dataclass(frozen=True)
class MelodyConfig:
    """How a pitch line is read from the model (stored in the model's manifest).

    Attributes:
        tile_hop_frames: input frames between the windows that tile a spectrogram.
        voicing_threshold: a melody frame has a pitch when its salience peak reaches this.
        pool: salience frames per melody frame (the most salient of them is kept);
            `pool_for` the model's time stride.
    """

    tile_hop_frames: int = 160
    voicing_threshold: float = 0.3
    pool: int = 2

    @staticmethod
    def pool_for(time_stride: int) -> int:
        """Salience frames per melody frame for a model of this time stride, so that the line
        has one pitch per LINE_FRAMES input frames; ValueError if the stride does not divide it."""
        if time_stride < 1 or LINE_FRAMES % time_stride:
            raise ValueError(f"time stride {time_stride} does not divide the {LINE_FRAMES} input frames "
                             "of a melody frame")
        return LINE_FRAMES // time_stride

    def frame_rate_hz(self, frontend: fe.FrontendConfig, time_stride: int) -> float:
        """Melody frames per second."""
        return frontend.frame_rate_hz / time_stride / self.pool

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class SalienceStream:
    """The salience of a growing spectrogram: frames go in as they arrive; each tiling
    window is run once, as soon as it is complete, and only the padded tail is run again
    for every look at the salience so far.

    Args:
        model: the melody model.
        frontend: its frontend.
        config: the tiling.
    """

    def __init__(self, model: MelodyModel, frontend: fe.FrontendConfig, config: MelodyConfig):
        self.model, self.frontend, self.config = model, frontend, config
        self._frames = np.zeros((0, frontend.n_bins), dtype=np.float32)  # from frame _offset on
        self._offset = 0  # frames before it are in complete windows already run: dropped
        self._tiles: list[np.ndarray] = []  # salience of the complete windows, in order
        self.windows_used = 0  # windows that made the last salience (complete ones + padded tail)

    @property
    def n_frames(self) -> int:
        return self._offset + self._frames.shape[0]

    def push(self, frames_db: np.ndarray) -> int:
        """Adds float32 (n, n_bins) dB frames; returns how many windows completed."""
        self._frames = np.concatenate([self._frames, np.asarray(frames_db, dtype=np.float32)])
        w, hop = self.frontend.window_frames, self.config.tile_hop_frames
        starts = range(len(self._tiles) * hop, self.n_frames - w + 1, hop)
        windows = [self._frames[s - self._offset:s - self._offset + w] for s in starts]
        if windows:
            self._tiles.extend(self._run(np.stack(windows)))
        keep = len(self._tiles) * hop  # the next window, or the padded tail, starts here
        if keep > self._offset:
            self._frames = self._frames[keep - self._offset:]
            self._offset = keep
        return len(windows)

    def _run(self, windows_db: np.ndarray) -> np.ndarray:
        return self.model.salience(fe.normalize_windows(windows_db, self.frontend))

    def salience(self) -> np.ndarray:
        """float32 (ceil(n_frames / stride), n_bins): the salience of every frame so far;
        salience frame j is centred on input frame j * stride (stride = model.time_stride).
        Frames beyond the last complete window come from one window padded with silence."""
        w, hop, stride = self.frontend.window_frames, self.config.tile_hop_frames, self.model.time_stride
        n = self.n_frames
        n_out = -(-n // stride)
        tiles, starts = list(self._tiles), [k * hop for k in range(len(self._tiles))]
        if n > 0 and (not starts or starts[-1] + w < n):
            start = len(starts) * hop
            padded = np.full((w, self.frontend.n_bins), FLOOR_DB, dtype=np.float32)
            padded[:n - start] = self._frames[start - self._offset:]
            tiles.append(self._run(padded[None])[0])
            starts.append(start)
        self.windows_used = len(tiles)
        out = np.zeros((n_out, self.frontend.n_bins), dtype=np.float32)
        edge = (w - hop) // 2 // stride  # salience frames a window gives up at an inner edge
        for k, (s, tile) in enumerate(zip(starts, tiles)):
            first = s // stride + (edge if k > 0 else 0)
            last = min(s // stride + tile.shape[0] - (edge if k < len(starts) - 1 else 0), n_out)
            if last > first:
                out[first:last] = tile[first - s // stride:last - s // stride]
        return out


def salience(spectrogram_db: np.ndarray, model: MelodyModel, frontend: fe.FrontendConfig,
             config: MelodyConfig) -> np.ndarray:
    """The melody salience of a whole spectrogram (float32 (n_frames, n_bins) dB), as
    `SalienceStream.salience` gives it once every frame is pushed (in chunks, so that the
    model's inputs of a long recording are never all in memory at once)."""
    stream = SalienceStream(model, frontend, config)
    for start in range(0, spectrogram_db.shape[0], PUSH_FRAMES):
        stream.push(spectrogram_db[start:start + PUSH_FRAMES])
    return stream.salience()


def pitch_line(salience_map: np.ndarray, frontend: fe.FrontendConfig, config: MelodyConfig
               ) -> tuple[np.ndarray, np.ndarray]:
    """The melody's pitch per melody frame.

    Args:
        salience_map: float32 (n_salience_frames, n_bins) from `salience`.

    Returns:
        (midi, strength): float32 (ceil(n / pool),) each: MIDI pitch (0 where no pitch is
        salient enough) and the salience peak.
    """
    n = salience_map.shape[0]
    pool = config.pool
    if n == 0:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.float32)
    padded = np.zeros((-(-n // pool) * pool, salience_map.shape[1]), dtype=np.float32)
    padded[:n] = salience_map
    pooled = padded.reshape(-1, pool, salience_map.shape[1]).max(axis=1)
    peak = pooled.argmax(axis=1)
    rows = np.arange(pooled.shape[0])
    strength = pooled[rows, peak]
    lo, hi = np.maximum(peak - 1, 0), np.minimum(peak + 1, pooled.shape[1] - 1)
    a, b, c = pooled[rows, lo], strength, pooled[rows, hi]
    weights = a + b + c
    position = peak + np.where(weights > 0, (c - a) / np.maximum(weights, 1e-9), 0.0)
    midi = frontend.fmin_midi + position / frontend.bins_per_semitone
    voiced = strength >= config.voicing_threshold
    return np.where(voiced, midi, 0.0).astype(np.float32), strength.astype(np.float32)


def encode(midi: np.ndarray) -> np.ndarray:
    """uint8 (n,): 0 where there is no pitch, else 1 + quarter semitones above CODE_FMIN_MIDI."""
    midi = np.asarray(midi, dtype=np.float32)
    code = 1 + np.round((midi - CODE_FMIN_MIDI) * CODE_STEPS_PER_SEMITONE)
    return np.where(midi > 0, np.clip(code, 1, 255), 0).astype(np.uint8)


def decode(code: np.ndarray) -> np.ndarray:
    """float32 (n,) MIDI pitch (0 where none) from `encode`'s bytes."""
    code = np.asarray(code, dtype=np.float32)
    return np.where(code > 0, CODE_FMIN_MIDI + (code - 1) / CODE_STEPS_PER_SEMITONE, 0.0).astype(np.float32)
