"""Shortlist: vectors of short melody stretches, for a nearest-neighbour search of the catalogue.

A stretch of `window_frames` melody frames becomes a unit vector by the shortlist
embedder (device.embedder): key-free, and trained so that a hum's stretch and the
recording's stretch of the same passage land close together despite loose timing. Each
vector keeps its window's key (`device.embedder.keys`), so the alignment knows which key
to try. Queries are cut at several time scales, so a song's window is found whatever the
hum's tempo.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from device import embedder as em


@dataclasses.dataclass(frozen=True)
class ShortlistConfig:
    """Windowing of melody lines (in melody frames) and the query's search.

    Attributes:
        window_frames: song melody frames per vector.
        catalogue_hop_frames: melody frames between catalogue windows.
        query_hop_frames: query frames between query windows (at scale 1).
        scales: query frames per song frame tried (the hum's tempo relative to the song),
            7.5% apart: with a 3-frame query hop, some query window lies within 1.5 frames
            and 4% of tempo of every catalogue window.
        min_voiced: windows with a smaller share of melody frames are not vectors.
        neighbours: nearest catalogue windows per query vector.
        candidates: songs passed to the alignment.
    """

    window_frames: int = 48
    catalogue_hop_frames: int = 12
    query_hop_frames: int = 3
    scales: tuple[float, ...] = (0.75, 0.806, 0.865, 0.93, 1.0, 1.073, 1.153, 1.238, 1.33)
    min_voiced: float = 0.5
    neighbours: int = 100
    candidates: int = 30

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def indexable(windows: np.ndarray, config: ShortlistConfig) -> tuple[np.ndarray, np.ndarray]:
    """Which windows get a vector, and their keys.

    Args:
        windows: float32 (B, window_frames) MIDI per melody frame, 0 where none.

    Returns:
        (kept bool (B,): at least min_voiced melody frames whose pitch classes do not
        cancel out, keys float32 (B,) in [0, 12)).
    """
    key, strength = em.keys(windows)
    return ((windows > 0).mean(axis=1) >= config.min_voiced) & (strength >= 1e-3), key


def vectors(windows: np.ndarray, embedder: em.Embedder, config: ShortlistConfig
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectors of the windows that hold enough melody.

    Args:
        windows: float32 (B, window_frames) MIDI per melody frame, 0 where none.

    Returns:
        (kept bool (B,) (`indexable`), vectors float32 (k, dim) unit length, keys float32
        (k,) in [0, 12)) for the k kept windows.
    """
    windows = np.asarray(windows, dtype=np.float32).reshape(-1, config.window_frames)
    kept, key = indexable(windows, config)
    return kept, embedder.embed(em.features(windows[kept], key[kept])), key[kept]


def catalogue_windows(line: np.ndarray, embedder: em.Embedder, config: ShortlistConfig
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A song's vectors.

    Args:
        line: float32 (n,) the song's melody.

    Returns:
        (starts int32 (k,) melody frames, vectors float32 (k, dim), keys float32 (k,)),
        windows every catalogue_hop_frames that qualify (`vectors`).
    """
    w = config.window_frames
    starts = np.arange(0, max(line.size - w, 0) + 1, config.catalogue_hop_frames, dtype=np.int32)
    padded = np.pad(np.asarray(line, np.float32), (0, max(w - line.size, 0)))
    windows = padded[starts[:, None] + np.arange(w)]
    kept, vecs, keys = vectors(windows, embedder, config)
    return starts[kept], vecs, keys


@dataclasses.dataclass(frozen=True)
class QueryWindow:
    """One query vector: where it starts in the query, its time scale, vector and key."""

    start: int
    scale: float
    vector: np.ndarray
    key: float


def query_windows(line: np.ndarray, embedder: em.Embedder, config: ShortlistConfig) -> list[QueryWindow]:
    """Vectors of the query at every hop and scale (a window spans window_frames * scale
    query frames, resampled to window_frames); a query shorter than a window is padded."""
    line = np.asarray(line, np.float32)
    w = config.window_frames
    places, windows = [], []
    for scale in config.scales:
        span = int(round(w * scale))
        padded = np.pad(line, (0, max(span - line.size, 0)))
        index = np.minimum((np.arange(w) * scale).astype(np.int64), span - 1)
        for s in range(0, max(line.size - span, 0) + 1, config.query_hop_frames):
            places.append((s, scale))
            windows.append(padded[s + index])
    if not windows:
        return []
    kept, vecs, keys = vectors(np.array(windows), embedder, config)
    return [QueryWindow(s, scale, v, float(k))
            for (s, scale), v, k in zip([p for p, ok in zip(places, kept) if ok], vecs, keys)]


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A song worth aligning and where the shortlist thinks the query lies in it.

    Attributes:
        row: the song's row in the catalogue.
        votes: sum over query windows of the best similarity each gave the song.
        song_start: melody frame of the song where the query's first frame lands.
        scale: query frames per song frame.
        key_semitones: shift that brings the query's pitches to the song's (mod 12).
    """

    row: int
    votes: float
    song_start: float
    scale: float
    key_semitones: float


def rank(hits: list[tuple[QueryWindow, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
         n_candidates: int, bucket_frames: int = 12) -> list[Candidate]:
    """Songs by consistent votes.

    Each query window's neighbours vote for where the query starts in their song
    (bucketed by `bucket_frames`), each with its similarity above the window's last
    neighbour (what any song gets by chance); a window votes at most once per bucket. A
    song's votes are those of its best bucket with the two beside it, so songs that many
    windows place at one spot rise, and songs merely near many windows do not.

    Args:
        hits: per query window (window, rows int64 (k,), song starts int (k,), similarities
            float (k,) best first, keys float (k,)) of its neighbours.
        n_candidates: songs kept.

    Returns:
        The best n_candidates songs, most votes first, each placed by its best bucket's
        most similar hit.
    """
    hits = [h for h in hits if h[3].size]
    if not hits:
        return []
    # one entry per neighbour, in the order the windows found them (ties go to the first)
    sizes = np.array([h[3].size for h in hits])
    window = np.repeat(np.arange(len(hits)), sizes)
    rows = np.concatenate([h[1] for h in hits]).astype(np.int64)
    song_start = (np.concatenate([h[2] for h in hits]).astype(np.float64)
                  - np.repeat([h[0].start / h[0].scale for h in hits], sizes))
    sims = np.concatenate([h[3] for h in hits]).astype(np.float64)
    vote = sims - np.repeat([float(h[3][-1]) for h in hits], sizes)  # above chance
    scale = np.repeat([h[0].scale for h in hits], sizes)
    key = np.mod(np.concatenate([h[4] for h in hits]).astype(np.float64)
                 - np.repeat([h[0].key for h in hits], sizes), 12.0)
    bucket = np.floor(song_start / bucket_frames).astype(np.int64)
    # slot = (song, bucket) as one integer; room for the buckets either side within a song
    low, span = bucket.min() - 1, bucket.max() - bucket.min() + 3
    code = rows * span + (bucket - low)
    slots, first_hit, slot_of = np.unique(code, return_index=True, return_inverse=True)
    slot_of = slot_of.reshape(-1)
    # a window votes once per slot (its best neighbour there); a slot's total sums its windows
    pair = slot_of * len(hits) + window
    order = np.argsort(pair, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(pair[order]) != 0])
    best_vote = np.maximum.reduceat(vote[order], starts)
    totals = np.bincount(slot_of[order][starts], weights=best_vote, minlength=slots.size)

    def total_at(codes: np.ndarray) -> np.ndarray:
        at = np.minimum(np.searchsorted(slots, codes), slots.size - 1)
        return np.where(slots[at] == codes, totals[at], 0.0)

    around = total_at(slots - 1) + totals + total_at(slots + 1)
    # per song its best slot (the first seen among equals), songs by votes (first seen first)
    slot_rows = slots // span
    song_starts = np.flatnonzero(np.r_[True, np.diff(slot_rows) != 0])  # slots sort by song
    chosen = _first_of_best(around, first_hit, song_starts)
    song_first_hit = np.minimum.reduceat(first_hit, song_starts)
    ranked = chosen[np.lexsort((song_first_hit, -around[chosen]))][:n_candidates]
    # each chosen slot is placed by its most similar hit (the first seen among equals);
    # `order` lists each slot's hits together, in the order they were found
    slot_bounds = np.flatnonzero(np.r_[True, np.diff(slot_of[order]) != 0])
    placed = order[_first_of_best(sims[order], np.arange(order.size), slot_bounds)]
    return [Candidate(int(slot_rows[k]), float(around[k]), float(song_start[placed[k]]),
                      float(scale[placed[k]]), float(key[placed[k]])) for k in ranked]


def _first_of_best(values: np.ndarray, ties: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """int64 (len(starts),): for each segment of `values` (split at the sorted `starts`),
    the index of its highest value; among equals, the one with the smallest tie (`ties`:
    distinct, one per value)."""
    counts = np.diff(np.r_[starts, values.size])
    best = values == np.repeat(np.maximum.reduceat(values, starts), counts)
    earliest = np.minimum.reduceat(np.where(best, ties, ties.max() + 1), starts)
    return np.flatnonzero(best & (ties == np.repeat(earliest, counts)))
