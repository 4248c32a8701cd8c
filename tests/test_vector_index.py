"""The IVF-PQ shortlist index: its layout follows the catalogue's size, it finds what exact
search finds, is the same for the same vectors, and its file round-trips through the checks."""
import numpy as np
import pytest

from device import vector_index as vi


def unit_rows(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_cells_grow_with_the_square_root_of_the_items_and_codes_fit_small_catalogues():
    assert vi.Layout.for_items(188_000, 16, 3.0) == vi.Layout(1024, 16, 8)  # 1,000 songs
    assert vi.Layout.for_items(1_900_000, 16, 3.0).n_lists == 4096  # 10,000 songs
    assert vi.Layout.for_items(40, 16, 2.0) == vi.Layout(1, 16, 5)  # k-means needs 39 a cell, 32 codes
    assert vi.Layout.for_items(0, 16, 2.0).n_lists == 1 and vi.Layout.for_items(1, 16, 2.0).pq_bits == 1
    sizes = np.geomspace(1, 1e8, 60).astype(int)
    assert all(np.diff([vi.Layout.for_items(int(n), 16, 2.0).n_lists for n in sizes]) >= 0)
    assert vi.Layout(4, 16, 8).code_size == 16 and vi.Layout(4, 16, 5).code_size == 10
    assert vi.Layout(4, 12, 8).problem(32) is not None and vi.Layout(4, 16, 8).problem(32) is None


@pytest.mark.parametrize("n", [0, 1, 40, 5000])
def test_the_index_finds_the_nearest_vectors_the_same_way_each_time(tmp_path, n):
    vectors = unit_rows(n)
    layout = vi.Layout.for_items(n, 16, 2.0)
    arrays, order = vi.build(vectors, layout)
    again, order_again = vi.build(vectors, layout)
    assert np.array_equal(order, order_again) and all(np.array_equal(arrays[k], again[k]) for k in vi.ARRAYS)
    assert sorted(order.tolist()) == list(range(n))  # every vector stored once
    vi.write(tmp_path / "index.npz", arrays)
    index = vi.VectorIndex(vi.read(tmp_path / "index.npz", layout, 32, n))
    queries = unit_rows(50, seed=1) if n else unit_rows(3, seed=1)
    if n == 0:
        items, _ = index.search(queries, 5, 16)
        assert (items == -1).all()
        return
    k = min(10, n)
    items, sims = index.search(queries, k, 16)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :k]
    found = order[items]  # stored item -> the row of `vectors`
    recall = np.mean([len(set(f) & set(e)) / k for f, e in zip(found, exact)])
    assert recall > 0.6
    assert np.all(np.diff(sims, axis=1) <= 1e-6)  # best first
    true = np.einsum("qd,qkd->qk", queries, vectors[found])
    assert np.abs(sims - true).mean() < 0.1  # cosines as the codes give them


@pytest.mark.parametrize("case,change,match", [
    ("cells of the wrong size", lambda a: a["list_sizes"].__setitem__(0, a["list_sizes"][0] + 1), "cells of"),
    ("a negative cell", lambda a: a["list_sizes"].__setitem__(0, -1), "cells of"),
    ("a NaN centroid", lambda a: a["centroids"].__setitem__((0, 0), np.nan), "not finite"),
    ("an infinite codebook", lambda a: a["codebooks"].__setitem__((0, 0, 0), np.inf), "not finite"),
    ("codes of another width", lambda a: a.__setitem__("codes", a["codes"][:, :-1].copy()), "unreadable index"),
    ("float codes", lambda a: a.__setitem__("codes", a["codes"].astype(np.float32)), "unreadable index"),
    ("a missing array", lambda a: a.pop("codebooks"), "unreadable index"),
    ("an extra array", lambda a: a.__setitem__("extra", np.zeros(3)), "unreadable index"),
])
def test_a_damaged_index_is_refused_with_one_line(tmp_path, case, change, match):
    vectors = unit_rows(300)
    layout = vi.Layout.for_items(300, 16, 2.0)
    arrays, _ = vi.build(vectors, layout)
    arrays = {k: v.copy() for k, v in arrays.items()}
    change(arrays)
    np.savez(tmp_path / "index.npz", **arrays)
    with pytest.raises(vi.IndexFileError) as info:
        vi.read(tmp_path / "index.npz", layout, 32, 300)
    assert match in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("raw", [b"", b"PK\x03\x04" + bytes(60), b"not a zip at all" * 10])
def test_bytes_that_are_no_index_are_refused(tmp_path, raw):
    (tmp_path / "index.npz").write_bytes(raw)
    with pytest.raises(vi.IndexFileError):
        vi.read(tmp_path / "index.npz", vi.Layout(1, 16, 8), 32, 10)


@pytest.mark.parametrize("case", ["a header numpy cannot tokenize", "compressed members"])
def test_odd_headers_and_compressed_members_are_refused(tmp_path, case):
    """(Found by benchmarks.fuzz: zeroed bytes in an array's header made numpy's header
    parser raise tokenize.TokenError.)"""
    layout = vi.Layout.for_items(300, 16, 3.0)
    arrays, _ = vi.build(unit_rows(300), layout)
    path = tmp_path / "index.npz"
    if case == "compressed members":
        np.savez_compressed(path, **arrays)
    else:
        vi.write(path, arrays)
        raw = path.read_bytes()
        at = raw.index(b"{'descr'") + 20
        path.write_bytes(raw[:at] + bytes(30) + raw[at + 30:])
    with pytest.raises(vi.IndexFileError) as info:
        vi.read(path, layout, 32, 300)
    assert "\n" not in str(info.value)


def test_more_cells_are_searched_as_the_catalogue_grows_within_bounds():
    from device.catalogue import IndexConfig
    assert [IndexConfig.n_probe(n) for n in (1, 8, 1024, 2048, 4096, 8192, 2 ** 20)] == [1, 8, 16, 16, 32, 64, 64]


def test_a_row_file_reads_slices_and_rows_in_any_order_as_the_array(tmp_path):
    from device.catalogue import RowFile
    rows = unit_rows(1000)
    rows.tofile(tmp_path / "rows.raw")
    reader = RowFile(tmp_path / "rows.raw", 1000, 32)
    reader.CHUNK_ROWS = 64  # several chunks
    order = np.random.default_rng(3).permutation(1000)
    assert np.array_equal(reader[order], rows[order]) and np.array_equal(reader[10:250], rows[10:250])
    assert reader[np.zeros(0, np.int64)].shape == (0, 32) and len(reader) == 1000
    arrays, stored = vi.build(reader, vi.Layout.for_items(1000, 16, 3.0))
    again, stored_again = vi.build(rows, vi.Layout.for_items(1000, 16, 3.0))
    assert np.array_equal(stored, stored_again) and all(np.array_equal(arrays[k], again[k]) for k in vi.ARRAYS)
