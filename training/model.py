"""The Keras melody model: a normalised spectrogram window in, the melody's salience out."""
from __future__ import annotations

import math

import keras
from keras import layers

from device.frontend import FrontendConfig
from training.config import TrainConfig

HARMONICS = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0)  # stacked so a harmonic series lines up in one column


def harmonic_offsets_bins(frontend: FrontendConfig) -> tuple[int, ...]:
    """Bins between each harmonic of HARMONICS and the fundamental: round(12 log2 h * bps)."""
    return tuple(int(round(12.0 * math.log2(h) * frontend.bins_per_semitone)) for h in HARMONICS)


def _shifted(x, offset: int, n_bins: int):
    """x (batch, frames, bins, 1) moved down the frequency axis by `offset` bins (zeros in),
    so that column b holds what was at b + offset."""
    if offset == 0:
        return x
    if offset > 0:
        x = layers.Cropping2D(((0, 0), (offset, 0)))(x)
        return layers.ZeroPadding2D(((0, 0), (0, offset)))(x)
    x = layers.Cropping2D(((0, 0), (0, -offset)))(x)
    return layers.ZeroPadding2D(((0, 0), (-offset, 0)))(x)


def _conv(x, channels: int, kernel: tuple[int, int], dilation: tuple[int, int] = (1, 1),
          strides: tuple[int, int] = (1, 1)):
    x = layers.Conv2D(channels, kernel, strides=strides, dilation_rate=dilation, padding="same",
                      use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def _context_block(x, channels: int, dilation: int, name: str):
    """x plus a correction read across `dilation` salience frames either side; the
    correction's last convolution starts at zero, so a new block changes nothing until
    trained (training.train --init starts it from a model without context)."""
    y = layers.Conv2D(channels, (3, 3), dilation_rate=(dilation, 1), padding="same",
                      use_bias=False, name=f"{name}_conv")(x)
    y = layers.BatchNormalization(name=f"{name}_norm")(y)
    y = layers.ReLU(name=f"{name}_relu")(y)
    y = layers.Conv2D(x.shape[-1], (1, 1), kernel_initializer="zeros", name=f"{name}_out")(y)
    return layers.Add(name=f"{name}_add")([x, y])


def build_model(frontend: FrontendConfig, config: TrainConfig) -> keras.Model:
    """Harmonically stacked input, a fully convolutional trunk, a sigmoid salience map.

    Input: float32 (batch, window_frames, n_bins) in [0, 1] (frontend.normalize_windows).
    Output "salience": float32 (batch, window_frames // s, n_bins) in [0, 1], s =
    config.time_stride: the probability that the melody sounds within half a bin of each
    bin's pitch, at every s-th input frame (salience frame j is centred on input frame j * s).

    The receptive field spans about 2 s (dilated convolutions in time), plus d salience
    frames either side for each context block of dilation d (config.context_dilations), so
    that a held note is still read as the lead where the backing's fresh attacks cover it;
    through the harmonic stack and an octave-wide convolution, several octaves, so the
    trunk can tell the lead from the chords beneath it. Every layer is a convolution: the
    cost is linear in the window and the output keeps the input's time and pitch axes.
    """
    c = config.channels
    inputs = keras.Input((frontend.window_frames, frontend.n_bins), name="spectrogram")
    x = layers.Reshape((frontend.window_frames, frontend.n_bins, 1))(inputs)
    x = layers.Concatenate(axis=-1)([_shifted(x, o, frontend.n_bins)
                                     for o in harmonic_offsets_bins(frontend)])
    s = config.time_stride
    x = _conv(x, c[0], (2 * s - 1, 3), strides=(s, 1))  # sees every input frame
    x = _conv(x, c[1], (3, 3), (2, 1))
    x = _conv(x, c[1], (3, 3), (4, 1))
    x = _conv(x, c[2], (1, 12 * frontend.bins_per_semitone + 1))  # one octave wide
    x = _conv(x, c[1], (5, 3), (8, 1))
    for k, d in enumerate(config.context_dilations):
        x = _context_block(x, c[2], d, f"context_{k}")
    shape = (frontend.window_frames // s, frontend.n_bins)
    salience = layers.Reshape(shape, name="salience")(layers.Conv2D(1, (3, 3), padding="same",
                                                                    activation="sigmoid")(x))
    if config.backing_weight <= 0:
        return keras.Model(inputs, salience, name="melody_salience")
    backing = layers.Conv2D(1, (3, 3), padding="same", activation="sigmoid", name="backing_conv")(x)
    backing = layers.Reshape(shape, name="backing")(backing)
    return keras.Model(inputs, {"salience": salience, "backing": backing}, name="melody_salience")


def salience_only(model: keras.Model) -> keras.Model:
    """The model the device runs: `model` itself, or, for a model with a "backing" output
    (TrainConfig.backing_weight), the same layers up to "salience" alone."""
    if "backing" not in model.output_names:
        return model
    return keras.Model(model.inputs, model.get_layer("salience").output, name=model.name)


def load_weights_from(model: keras.Model, source: keras.Model) -> None:
    """Gives `model` the weights of `source`, a model of build_model with the same trunk:
    layer by layer in order, context blocks by name, so that a model with context blocks
    starts from one without (its new blocks keep their initial, neutral weights). A
    "backing" head is neither read nor written (a new one starts as initialised).
    ValueError if the trunks differ."""
    def trunk(m):
        return [layer for layer in m.layers
                if layer.weights and not layer.name.startswith(("context_", "backing"))]
    ours, theirs = trunk(model), trunk(source)
    shapes = [[tuple(w.shape) for w in layer.weights] for layer in ours]
    if shapes != [[tuple(w.shape) for w in layer.weights] for layer in theirs]:
        raise ValueError("the two models' trunks differ (channels, stride or layers)")
    for own, other in zip(ours, theirs):
        own.set_weights(other.get_weights())
    names = {layer.name for layer in model.layers}
    for layer in source.layers:
        if layer.name.startswith("context_") and layer.weights:
            if layer.name not in names:
                raise ValueError(f"{layer.name}: a context block this model does not have")
            model.get_layer(layer.name).set_weights(layer.get_weights())
