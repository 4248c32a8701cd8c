"""Decision: `match` or `no_match` from the ranked candidates of a whole query.

The model's manifest holds the rule (benchmarks/calibrate.py chooses it on queries from
outside the catalogue and writes it): either thresholds on the best score and its margin
over the runner-up, or a linear evidence over FEATURES, which read the whole ranking and
the query's length. The evidence asks how far the best song stands out from the field
(not only from the runner-up), whether the shortlist's votes agree with the alignment, and
how much melody the query holds: on cached calibration queries of two seeds it answered 2
to 5 points more hums than the thresholds at equal false accepts, cross-seed. It also
reads the catalogue's size: among more songs a wrong one fits an outsider's hum better,
so a rule calibrated on catalogues of two sizes asks more of the best song in a larger
one (benchmarks.calibrate.choose_evidence).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from device.matcher import Candidate, MatcherConfig

FIELD = 10  # the best song and the nine after it
FEATURES = (
    "best",         # the best song's score
    "margin",       # best minus the runner-up's score (a song not there scores 0)
    "gap_third",    # best minus the third's score
    "gap_field",    # best minus the mean score of the next FIELD - 1 there (a lone song: 0 of them)
    "field_spread", # standard deviation of those scores
    "vote_share",   # the best song's shortlist votes / the most votes of any candidate
    "most_voted",   # 1 if the best song also has the most votes, else 0
    "log_voiced",   # natural log of the query's melody frames (at least 1)
    "candidates",   # songs aligned (the shortlist's length)
    "log_songs",    # natural log of the catalogue's songs: a wrong song's chance to fit grows with them
)
ADDED_SINCE = ("log_songs",)  # features a rule stored before they existed may lack (they weigh 0)


@dataclasses.dataclass(frozen=True)
class Evidence:
    """A linear rule: match when sum(weights * features) + bias >= 0.

    Attributes:
        weights: one per FEATURES, in that order.
        bias: the threshold folded in (the rule's zero is the calibrated cut).
        min_songs: the smallest catalogue the rule was calibrated on: a smaller one is read
            as that size (log_songs is not extrapolated downwards, where a line through the
            calibrated cuts would let nearly anything through a catalogue of a few songs).
    """

    weights: tuple[float, ...]
    bias: float
    min_songs: int = 1

    def __post_init__(self):
        if len(self.weights) != len(FEATURES):
            raise ValueError(f"{len(self.weights)} evidence weights for {len(FEATURES)} features")
        if self.min_songs < 1:
            raise ValueError(f"min_songs {self.min_songs} is under 1")

    def of(self, features: np.ndarray) -> np.ndarray:
        """float64 (...,): the evidence of features float (..., len(FEATURES)), one query's
        or many's, log_songs read as at least log(min_songs)."""
        x = np.array(features, dtype=np.float64)
        at = FEATURES.index("log_songs")
        x[..., at] = np.maximum(x[..., at], np.log(self.min_songs))
        return x @ np.array(self.weights) + self.bias

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "weights": [round(w, 6) for w in self.weights],
                "bias": round(self.bias, 6)} | ({"min_songs": self.min_songs} if self.min_songs > 1 else {})

    @staticmethod
    def from_dict(section: dict) -> "Evidence":
        """The rule of a manifest's section. A rule calibrated before a feature of
        ADDED_SINCE existed lacks it: it weighs 0 (so the rule decides as it did). Raises
        ValueError unless the section names FEATURES in order, less only such features,
        with a weight each, and min_songs (if given) is a whole number."""
        named = list(section.get("features", ()))
        expected = [f for f in FEATURES if f in named or f not in ADDED_SINCE]
        min_songs = section.get("min_songs", 1)
        if named != expected or len(named) != len(section.get("weights", ())):
            raise ValueError(f"evidence features {named} do not fit this runtime's {list(FEATURES)}")
        if not isinstance(min_songs, int) or isinstance(min_songs, bool):
            raise ValueError(f"evidence min_songs {min_songs!r} is not a whole number")
        weight = dict(zip(named, (float(w) for w in section["weights"])))
        return Evidence(tuple(weight.get(f, 0.0) for f in FEATURES), float(section["bias"]), min_songs)


@dataclasses.dataclass(frozen=True)
class Decision:
    """is_match; confidence in [0, 1] (thresholds: the margin over the runner-up; evidence:
    its logistic, 0.5 at the cut); the best candidates; features: float64 (len(FEATURES),)."""

    is_match: bool
    confidence: float
    candidates: tuple["Candidate", ...]
    features: np.ndarray


def features(candidates: Sequence["Candidate"], voiced_frames: int, catalogue_songs: int) -> np.ndarray:
    """float64 (len(FEATURES),) of candidates ranked best first (see FEATURES); all zero but
    log_voiced and log_songs when there are none."""
    values = np.zeros(len(FEATURES))
    values[FEATURES.index("log_voiced")] = np.log(max(voiced_frames, 1))
    values[FEATURES.index("log_songs")] = np.log(max(catalogue_songs, 1))
    if not candidates:
        return values
    scores = np.zeros(FIELD)
    top = [c.score for c in candidates[:FIELD]]
    scores[:len(top)] = top
    field = scores[1:len(top)] if len(top) > 1 else np.zeros(1)
    most = max(c.votes for c in candidates)
    values[:7] = (scores[0], scores[0] - scores[1], scores[0] - scores[2], scores[0] - field.mean(),
                  field.std(), candidates[0].votes / most if most > 0 else 0.0,
                  float(candidates[0].votes >= most))
    values[FEATURES.index("candidates")] = len(candidates)
    return values


def decide(candidates: Sequence["Candidate"], config: "MatcherConfig", voiced_frames: int,
           catalogue_songs: int, top: int = 10) -> Decision:
    """The decision on candidates ranked best first (from a catalogue of catalogue_songs
    songs), by config.evidence if it has one, else by config.min_score and min_margin; no
    candidates is no_match."""
    values = features(candidates, voiced_frames, catalogue_songs)
    if not candidates:
        return Decision(False, 0.0, (), values)
    if config.evidence is not None:
        evidence = float(config.evidence.of(values))
        return Decision(evidence >= 0.0, float(1.0 / (1.0 + np.exp(-np.clip(evidence, -50, 50)))),
                        tuple(candidates[:top]), values)
    best, margin = values[0], values[1]
    is_match = bool(best >= config.min_score and margin >= config.min_margin)
    return Decision(is_match, float(np.clip(margin, 0.0, 1.0)), tuple(candidates[:top]), values)
