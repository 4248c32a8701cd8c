"""A picture of what the model is trained on: hum windows beside their recording windows.

    python -m training.show_pairs --pairs data/pairs/default --out docs/pairs.png [--n 4]

Each row is one training pair as the model sees it (normalised windows, after the
pitch and tempo augmentation), frequency axis in semitones above C2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from device.frontend import FrontendConfig  # noqa: E402
from training import pairs  # noqa: E402
from training.batches import PairBatches  # noqa: E402
from training.config import TrainConfig  # noqa: E402


def plot(pairs_dir: Path, out: Path, n: int, seed: int) -> None:
    frontend = FrontendConfig()
    songs = pairs.load(sorted(pairs_dir.glob("shard_*.pkl"))[:1])
    config = TrainConfig(batch_pairs=n)
    x, _ = PairBatches(songs, config, frontend, 1, seed, fixed=True)[0]
    extent = (0, frontend.window_seconds, 0, frontend.n_bins / frontend.bins_per_semitone)
    fig, axes = plt.subplots(n, 2, figsize=(10, 2.2 * n), sharex=True, sharey=True, squeeze=False)
    for i in range(n):
        for j, (title, window) in enumerate((("synthetic hum", x[i]), ("rendered recording", x[n + i]))):
            ax = axes[i, j]
            ax.imshow(window.T, origin="lower", aspect="auto", extent=extent, cmap="magma")
            ax.set_title(f"pair {i + 1}: {title}", fontsize=9)
            ax.set_ylabel("semitones above C2")
    for ax in axes[-1]:
        ax.set_xlabel("seconds")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    plot(args.pairs, args.out, args.n, args.seed)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
