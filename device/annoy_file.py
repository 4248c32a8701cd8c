"""The Annoy file's structure, checked in numpy before Annoy maps it.

Annoy trusts its file: a child reference out of range, a negative descendant count or a
cycle between nodes makes its search read outside the mapping (a segmentation fault) or
never end. An angular index of dimension `dim` is an array of nodes of 12 + 4 * dim
bytes: int32 n_descendants, then int32 children[2] followed by float32 v[dim]; a node
listing items uses the children array and v as int32 item ids (up to K = dim + 2).
Annoy's `load` takes the trailing run of nodes with equal n_descendants as the roots and
that count as the number of items (annoylib.h, AnnoyIndex::load); its search reads a
node as an item (n_descendants 1, index below n_items), an item list (n_descendants <= K)
or a split (else: children[0], children[1] and the hyperplane v). `check` walks every
tree from those roots as Annoy would and refuses anything a search could trip on.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

HEADER_INT32 = 3  # n_descendants, children[0], children[1]
MAX_DEPTH = 10_000  # levels; Annoy keeps 1% or more on each side of a split: ~2,100 at 2^31 items


class AnnoyFileError(Exception):
    """An Annoy file whose structure a search could not safely walk (one-line message)."""


def node_bytes(dim: int) -> int:
    return 4 * (HEADER_INT32 + dim)


def check(path: Path, dim: int, n_items: int) -> None:
    """Refuses an angular Annoy file that Annoy could not search safely.

    Checks: the size is a positive multiple of the node size; Annoy's item count (the
    roots' n_descendants) equals `n_items` and fits the file; every item is a leaf with a
    finite vector; from every root, each node is reached once (a forest, so no cycles),
    item lists hold 0..K ids below n_items, and splits have finite hyperplanes and
    children below their own index (Annoy writes children before parents).

    Args:
        dim: the vectors' dimension.
        n_items: the item count the manifest records.

    Raises:
        AnnoyFileError: the first problem found.
    """
    size = Path(path).stat().st_size
    width = HEADER_INT32 + dim
    if size == 0 or size % (4 * width):
        raise AnnoyFileError(f"{path}: {size} bytes is not a whole number of {4 * width}-byte nodes "
                             f"of dimension {dim}")
    words = np.memmap(path, dtype="<i4", mode="r").reshape(-1, width)
    floats = words.view("<f4")
    n_nodes = words.shape[0]
    descendants = words[:, 0]
    last = int(descendants[-1])
    run = n_nodes - 1
    while run > 0 and descendants[run - 1] == last:
        run -= 1
    roots = list(range(n_nodes - 1, run - 1, -1))
    if len(roots) > 1 and words[roots[0], 1] == words[roots[-1], 1]:  # Annoy's "hacky fix"
        roots.pop()
    if last != n_items:
        raise AnnoyFileError(f"{path}: holds {last} items by its roots, the manifest says {n_items}")
    if n_items > n_nodes:
        raise AnnoyFileError(f"{path}: claims {n_items} items in {n_nodes} nodes")
    if n_items and (np.any(descendants[:n_items] != 1) or not np.all(np.isfinite(floats[:n_items, HEADER_INT32:]))):
        raise AnnoyFileError(f"{path}: an item node is damaged (descendant count or vector)")
    k = dim + 2
    seen = np.zeros(n_nodes, dtype=bool)
    frontier, depth = np.array(roots, dtype=np.int64), 0
    while frontier.size:
        if np.unique(frontier).size != frontier.size or np.any(seen[frontier]):
            raise AnnoyFileError(f"{path}: a node is reached twice; the trees are damaged")
        seen[frontier] = True
        nd = descendants[frontier]
        item = (nd == 1) & (frontier < n_items)
        listing = ~item & (nd <= k)
        if np.any(listing & (nd < 0)):
            raise AnnoyFileError(f"{path}: a node has a negative descendant count")
        lists = frontier[listing]
        if lists.size:
            ids = words[lists, 1:1 + k]
            used = np.arange(k)[None, :] < descendants[lists][:, None]
            if np.any(used & ((ids < 0) | (ids >= n_items))):
                raise AnnoyFileError(f"{path}: an item list refers outside the {n_items} items")
        splits = frontier[~item & ~listing]
        children = words[splits, 1:3].astype(np.int64)
        if np.any((children < 0) | (children >= splits[:, None])):
            raise AnnoyFileError(f"{path}: a split refers to a node that does not precede it")
        if not np.all(np.isfinite(floats[splits, HEADER_INT32:])):
            raise AnnoyFileError(f"{path}: a split's hyperplane is not finite")
        frontier = children.reshape(-1)
        frontier = frontier[frontier >= n_items]  # items are leaves: shared by every tree
        depth += 1
        if depth > MAX_DEPTH and frontier.size:
            raise AnnoyFileError(f"{path}: a tree is deeper than {MAX_DEPTH} levels; the trees are damaged")
