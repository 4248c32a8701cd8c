"""Widen a trained melody model without changing what it computes (Net2WiderNet).

    python -m training.widen --init runs/melody-c/best.keras --channels 48,48,24 \
        --out runs/melody-c-wide.keras [--noise 0.01] [--seed 0]

A wider trunk trained from scratch costs hours on this machine's cores; started from a
trained narrower one it begins where that one ended. Each convolution's extra output
channels copy randomly chosen existing ones (kernel and batch normalisation alike), and the
next convolution divides the weights it reads from each copied channel by the number of its
copies, so the wider model gives the same salience (exactly, with --noise 0). A little
noise on the copies' outgoing weights lets them grow apart in training. The result goes to
`python -m training.train --init OUT --set channels=...`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import keras
import numpy as np

from device.frontend import FrontendConfig
from training import config as cfg
from training.model import build_model, salience_only


def _trunk(model: keras.Model) -> tuple[list, list]:
    """(convolutions, batch normalisations) in order; the last convolution (the salience
    output) has no normalisation after it."""
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if len(norms) != len(convs) - 1:
        raise ValueError(f"expected a batch normalisation after every convolution but the last, "
                         f"found {len(convs)} convolutions and {len(norms)} normalisations")
    return convs, norms


def widen(narrow: keras.Model, wide: keras.Model, noise: float, seed: int) -> None:
    """Sets `wide`'s weights so that it computes what `narrow` computes.

    Args:
        narrow, wide: models of training.model.build_model, alike but for the channels
            (wide's at least narrow's, layer by layer).
        noise: standard deviation, relative to each kernel's own, of the noise added to
            the weights read from copied channels (0: exactly the same function).
        seed: the choice of channels copied, and the noise.
    """
    rng = np.random.default_rng(seed)
    n_convs, n_norms = _trunk(narrow)
    w_convs, w_norms = _trunk(wide)
    if len(n_convs) != len(w_convs):
        raise ValueError("the two models have different numbers of layers")
    source = None  # per input channel of the current convolution: the narrow channel it copies
    for k, (nc, wc) in enumerate(zip(n_convs, w_convs)):
        weights = nc.get_weights()
        kernel = weights[0]  # (kt, kf, c_in, c_out)
        if source is not None:
            counts = np.bincount(source, minlength=kernel.shape[2])
            kernel = kernel[:, :, source, :] / counts[source][None, None, :, None]
            copies = np.arange(source.size) >= counts.size
            scale = noise * float(kernel.std())
            kernel[:, :, copies, :] += rng.normal(0.0, scale, kernel[:, :, copies, :].shape)
        c_old, c_new = kernel.shape[3], wc.get_weights()[0].shape[3]
        if c_new < c_old:
            raise ValueError(f"layer {k}: {c_new} channels cannot hold {c_old}")
        source = np.concatenate([np.arange(c_old), rng.integers(0, c_old, c_new - c_old)])
        wc.set_weights([kernel[..., source].astype(np.float32)] + [b[source] for b in weights[1:]])
        if k < len(n_norms):
            w_norms[k].set_weights([p[source] for p in n_norms[k].get_weights()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init", type=Path, required=True, help="the trained .keras model to widen")
    parser.add_argument("--channels", required=True, help="the wider trunk's channels, e.g. 48,48,24")
    parser.add_argument("--out", type=Path, required=True, help="the widened .keras file")
    parser.add_argument("--noise", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.out.exists():
        parser.error(f"{args.out} exists; choose another --out")
    try:
        narrow = salience_only(keras.models.load_model(args.init, compile=False))  # a backing head is left out
    except (OSError, ValueError) as exc:
        parser.error(f"cannot read {args.init}: {exc}")
    frontend = FrontendConfig()
    stride = frontend.window_frames // narrow.output_shape[1]
    try:
        train = cfg.override(cfg.TrainConfig.default(), [f"channels={args.channels}", f"time_stride={stride}"])
        wide = build_model(frontend, train)
        widen(narrow, wide, args.noise, args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    wide.save(args.out)
    print(f"{args.init} ({narrow.count_params()} parameters) -> {args.out} ({wide.count_params()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
