"""Train the embedding model on cached pairs, in the background, with checkpoints and resume.

    python -m training.train --pairs data/pairs/default --run runs/default [--preset default] \
        [--set NAME=VALUE ...]

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
from training import config as cfg
from training import losses, pair_shards
from training.batches import PairBatches
from training.model import build_model


def split_by_song(songs: list[pair_shards.SongPairs], fraction: float, seed: int, min_songs: int):
    """(train, validation): a song's pairs are all on one side, chosen by a stable hash.

    Songs whose hash falls below `fraction` validate; if fewer than min_songs (one batch)
    do, the next lowest hashes are added.
    """
    ranked = sorted(songs, key=lambda s: pair_shards.song_seed(s.song_id, seed) % 10_000)
    n_val = max(sum(pair_shards.song_seed(s.song_id, seed) % 10_000 < fraction * 10_000 for s in songs), min_songs)
    return ranked[n_val:], ranked[:n_val]


def compile_model(model: keras.Model, train: cfg.TrainConfig) -> None:
    if train.triplet_weight <= 0 and train.confidence_weight <= 0:
        raise ValueError("no loss: triplet_weight and confidence_weight are both 0")

    def loss(y_true, y_pred):
        del y_true  # the pairing is the batch layout
        total = 0.0
        if train.triplet_weight > 0:
            total += train.triplet_weight * losses.triplet_loss(y_pred, train.margin, train.triplet_mining)
        if train.confidence_weight > 0:
            total += train.confidence_weight * losses.confidence_loss(y_pred, train.temperature)
        return total

    def top1(y_true, y_pred):
        del y_true
        return losses.batch_top1(y_pred)

    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
        train.learning_rate, train.steps_per_epoch * train.epochs, alpha=0.05)),
        loss=loss, metrics=[top1])


def run(pairs_dir: Path, run_dir: Path, data: cfg.DataConfig, train: cfg.TrainConfig,
        callbacks: tuple[keras.callbacks.Callback, ...] = (), init: Path | None = None) -> dict:
    """Trains (or resumes) a run; returns the final metrics.

    Args:
        callbacks: extra Keras callbacks, after the run's own (backup, checkpoint, logs).
        init: a .keras file of an earlier run with the same architecture to start from
            (its weights only; the schedule starts afresh). Recorded in config.json.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    if config_path.exists() and cfg.load(config_path)[:2] != (data, train):
        raise SystemExit(f"{run_dir} holds a run with another configuration; use a new --run")
    cfg.save(config_path, data, train, init, keras.backend.backend())
    keras.utils.set_random_seed(train.seed)
    frontend = FrontendConfig()
    songs = pair_shards.load(sorted(pairs_dir.glob("shard_*.pkl")))
    train_songs, val_songs = split_by_song(songs, data.validation_fraction, data.seed, train.batch_pairs)
    print(f"train: {len(train_songs)} songs, validation: {len(val_songs)} songs", file=sys.stderr)
    train_batches = PairBatches(train_songs, train, frontend, train.steps_per_epoch, train.seed)
    val_batches = PairBatches(val_songs, train, frontend, train.validation_batches, train.seed + 1, fixed=True)
    model = build_model(frontend, train)
    if init is not None:
        model.set_weights(keras.models.load_model(init, compile=False).get_weights())
    compile_model(model, train)
    own = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        keras.callbacks.ModelCheckpoint(str(run_dir / "best.keras"), monitor="val_loss", save_best_only=True),
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
    parser.add_argument("--preset", choices=("default", "smoke"), default="default")
    parser.add_argument("--init", type=Path, help="start from this .keras file of an earlier run")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a TrainConfig field of the preset (repeatable), "
                             "e.g. --set epochs=4 --set confidence_weight=0")
    args = parser.parse_args(argv)
    data = getattr(cfg.DataConfig, args.preset)()
    try:
        train = cfg.override(getattr(cfg.TrainConfig, args.preset)(), args.set)
    except ValueError as exc:
        parser.error(str(exc))
    print(json.dumps(run(args.pairs, args.run, data, train, init=args.init)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
