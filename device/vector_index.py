"""The shortlist's index: window vectors product-quantised in an inverted file (IVF-PQ).

faiss computes (k-means, encoding, search); the file is numpy's, checked before faiss
sees any of it. index.npz holds:
    centroids   float32 (n_lists, dim): the coarse quantiser's cells
    codebooks   float32 (pq_m, 2**pq_bits, dim / pq_m): sub-codebooks of the residuals
    list_sizes  int64 (n_lists,): items per cell; items are stored cell by cell
    codes       uint8 (n_items, code_size): each item's residual, code_size =
                ceil(pq_m * pq_bits / 8) bytes
An item's number is its place in that order (windows.npy lists the windows in the same
order). Similarities are inner products of unit vectors (cosines), approximated by the codes.
"""
from __future__ import annotations

import dataclasses
import math
import struct
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from device import manifest as mf

ARRAYS = ("centroids", "codebooks", "list_sizes", "codes")
SEED = 1234  # k-means, and the sample it trains on: the same vectors give the same index
TRAIN_PER_LIST = 64  # training vectors per coarse cell, at least 2**16 (all when fewer)
ADD_CHUNK = 65_536  # vectors encoded at a time


class IndexFileError(Exception):
    """An index file that is not a well-formed IVF-PQ of the manifest's shape (one line)."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """How an index is cut: cells, sub-vectors and bits per sub-vector code."""

    n_lists: int
    pq_m: int
    pq_bits: int

    @property
    def code_size(self) -> int:
        return math.ceil(self.pq_m * self.pq_bits / 8)

    @staticmethod
    def for_items(n_items: int, pq_m: int, lists_per_sqrt_item: float) -> "Layout":
        """Cells: the power of two nearest lists_per_sqrt_item * sqrt(n_items), with at
        least 39 items a cell (k-means needs them); codes of 8 bits, fewer when a catalogue
        holds under 256 items (each sub-codebook's k-means needs an item per code)."""
        wanted = max(1.0, lists_per_sqrt_item * math.sqrt(max(n_items, 1)))
        n_lists = max(1, min(2 ** round(math.log2(wanted)), n_items // 39))
        return Layout(n_lists, pq_m, max(1, min(8, int(math.log2(max(n_items, 2))))))

    def problem(self, dim: int) -> str | None:
        """Why vectors of `dim` values cannot be cut this way, or None."""
        if dim % self.pq_m:
            return f"{self.pq_m} sub-vectors do not divide {dim} values"
        return None


class VectorIndex:
    """A loaded IVF-PQ index, searchable by batches of unit vectors."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        """arrays: the four ARRAYS, as `build` returns them and `read` checks them."""
        import faiss  # here, not at import: `hum-search --help` need not load it
        faiss.omp_set_num_threads(1)  # one core, as the rest of the runtime
        centroids, codebooks = arrays["centroids"], arrays["codebooks"]
        sizes, codes = arrays["list_sizes"], arrays["codes"]
        n_lists, dim = centroids.shape
        pq_m, n_codes = codebooks.shape[:2]
        quantizer = faiss.IndexFlatIP(dim)
        quantizer.add(np.ascontiguousarray(centroids, np.float32))
        index = faiss.IndexIVFPQ(quantizer, dim, n_lists, pq_m, int(math.log2(n_codes)),
                                 faiss.METRIC_INNER_PRODUCT)
        faiss.copy_array_to_vector(np.ascontiguousarray(codebooks, np.float32).ravel(), index.pq.centroids)
        index.is_trained = True
        ends = np.cumsum(sizes)
        items = np.arange(codes.shape[0], dtype=np.int64)
        for cell in np.flatnonzero(sizes):
            first, last = int(ends[cell] - sizes[cell]), int(ends[cell])
            index.invlists.add_entries(int(cell), last - first, faiss.swig_ptr(items[first:last]),
                                       faiss.swig_ptr(np.ascontiguousarray(codes[first:last])))
        index.ntotal = codes.shape[0]
        self._quantizer, self._index = quantizer, index  # the index refers to its quantizer
        self.n_items, self.n_lists = int(codes.shape[0]), int(n_lists)

    def search(self, vectors: np.ndarray, neighbours: int, n_probe: int) -> tuple[np.ndarray, np.ndarray]:
        """The nearest items of each vector.

        Args:
            vectors: float32 (q, dim), unit rows.
            n_probe: cells searched per vector.

        Returns:
            (items int64 (q, neighbours), -1 past the last found; cosines float32 (q,
            neighbours), best first).
        """
        self._index.nprobe = max(1, min(n_probe, self.n_lists))
        sims, items = self._index.search(np.ascontiguousarray(vectors, np.float32), neighbours)
        return items, sims


def build(vectors: np.ndarray, layout: Layout) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Trains and fills an index of `vectors`, one core, deterministic.

    Args:
        vectors: float32 (n, dim) unit rows: an array, or anything with `shape` that returns
            rows for a slice and for an index array (catalogue.RowFile reads a file so).

    Returns:
        (the four ARRAYS, order int64 (n,): the row of `vectors` stored as each item).
    """
    import faiss
    from faiss.contrib.inspect_tools import get_invlist
    faiss.omp_set_num_threads(1)
    n, dim = vectors.shape
    n_codes = 2 ** layout.pq_bits
    if n == 0:
        empty = {"centroids": np.zeros((1, dim), np.float32),
                 "codebooks": np.zeros((layout.pq_m, n_codes, dim // layout.pq_m), np.float32),
                 "list_sizes": np.zeros(1, np.int64), "codes": np.zeros((0, layout.code_size), np.uint8)}
        return empty, np.zeros(0, np.int64)
    sample = min(n, max(2 ** 16, TRAIN_PER_LIST * layout.n_lists))
    chosen = np.sort(np.random.default_rng(SEED).choice(n, sample, replace=False))
    chosen = np.resize(chosen, max(sample, n_codes, layout.n_lists))  # k-means needs a point per centroid
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(quantizer, dim, layout.n_lists, layout.pq_m, layout.pq_bits,
                             faiss.METRIC_INNER_PRODUCT)
    for params in (index.cp, index.pq.cp):
        params.seed, params.min_points_per_centroid = SEED, 1  # no warnings about small samples
    index.train(np.ascontiguousarray(vectors[chosen], np.float32))
    for first in range(0, n, ADD_CHUNK):
        index.add(np.ascontiguousarray(vectors[first:first + ADD_CHUNK], np.float32))
    sizes = np.array([index.invlists.list_size(cell) for cell in range(layout.n_lists)], np.int64)
    codes, order, first = np.empty((n, layout.code_size), np.uint8), np.empty(n, np.int64), 0
    for cell in np.flatnonzero(sizes):  # one cell at a time: the index and the arrays, no third copy
        ids, cell_codes = get_invlist(index.invlists, int(cell))
        codes[first:first + ids.size], order[first:first + ids.size] = cell_codes.reshape(ids.size, -1), ids
        first += ids.size
    arrays = {"centroids": quantizer.reconstruct_n(0, layout.n_lists).astype(np.float32),
              "codebooks": faiss.vector_to_array(index.pq.centroids).astype(np.float32).reshape(
                  layout.pq_m, n_codes, dim // layout.pq_m),
              "list_sizes": sizes, "codes": codes}
    return arrays, order


def write(out: Path | BinaryIO, arrays: dict[str, np.ndarray]) -> None:
    """index.npz (to a path or a binary file), as numpy.savez lays it out but byte for byte
    the same for the same arrays (no time stamps), so that an unchanged catalogue keeps its
    checksums."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name in ARRAYS:
            member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(member, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.ascontiguousarray(arrays[name]), version=(1, 0))


def read(path: Path, layout: Layout, dim: int, n_items: int) -> dict[str, np.ndarray]:
    """The arrays of index.npz, each header checked against the manifest's shape before
    its data is read, then the values (finite, cell sizes adding up to n_items).

    Raises:
        IndexFileError: anything else.
    """
    expected = {"centroids": ((layout.n_lists, dim), "<f4"),
                "codebooks": ((layout.pq_m, 2 ** layout.pq_bits, dim // max(layout.pq_m, 1)), "<f4"),
                "list_sizes": ((layout.n_lists,), "<i8"), "codes": ((n_items, layout.code_size), "|u1")}
    if (problem := layout.problem(dim)) is not None:
        raise IndexFileError(f"{path}: {problem}")
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            if sorted(archive.namelist()) != sorted(f"{name}.npy" for name in ARRAYS):
                raise ValueError(f"holds {sorted(archive.namelist())[:6]}, not the arrays {', '.join(ARRAYS)}")
            if any(info.compress_type != zipfile.ZIP_STORED for info in archive.infolist()):
                raise ValueError("compressed arrays (the writer stores them as they are)")
            for name, (shape, dtype) in expected.items():
                n_bytes = math.prod(shape) * np.dtype(dtype).itemsize
                with archive.open(f"{name}.npy") as handle:
                    header = mf.npy_header(handle)
                    if header != (shape, False, np.dtype(dtype)):
                        raise ValueError(f"{name} is {header[1] and 'Fortran ' or ''}{header[2]} {header[0]}, "
                                         f"the manifest makes it {np.dtype(dtype)} {shape}")
                    data = handle.read(n_bytes + 1)
                if len(data) != n_bytes:
                    raise ValueError(f"{name} holds {len(data)} bytes of data, not {n_bytes}")
                arrays[name] = np.frombuffer(data, dtype).reshape(shape)
    except mf.NPY_ERRORS + (struct.error, zipfile.BadZipFile, EOFError, NotImplementedError) as exc:
        raise IndexFileError(f"{path}: unreadable index ({' '.join(str(exc).split())[:200]})") from exc
    if not (np.isfinite(arrays["centroids"]).all() and np.isfinite(arrays["codebooks"]).all()):
        raise IndexFileError(f"{path}: centroids or codebooks that are not finite")
    sizes = arrays["list_sizes"]
    if (sizes < 0).any() or (sizes > n_items).any() or int(sizes.sum()) != n_items:
        raise IndexFileError(f"{path}: cells of {int(sizes.sum())} items, the manifest says {n_items}")
    return arrays
