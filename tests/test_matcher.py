"""Matching pieces on known melodies: the shortlist's vote (with the shipped embedder),
the alignment of a whole query, and the decision (the vectors: test_embedder)."""
import numpy as np
import pytest

from device import alignment as al
from device import assets
from device import embedder as em
from device import shortlist as sl
from device import decision as dc
from device.decision import Evidence, decide
from device.matcher import Candidate, MatcherConfig

RNG = np.random.default_rng(0)


def tune(n_notes: int, frames_per_note: int = 4, seed: int = 0) -> np.ndarray:
    """A melody line: random notes of a major scale, each held a few frames."""
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12, 14])
    notes = 60 + np.random.default_rng(seed).choice(scale, n_notes)
    return np.repeat(notes, frames_per_note).astype(np.float32)


def test_alignment_finds_the_passage_under_key_tempo_and_local_timing():
    song = tune(80, seed=1)
    query = song[120:200].copy()
    # A hum: 3.5 semitones up, 25% slower, with a held note and a rest.
    query = np.repeat(query, 5)[::4] + 3.5
    query[30:34] = 0.0
    other = tune(80, seed=2)
    keys = np.array([[-3.5, 0.0], [-3.5, 0.0]])
    right, wrong = al.align(query, [song, other], keys, with_path=True)
    assert right.score > 0.95 and right.key_semitones == -3.5
    assert abs(right.start - 120) <= 2 and abs(right.end - 199) <= 2
    assert wrong.score < right.score - 0.2
    assert right.path[0] == right.start and right.path[-1] == right.end and np.all(np.diff(right.path) >= 0)
    # The score is a mean over voiced query frames: octave errors cost nothing.
    octave = query.copy()
    octave[::7] += 12
    assert al.align(octave, [song], keys[:1])[0].score == pytest.approx(right.score, abs=0.02)


def test_alignment_of_a_silent_query_scores_zero():
    assert al.align(np.zeros(30, np.float32), [tune(10)], np.zeros((1, 1)))[0].score == 0.0


def test_candidates_with_their_own_queries_align_in_one_pass_as_they_would_alone():
    """The matcher aligns every candidate at once, each with the query at its own tempo:
    the same scores, keys, places and paths as one call per candidate."""
    song, other = tune(80, seed=1), tune(60, seed=2)
    slow = np.repeat(song[120:200], 5)[::4] + 2.0  # 25% slower, 2 semitones up
    fast = song[100:180][::2].copy()  # twice as fast, a different passage
    silent = np.zeros(40, np.float32)
    queries, stretches = [slow, fast, silent, slow], [song, song, other, other[:50]]
    keys = np.array([[-2.0, 0.0], [0.0, 0.5], [0.0, 1.0], [-2.0, 0.0]])
    together = al.align(queries, stretches, keys, with_path=True)
    for q, s, k, one in zip(queries, stretches, keys, together):
        alone = al.align(q, [s], k[None], with_path=True)[0]
        assert (one.score, one.key_semitones, one.start, one.end) == (alone.score, alone.key_semitones,
                                                                      alone.start, alone.end)
        assert (one.path is None and alone.path is None) or np.array_equal(one.path, alone.path)
    assert together[0].score > 0.95 and together[2].score == 0.0


def reference_alignment(query: np.ndarray, song: np.ndarray, key: float, config: al.AlignConfig
                        ) -> tuple[float, int, int, np.ndarray]:
    """The alignment's recurrence written out cell by cell in plain Python, in float32 as
    the runtime adds (so that ties fall alike): (total cost, start, end, song frame of each
    query frame) of the best path, ties to the lowest end; moves: 0 diagonal, 1 a song
    frame skipped, 2 two query frames on one song frame."""
    cost_of = al._cost_table(config)
    inf, penalty = np.float32(1e9), np.float32(config.step_penalty)

    def cost(i: int, j: int) -> np.float32:
        if query[i] <= 0:
            return np.float32(0.0)
        if song[j] <= 0:
            return np.float32(config.silent_cost)
        return cost_of[(round(key * 4) - round(song[j] * 4)) % 48 + round(query[i] * 4) % 48]

    n, m = query.size, song.size
    d = [[(inf, 0, 0)] * m for _ in range(n)]  # (total, start, move)
    for j in range(m):
        d[0][j] = (cost(0, j), j, 0)
    for i in range(1, n):
        for j in range(m):
            diagonal = d[i - 1][j - 1][:2] if j >= 1 else (inf, 0)
            skip = (d[i - 1][j - 2][0] + penalty, d[i - 1][j - 2][1]) if j >= 2 else (inf, 0)
            before = (d[i - 2][j - 1][:2] if j >= 1 else (inf, 0)) if i >= 2 else (np.float32(0.0), j)
            double = (before[0] + cost(i - 1, j) + penalty, before[1])
            best, move = (skip, 1) if skip[0] < diagonal[0] else (diagonal, 0)
            best, move = (double, 2) if double[0] < best[0] else (best, move)
            d[i][j] = (best[0] + cost(i, j), best[1], move)
    end = min(range(m), key=lambda j: d[n - 1][j][0])
    path, i, j = np.zeros(n, np.int64), n - 1, end
    while i >= 0 and j >= 0:
        path[i], move = j, d[i][j][2]
        if i == 0:
            break
        if move == 2:
            path[i - 1] = j
        i, j = (i - 1, j - 1) if move == 0 else (i - 1, j - 2) if move == 1 else (i - 2, j - 1)
    return float(d[n - 1][end][0]), d[n - 1][end][1], end, path


@pytest.mark.parametrize("seed", range(8))
def test_alignment_follows_its_recurrence_cell_by_cell(seed):
    """Every candidate, at its own query length and keys, gets the score, key, start, end
    and path of the best path that the recurrence (steps (1,1), (1,2) and (2,1), the last
    two penalised; ties to the diagonal, then to the lowest end) gives when written out in
    plain Python; half the cases on whole semitones, where equal paths abound."""
    rng = np.random.default_rng(seed)
    config = al.AlignConfig()
    queries, stretches, keys = [], [], []
    for _ in range(4):
        query = tune(int(rng.integers(3, 9)), frames_per_note=3, seed=int(rng.integers(1000)))
        if seed % 2:
            query = query + rng.uniform(-0.4, 0.4, query.size).astype(np.float32)
        query[rng.random(query.size) < 0.2] = 0.0
        song = tune(int(rng.integers(6, 14)), frames_per_note=3, seed=int(rng.integers(1000)))
        song[rng.random(song.size) < 0.15] = 0.0
        queries.append(query.astype(np.float32))
        stretches.append(song.astype(np.float32))
        keys.append(rng.choice(np.arange(0.0, 12.0, 0.5), 3, replace=False))
    aligned = al.align(queries, stretches, np.array(keys), config, with_path=True)
    for query, song, key_row, got in zip(queries, stretches, keys, aligned):
        options = [(reference_alignment(query, song, k, config), k) for k in key_row]
        (total, start, end, path), key = min(options, key=lambda o: o[0][0])
        voiced = np.count_nonzero(query > 0)
        assert got.score == (max(0.0, 1.0 - total / voiced) if total < 1e9 / 2 else 0.0)
        if got.score > 0:
            assert (got.key_semitones, got.start, got.end) == (key, start, end)
            assert np.array_equal(got.path, path)


def test_alignment_places_a_query_deep_in_a_long_stretch():
    """Song frames past 32,767 (where 16-bit frame numbers would wrap) keep their place."""
    song = tune(10_000, seed=7)
    query = song[35_000:35_060] + 2.0
    (got,) = al.align(query, [song], np.array([[-2.0, 0.0]]), with_path=True)
    assert got.score == 1.0 and (got.key_semitones, got.start, got.end) == (-2.0, 35_000, 35_059)
    assert np.array_equal(got.path, np.arange(35_000, 35_060))


def reference_rank(hits, n_candidates: int, bucket_frames: int = 12) -> list[tuple]:
    """The shortlist's voting rules written out hit by hit in plain Python: (row, votes,
    song_start, scale, key) per song, best first."""
    entries = []  # (index found, window, row, bucket, song_start, sim, vote, scale, key)
    for w, (window, rows, starts, sims, keys) in enumerate(h for h in hits if h[3].size):
        for row, start, sim, key in zip(rows, starts, sims, keys):
            song_start = float(start) - window.start / window.scale
            entries.append((len(entries), w, int(row), int(np.floor(song_start / bucket_frames)), song_start,
                            float(sim), float(sim) - float(sims[-1]), window.scale,
                            float(np.mod(float(key) - window.key, 12.0))))
    best_vote = {}  # (row, bucket, window) -> the window's best vote there
    for _, w, row, bucket, _, _, vote, _, _ in entries:
        best_vote[row, bucket, w] = max(best_vote.get((row, bucket, w), -np.inf), vote)
    total = {}
    for (row, bucket, _), vote in best_vote.items():
        total[row, bucket] = total.get((row, bucket), 0.0) + vote
    first = {}
    for e in entries:
        first.setdefault((e[2], e[3]), e[0])
    songs = {}
    for (row, bucket) in total:
        around = sum(total.get((row, bucket + d), 0.0) for d in (-1, 0, 1))
        mine = (-around, first[row, bucket])
        if row not in songs or mine < songs[row][0]:
            songs[row] = (mine, bucket)
    song_first = {row: min(i for (r, _), i in first.items() if r == row) for row in songs}
    order = sorted(songs, key=lambda row: (songs[row][0][0], song_first[row]))[:n_candidates]
    out = []
    for row in order:
        bucket = songs[row][1]
        placed = min((e for e in entries if e[2] == row and e[3] == bucket), key=lambda e: (-e[5], e[0]))
        out.append((row, -songs[row][0][0], placed[4], placed[7], placed[8]))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_shortlist_ranking_follows_its_voting_rules_hit_by_hit(seed):
    """On many random hits with ties everywhere (few songs, similarities in eighths),
    the vectorised ranking gives what the rules give written out hit by hit."""
    rng = np.random.default_rng(seed)
    hits = []
    for start in range(0, 60, 3):
        window = sl.QueryWindow(start, float(rng.choice([0.75, 1.0, 1.33])), np.zeros(2), float(rng.integers(12)))
        k = int(rng.integers(1, 12))
        sims = np.sort(rng.integers(2, 8, k) / 8.0)[::-1].astype(np.float32)
        hits.append((window, rng.integers(0, 6, k), rng.integers(0, 90, k), sims,
                     rng.integers(0, 12, k).astype(np.float32)))
    got = [(c.row, c.votes, c.song_start, c.scale, c.key_semitones) for c in sl.rank(hits, 4)]
    assert got == reference_rank(hits, 4)


def ranked(*scores, votes=None):
    votes = votes or [1.0] * len(scores)
    return [Candidate(i, s, 0, 0.0, v) for i, (s, v) in enumerate(zip(scores, votes))]


def test_decision_needs_a_good_score_and_a_margin():
    config = MatcherConfig(min_score=0.8, min_margin=0.1)
    assert decide(ranked(0.95, 0.7), config, 100, 1000).is_match
    assert not decide(ranked(0.95, 0.9), config, 100, 1000).is_match  # no margin
    assert not decide(ranked(0.75, 0.3), config, 100, 1000).is_match  # too poor
    assert decide(ranked(0.9), config, 100, 1000).is_match and not decide([], config, 100, 1000).is_match
    assert decide(ranked(0.95, 0.7), config, 100, 1000).confidence == pytest.approx(0.25)


def test_features_read_the_whole_field_the_votes_and_the_length():
    values = dict(zip(dc.FEATURES, dc.features(ranked(0.9, 0.7, 0.6, 0.5, votes=[2.0, 4.0, 1.0, 0.0]), 50, 1417)))
    assert values["best"] == 0.9 and values["margin"] == pytest.approx(0.2)
    assert values["gap_third"] == pytest.approx(0.3) and values["gap_field"] == pytest.approx(0.3)
    assert values["field_spread"] == pytest.approx(np.std([0.7, 0.6, 0.5]))
    assert values["vote_share"] == 0.5 and values["most_voted"] == 0.0
    assert values["log_voiced"] == pytest.approx(np.log(50)) and values["candidates"] == 4
    assert values["log_songs"] == pytest.approx(np.log(1417))
    lone = dict(zip(dc.FEATURES, dc.features(ranked(0.8), 0, 1)))
    assert lone["margin"] == 0.8 and lone["gap_field"] == 0.8 and lone["most_voted"] == 1.0
    assert lone["log_voiced"] == 0.0 and lone["log_songs"] == 0.0
    none = dict(zip(dc.FEATURES, dc.features([], 30, 10_000)))
    assert none["log_voiced"] == pytest.approx(np.log(30)) and none["log_songs"] == pytest.approx(np.log(10_000))
    assert not any(v for f, v in none.items() if f not in ("log_voiced", "log_songs"))


def test_a_rule_with_a_size_term_asks_more_of_a_larger_catalogue():
    weights = [0.0] * len(dc.FEATURES)
    weights[dc.FEATURES.index("margin")], weights[dc.FEATURES.index("log_songs")] = 20.0, -1.0
    config = MatcherConfig(evidence=Evidence(tuple(weights), 5.0))
    hum = ranked(0.8, 0.6)  # evidence 20 * 0.2 + 5 - log(songs)
    assert decide(hum, config, 100, 1000).is_match and not decide(hum, config, 100, 100_000).is_match
    assert decide(hum, config, 100, 1000).confidence == pytest.approx(1 / (1 + np.exp(-(9.0 - np.log(1000)))))
    floored = MatcherConfig(evidence=Evidence(tuple(weights), round(5.0 + np.log(1000) - 9.5, 6), min_songs=1000))
    assert not decide(hum, floored, 100, 1000).is_match  # 9 - 9.5 at the smallest calibrated size
    for songs in (1, 20, 999):  # and no more lenient below it
        assert decide(hum, floored, 100, songs).confidence == decide(hum, floored, 100, 1000).confidence
    assert MatcherConfig.for_model({"decision": {"evidence": floored.evidence.to_dict()}}) == floored
    with pytest.raises(ValueError):
        Evidence(tuple(weights), 0.0, min_songs=0)


def test_evidence_decides_on_the_field_not_only_the_runner_up():
    """Two rankings with the same best score and margin: the one whose best song stands
    out from the whole field is a match under an evidence weighing gap_field, the other not;
    the thresholds cannot tell them apart."""
    weights = [0.0] * len(dc.FEATURES)
    weights[dc.FEATURES.index("gap_field")] = 10.0
    config = MatcherConfig(evidence=Evidence(tuple(weights), -3.0))
    clear = decide(ranked(0.9, 0.7, 0.3, 0.3, 0.3), config, 100, 1000)
    crowded = decide(ranked(0.9, 0.7, 0.7, 0.7, 0.7), config, 100, 1000)
    assert clear.is_match and not crowded.is_match
    assert clear.confidence > 0.5 > crowded.confidence
    assert clear.confidence == pytest.approx(1 / (1 + np.exp(-(10.0 * (0.9 - 0.4) - 3.0))))
    assert not decide([], config, 100, 1000).is_match
    thresholds = MatcherConfig(min_score=0.8, min_margin=0.1)
    assert decide(ranked(0.9, 0.7, 0.3, 0.3, 0.3), thresholds, 100, 1000).is_match == \
        decide(ranked(0.9, 0.7, 0.7, 0.7, 0.7), thresholds, 100, 1000).is_match
    with pytest.raises(ValueError):
        Evidence((1.0, 2.0), 0.0)


def test_decision_rules_come_from_the_model_or_fail_in_one_line():
    assert MatcherConfig.for_model({}) == MatcherConfig()
    assert MatcherConfig.for_model({"decision": {"min_score": 0.5, "min_margin": 0.2}}).min_margin == 0.2
    evidence = Evidence(tuple(float(i) for i in range(len(dc.FEATURES))), -1.5)
    assert MatcherConfig.for_model({"decision": {"evidence": evidence.to_dict()}}).evidence == evidence
    renamed = evidence.to_dict() | {"features": ["loudness"] + list(dc.FEATURES[1:])}
    twice = evidence.to_dict() | {"features": list(dc.FEATURES[:-1]) + ["best"]}
    lacking = {"features": ["best"], "weights": [1.0], "bias": 1.0}  # only later features may be missing
    empty = {"features": [], "weights": [], "bias": 1.0}
    reordered = evidence.to_dict() | {"features": [dc.FEATURES[1], dc.FEATURES[0]] + list(dc.FEATURES[2:])}
    fractional = evidence.to_dict() | {"min_songs": 1417.5}
    # a rule calibrated before the size term existed names one feature fewer: it weighs 0
    older = {"features": list(dc.FEATURES[:-1]), "weights": [1.0] * (len(dc.FEATURES) - 1), "bias": -2.0}
    assert MatcherConfig.for_model({"decision": {"evidence": older}}).evidence == \
        Evidence((1.0,) * (len(dc.FEATURES) - 1) + (0.0,), -2.0)
    for bad in ({"min_score": "x", "min_margin": 0.1}, {"min_score": 2.0, "min_margin": 0.1}, {},
                {"evidence": renamed}, {"evidence": twice}, {"evidence": evidence.to_dict() | {"weights": [1.0]}},
                {"evidence": lacking}, {"evidence": empty}, {"evidence": reordered}, {"evidence": fractional}):
        with pytest.raises(ValueError):
            MatcherConfig.for_model({"decision": bad})


def test_scores_mix_the_alignment_with_the_share_of_votes(tone_catalogue):
    """score = (alignment + vote_weight * votes / most votes) / (1 + vote_weight): equal
    alignments are told apart by the votes, and scores stay in [0, 1]."""
    import dataclasses

    from device.catalogue import Catalogue
    from device.matcher import align_candidates
    catalogue = Catalogue(tone_catalogue)
    query = catalogue.melody(0)[40:140].copy()
    found = [sl.Candidate(0, 4.0, 40.0, 1.0, 0.0), sl.Candidate(1, 1.0, 40.0, 1.0, 0.0)]
    plain = {c.song: c.score for c in align_candidates(query, found, catalogue, MatcherConfig(vote_weight=0.0))}
    mixed = align_candidates(query, found, catalogue, MatcherConfig(vote_weight=0.5))
    assert [c.song for c in mixed] == [0, 1] and plain[0] > 0.9
    for c in mixed:
        share = {0: 1.0, 1: 0.25}[c.song]
        assert c.score == pytest.approx((plain[c.song] + 0.5 * share) / 1.5) and 0.0 <= c.score <= 1.0
    tie = [dataclasses.replace(found[0], row=1, votes=1.0), dataclasses.replace(found[1], row=1, votes=4.0)]
    scores = [c.score for c in align_candidates(query, tie, catalogue, MatcherConfig(vote_weight=0.5))]
    assert scores[0] > scores[1]  # the same alignment, more votes first


def test_an_impossible_alignment_scores_zero_and_still_draws_a_path():
    """A stretch shorter than half the query cannot hold it at slopes up to 2: score 0, and
    the path asked for the explain plot is still drawn, inside the stretch."""
    query = tune(20, seed=4)
    (result,) = al.align(query, [tune(2, frames_per_note=2, seed=5)], np.zeros((1, 1)), with_path=True)
    assert result.score == 0.0 and result.path.shape == (query.size,)
    assert result.path.min() >= 0 and result.path.max() < 4


def test_the_recognizer_tells_the_decision_its_catalogues_size(tone_catalogue, tone_songs):
    """The two-song catalogue's queries carry log 2, and the shipped rule, calibrated from
    1,417 songs up, reads them as it reads its smallest calibrated catalogue."""
    import soundfile

    from device.catalogue import Catalogue
    from device.recognizer import Recognizer
    catalogue = Catalogue(tone_catalogue)
    audio, rate = soundfile.read(tone_songs / "rising.wav", dtype="float32")
    result = Recognizer(catalogue).identify(audio[:rate * 10], top=2)
    values = dict(zip(dc.FEATURES, result.features))
    assert values["log_songs"] == pytest.approx(np.log(2)) and len(catalogue.songs) == 2
    rule = catalogue.matcher.evidence
    assert rule.min_songs == 1417
    floored = result.features.copy()
    floored[dc.FEATURES.index("log_songs")] = np.log(1417)
    assert rule.of(result.features) == pytest.approx(rule.of(floored))
    assert result.matches and result.matches[0].song_id.endswith("rising")
