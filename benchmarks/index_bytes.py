"""Bytes per song of a catalogue, by the index's code bytes per window.

    python -m benchmarks.index_bytes [--index assets/catalogue] [--code-bytes 4,8,16,32] \
        --out benchmarks/results/index-bytes

Writes the catalogue again from its stored melodies (as `hum-search index reembed` does)
with each number of code bytes, and weighs every file: the index (codes, cells,
codebooks), the window table, the stored melody (a byte per melody frame), the song list
and the model and embedder every catalogue carries. Reported per window and per
three-minute song (the catalogue's mean song scaled to 180 s). How much each setting
finds is benchmarks.shortlist_scale's (--code-bytes there). Writes index_bytes.csv (with a
header) and prints it.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import tempfile
from pathlib import Path

from device import assets
from device import indexing
from device.catalogue import (EMBEDDER_FILE, INDEX_FILE, MELODY_FILE, MODEL_FILE, SONGS_FILE,
                              WINDOWS_FILE, Catalogue, IndexConfig)

SONG_S = 180.0
PER_SONG = (INDEX_FILE, WINDOWS_FILE, MELODY_FILE, SONGS_FILE)  # grow with the songs


def weigh(directory: Path) -> dict:
    """Bytes of each catalogue file; songs, windows and seconds of music it holds."""
    catalogue = Catalogue(directory)
    seconds = sum(s.duration_s for s in catalogue.songs)
    files = {name: (directory / name).stat().st_size
             for name in PER_SONG + (MODEL_FILE, EMBEDDER_FILE, "manifest.json")}
    return {"songs": len(catalogue.songs), "windows": catalogue.n_items, "seconds": seconds, "files": files}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=assets.default_catalogue_dir())
    parser.add_argument("--code-bytes", default="4,8,16,32")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for code_bytes in [int(c) for c in args.code_bytes.split(",")]:
            out = Path(tmp) / f"code-{code_bytes}"
            config = dataclasses.replace(IndexConfig(), code_bytes=code_bytes)
            indexing.reembed(args.index, out, args.index, config, log=lambda line: None)
            weight = weigh(out)
            scale = SONG_S / (weight["seconds"] / weight["songs"])  # bytes of a mean song -> of 180 s
            per_song = {name: weight["files"][name] / weight["songs"] * scale / 1000 for name in PER_SONG}
            rows.append({"code_bytes": code_bytes, "songs": weight["songs"], "windows": weight["windows"],
                         "index_bytes_per_window": round(weight["files"][INDEX_FILE] / weight["windows"], 1),
                         **{f"{name}_kb_per_3min_song": round(kb, 2) for name, kb in per_song.items()},
                         "total_kb_per_3min_song": round(sum(per_song.values()), 2),
                         "shared_kb": round(sum(weight["files"][n] for n in (MODEL_FILE, EMBEDDER_FILE,
                                                                              "manifest.json")) / 1000, 1)})
            print(rows[-1], file=sys.stderr, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "index_bytes.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for row in rows:
        print(",".join(str(v) for v in row.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
