"""Trains the shortlist embedder on line pairs (training.line_pairs).

Each example is what the runtime compares: a window of a hum's heard line, cut at the
query scale nearest to the hum's real tempo there (or the next one) and resampled to the
window, against the recording's heard line from the frame where that window's first frame
sounds, give or take `offset_jitter` frames (the query and catalogue hops never meet
exactly). Both windows must hold enough melody to be indexed. A batch holds one example
per song; the loss is the symmetric in-batch softmax over cosine similarities (every
other song in the batch is a negative), which is what the shortlist's nearest-neighbour
vote needs.

    python -m training.embedder_train --lines data/pairs/lines-ae1251b8.pkl --run runs/embedder

Checkpoints every epoch (last.weights.h5, state.json) and resumes from them; keeps the
best on the validation songs' retrieval top-1 (best.weights.h5) and exports it as
embedder.npz.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import sys
import time
from pathlib import Path

import keras
import numpy as np

from device import embedder as em
from device import melody as mel
from device.shortlist import ShortlistConfig, indexable
from training import embedder_model as model_lib
from training.pair_shards import song_seed


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The embedder's schedule (not training.config.TrainConfig, the melody model's):
    cosine-decayed learning rate over `epochs` of `steps_per_epoch` batches of `batch`
    songs; softmax `temperature`; the recording window's start jittered by up to
    `offset_jitter` melody frames; validation on a `validation_fraction` of the songs."""

    epochs: int = 30
    steps_per_epoch: int = 100
    batch: int = 512
    learning_rate: float = 2e-3
    temperature: float = 0.05
    offset_jitter: float = 2.0
    validation_fraction: float = 0.05
    validation_batches: int = 8
    seed: int = 11


@dataclasses.dataclass
class Song:
    recording: np.ndarray  # float32 (n_r,) MIDI per melody frame
    hums: list[np.ndarray]  # per hum float32 (n_h,)
    maps: list[np.ndarray]  # per hum float32 (n_h,) recording frame of each hum frame


def load_songs(path: Path) -> tuple[list[str], list[Song], str]:
    with open(path, "rb") as f:
        data = pickle.load(f)
    ids = [s["song_id"] for s in data["songs"]]
    songs = [Song(mel.decode(s["recording"]), [mel.decode(h) for h in s["hums"]],
                  [np.asarray(m, np.float32) for m in s["hum_to_recording"]]) for s in data["songs"]]
    return ids, songs, data["model_sha256"]


def sample(songs: list[Song], rng: np.random.Generator, n: int, search: ShortlistConfig,
           offset_jitter: float) -> tuple[np.ndarray, np.ndarray]:
    """(query features, recording features), each float32 (m, W, CHANNELS), m <= n: one
    example from each of n distinct songs (those without a usable window are dropped)."""
    w = search.window_frames
    scales = np.asarray(search.scales)
    queries, recordings = [], []
    for s in rng.choice(len(songs), size=min(n, len(songs)), replace=False):
        song = songs[s]
        for _ in range(4):  # a few tries for a window with melody on both sides
            j = rng.integers(len(song.hums))
            hum, where = song.hums[j], song.maps[j]
            reach = int(np.ceil(w * scales[-1]))
            if hum.size <= reach:
                continue
            t0 = int(rng.integers(0, hum.size - reach))
            slope = (where[t0 + reach - 1] - where[t0]) / (reach - 1)  # recording frames per hum frame
            if not slope > 0:
                continue
            order = np.argsort(np.abs(np.log(scales * slope)))
            scale = scales[order[rng.integers(2)]]  # the nearest query scale or the next
            q = hum[t0 + np.minimum((np.arange(w) * scale).astype(np.int64), reach - 1)]
            r0 = int(np.round(where[t0] + rng.uniform(-offset_jitter, offset_jitter)))
            if r0 < 0 or r0 + w > song.recording.size:
                continue
            queries.append(q)
            recordings.append(song.recording[r0:r0 + w])
            break
    q, r = np.array(queries, np.float32).reshape(-1, w), np.array(recordings, np.float32).reshape(-1, w)
    okq, kq = indexable(q, search)
    okr, kr = indexable(r, search)
    ok = okq & okr
    return em.features(q[ok], kq[ok]), em.features(r[ok], kr[ok])


def pair_model(encoder: keras.Model, config: model_lib.EmbedderConfig, temperature: float) -> keras.Model:
    """(queries, recordings) -> logits (B, 2B): query-to-recording rows on the left,
    recording-to-query rows on the right side's transpose (see `loss`)."""
    shape = (config.window_frames, em.CHANNELS)
    q_in, r_in = keras.Input(shape, name="queries"), keras.Input(shape, name="recordings")
    q, r = encoder(q_in), encoder(r_in)
    sims = keras.ops.matmul(q, keras.ops.transpose(r)) / temperature
    logits = keras.layers.Concatenate(axis=1)([sims, keras.ops.transpose(sims)])
    return keras.Model([q_in, r_in], logits)


def loss(labels, logits):
    """Symmetric in-batch softmax: each query must pick its recording and vice versa."""
    n = keras.ops.shape(logits)[0]
    left, right = logits[:, :n], logits[:, n:]
    ce = keras.losses.sparse_categorical_crossentropy
    return 0.5 * (ce(labels, left, from_logits=True) + ce(labels, right, from_logits=True))


def top1(model: keras.Model, batches: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Share of queries whose own recording is the most similar in their batch."""
    hits = total = 0
    for q, r in batches:
        sims = keras.ops.convert_to_numpy(model([q, r], training=False))[:, :q.shape[0]]
        hits += int(np.sum(sims.argmax(axis=1) == np.arange(q.shape[0])))
        total += q.shape[0]
    return hits / max(total, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=Path, required=True, help="line pairs (training.line_pairs)")
    parser.add_argument("--run", type=Path, required=True, help="run folder (checkpoints, export)")
    parser.add_argument("--epochs", type=int, help="override the epochs")
    parser.add_argument("--steps", type=int, help="override the steps per epoch")
    parser.add_argument("--batch", type=int, help="override the batch size")
    parser.add_argument("--channels", help="override the channels per convolution, e.g. 48,48,48,96")
    parser.add_argument("--window", type=int, help="override the melody frames per window")
    args = parser.parse_args(argv)
    train = TrainConfig()
    train = dataclasses.replace(train, **{k: v for k, v in (("epochs", args.epochs), ("steps_per_epoch", args.steps),
                                                            ("batch", args.batch)) if v is not None})
    try:
        ids, songs, sha = load_songs(args.lines)
    except (OSError, KeyError, pickle.UnpicklingError) as exc:
        print(f"error: {args.lines}: unreadable line pairs ({exc!r})", file=sys.stderr)
        return 2
    held = np.array([song_seed(i, train.seed) % 10_000 < train.validation_fraction * 10_000 for i in ids])
    if held.all() or not held.any():
        held = np.arange(len(ids)) < max(1, len(ids) // 10)
    training = [s for s, h in zip(songs, held) if not h]
    validation = [s for s, h in zip(songs, held) if h]
    search, config = ShortlistConfig(), model_lib.EmbedderConfig()
    args.run.mkdir(parents=True, exist_ok=True)
    state_path = args.run / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {"epoch": 0, "best": -1.0, "history": []}
    if "config" in state:  # a resumed run keeps its shape
        config = model_lib.EmbedderConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in state["config"].items()})
    elif args.channels:
        channels = tuple(int(c) for c in args.channels.split(","))
        if len(channels) != len(config.channels) or min(channels) < 1:
            print(f"error: --channels needs {len(config.channels)} positive numbers", file=sys.stderr)
            return 2
        config = dataclasses.replace(config, channels=channels)
    if "config" not in state and args.window:
        config = dataclasses.replace(config, window_frames=args.window)
    search = dataclasses.replace(search, window_frames=config.window_frames)
    keras.utils.set_random_seed(train.seed + state["epoch"])
    encoder = model_lib.encoder(config)
    if (args.run / "last.weights.h5").is_file():
        encoder.load_weights(args.run / "last.weights.h5")
    model = pair_model(encoder, config, train.temperature)
    model.compile(optimizer=keras.optimizers.Adam(train.learning_rate), loss=loss)
    val_rng = np.random.default_rng(train.seed)
    val = [sample(validation, val_rng, train.batch, search, train.offset_jitter) for _ in range(train.validation_batches)]
    rng = np.random.default_rng(train.seed * 1000 + state["epoch"])
    print(f"{len(training)} training songs, {len(validation)} validation songs; model {sha[:8]}", flush=True)
    for epoch in range(state["epoch"], train.epochs):
        started, losses = time.time(), []
        lr = train.learning_rate * 0.5 * (1 + np.cos(np.pi * epoch / train.epochs))
        model.optimizer.learning_rate.assign(lr)
        for _ in range(train.steps_per_epoch):
            q, r = sample(training, rng, train.batch, search, train.offset_jitter)
            losses.append(float(model.train_on_batch([q, r], np.arange(q.shape[0]))))
        score = top1(model, val)
        state["history"].append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_top1": score,
                                 "lr": float(lr), "seconds": round(time.time() - started, 1)})
        encoder.save_weights(args.run / "last.weights.h5")
        if score > state["best"]:
            state["best"] = score
            encoder.save_weights(args.run / "best.weights.h5")
            model_lib.export(encoder, args.run / "embedder.npz")
        state["epoch"] = epoch + 1
        tmp = state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dict(state, config=dataclasses.asdict(config), train=dataclasses.asdict(train),
                                       lines=str(args.lines), model_sha256=sha), indent=1))
        tmp.replace(state_path)
        print(json.dumps(state["history"][-1]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
