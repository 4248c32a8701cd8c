"""Shortlist recall as the catalogue grows: the IVF-PQ index against exact search, 1,000 to
100,000 songs.

    python -m benchmarks.shortlist_scale --shared-data ../shared/data \
        --pool-cache data/distractors/pool.pkl --out benchmarks/results/shortlist-scale \
        --sizes 1000,10000 --queries 100 [--neighbours 100,200] [--code-bytes 8,16] [--n-probes 8,16,32]

Queries: (a)'s synthetic hums of held-out songs (benchmarks.evaluate.synthetic_hums, the
scorecard's seed), clean, heard by --index's model as `identify` hears them.

The catalogue of N songs exists as shortlist vectors only, so that 100,000 songs fit a
session without rendering anything:
- real: the windows of --index's songs (every held-out song, then a seeded sample:
  benchmarks.distractors.subset), embedded from their stored melodies as `index build`
  embeds them;
- filler above the index's size: the distractor pool's tunes (benchmarks.distractors),
  their written melodies as if heard without error, each played through to a catalogue
  song's length; beyond the pool, the same tunes again at other tempi (FILLER_TEMPI):
  new vectors, but not new tunes. Filler is clean, so it may attract hums more than heard
  recordings would: a bound of that kind, not a measurement of a real catalogue.

For each size, number of neighbours per query window (--neighbours) and method, each
query's shortlist is ranked by device.shortlist.rank, as the recognizer ranks it:
- exact: every vector's cosine, the true nearest neighbours;
- ivfpq-B-P: the index `index build` writes (device.vector_index, cells as
  device.catalogue.IndexConfig lays them out for that many vectors) with B code bytes a
  window, searching P cells per query vector; its similarities are those the codes give,
  as at run time. The runtime's setting is B = 16 and P = IndexConfig.n_probe.
Reported: recall@10/30/100 (the right song in the shortlist's first K), the index's
recall@30 against exact's (the share of exact's finds it keeps), and the median
milliseconds of a query's searches (all its windows in one batch, one thread). Writes
shortlist_scale.csv and prints it.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator

import dataclasses

import numpy as np

from benchmarks import distractors as dis
from benchmarks.evaluate import synthetic_hums
from device import assets
from device import shortlist as sl
from device import vector_index as vi
from device.catalogue import Catalogue, IndexConfig
from device.recognizer import Recognizer
from training.melody import Song, sounding_pitch

FILLER_TEMPI = (1.0, 0.8, 1.25, 0.9, 1.11, 0.7, 1.43, 0.85, 1.18, 0.75, 1.33, 0.95, 1.05)
FIELDS = ("songs", "vectors", "filler_songs", "queries", "neighbours", "method", "code_bytes", "n_probe",
          "recall_at_10", "recall_at_30", "recall_at_100", "recall_at_30_vs_exact", "search_ms_median")
RECALL_AT = (10, 30, 100)


def written_line(song: Song, seconds: float, tempo: float, rate_hz: float) -> np.ndarray:
    """float32 (n,): the song's melody played `tempo` times as slowly, as a melody line
    (MIDI per frame at rate_hz, 0 where none), through to `seconds` of song time."""
    played = dis.repeated(song, seconds)
    n = int(seconds * tempo * rate_hz)
    return sounding_pitch(played.melody, (np.arange(n) + 0.5) / rate_hz / tempo)


def catalogue_vectors(lines: Iterable[np.ndarray], embedder, config: sl.ShortlistConfig
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A catalogue's shortlist vectors, made as `index build` makes them: float32 (n, dim)
    unit rows, and per row its song (the line's place in `lines`), start frame and key."""
    parts = []
    for row, line in enumerate(lines):
        starts, vecs, keys = sl.catalogue_windows(line, embedder, config)
        parts.append((vecs, np.full(starts.size, row, np.int64), starts.astype(np.int64), keys))
    vecs, rows, starts, keys = (np.concatenate(p) for p in zip(*parts))
    return vecs, rows, starts, keys


def exact_hits(windows: list[sl.QueryWindow], vecs: np.ndarray, neighbours: int, chunk: int = 8
               ) -> list[np.ndarray]:
    """Per query window, the indices of its `neighbours` most similar vectors, best first."""
    found = []
    for c in range(0, len(windows), chunk):
        sims = np.stack([w.vector for w in windows[c:c + chunk]]) @ vecs.T
        top = np.argpartition(-sims, neighbours - 1, axis=1)[:, :neighbours]
        for s, t in zip(sims, top):
            found.append(t[np.argsort(-s[t], kind="stable")])
    return found


def shortlist_of(windows: list[sl.QueryWindow], items: list[np.ndarray], rows, starts, keys,
                 sims: list[np.ndarray], n: int) -> list[int]:
    """The songs (rows) of the shortlist that device.shortlist.rank makes of these finds
    (items: per window, indices into rows, starts and keys; sims: their similarities)."""
    hits = [(w, rows[i], starts[i], s, keys[i]) for w, i, s in zip(windows, items, sims)]
    return [c.row for c in sl.rank(hits, n)]


def recalls(ranks: list[int]) -> dict:
    r = np.array(ranks)
    return {f"recall_at_{k}": round(float(np.mean((r > 0) & (r <= k))), 3) for k in RECALL_AT}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, required=True)
    parser.add_argument("--index", type=Path, default=assets.default_catalogue_dir())
    parser.add_argument("--pool-cache", type=Path, help="benchmarks.distractors' pool pickle")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--neighbours", default="100,200")
    parser.add_argument("--code-bytes", default="8,16")
    parser.add_argument("--n-probes", default="8,16,32")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    try:
        sizes = sorted(int(s) for s in args.sizes.split(","))
        neighbour_counts = [int(s) for s in args.neighbours.split(",")]
        code_bytes = [int(s) for s in args.code_bytes.split(",")]
        probes = [int(s) for s in args.n_probes.split(",")]
    except ValueError:
        parser.error("--sizes, --neighbours, --code-bytes and --n-probes take comma-separated whole numbers")
    base = Catalogue(args.index)
    config = base.config.shortlist
    recognizer = Recognizer(base)
    rate = recognizer.frontend.sample_rate_hz
    queries = []
    for song, _, hum in synthetic_hums(args.shared_data, args.queries, args.seed, rate):
        line = recognizer.identify(hum.audio).melody
        queries.append((song.song_id, sl.query_windows(line, base.embedder, config)))
    print(f"shortlist_scale: {len(queries)} queries heard", file=sys.stderr, flush=True)
    pool = dis.load_pool(args.shared_data, args.pool_cache)
    filler_tunes = dis.select(pool.distractors, len(pool.distractors))
    row_of = {s.song_id: i for i, s in enumerate(base.songs)}
    out_rows = []
    for size in sizes:
        started = time.perf_counter()
        real = dis.subset(base, min(size, len(base.songs)), args.seed)

        def lines() -> Iterator[np.ndarray]:
            for song in real:
                yield base.melody(row_of[song.song_id])
            for k in range(size - len(real)):
                tune = filler_tunes[k % len(filler_tunes)]
                tempo = FILLER_TEMPI[k // len(filler_tunes) % len(FILLER_TEMPI)]
                seconds = dis.target_seconds(tune, pool.catalogue_durations_s, 1e9)
                yield written_line(tune, seconds / tempo, tempo, base.melody_rate_hz)

        vecs, rows, starts, keys = catalogue_vectors(lines(), base.embedder, config)
        truth = {s.song_id: i for i, s in enumerate(real)}
        print(f"shortlist_scale: {size} songs, {len(vecs)} vectors ({time.perf_counter() - started:.0f} s)",
              file=sys.stderr, flush=True)
        common = {"songs": size, "vectors": len(vecs), "filler_songs": size - len(real), "queries": len(queries)}
        nearest = [exact_hits(windows, vecs, max(neighbour_counts)) for _, windows in queries]
        indexes = {}
        for b in code_bytes:
            arrays, order = vi.build(vecs, dataclasses.replace(IndexConfig(), code_bytes=b).layout(len(vecs)))
            indexes[b] = (vi.VectorIndex(arrays), order)
        for n in neighbour_counts:
            exact_found = {}
            methods = [("exact", None, None)] + [(f"ivfpq-{b}-{p}", b, p) for b in code_bytes for p in probes]
            for method, b, probe in methods:
                ranks, kept, times = [], [], []
                for (song_id, windows), best in zip(queries, nearest):
                    if b is None:
                        items = [i[:n] for i in best]  # best first: the n nearest
                        sims = [vecs[i] @ w.vector for w, i in zip(windows, items)]
                    else:
                        index, order = indexes[b]
                        t = time.perf_counter()
                        found, found_sims = index.search(np.stack([w.vector for w in windows]), n, probe)
                        times.append((time.perf_counter() - t) * 1000)
                        items = [order[f[f >= 0]] for f in found]
                        sims = [s[f >= 0] for f, s in zip(found, found_sims)]
                    shortlist = shortlist_of(windows, items, rows, starts, keys, sims, max(RECALL_AT))
                    rank = shortlist.index(truth[song_id]) + 1 if truth[song_id] in shortlist else 0
                    ranks.append(rank)
                    if b is None:
                        exact_found[song_id] = 0 < rank <= 30
                    elif exact_found[song_id]:
                        kept.append(0 < rank <= 30)
                out_rows.append({**common, "neighbours": n, "method": method, "code_bytes": b or "",
                                 "n_probe": probe or "", **recalls(ranks),
                                 "recall_at_30_vs_exact": round(float(np.mean(kept)), 3) if kept else "",
                                 "search_ms_median": round(float(np.median(times)), 1) if times else ""})
                print(out_rows[-1], file=sys.stderr, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "shortlist_scale.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(out_rows)
    for r in out_rows:
        print(",".join(str(r[f]) for f in FIELDS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
