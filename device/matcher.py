"""Matching: shortlist the catalogue, align the whole query with each candidate.

The query's melody line is cut into key-free windows at several time scales; the index
finds catalogue windows like them and the shortlist ranks songs by consistent votes
(device.shortlist). Each shortlisted song's melody, around where the votes place the
query, is aligned with the whole query under a few keys near the voted one
(device.alignment). Each song's score mixes that alignment with its share of the
shortlist's votes (how many query windows found it, where the alignment puts it);
device.decision decides on the ranking.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from device import alignment as al
from device import shortlist as sl
from device.decision import Evidence

if TYPE_CHECKING:
    from device.catalogue import Catalogue


@dataclasses.dataclass(frozen=True)
class MatcherConfig:
    """Alignment and decision parameters.

    Attributes:
        key_steps: semitones tried around the shortlist's key for each candidate.
        slack: the aligned stretch of a song reaches this fraction of the query's length
            (at the voted scale) before and after where the votes place it ...
        margin_frames: ... plus this many melody frames.
        vote_weight: a candidate's score is (alignment + vote_weight * votes / the most
            votes any candidate has) / (1 + vote_weight). The votes say how many query
            windows the embedder placed in the song: on 149 held-out hums and 300 queries
            from outside the catalogue (1,417 songs), 0.15 lifted top-1 from 0.59 to 0.63
            and the hums answered `match` at 1% false accepts and 97% precision from 37% to
            49%.
        min_voiced_frames: a query with fewer melody frames than this is no_match.
        min_score: a best song whose alignment score is below this is no_match ...
        min_margin: ... and so is one whose score exceeds the runner-up's by less than this
            (the rule when there is no evidence).
        evidence: the linear decision rule over the whole ranking (device.decision); None:
            the thresholds above.
    """

    key_steps: tuple[float, ...] = (-0.5, 0.0, 0.5)
    slack: float = 0.3
    margin_frames: int = 12
    vote_weight: float = 0.15
    min_voiced_frames: int = 25
    min_score: float = 0.75  # fallback for a model manifest without a "decision" section
    min_margin: float = 0.08
    evidence: Evidence | None = None

    @staticmethod
    def for_model(model_section: dict) -> "MatcherConfig":
        """The decision rule calibrated for a model, from the "decision" section of its
        manifest's "model" section (written by benchmarks/calibrate.py --write): its
        "evidence" if it has one, else its thresholds; no section: the defaults above.
        Raises ValueError if the section is malformed."""
        decision = model_section.get("decision")
        if decision is None:
            return MatcherConfig()
        try:
            if "evidence" in decision:
                return MatcherConfig(evidence=Evidence.from_dict(decision["evidence"]))
            score, margin = float(decision["min_score"]), float(decision["min_margin"])
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(f"decision rule unreadable ({exc!r})") from exc
        if not (0.0 <= score <= 1.0 and 0.0 <= margin <= 1.0):
            raise ValueError(f"decision thresholds outside [0, 1]: {decision}")
        return MatcherConfig(min_score=score, min_margin=margin)


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A song and how well the whole query aligns with it.

    Attributes:
        song: row in the catalogue.
        score: in [0, 1]: the alignment score mixed with the share of votes (MatcherConfig.vote_weight).
        offset_frames: melody frame of the song where the query starts.
        key_semitones: shift that brings the query to the song's key (octaves aside).
        votes: the shortlist's votes for it.
    """

    song: int
    score: float
    offset_frames: int
    key_semitones: float
    votes: float


def shortlist(line: np.ndarray, catalogue: "Catalogue", config: MatcherConfig) -> list[sl.Candidate]:
    """The catalogue songs worth aligning with the query's melody line, best first (none
    when the query has fewer than config.min_voiced_frames melody frames)."""
    if np.count_nonzero(line > 0) < config.min_voiced_frames:
        return []
    search = catalogue.config.shortlist
    windows = sl.query_windows(line, catalogue.embedder, search)
    if not windows:
        return []
    found = catalogue.search(np.stack([w.vector for w in windows]), search.neighbours)
    return sl.rank([(w, *f) for w, f in zip(windows, found)], search.candidates)


def stretch_bounds(candidate: sl.Candidate, n_query: int, n_song: int, config: MatcherConfig
                   ) -> tuple[int, int]:
    """[first, last) song frames aligned with the query for a shortlisted candidate."""
    span = n_query / candidate.scale
    first = int(max(0, np.floor(candidate.song_start - config.slack * span - config.margin_frames)))
    last = int(min(n_song, np.ceil(candidate.song_start + (1 + config.slack) * span + config.margin_frames)))
    return first, max(last, first + 1)


def at_scale(line: np.ndarray, scale: float) -> np.ndarray:
    """The query line resampled to the song's tempo: scale query frames per output frame."""
    n = max(1, int(round(line.size / scale)))
    return line[np.minimum(np.round(np.arange(n) * scale).astype(np.int64), line.size - 1)]


def align_candidates(line: np.ndarray, found: list[sl.Candidate], catalogue: "Catalogue",
                     config: MatcherConfig) -> list[Candidate]:
    """Shortlisted songs ranked by their alignment with the whole query and their votes,
    best first.

    The query is resampled to each candidate's voted tempo, then aligned with the song
    around where the votes place it, under keys near the voted one (all candidates in one
    vectorised pass)."""
    if not found:
        return []
    most_votes = max(c.votes for c in found)
    weight = config.vote_weight

    def mixed(score: float, votes: float) -> float:
        share = votes / most_votes if most_votes > 0 else 0.0
        return (score + weight * share) / (1.0 + weight)

    queries, stretches, keys, firsts = [], [], [], []
    for c in found:
        song_line = catalogue.melody(c.row)
        first, last = stretch_bounds(c, line.size, song_line.size, config)
        queries.append(at_scale(line, c.scale))
        stretches.append(song_line[first:last])
        keys.append(c.key_semitones + np.asarray(config.key_steps))
        firsts.append(first)
    aligned = al.align(queries, stretches, np.array(keys))  # one pass for all
    ranked = [Candidate(c.row, mixed(a.score, c.votes), first + a.start, a.key_semitones, c.votes)
              for c, a, first in zip(found, aligned, firsts)]
    return sorted(ranked, key=lambda c: (-c.score, c.song))
