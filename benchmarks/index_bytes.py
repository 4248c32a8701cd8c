"""Bytes per song of a catalogue's shortlist index, by vector dimension and Annoy trees.

    python -m benchmarks.index_bytes [--index assets/catalogue] [--songs 200] \
        --out benchmarks/results/index-bytes

Builds angular Annoy indexes over the real window vectors of the catalogue's first
--songs songs (projected onto a seeded orthonormal basis for dimensions below the
catalogue's: the node layout, hence the size, depends on the dimension, not on what the
vectors mean), saves each and weighs the file. The other files of a catalogue are weighed
as they are: the stored melody (a byte per melody frame) and the window table. Reported
per window and per three-minute song at the catalogue's window hop. Writes
index_bytes.csv (with a header) and prints it.
"""
from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from device import assets
from device.catalogue import Catalogue

SONG_S = 180.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=assets.default_catalogue_dir())
    parser.add_argument("--songs", type=int, default=200, help="songs whose windows are indexed")
    parser.add_argument("--dims", default="32,16,8")
    parser.add_argument("--trees", default="1,2,4,8")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    catalogue = Catalogue(args.index)
    windows = np.load(args.index / "windows.npy", mmap_mode="r")  # (n_items, 3): song row, start, key
    n = int(np.searchsorted(windows[:, 0], min(args.songs, len(catalogue.songs))))
    source = AnnoyIndex(catalogue.embedder.dim, "angular")
    source.load(str(args.index / "index.ann"))
    vectors = np.array([source.get_item_vector(i) for i in range(n)], dtype=np.float32)
    dim = vectors.shape[1]
    shortlist = catalogue.config.shortlist
    melody_rate = catalogue.melody_rate_hz
    windows_per_song = (SONG_S * melody_rate - shortlist.window_frames) / shortlist.catalogue_hop_frames + 1
    fixed = {"melody": SONG_S * melody_rate,  # a byte per melody frame
             "windows_table": windows_per_song * windows.itemsize * windows.shape[1]}
    rng = np.random.default_rng(0)
    rows = []
    for d in (int(x) for x in args.dims.split(",")):
        basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0][:, :d]
        projected = vectors @ basis if d < dim else vectors
        for trees in (int(x) for x in args.trees.split(",")):
            index = AnnoyIndex(d, "angular")
            for i, v in enumerate(projected):
                index.add_item(i, v.tolist())
            index.build(trees, n_jobs=1)
            with tempfile.TemporaryDirectory() as tmp:
                index.save(f"{tmp}/index.ann")
                per_window = Path(f"{tmp}/index.ann").stat().st_size / n
            index.unload()
            annoy_kb = per_window * windows_per_song / 1000
            rows.append({"dim": d, "trees": trees, "annoy_bytes_per_window": round(per_window, 1),
                         "windows_per_3min_song": round(windows_per_song, 1),
                         "annoy_kb_per_3min_song": round(annoy_kb, 2),
                         "melody_kb": round(fixed["melody"] / 1000, 2),
                         "windows_table_kb": round(fixed["windows_table"] / 1000, 2),
                         "total_kb_per_3min_song": round(annoy_kb + sum(fixed.values()) / 1000, 2)})
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "index_bytes.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
