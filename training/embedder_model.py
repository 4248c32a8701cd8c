"""The shortlist embedder in Keras (device.embedder runs the same network in numpy).

A stack of 'same'-padded dilated Conv1D layers with ReLU over the key-free features of a
melody window (device.embedder.features), mean and max pooled over time, then a dense
projection to `dim` values, L2-normalised. `export` writes the weights device.embedder
reads.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np

from device import embedder as em


@dataclasses.dataclass(frozen=True)
class EmbedderConfig:
    """Shape of the network.

    Attributes:
        window_frames: melody frames per window (the shortlist's).
        channels: output channels per convolution.
        kernels: kernel size per convolution.
        dilations: dilation per convolution.
        dim: embedding size.
    """

    window_frames: int = 48
    channels: tuple[int, ...] = (32, 32, 32, 64)
    kernels: tuple[int, ...] = (5, 3, 3, 3)
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    dim: int = 32


def encoder(config: EmbedderConfig) -> keras.Model:
    """(B, window_frames, CHANNELS) features -> (B, dim) unit vectors."""
    x = inputs = keras.Input((config.window_frames, em.CHANNELS), name="features")
    for i, (c, k, d) in enumerate(zip(config.channels, config.kernels, config.dilations)):
        x = keras.layers.Conv1D(c, k, dilation_rate=d, padding="same", activation="relu", name=f"conv{i}")(x)
    pooled = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling1D()(x),
                                         keras.layers.GlobalMaxPooling1D()(x)])
    e = keras.layers.Dense(config.dim, name="dense")(pooled)
    e = keras.layers.UnitNormalization(name="unit")(e)
    return keras.Model(inputs, e, name="embedder")


def export(model: keras.Model, path: Path) -> None:
    """Writes the weights as device.embedder.Embedder reads them (atomically)."""
    arrays = {}
    i = 0
    while True:
        try:
            layer = model.get_layer(f"conv{i}")
        except ValueError:
            break
        kernel, bias = layer.get_weights()
        arrays[f"conv{i}_kernel"] = kernel.astype(np.float32)
        arrays[f"conv{i}_bias"] = bias.astype(np.float32)
        arrays[f"conv{i}_dilation"] = np.array([layer.dilation_rate[0]], dtype=np.int32)
        i += 1
    kernel, bias = model.get_layer("dense").get_weights()
    arrays["dense_kernel"], arrays["dense_bias"] = kernel.astype(np.float32), bias.astype(np.float32)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
