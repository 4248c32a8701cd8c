"""Match aggregation: votes from query windows that agree in time offset, confidence, no-match.

Pure functions over arrays; no I/O, no printing.
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class MatcherConfig:
    """Aggregation and decision parameters.

    Attributes:
        top_k: neighbours retrieved per query window.
        offset_tolerance_frames: votes whose (catalogue start - query start) differ by at
            most this much support the same alignment; wide enough for a hum that is 25%
            faster or slower over a 10 s query.
        min_similarity: neighbours below this cosine similarity do not vote.
        min_score: a best song scoring below this is no_match.
        min_margin: a best song whose score exceeds the runner-up's by less than this
            fraction of its own score is no_match.
    """

    top_k: int = 100
    offset_tolerance_frames: int = 100
    min_similarity: float = 0.3
    min_score: float = 0.05  # fallback for a model manifest without a "decision" section
    min_margin: float = 0.35

    @staticmethod
    def for_model(model_section: dict) -> "MatcherConfig":
        """The thresholds calibrated for a model, from the "decision" section of its
        manifest's "model" section (written by benchmarks/calibrate.py --write), else
        the defaults above. Raises ValueError if the section is malformed."""
        decision = model_section.get("decision")
        if decision is None:
            return MatcherConfig()
        try:
            score, margin = float(decision["min_score"]), float(decision["min_margin"])
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(f"decision thresholds unreadable ({exc!r})") from exc
        if not (0.0 <= score <= 1.0 and 0.0 <= margin <= 1.0):
            raise ValueError(f"decision thresholds outside [0, 1]: {decision}")
        return MatcherConfig(min_score=score, min_margin=margin)


@dataclasses.dataclass(frozen=True)
class Votes:
    """Neighbours of every query window so far, flattened.

    Attributes:
        query_frame: int64 (n,) start frame of the query window that voted.
        song: int64 (n,) catalogue song row.
        song_frame: int64 (n,) start frame of the catalogue window.
        similarity: float32 (n,) cosine similarity.
    """

    query_frame: np.ndarray
    song: np.ndarray
    song_frame: np.ndarray
    similarity: np.ndarray

    @staticmethod
    def empty() -> "Votes":
        z = np.zeros(0, dtype=np.int64)
        return Votes(z, z, z, np.zeros(0, dtype=np.float32))

    def extend(self, other: "Votes") -> "Votes":
        return Votes(*(np.concatenate([a, b]) for a, b in zip(dataclasses.astuple(self),
                                                             dataclasses.astuple(other))))


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A song and how well the query agrees with it.

    Attributes:
        song: catalogue song row.
        score: in [0, 1]: summed best similarity of the query windows that agree on one
            alignment, divided by the number of query windows.
        offset_frames: catalogue frame that the query's first frame aligns with.
    """

    song: int
    score: float
    offset_frames: int


@dataclasses.dataclass(frozen=True)
class Decision:
    """The outcome for a query: candidates best first, and whether the best is a match."""

    is_match: bool
    confidence: float
    candidates: tuple[Candidate, ...]


def _best_alignment(offsets: np.ndarray, query_frames: np.ndarray, similarity: np.ndarray,
                    tolerance: int) -> tuple[float, int]:
    """Best total similarity of one song over offset windows of width `tolerance`.

    Each query window counts once per alignment (its best vote inside it).
    Returns (total, median offset of the supporting votes).
    """
    order = np.argsort(offsets, kind="stable")
    offsets, query_frames, similarity = offsets[order], query_frames[order], similarity[order]
    best_total, best_offset = 0.0, int(offsets[0])
    ends = np.searchsorted(offsets, offsets + tolerance, side="right")
    for start, end in zip(range(offsets.size), ends):
        if start > 0 and offsets[start] == offsets[start - 1]:
            continue
        q, s = query_frames[start:end], similarity[start:end]
        per_query = {}
        for qi, si in zip(q.tolist(), s.tolist()):
            if si > per_query.get(qi, 0.0):
                per_query[qi] = si
        total = sum(per_query.values())
        if total > best_total:
            best_total, best_offset = total, int(np.median(offsets[start:end]))
    return best_total, best_offset


def decide(votes: Votes, n_query_windows: int, config: MatcherConfig, top: int = 10) -> Decision:
    """Ranks songs by time-consistent votes and decides match or no_match.

    Args:
        votes: every neighbour of every query window.
        n_query_windows: query windows embedded (the score's denominator; windows that
            found no neighbour above min_similarity still count).
        top: candidates to return.
    """
    keep = votes.similarity >= config.min_similarity
    if n_query_windows == 0 or not np.any(keep):
        return Decision(False, 0.0, ())
    song, qf = votes.song[keep], votes.query_frame[keep]
    offset, sim = votes.song_frame[keep] - qf, votes.similarity[keep]
    candidates = []
    for row in np.unique(song):
        mask = song == row
        total, off = _best_alignment(offset[mask], qf[mask], sim[mask], config.offset_tolerance_frames)
        candidates.append(Candidate(int(row), total / n_query_windows, off))
    candidates.sort(key=lambda c: (-c.score, c.song))
    best = candidates[0].score
    runner_up = candidates[1].score if len(candidates) > 1 else 0.0
    margin = (best - runner_up) / best if best > 0 else 0.0
    is_match = best >= config.min_score and margin >= config.min_margin
    return Decision(is_match, float(min(1.0, best * margin) if best > 0 else 0.0), tuple(candidates[:top]))
