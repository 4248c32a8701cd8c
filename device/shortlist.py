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
        min_voiced: windows with a smaller share of melody frames are not vectors.
        neighbours: Annoy neighbours per query vector.
        candidates: songs passed to the alignment.
    """

    window_frames: int = 48
    points: int = 16
    catalogue_hop_frames: int = 12
    query_hop_frames: int = 6
    scales: tuple[float, ...] = (0.75, 0.87, 1.0, 1.15, 1.33)
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
    buckets: dict[tuple[int, int], dict[int, float]] = {}
    placement: dict[tuple[int, int], tuple[float, float, float, float]] = {}
    for w_index, (window, rows, starts, sims, keys) in enumerate(hits):
        if sims.size == 0:
            continue
        chance = float(sims[-1])
        for row, start, sim, key in zip(rows.tolist(), starts.tolist(), sims.tolist(), keys.tolist()):
            song_start = start - window.start / window.scale
            slot = (row, int(np.floor(song_start / bucket_frames)))
            votes = buckets.setdefault(slot, {})
            votes[w_index] = max(votes.get(w_index, 0.0), sim - chance)
            if sim > placement.get(slot, (-np.inf,))[0]:
                placement[slot] = (sim, song_start, window.scale, float(np.mod(key - window.key, 12.0)))
    totals = {slot: sum(v.values()) for slot, v in buckets.items()}
    best: dict[int, tuple[float, tuple[int, int]]] = {}
    for (row, b), _ in totals.items():
        around = sum(totals.get((row, b + d), 0.0) for d in (-1, 0, 1))
        if around > best.get(row, (-np.inf,))[0]:
            best[row] = (around, (row, b))
    ranked = sorted(best, key=lambda r: -best[r][0])[:n_candidates]
    return [Candidate(r, best[r][0], *placement[best[r][1]][1:]) for r in ranked]
