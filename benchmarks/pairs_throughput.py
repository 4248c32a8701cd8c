"""Throughput of the training-pair pipeline: hours of paired audio per CPU hour.

    python -m benchmarks.pairs_throughput --shared-data ../shared/data --out benchmarks/results/data --songs 60

Makes the pairs of a seeded sample of training songs in this process (one core, as one
build worker does) and counts CPU time (process time, all threads). "Paired audio" is
query audio: every second of a query is paired with the recording of the same passage.
The recording seconds are reported too. The build runs one worker per core, so a
2-core machine makes about twice the per-CPU-hour figure per wall-clock hour.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import numpy as np

from device import frontend as fe
from training.config import DataConfig
from training.pairs import PairMaker, training_songs
from training.render import find_soundfonts


def measure(shared_data: Path, n_songs: int, seed: int) -> dict:
    data = DataConfig.melody()
    config = fe.FrontendConfig()
    songs = training_songs(shared_data, data)
    chosen = np.random.default_rng(seed).choice(len(songs), size=n_songs, replace=False)
    frame_s = config.hop_length_samples / config.sample_rate_hz
    query_s = recording_s = cpu_s = 0.0
    kinds: collections.Counter = collections.Counter()
    made = 0
    with PairMaker(data, config, find_soundfonts()) as maker:
        maker.make(songs[int(chosen[0])])  # warm-up: banks of rooms and noises
        for done, i in enumerate(chosen, 1):
            started = time.process_time()
            pairs = maker.make(songs[int(i)])
            cpu_s += time.process_time() - started
            if pairs is not None:
                made += 1
                recording_s += pairs.recording_db.shape[0] * frame_s
                query_s += sum(q.shape[0] for q in pairs.hums_db) * frame_s
                kinds.update(pairs.kinds)
            print(f"throughput: {done}/{n_songs} songs, {cpu_s:.0f} CPU s", file=sys.stderr, flush=True)
    return {
        "songs": n_songs, "songs_with_pairs": made, "cpu_s": round(cpu_s, 1),
        "query_hours": round(query_s / 3600, 3), "recording_hours": round(recording_s / 3600, 3),
        "paired_hours_per_cpu_hour": round(query_s / cpu_s, 1),
        "recording_hours_per_cpu_hour": round(recording_s / cpu_s, 1),
        "cpu_s_per_song": round(cpu_s / n_songs, 2), "query_kinds": dict(sorted(kinds.items())),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="directory for throughput.json")
    parser.add_argument("--songs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = measure(args.shared_data, args.songs, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
