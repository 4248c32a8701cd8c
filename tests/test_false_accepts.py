"""Queries that should find nothing: durations, determinism, and how they are judged and counted."""
import numpy as np
import pytest

from benchmarks import false_accepts as fa
from device import assets
from device.catalogue import Catalogue
from device.recognizer import Recognizer
from training.melody import Note, Song

SR = 16000


def in_range(query: fa.Query) -> bool:
    return fa.MIN_S * SR <= query.audio.size <= fa.MAX_S * SR


def peak_db(audio: np.ndarray) -> float:
    return 20 * np.log10(np.max(np.abs(audio)))


def test_noise_queries_cover_the_variants_in_range_and_are_seeded():
    queries = fa.noise_queries(8, seed=3, sample_rate_hz=SR)
    assert [q.variant for q in queries] == list(fa.NOISE_VARIANTS) * 2
    assert all(q.kind == "noise" and q.audio.dtype == np.float32 and in_range(q) for q in queries)
    assert all(fa.PEAK_DB[0] - 0.01 <= peak_db(q.audio) <= fa.PEAK_DB[1] + 0.01 for q in queries)
    again = fa.noise_queries(8, seed=3, sample_rate_hz=SR)
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(queries, again))
    other = fa.noise_queries(8, seed=4, sample_rate_hz=SR)
    assert not any(a.audio.size == b.audio.size and np.array_equal(a.audio, b.audio)
                   for a, b in zip(queries, other))


@pytest.mark.skipif(not fa.espeak_available(), reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_speech_queries_are_spoken_in_range_and_seeded():
    queries = fa.speech_queries(3, seed=5, sample_rate_hz=SR)
    assert all(q.kind == "speech" and in_range(q) for q in queries)
    for q in queries:
        frames = q.audio[: q.audio.size // 320 * 320].reshape(-1, 320)
        voiced = np.sqrt(np.mean(frames ** 2, axis=1)) > 1e-3
        assert voiced.mean() > 0.4, f"{q.name}: mostly silent"
    again = fa.speech_queries(3, seed=5, sample_rate_hz=SR)
    assert [q.name for q in queries] == [q.name for q in again]
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(queries, again))


def short_tune(song_id: str, pitches) -> Song:
    melody = tuple(Note(p, 0.4 * i, 0.4 * (i + 1)) for i, p in enumerate(pitches))
    return Song(song_id, "", "", "test", "public-domain", False, melody)


def test_hum_queries_fill_their_duration_even_from_short_tunes_and_are_seeded():
    songs = [short_tune("a", [60, 62, 64, 65, 67, 65, 64, 62, 60, 67]),  # 4 s: hummed over again
             short_tune("b", [57, 60, 64, 69, 67, 64, 62, 60, 59, 57, 55, 57])]
    queries = fa.hum_queries(songs, 2, seed=7, sample_rate_hz=SR)
    assert len(queries) == 2 and {q.name.split("@")[0] for q in queries} == {"a", "b"}
    for q in queries:
        assert q.kind == "hum" and in_range(q)
        assert np.sqrt(np.mean(q.audio[-3 * SR:] ** 2)) > 0.01, f"{q.name}: the hum stops early"
    again = fa.hum_queries(songs, 2, seed=7, sample_rate_hz=SR)
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(queries, again))


def test_judge_reports_the_decisions_and_rates_count_them():
    recognizer = Recognizer(Catalogue(assets.default_catalogue_dir()))
    query = fa.noise_queries(1, seed=1, sample_rate_hz=SR)[0]
    row = fa.judge(recognizer, query)
    assert set(row) == set(fa.FIELDS)
    assert row["decision"] in ("match", "no_match") and row["stream_decision"] in ("match", "no_match")
    assert row["seconds"] == pytest.approx(query.audio.size / SR, abs=0.01)
    rows = [dict(row, kind="noise", variant="white", decision="no_match", stream_decision="no_match"),
            dict(row, kind="noise", variant="pink", decision="match", stream_decision="match"),
            dict(row, kind="hum", variant="la", decision="no_match", stream_decision="match")]
    summary = fa.summarise(rows)
    assert summary["overall"]["false_accepts"] == 1 and summary["overall"]["stream_false_accepts"] == 2
    assert summary["kinds"]["noise"]["rate"] == 0.5
    assert summary["kinds"]["noise"]["variants"]["pink"]["rate"] == 1.0
    assert summary["kinds"]["hum"]["stream_rate"] == 1.0 and "speech" not in summary["kinds"]
    assert len(summary["accepted"]) == 2
    low, high = fa.wilson(0, 100)
    assert low == 0.0 and 0.03 < high < 0.04
