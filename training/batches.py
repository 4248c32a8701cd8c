"""Batches of aligned (hum window, recording window) pairs with pitch and tempo augmentation."""
from __future__ import annotations

import keras
import numpy as np

from device import frontend as fe
from training.config import TrainConfig
from training.pair_shards import SongPairs

FLOOR_DB = -120.0  # what log_spectrogram floors at; fills bins shifted in from outside


def stretch_frames(spec: np.ndarray, n_out: int) -> np.ndarray:
    """Linear interpolation along time: float32 (n_in, bins) -> (n_out, bins)."""
    n_in = spec.shape[0]
    pos = np.linspace(0.0, n_in - 1.0, n_out)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    w = (pos - lo)[:, None].astype(np.float32)
    return spec[lo] * (1.0 - w) + spec[hi] * w


def shift_bins(spec: np.ndarray, shift: int) -> np.ndarray:
    """Transposes a log-frequency window by `shift` bins (positive = up), filling with the floor."""
    if shift == 0:
        return spec
    out = np.full_like(spec, FLOOR_DB)
    if shift > 0:
        out[:, shift:] = spec[:, :-shift]
    else:
        out[:, :shift] = spec[:, -shift:]
    return out


def sample_pair(pairs: SongPairs, rng: np.random.Generator, config: TrainConfig,
                frontend: fe.FrontendConfig, query: int | None = None
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """One aligned pair of dB windows (window_frames, n_bins) each, from the given query
    of the song or a random one; None if none fits."""
    w = frontend.window_frames
    h = int(rng.integers(len(pairs.hums_db))) if query is None else query
    hum, to_rec = pairs.hums_db[h], pairs.hum_to_recording[h]
    factor = float(np.exp(rng.uniform(*np.log(config.tempo_range))))
    span = int(round(w * factor))
    if hum.shape[0] < span:
        return None
    peak = hum.max()
    for _ in range(8):  # prefer windows where the hum sounds for most of the time
        h0 = int(rng.integers(hum.shape[0] - span + 1))
        window = hum[h0:h0 + span].astype(np.float32)
        if np.mean(window.max(axis=1) > peak - 40.0) > 0.5:
            break
    else:
        return None
    centre = to_rec[h0 + span // 2]
    r0 = int(round(centre - w / 2 + rng.uniform(-config.jitter_frames, config.jitter_frames)))
    r0 = int(np.clip(r0, 0, pairs.recording_db.shape[0] - w))
    recording = pairs.recording_db[r0:r0 + w].astype(np.float32)
    shift = int(rng.integers(-config.pitch_shift_bins, config.pitch_shift_bins + 1))
    query = shift_bins(stretch_frames(window, w), shift)
    return query, recording


class PairBatches(keras.utils.PyDataset):
    """Batches for model.fit: x = float32 (2B, frames, bins) = [queries; recordings], y unused.

    Each batch holds B different songs. Batch `index` of a given seed and epoch is always
    the same, so a resumed run sees the same stream; `fixed` repeats epoch 0 (validation).
    """

    def __init__(self, songs: list[SongPairs], config: TrainConfig, frontend: fe.FrontendConfig,
                 n_batches: int, seed: int, fixed: bool = False):
        super().__init__(workers=1, use_multiprocessing=False)
        if len(songs) < config.batch_pairs:
            raise ValueError(f"{len(songs)} songs cannot fill batches of {config.batch_pairs} pairs")
        self.songs, self.config, self.frontend = songs, config, frontend
        self.n_batches, self.seed, self.fixed = n_batches, seed, fixed
        self.epoch = 0

    def __len__(self) -> int:
        return self.n_batches

    def on_epoch_end(self) -> None:
        if not self.fixed:
            self.epoch += 1

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        b = self.config.batch_pairs
        queries, recordings = [], []
        for song in rng.permutation(len(self.songs)):
            pair = sample_pair(self.songs[song], rng, self.config, self.frontend)
            if pair is not None:
                queries.append(pair[0])
                recordings.append(pair[1])
            if len(queries) == b:
                break
        x = fe.normalize_windows(np.stack(queries + recordings), self.frontend)
        return x, np.zeros((x.shape[0],), dtype=np.float32)
