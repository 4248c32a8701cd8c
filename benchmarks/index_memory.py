"""Index build memory: the peak resident memory of building catalogues as they grow.

    python -m benchmarks.index_memory --out benchmarks/results/board [--label after]
        [--writer-songs 1000 10000] [--build-songs 5 20] [--runtime DIR]

(a) writer: device.catalogue.write_catalogue alone on N songs of seeded synthetic
    3-minute melodies (notes of 0.2-0.8 s, 75% of frames voiced), for each N of
    --writer-songs: what the catalogue's windows and index cost;
(b) build: `hum-search index build` (hearing included) of K synthetic 2.8-minute
    recordings (harmonic tones following random notes, 44.1 kHz FLAC), for each K of
    --build-songs.
Each runs in a subprocess of this Python with PYTHONPATH=--runtime (default: this
checkout; a copy of another commit's device/ measures (b) before a change with the same
script). Peak resident memory is the child's own VmHWM (device.bench.run_module), which
counts the pages of the index file being built as well; the peak anonymous memory (what
cannot be written back to a file) is sampled from /proc/PID/status every 20 ms. Writes index_memory_<label>.csv (with a header), prints it.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from device import assets
from device import melody as mel
from device.bench import run_module
from device.catalogue import Catalogue, write_catalogue

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ("stage", "songs", "song_s", "windows", "wall_s", "peak_rss_mb", "peak_anon_mb")


def write_synthetic(n_songs: int, seconds: float, out: Path) -> None:
    """A catalogue of n_songs seeded synthetic melodies (the writer alone, no hearing)."""
    base = Catalogue(assets.default_catalogue_dir())
    frames = int(seconds * base.melody_rate_hz)

    def songs():
        rng = np.random.default_rng(0)
        for i in range(n_songs):
            lengths = rng.integers(3, 10, frames // 3)
            notes = np.repeat(rng.integers(55, 76, lengths.size), lengths)[:frames].astype(np.float32)
            notes[rng.random(notes.size) < 0.25] = 0
            yield (f"song-{i}", f"Song {i}", "", seconds), mel.encode(notes)

    write_catalogue(out, base.manifest, base.model_path, songs(), base.config, base.melody_rate_hz)


def measured(module: str, args: list[str], runtime: Path) -> tuple[float, float, float]:
    """(wall s, peak RSS MB, peak anonymous MB) of `python -m module args` on a runtime."""
    r = run_module(module, args, env=dict(os.environ, PYTHONPATH=str(runtime)), poll_s=0.02, cwd=str(runtime))
    return r["wall_ms"] / 1000.0, r["peak_rss_mb"], r["peak_anon_mb"]


def synthetic_recording(seconds: float, rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """float32 (n,): four harmonics following random notes of 0.2-0.8 s, a little noise."""
    n = int(seconds * rate_hz)
    lengths = rng.integers(int(0.2 * rate_hz), int(0.8 * rate_hz), n // int(0.2 * rate_hz) + 1)
    midi = np.repeat(rng.integers(55, 76, lengths.size), lengths)[:n]
    phase = 2 * np.pi * np.cumsum(440.0 * 2.0 ** ((midi - 69) / 12.0)) / rate_hz
    tone = sum(np.sin(h * phase) / h for h in range(1, 5))
    return (0.2 * tone + 0.01 * rng.standard_normal(n)).astype(np.float32)


def windows_of(catalogue_dir: Path) -> int:
    import json
    return json.loads((catalogue_dir / "manifest.json").read_text())["index"]["n_items"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", help="folder for index_memory_<label>.csv")
    p.add_argument("--label", default="after")
    p.add_argument("--writer-songs", type=int, nargs="*", default=[1000, 10000])
    p.add_argument("--build-songs", type=int, nargs="*", default=[5, 20])
    p.add_argument("--runtime", default=str(ROOT), help="checkout whose device/ is measured")
    p.add_argument("--write-synthetic", nargs=2, metavar=("N", "OUT"),
                   help="(the measured child) write a catalogue of N synthetic 3-minute melodies")
    args = p.parse_args(argv)
    if args.write_synthetic:
        write_synthetic(int(args.write_synthetic[0]), 180.0, Path(args.write_synthetic[1]))
        return 0
    if args.out is None:
        p.error("--out is required")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        for n in args.writer_songs:
            out = work / f"writer-{n}"
            wall, rss, anon = measured("benchmarks.index_memory", ["--write-synthetic", str(n), str(out)],
                                       Path(args.runtime))
            rows.append(("writer", n, 180.0, windows_of(out), wall, rss, anon))
            print(rows[-1], flush=True)
        rng = np.random.default_rng(1)
        audio = work / "audio"
        audio.mkdir()
        made = 0
        for k in sorted(args.build_songs):
            for i in range(made, k):
                soundfile.write(audio / f"synthetic-{i:05d}.flac", synthetic_recording(168.0, 44100, rng), 44100)
            made = k
            out = work / f"build-{k}"
            wall, rss, anon = measured("device.cli", ["index", "build", str(audio), "--out", str(out)],
                                       Path(args.runtime))
            rows.append(("build", k, 168.0, windows_of(out), wall, rss, anon))
            print(rows[-1], flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with open(Path(args.out) / f"index_memory_{args.label}.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        for r in rows:
            writer.writerow([r[0], r[1], r[2], r[3], f"{r[4]:.1f}", f"{r[5]:.1f}", f"{r[6]:.1f}"])
    print((Path(args.out) / f"index_memory_{args.label}.csv").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
