"""Figure: what the melody model hears. For a few held-out songs, a query and its
recording side by side: the spectrogram above, the model's salience below with the true
melody (white dots) and the pitch line read from the salience (red).

    python -m benchmarks.melody_figure --model assets/model --pairs data/pairs/melody \
        --out benchmarks/results/melody/melody.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from device import manifest as mf  # noqa: E402
from device import melody as mel  # noqa: E402
from device.model import MelodyModel  # noqa: E402
from training import pair_shards  # noqa: E402
from training.config import DataConfig  # noqa: E402
from training.train import split_by_song  # noqa: E402

SECONDS = 8.0


def panel(axes, spec: np.ndarray, midi: np.ndarray, model: MelodyModel, frontend, config, title: str):
    """Draws one item in a column of two axes."""
    frames = int(SECONDS * frontend.frame_rate_hz)
    spec, midi = spec[:frames], midi[:frames]
    salience_map = mel.salience(spec, model, frontend, config)
    line, _ = mel.pitch_line(salience_map, frontend, config)
    lo, hi = frontend.fmin_midi, frontend.fmin_midi + frontend.n_bins / frontend.bins_per_semitone
    extent = (0, spec.shape[0] / frontend.frame_rate_hz, lo, hi)
    axes[0].imshow(spec.T, origin="lower", aspect="auto", extent=extent, cmap="magma",
                   vmin=spec.max() - 80, vmax=spec.max())
    axes[0].set_title(title, fontsize=8)
    axes[1].imshow(salience_map.T, origin="lower", aspect="auto", extent=extent, cmap="viridis", vmin=0, vmax=1)
    t = np.arange(midi.size) / frontend.frame_rate_hz
    voiced = midi > 0
    axes[1].plot(t[voiced][::3], midi[voiced][::3], ".", color="white", markersize=1.5)
    melody_t = (np.arange(line.size) + 0.5) * model.time_stride * config.pool / frontend.frame_rate_hz
    axes[1].plot(melody_t[line > 0], line[line > 0], ".", color="red", markersize=2)
    for ax in axes:
        ax.set_ylim(40, 90)
        ax.tick_params(labelsize=6)
    axes[0].set_ylabel("MIDI", fontsize=7)
    axes[1].set_xlabel("s", fontsize=7)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--songs", type=int, default=3)
    args = parser.parse_args(argv)
    manifest = mf.read(args.model, mf.MODEL_FORMAT)
    frontend = mf.check_frontend(manifest, args.model)
    model = MelodyModel(mf.check_file(args.model, manifest["model"], "model"))
    config = mel.MelodyConfig(**manifest["model"]["melody"])
    songs = pair_shards.load(sorted(args.pairs.glob("shard_*.pkl"))[:4])
    _, held_out = split_by_song(songs, DataConfig.melody().validation_fraction, DataConfig.melody().seed, 1)
    chosen = held_out[:args.songs]
    fig, axes = plt.subplots(4, len(chosen), figsize=(4 * len(chosen), 8), squeeze=False)
    for col, song in enumerate(chosen):
        start = int(max(0, np.median(song.hum_to_recording[0]) - SECONDS * frontend.frame_rate_hz / 2))
        panel(axes[:2, col], song.hums_db[0].astype(np.float32), song.hums_midi[0], model, frontend, config,
              f"query ({song.kinds[0]}) of {song.song_id}")
        panel(axes[2:, col], song.recording_db[start:].astype(np.float32), song.recording_midi[start:],
              model, frontend, config, f"its recording from {start / frontend.frame_rate_hz:.0f} s")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
