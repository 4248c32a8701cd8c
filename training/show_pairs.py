"""A picture of what the model is trained on: query windows beside their recording windows.

    python -m training.show_pairs --pairs data/pairs/v2 --out docs/pairs.png [--n 12]

Each row is one training pair as the model sees it (normalised windows, after the
pitch and tempo augmentation), labelled with what made the query (hum, sung syllable,
whistle, pitch-track tone or hum, mined version); frequency axis in semitones above C2.
Rows cycle through the kinds of query found in the first shard.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from device import frontend as fe  # noqa: E402
from training import pair_shards  # noqa: E402
from training.batches import sample_pair  # noqa: E402
from training.config import TrainConfig  # noqa: E402


def chosen_pairs(songs: list[pair_shards.SongPairs], n: int, rng: np.random.Generator,
                 frontend: fe.FrontendConfig) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(kind, query window, recording window) for n songs, one kind after another."""
    config = TrainConfig()
    by_kind: dict[str, list[tuple[int, int]]] = {}
    for s, song in enumerate(songs):
        for q, kind in enumerate(song.kinds or ["hum"] * len(song.hums_db)):
            by_kind.setdefault(kind, []).append((s, q))
    kinds = sorted(by_kind)
    rows = []
    for i in range(20 * n):
        if len(rows) == n:
            break
        s, q = by_kind[kinds[i % len(kinds)]][int(rng.integers(len(by_kind[kinds[i % len(kinds)]])))]
        pair = sample_pair(songs[s], rng, config, frontend, query=q)
        if pair is not None:
            x = fe.normalize_windows(np.stack(pair), frontend)
            rows.append((f"{kinds[i % len(kinds)]} ({songs[s].song_id})", x[0], x[1]))
    return rows


def plot(pairs_dir: Path, out: Path, n: int, seed: int) -> None:
    frontend = fe.FrontendConfig()
    songs = pair_shards.load(sorted(pairs_dir.glob("shard_*.pkl"))[:1])
    rows = chosen_pairs(songs, n, np.random.default_rng(seed), frontend)
    extent = (0, frontend.window_seconds, 0, frontend.n_bins / frontend.bins_per_semitone)
    fig, axes = plt.subplots(len(rows), 2, figsize=(10, 2.2 * len(rows)), sharex=True, sharey=True,
                             squeeze=False, dpi=70)
    for i, (label, query, recording) in enumerate(rows):
        for j, (title, window) in enumerate(((f"query: {label}", query), ("recording", recording))):
            ax = axes[i, j]
            ax.imshow(window.T, origin="lower", aspect="auto", extent=extent, cmap="magma")
            ax.set_title(title, fontsize=9)
            ax.set_ylabel("semitones above C2")
    for ax in axes[-1]:
        ax.set_xlabel("seconds")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.canvas.draw()  # a 64-colour palette keeps the noisy spectrograms' PNG small
    Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3]).quantize(64).save(out, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    plot(args.pairs, args.out, args.n, args.seed)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
