"""Train the melody model on cached pairs, in the background, with checkpoints and resume.

    python -m training.train --pairs data/pairs/melody --run runs/melody [--shared-data ../shared/data] \
        [--preset default] [--set NAME=VALUE ...]

The model learns a per-frame melody salience against the pairs' melody targets (and the
hand labels of mir1k-dev's training singers when --shared-data is given).

The run directory receives config.json (the resolved configuration), backup/ (resumable
state: an interrupted run continues from its last epoch when started again), best.keras
(lowest validation loss), history.csv and TensorBoard logs in tb/ (`tensorboard --logdir
runs`).

On a lent GPU the same model trains with the JAX backend, which needs no TensorFlow:

    KERAS_BACKEND=jax python -m training.train --pairs data/pairs/default --run runs/gpu

Its best.keras is converted on a machine with TensorFlow as any other run
(`converter.convert`). Without TensorFlow there are no TensorBoard logs; history.csv
holds the same curves.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import keras

from device.frontend import FrontendConfig
from device.melody import MelodyConfig
from training import config as cfg
from training import mir1k, pair_shards
from training.salience import SalienceBatches
from training.model import build_model, load_weights_from


def split_by_song(songs: list[pair_shards.SongPairs], fraction: float, seed: int, min_songs: int):
    """(train, validation): a song's pairs are all on one side, chosen by a stable hash.

    Songs whose hash falls below `fraction` validate; if fewer than min_songs (one batch)
    do, the next lowest hashes are added.
    """
    ranked = sorted(songs, key=lambda s: pair_shards.song_seed(s.song_id, seed) % 10_000)
    n_val = max(sum(pair_shards.song_seed(s.song_id, seed) % 10_000 < fraction * 10_000 for s in songs), min_songs)
    return ranked[n_val:], ranked[:n_val]


def weighted_bce(positive_weight: float):
    """Binary cross-entropy over the map, each cell weighted 1 + positive_weight * target:
    (B, frames) means over the bins, which Keras weights by the batches' frame weights."""
    def loss(y_true, y_pred):
        y_pred = keras.ops.clip(y_pred, 1e-6, 1.0 - 1e-6)
        bce = -(y_true * keras.ops.log(y_pred) + (1.0 - y_true) * keras.ops.log(1.0 - y_pred))
        return keras.ops.mean(bce * (1.0 + positive_weight * y_true), axis=-1)
    return loss


def pitch_accuracy(y_true, y_pred):
    """Share of voiced frames whose salience peak lies within one bin of the target's."""
    voiced = keras.ops.cast(keras.ops.max(y_true, axis=-1) > 0.5, "float32")
    error = keras.ops.abs(keras.ops.argmax(y_true, axis=-1) - keras.ops.argmax(y_pred, axis=-1))
    hit = keras.ops.cast(error <= 1, "float32") * voiced
    return keras.ops.sum(hit) / keras.ops.maximum(keras.ops.sum(voiced), 1.0)


def compile_model(model: keras.Model, train: cfg.TrainConfig) -> None:
    """Adam on a cosine schedule; with a "backing" output (train.backing_weight), its loss
    joins the salience's at that weight."""
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
        train.learning_rate, train.steps_per_epoch * train.epochs, alpha=0.05))
    if train.backing_weight <= 0:
        model.compile(optimizer=optimizer, loss=weighted_bce(train.positive_weight), metrics=[pitch_accuracy])
        return
    loss = weighted_bce(train.positive_weight)
    model.compile(optimizer=optimizer, loss={"salience": loss, "backing": loss},
                  loss_weights={"salience": 1.0, "backing": train.backing_weight},
                  metrics={"salience": [pitch_accuracy]})


def monitored(train: cfg.TrainConfig) -> str:
    """The validation figure best.keras is chosen by: the salience's loss alone."""
    return "val_loss" if train.backing_weight <= 0 else "val_salience_loss"


def run(pairs_dir: Path, run_dir: Path, data: cfg.DataConfig, train: cfg.TrainConfig,
        callbacks: tuple[keras.callbacks.Callback, ...] = (), init: Path | None = None,
        shared_data: Path | None = None) -> dict:
    """Trains (or resumes) a run; returns the final metrics.

    Args:
        shared_data: if given, mir1k-dev's training singers join the training windows.
        callbacks: extra Keras callbacks, after the run's own (backup, checkpoint, logs).
        init: a .keras file of an earlier run with the same trunk to start from (its
            weights only, training.model.load_weights_from: context blocks it lacks start
            neutral; the schedule starts afresh). Recorded in config.json.
    """
    MelodyConfig.pool_for(train.time_stride)  # a stride the device can read: refused before training
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    if config_path.exists() and cfg.load(config_path)[:2] != (data, train):
        raise SystemExit(f"{run_dir} holds a run with another configuration; use a new --run")
    cfg.save(config_path, data, train, init, keras.backend.backend())
    keras.utils.set_random_seed(train.seed)
    frontend = FrontendConfig()
    songs = pair_shards.load(sorted(pairs_dir.glob("shard_*.pkl")))
    train_songs, val_songs = split_by_song(songs, data.validation_fraction, data.seed, 1)
    print(f"train: {len(train_songs)} songs, validation: {len(val_songs)} songs", file=sys.stderr)
    clips = [mir1k.load_clip(p, frontend.sample_rate_hz) for p in mir1k.clip_paths(shared_data)
             if mir1k.is_training_clip(p)] if shared_data else []
    print(f"mir1k-dev training clips: {len(clips)}", file=sys.stderr)
    train_batches = SalienceBatches(train_songs, clips, train, frontend, train.steps_per_epoch, train.seed)
    val_batches = SalienceBatches(val_songs, [], train, frontend, train.validation_batches,
                                  train.seed + 1, fixed=True)
    model = build_model(frontend, train)
    if init is not None:
        load_weights_from(model, keras.models.load_model(init, compile=False))
    compile_model(model, train)
    own = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        keras.callbacks.ModelCheckpoint(str(run_dir / "best.keras"), monitor=monitored(train), mode="min",
                                        save_best_only=True),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
    ]
    if importlib.util.find_spec("tensorflow") is not None:  # TensorBoard writes with tf.summary
        own.append(keras.callbacks.TensorBoard(str(run_dir / "tb"), update_freq="epoch"))
    else:
        print("no TensorFlow: no TensorBoard logs (history.csv has the curves)", file=sys.stderr)
    history = model.fit(train_batches, validation_data=val_batches, epochs=train.epochs,
                        callbacks=own + list(callbacks), verbose=2)
    model.save(run_dir / "last.keras")
    final = {k: float(v[-1]) for k, v in history.history.items()} if history.history else {}
    (run_dir / "final_metrics.json").write_text(json.dumps(final, indent=2) + "\n")
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", required=True, type=Path, help="directory of pair shards")
    parser.add_argument("--run", required=True, type=Path, help="run directory")
    parser.add_argument("--shared-data", type=Path, help="the ../shared/data folder: adds mir1k-dev's "
                        "training singers")
    parser.add_argument("--preset", choices=("default", "smoke"), default="default")
    parser.add_argument("--init", type=Path, help="start from this .keras file of an earlier run")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a TrainConfig field of the preset (repeatable), "
                             "e.g. --set epochs=4 --set batch_windows=8")
    args = parser.parse_args(argv)
    data = cfg.DataConfig.melody() if args.preset == "default" else cfg.DataConfig.smoke()
    try:
        train = cfg.override(getattr(cfg.TrainConfig, args.preset)(), args.set)
        MelodyConfig.pool_for(train.time_stride)
    except ValueError as exc:
        parser.error(str(exc))
    print(json.dumps(run(args.pairs, args.run, data, train, init=args.init, shared_data=args.shared_data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
