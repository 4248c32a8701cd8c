"""benchmarks.shortlist_scale: its filler lines and its exact search (the full run needs
../shared/data and is a benchmark, not a test)."""
from __future__ import annotations

import numpy as np

from benchmarks import shortlist_scale as ss
from device import assets, shortlist as sl
from device.catalogue import Catalogue
from training.melody import Note, Song


def _song(pitches, step_s=0.5) -> Song:
    melody = tuple(Note(int(p), i * step_s, (i + 1) * step_s) for i, p in enumerate(pitches))
    return Song("t", "", "", "test", "public-domain", False, melody, beat_s=0.5, beats_per_bar=4)


def test_a_filler_line_is_the_written_melody_at_its_tempo_played_through():
    song = _song([60, 62, 64, 65])  # 2 s, one bar of 4 beats
    line = ss.written_line(song, 4.0, 1.0, 10.0)
    assert line.size == 40 and list(line[[0, 5, 10, 15, 20, 35]]) == [60, 62, 64, 65, 60, 65]  # played twice
    slow = ss.written_line(song, 4.0, 2.0, 10.0)  # twice as slowly: each note lasts 1 s
    assert slow.size == 80 and list(slow[[0, 9, 10, 39, 40]]) == [60, 60, 62, 65, 60]


def test_exact_hits_are_the_nearest_vectors_best_first_and_vectors_are_the_indexs():
    catalogue = Catalogue(assets.default_catalogue_dir())
    config = catalogue.config.shortlist
    lines = [catalogue.melody(r) for r in range(5)]
    vecs, rows, starts, keys = ss.catalogue_vectors(lines, catalogue.embedder, config)
    first = sl.catalogue_windows(lines[0], catalogue.embedder, config)
    assert np.array_equal(starts[rows == 0], first[0]) and np.allclose(vecs[rows == 0], first[1])
    assert sorted(set(rows.tolist())) == list(range(5))
    query = sl.query_windows(lines[3][100:225], catalogue.embedder, config)
    for window, found in zip(query[:5], ss.exact_hits(query[:5], vecs, 7, chunk=2)):
        sims = vecs @ window.vector  # (the order of near-ties may differ with the summation's)
        assert np.allclose(sims[found], np.sort(sims)[::-1][:7], atol=1e-6)
    # a stretch of song 3, at every scale, finds song 3 first
    hits = ss.exact_hits(query, vecs, 50)
    sims = [vecs[h] @ w.vector for w, h in zip(query, hits)]
    assert ss.shortlist_of(query, hits, rows, starts, keys, sims, 3)[0] == 3
