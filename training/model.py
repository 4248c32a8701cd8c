"""The Keras embedding model: a normalised spectrogram window in, a unit vector out."""
from __future__ import annotations

import keras
from keras import layers

from device.frontend import FrontendConfig
from training.config import TrainConfig


def build_model(frontend: FrontendConfig, config: TrainConfig) -> keras.Model:
    """CNN over (time, log-frequency); max over frequency makes it transposition tolerant.

    Input: float32 (batch, window_frames, n_bins) in [0, 1] (frontend.normalize_windows).
    Output: float32 (batch, embedding_dim), unit L2 norm.
    The first block strides 2 in time and frequency; each later block halves time or
    frequency, so the cost stays a few tens of millions of multiply-accumulates.
    """
    inputs = keras.Input((frontend.window_frames, frontend.n_bins), name="spectrogram")
    x = layers.Reshape((frontend.window_frames, frontend.n_bins, 1))(inputs)
    pools = ((1, 1), (2, 1), (2, 2), (1, 1))
    for i, (channels, pool) in enumerate(zip(config.channels, pools)):
        x = layers.Conv2D(channels, 5 if i == 0 else 3, strides=(2, 2) if i == 0 else 1,
                          padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        if pool != (1, 1):
            x = layers.MaxPooling2D(pool)(x)
    x = layers.MaxPooling2D((1, x.shape[2]))(x)  # every frequency position: (time, 1, channels)
    x = layers.Flatten()(x)
    x = layers.Dense(config.dense_units, activation="relu")(x)
    x = layers.Dense(config.embedding_dim)(x)
    outputs = layers.UnitNormalization(axis=-1, name="embedding")(x)
    return keras.Model(inputs, outputs, name="hum_embedder")
