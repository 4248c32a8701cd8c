"""The shortlist embedder: a few seconds of melody line in, a unit vector out.

A window of the line is made key-free first (`features`): its pitches are taken relative
to the window's key (the angle of the sum of its pitch-class phasors) and spread over 12
soft pitch-class channels, with a 13th channel saying where there is melody. A small
dilated 1-D convolutional network, trained so that a hum's window and the recording's
window of the same passage land close together (training.embedder_train), then pools
over time, which forgives the hum's loose timing, and projects to `dim` values.

The forward pass is plain numpy (a few matrix products per layer): the weights travel as
an .npz beside the melody model, and the runtime needs no second interpreter.
"""
from __future__ import annotations

import dataclasses
import zipfile
import zlib
from pathlib import Path

import numpy as np

CHANNELS = 13  # 12 pitch classes relative to the window's key, and "melody here"


def keys(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The key of each window from the sum of its pitch-class phasors.

    Args:
        windows: float32 (B, W) MIDI per melody frame, 0 where none.

    Returns:
        (keys float32 (B,) semitones in [0, 12), strength float32 (B,): the sum's length
        over W, 0 when there is no melody or the pitch classes cancel out).
    """
    voiced = windows > 0
    total = np.where(voiced, np.exp(2j * np.pi * windows / 12.0), 0.0).sum(axis=1)
    key = np.mod(np.angle(total) * 12.0 / (2.0 * np.pi), 12.0)
    return key.astype(np.float32), (np.abs(total) / windows.shape[1]).astype(np.float32)


def features(windows: np.ndarray, key: np.ndarray) -> np.ndarray:
    """float32 (B, W, CHANNELS): each frame's pitch class relative to its window's key,
    split linearly between the two nearest of 12 channels, and the melody flag."""
    voiced = windows > 0
    relative = np.mod(windows - key[:, None], 12.0)
    low = np.floor(relative).astype(np.int64) % 12
    frac = (relative - np.floor(relative)).astype(np.float32)
    out = np.zeros((*windows.shape, CHANNELS), dtype=np.float32)
    b, t = np.nonzero(voiced)
    out[b, t, low[b, t]] += 1.0 - frac[b, t]
    out[b, t, (low[b, t] + 1) % 12] += frac[b, t]
    out[..., 12] = voiced
    return out


@dataclasses.dataclass(frozen=True)
class Layer:
    """One convolution: kernel float32 (k, c_in, c_out), bias float32 (c_out,), dilation."""

    kernel: np.ndarray
    bias: np.ndarray
    dilation: int


class EmbedderError(Exception):
    """The weights file is missing, unreadable or inconsistent."""


class Embedder:
    """The trained network, from an .npz holding conv{i}_kernel, conv{i}_bias,
    conv{i}_dilation (i = 0, 1, ...), dense_kernel and dense_bias."""

    def __init__(self, path: str | Path):
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: np.asarray(data[k]) for k in data.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            raise EmbedderError(f"{path}: unreadable embedder weights ({' '.join(str(exc).split())[:200]})") from exc
        layers, c_in = [], CHANNELS
        while f"conv{len(layers)}_kernel" in arrays:
            i = len(layers)
            kernel = arrays[f"conv{i}_kernel"].astype(np.float32)
            bias = arrays.get(f"conv{i}_bias", np.zeros(0)).astype(np.float32)
            dilation = int(arrays.get(f"conv{i}_dilation", np.zeros(0)).reshape(-1)[:1].sum())
            if kernel.ndim != 3 or kernel.shape[1] != c_in or bias.shape != (kernel.shape[2],) or dilation < 1:
                raise EmbedderError(f"{path}: convolution {i} has inconsistent shapes")
            layers.append(Layer(kernel, bias, dilation))
            c_in = kernel.shape[2]
        dense = arrays.get("dense_kernel")
        dense_bias = arrays.get("dense_bias")
        if not layers or dense is None or dense_bias is None or dense.ndim != 2 \
                or dense.shape[0] != 2 * c_in or dense_bias.shape != (dense.shape[1],):
            raise EmbedderError(f"{path}: not shortlist embedder weights")
        if not all(np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == "f"):
            raise EmbedderError(f"{path}: weights are not finite")
        self.layers = tuple(layers)
        self.dense, self.dense_bias = dense.astype(np.float32), dense_bias.astype(np.float32)

    @property
    def dim(self) -> int:
        return self.dense.shape[1]

    @property
    def parameters(self) -> int:
        return int(sum(layer.kernel.size + layer.bias.size for layer in self.layers)
                   + self.dense.size + self.dense_bias.size)

    def macs_per_window(self, window_frames: int) -> int:
        """Multiply-accumulates to embed one window."""
        conv = sum(layer.kernel.size for layer in self.layers) * window_frames
        return int(conv + self.dense.size)

    def embed(self, x: np.ndarray, batch: int = 32) -> np.ndarray:
        """float32 (B, dim) unit vectors of float32 (B, W, CHANNELS) features, `batch` rows
        at a time (32: the layers' temporaries stay near 1 MB, and in cache)."""
        out = np.zeros((x.shape[0], self.dim), dtype=np.float32)
        for s in range(0, x.shape[0], batch):
            out[s:s + batch] = self._embed(x[s:s + batch])
        return out

    def _embed(self, h: np.ndarray) -> np.ndarray:
        n = h.shape[1]
        for layer in self.layers:
            k, c_in, c_out = layer.kernel.shape
            reach = layer.dilation * (k - 1)
            padded = np.pad(h, ((0, 0), (reach // 2, reach - reach // 2), (0, 0)))
            columns = np.concatenate([padded[:, i * layer.dilation:i * layer.dilation + n] for i in range(k)], axis=2)
            h = np.maximum(columns @ layer.kernel.reshape(k * c_in, c_out) + layer.bias, 0.0)
        pooled = np.concatenate([h.mean(axis=1), h.max(axis=1)], axis=1)
        e = pooled @ self.dense + self.dense_bias
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-9)
