import numpy as np
import pytest

from device.matcher import MatcherConfig, Votes, decide

CONFIG = MatcherConfig()


def votes(rows):
    """rows: (query_frame, song, song_frame, similarity)."""
    q, s, f, sim = zip(*rows)
    return Votes(np.array(q), np.array(s), np.array(f), np.array(sim, dtype=np.float32))


def test_time_consistent_votes_beat_scattered_stronger_ones():
    rows = [(25 * i, 1, 500 + 25 * i, 0.7) for i in range(8)]  # song 1: one alignment
    rows += [(25 * i, 2, 3000 * i, 0.8) for i in range(8)]  # song 2: better, but everywhere
    decision = decide(votes(rows), n_query_windows=8, config=CONFIG)
    assert decision.candidates[0].song == 1
    assert decision.candidates[0].offset_frames == 500
    assert decision.is_match
    np.testing.assert_allclose(decision.candidates[0].score, 0.7, rtol=1e-5)


def test_a_query_window_counts_once_per_alignment():
    rows = [(0, 1, 100, 0.9), (0, 1, 110, 0.9), (0, 1, 120, 0.9)]
    decision = decide(votes(rows), n_query_windows=1, config=CONFIG)
    np.testing.assert_allclose(decision.candidates[0].score, 0.9, rtol=1e-5)


def test_tempo_drift_within_tolerance_still_agrees():
    # a hum 20% slower: catalogue frames advance 1.2x faster than query frames... or slower
    rows = [(25 * i, 3, 1000 + int(25 * i * 0.8), 0.6) for i in range(16)]
    decision = decide(votes(rows), n_query_windows=16, config=CONFIG)
    np.testing.assert_allclose(decision.candidates[0].score, 0.6, rtol=1e-5)


def test_nothing_similar_is_no_match():
    assert not decide(Votes.empty(), 5, CONFIG).is_match
    weak = votes([(0, 1, 0, CONFIG.min_similarity - 0.05)])
    decision = decide(weak, 1, CONFIG)
    assert not decision.is_match and decision.candidates == ()


def test_two_equally_good_songs_is_no_match():
    rows = [(25 * i, s, 100 + 25 * i, 0.8) for i in range(6) for s in (1, 2)]
    decision = decide(votes(rows), 6, CONFIG)
    assert not decision.is_match
    assert decision.confidence == 0.0


def test_a_model_brings_its_calibrated_thresholds():
    assert MatcherConfig.for_model({"embedding_dim": 32}) == MatcherConfig()
    calibrated = MatcherConfig.for_model({"decision": {"min_score": 0.125, "min_margin": 0.4}})
    assert (calibrated.min_score, calibrated.min_margin) == (0.125, 0.4)
    assert calibrated.top_k == MatcherConfig().top_k
    for bad in ({"min_score": 0.1}, {"min_score": "x", "min_margin": 0.1}, {"min_score": 2.0, "min_margin": 0.1}):
        with pytest.raises(ValueError):
            MatcherConfig.for_model({"decision": bad})
