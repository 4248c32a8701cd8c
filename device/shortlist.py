"""Shortlist: key-free vectors of short melody stretches, for an Annoy search of the catalogue.

A stretch of `window_frames` melody frames becomes `points` pitch-class phasors (each the
mean of exp(2 pi i pitch / 12) over its frames, 0 where there is no melody), rotated so
that their sum points along the real axis: the vector forgets the key and the octave,
keeps the order of the notes, and the rotation says the key (`key_semitones`). Queries
are cut at several time scales, so a song's window is found whatever the hum's tempo.
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ShortlistConfig:
    """Windowing of melody lines (in melody frames) and the query's search.

    Attributes:
        window_frames: song melody frames per vector.
        points: phasors per vector (the vector has 2 * points values).
        catalogue_hop_frames: melody frames between catalogue windows.
        query_hop_frames: query frames between query windows (at scale 1).
        scales: query frames per song frame tried (the hum's tempo relative to the song).
            A window's vector is sensitive to timing: scales 7.5% apart and a 3-frame query
            hop put some query window within 1.5 frames and 4% of tempo of every catalogue
            window (against 14% and 6 frames, this lifted held-out hums' top-1 from 0.47 to
            0.53 and mir1k voices' from 0.81 to 0.89 at 1,200 songs).
        min_voiced: windows with a smaller share of melody frames are not vectors.
        neighbours: Annoy neighbours per query vector.
        candidates: songs passed to the alignment.
    """

    window_frames: int = 48
    points: int = 16
    catalogue_hop_frames: int = 12
    query_hop_frames: int = 3
    scales: tuple[float, ...] = (0.75, 0.806, 0.865, 0.93, 1.0, 1.073, 1.153, 1.238, 1.33)
    min_voiced: float = 0.5
    neighbours: int = 100
    candidates: int = 30

    @property
    def dim(self) -> int:
        return 2 * self.points

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def vector(line: np.ndarray, config: ShortlistConfig) -> tuple[np.ndarray, float] | None:
    """The key-free vector of one window.

    Args:
        line: float32 (window_frames,): MIDI per melody frame, 0 where none.

    Returns:
        (float32 (dim,) unit vector, the window's key in semitones in [0, 12)), or None when
        too little of the window has melody or its pitch classes cancel out.
    """
    voiced = line > 0
    if voiced.mean() < config.min_voiced:
        return None
    phasor = np.where(voiced, np.exp(2j * np.pi * line / 12.0), 0.0)
    points = phasor.reshape(config.points, -1).mean(axis=1)
    total = points.sum()
    if abs(total) < 1e-3 * config.points:
        return None
    rotated = points * np.conj(total) / abs(total)
    v = np.concatenate([rotated.real, rotated.imag]).astype(np.float32)
    key = float(np.mod(np.angle(total) * 12.0 / (2.0 * np.pi), 12.0))
    return v / max(float(np.linalg.norm(v)), 1e-9), key


def catalogue_windows(line: np.ndarray, config: ShortlistConfig
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A song's vectors.

    Args:
        line: float32 (n,) the song's melody.

    Returns:
        (starts int32 (k,) melody frames, vectors float32 (k, dim), keys float32 (k,)),
        windows every catalogue_hop_frames that qualify (`vector`).
    """
    starts, vectors, keys = [], [], []
    for s in range(0, max(line.size - config.window_frames, 0) + 1, config.catalogue_hop_frames):
        window = line[s:s + config.window_frames]
        if window.size < config.window_frames:
            window = np.pad(window, (0, config.window_frames - window.size))
        made = vector(window, config)
        if made is not None:
            starts.append(s)
            vectors.append(made[0])
            keys.append(made[1])
    return (np.array(starts, dtype=np.int32), np.array(vectors, dtype=np.float32).reshape(-1, config.dim),
            np.array(keys, dtype=np.float32))


@dataclasses.dataclass(frozen=True)
class QueryWindow:
    """One query vector: where it starts in the query, its time scale, vector and key."""

    start: int
    scale: float
    vector: np.ndarray
    key: float


def query_windows(line: np.ndarray, config: ShortlistConfig) -> list[QueryWindow]:
    """Vectors of the query at every hop and scale (a window spans window_frames * scale
    query frames, resampled to window_frames); a query shorter than a window is padded."""
    out = []
    for scale in config.scales:
        span = int(round(config.window_frames * scale))
        last = max(line.size - span, 0)
        for s in range(0, last + 1, config.query_hop_frames):
            segment = line[s:s + span]
            if segment.size < span:
                segment = np.pad(segment, (0, span - segment.size))
            index = np.minimum((np.arange(config.window_frames) * scale).astype(np.int64), span - 1)
            made = vector(segment[index], config)
            if made is not None:
                out.append(QueryWindow(s, scale, made[0], made[1]))
    return out


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
    window = np.concatenate([np.full(h[1].size, i, dtype=np.int64) for i, h in enumerate(hits)])
    rows = np.concatenate([np.asarray(h[1], dtype=np.int64) for h in hits])
    song_start = np.concatenate([np.asarray(h[2], dtype=np.float64) - h[0].start / h[0].scale for h in hits])
    sims = np.concatenate([np.asarray(h[3], dtype=np.float64) for h in hits])
    vote = sims - np.concatenate([np.full(h[3].size, float(h[3][-1])) for h in hits])  # above chance
    scale = np.concatenate([np.full(h[1].size, h[0].scale) for h in hits])
    key = np.concatenate([np.mod(np.asarray(h[4], dtype=np.float64) - h[0].key, 12.0) for h in hits])
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
    by_song = np.lexsort((first_hit, -around, slot_rows))
    song_starts = np.flatnonzero(np.r_[True, np.diff(slot_rows) != 0])  # slots sort by song
    chosen = by_song[song_starts]
    song_first_hit = np.minimum.reduceat(first_hit, song_starts)
    ranked = chosen[np.lexsort((song_first_hit, -around[chosen]))][:n_candidates]
    # each chosen slot is placed by its most similar hit (the first seen among equals)
    by_sim = np.lexsort((np.arange(sims.size), -sims, slot_of))
    placed = by_sim[np.r_[True, np.diff(slot_of[by_sim]) != 0]]  # per slot, in slot order
    return [Candidate(int(slot_rows[k]), float(around[k]), float(song_start[placed[k]]),
                      float(scale[placed[k]]), float(key[placed[k]])) for k in ranked]
