"""Distractors: which tunes may be distractors, their order, rendering, and the evaluation catalogues."""
import csv
import dataclasses
import shutil

import numpy as np
import pytest

from benchmarks import distractors
from device import assets, indexing
from device.catalogue import Catalogue
from training.config import DataConfig
from training.corpora import written_tunes
from training.melody import Note, Song
from training.pairs import is_test_song
from training.render import find_soundfonts


def tune(song_id: str, pitches, title: str = "", shippable: bool = False, step_s: float = 0.25) -> Song:
    melody = tuple(Note(int(p), i * step_s, (i + 1) * step_s) for i, p in enumerate(pitches))
    return Song(song_id, title, "", "test", "public-domain", shippable, melody, beat_s=0.5, beats_per_bar=4)


def random_pitches(rng: np.random.Generator, n: int = 48) -> list[int]:
    return np.clip(62 + np.cumsum(rng.integers(-5, 6, size=n)), 40, 90).tolist()


@pytest.fixture(scope="module")
def catalogue():
    rng = np.random.default_rng(1)
    return [tune(f"cat-{i}", random_pitches(rng), title=f"Catalogue Song {i}") for i in range(20)]


def test_partition_drops_every_form_of_a_catalogue_song(catalogue):
    rng = np.random.default_rng(2)
    original = [n.pitch for n in catalogue[3].melody]
    transposed_split = [p + 5 for p in original[:20]] + [original[20] + 5] * 2 + [p + 5 for p in original[21:]]
    variant = list(original)
    variant[10] += 2  # another edition: one note differs
    fresh = [tune(f"pool-{i}", random_pitches(rng), title=f"Reel {i}") for i in range(60)]
    candidates = [
        tune("cat-5", random_pitches(rng)),  # a catalogue id
        tune("pool-title", random_pitches(rng), title="The catalogue song 7."),  # its title
        tune("pool-transposed", transposed_split),  # its melody, another key, a note split
        tune("pool-variant", variant),
        tune("pool-flat", [60, 62] * 20),  # too plain to tell apart
        *fresh,
        tune("pool-again", [n.pitch - 3 for n in fresh[0].melody]),  # a pool tune twice
    ]
    pool = distractors.partition(candidates, catalogue)
    kept = {s.song_id for s in pool.distractors + pool.reserved}
    assert kept == {s.song_id for s in fresh}, "random tunes are all kept, every copy dropped"
    assert pool.excluded == {"catalogue song id": 1, "catalogue song title": 1, "catalogue melody": 2,
                             "too few distinct melodic figures": 1, "duplicate in pool": 1}
    assert all(distractors.is_reserved(s.song_id) for s in pool.reserved)
    assert not any(distractors.is_reserved(s.song_id) for s in pool.distractors)
    assert pool.catalogue_durations_s == tuple(sorted(round(s.duration_s, 2) for s in catalogue))
    assert distractors.partition(candidates, catalogue) == pool


def test_same_tunes_finds_an_outsiders_tune_held_under_another_key_or_its_name(catalogue):
    """What benchmarks.calibrate leaves out of its out-of-catalogue hums at a large catalogue."""
    rng = np.random.default_rng(3)
    original = [n.pitch for n in catalogue[4].melody]
    outsiders = [tune("nott-key", [p - 2 for p in original]),  # the same tune, another key
                 tune("nott-name", random_pitches(rng), title="Catalogue Song 9"),
                 *[tune(f"nott-{i}", random_pitches(rng), title=f"Jig {i}") for i in range(30)]]
    assert distractors.same_tunes(catalogue, outsiders) == {"nott-key", "nott-name"}
    assert distractors.same_tunes([], outsiders) == set()
    assert distractors.is_pool_id("oneills-1276-1375-1277") and distractors.is_pool_id("essen-han2-465")
    assert not distractors.is_pool_id("pop909-001") and not distractors.is_pool_id("nottingham-jigs-25")


def test_selection_is_seeded_and_a_larger_count_extends_a_smaller(catalogue):
    rng = np.random.default_rng(3)
    pool = distractors.partition([tune(f"pool-{i}", random_pitches(rng)) for i in range(80)], catalogue)
    first = distractors.select(pool.distractors, 10, seed=5)
    assert [s.song_id for s in first] == [s.song_id for s in distractors.select(pool.distractors, 10, seed=5)]
    assert first[:4] == distractors.select(pool.distractors, 4, seed=5)
    assert first != distractors.select(pool.distractors, 10, seed=6)
    # the order of the pool does not matter, only the ids
    assert first == distractors.select(pool.distractors[::-1], 10, seed=5)
    assert not {s.song_id for s in first} & {s.song_id for s in catalogue + list(pool.reserved)}


def test_repeated_plays_the_whole_tune_from_bar_lines():
    song = tune("short", range(60, 73), step_s=0.25)  # 3.25 s; bars of 2 s: plays every 4 s
    assert distractors.repeated(song, 3.0) is song
    played = distractors.repeated(song, 10.0)
    assert len(played.melody) == 3 * len(song.melody)
    assert played.melody[len(song.melody)].start_s == pytest.approx(4.0)
    assert [n.pitch for n in played.melody[13:26]] == [n.pitch for n in song.melody]
    assert played.duration_s >= 10.0


def song_ids(test: bool, count: int) -> list[str]:
    """Ids that training.pairs holds out as test songs (test=True), or not."""
    found, i = [], 0
    while len(found) < count:
        song_id = f"written-check-{i}"
        if is_test_song(tune(song_id, [60] * 8, shippable=True), DataConfig.default()) == test:
            found.append(song_id)
        i += 1
    return found


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A base catalogue of two songs (one held-out test song) and two rendered distractors."""
    if not find_soundfonts():
        pytest.skip("no General MIDI soundfont found")
    root = tmp_path_factory.mktemp("distractors")
    tunes = {s.song_id: s for s in written_tunes()}
    twinkle, ode, mary, london = (tunes[f"written-{slug}"] for slug in (
        "twinkle-twinkle", "ode-to-joy", "mary-had-a-little-lamb", "london-bridge"))
    test_id, = song_ids(True, 1)
    other_id, = song_ids(False, 1)
    base_songs = [dataclasses.replace(twinkle, song_id=test_id), dataclasses.replace(ode, song_id=other_id)]
    extra = [dataclasses.replace(mary, song_id="pool-mary", title="Mary"),
             dataclasses.replace(london, song_id="pool-london", title="London")]
    durations = (5.0, 7.0)
    rows = {}
    for name, songs in (("base_audio", base_songs), ("distractors", extra)):
        rows[name] = distractors.render(songs, root / name, durations, max_seconds=6.0, workers=1)
    indexing.build(root / "base_audio", root / "base", assets.default_model_dir(),
                   root / "base_audio" / "metadata.csv", log=lambda line: None)
    return root, rows, base_songs, extra


def test_render_writes_audio_and_metadata_that_index_build_accepts(rendered, tmp_path):
    root, rows, _, extra = rendered
    out = root / "distractors"
    assert sorted(p.name for p in indexing.audio_files(out)) == ["pool-london.flac", "pool-mary.flac"]
    with open(out / "metadata.csv", newline="", encoding="utf-8") as handle:
        assert list(csv.DictReader(handle)) == [
            {"song_id": "pool-mary", "title": "Mary", "artist": "Traditional"},
            {"song_id": "pool-london", "title": "London", "artist": "Traditional"}]
    assert {r["song_id"] for r in rows["distractors"]} == {"pool-mary", "pool-london"}
    assert all(4.9 <= r["audio_s"] <= 6.0 and r["cpu_s"] > 0 for r in rows["distractors"])
    added, skipped = indexing.build(out, tmp_path / "cat", assets.default_model_dir(), out / "metadata.csv",
                                    log=lambda line: None)
    catalogue = Catalogue(tmp_path / "cat")
    assert (added, skipped) == (2, 0)
    assert {(s.song_id, s.title) for s in catalogue.songs} == {("pool-mary", "Mary"), ("pool-london", "London")}
    before = {p.name: p.stat().st_mtime_ns for p in indexing.audio_files(out)}
    assert distractors.render(extra, out, (5.0,), max_seconds=6.0, workers=1) == []  # resumed: nothing to do
    assert {p.name: p.stat().st_mtime_ns for p in indexing.audio_files(out)} == before


def test_build_catalogue_extends_with_distractors_in_order_and_subsets_keeping_test_songs(rendered, tmp_path):
    root, _, base_songs, _ = rendered
    bigger = distractors.build_catalogue(root / "base", tmp_path / "three", 3, root / "distractors")
    assert (bigger["songs"], bigger["distractors"]) == (3, 1)
    assert [s.song_id for s in Catalogue(tmp_path / "three").songs][-1] == "pool-mary"  # metadata order
    with pytest.raises(ValueError, match="render more"):
        distractors.build_catalogue(root / "base", tmp_path / "five", 5, root / "distractors")
    smaller = distractors.build_catalogue(root / "base", tmp_path / "one", 1)
    subset = Catalogue(tmp_path / "one")
    assert [s.song_id for s in subset.songs] == [base_songs[0].song_id]  # the held-out test song stays
    base = Catalogue(root / "base")
    row = next(r for r, s in enumerate(base.songs) if s.song_id == base_songs[0].song_id)
    np.testing.assert_array_equal(subset.codes(0), base.codes(row))  # its melody, not heard again
    assert smaller["items"] == subset.n_items > 0
    with pytest.raises(ValueError, match="held-out test songs"):
        distractors.build_catalogue(root / "base", tmp_path / "none", 0)


def test_a_stopped_build_resumes_from_its_last_step(rendered, tmp_path):
    root = rendered[0]
    out, partial = tmp_path / "four", tmp_path / "four.partial"
    lines = []

    def stop_after_first_step(line: str) -> None:
        lines.append(line)
        if line.startswith("1 of 2 distractors"):
            raise KeyboardInterrupt  # the session ends
    with pytest.raises(KeyboardInterrupt):
        distractors.build_catalogue(root / "base", out, 4, root / "distractors", log=stop_after_first_step, chunk=1)
    assert not out.exists() and [s.song_id for s in Catalogue(partial / "1").songs][-1] == "pool-mary"
    lines.clear()
    built = distractors.build_catalogue(root / "base", out, 4, root / "distractors", log=lines.append, chunk=1)
    assert any(line.startswith("resuming from") and "1 of 2" in line for line in lines)
    assert built["songs"] == 4 and not partial.exists()
    assert [s.song_id for s in Catalogue(out).songs][-2:] == ["pool-mary", "pool-london"]


def test_a_partial_build_of_other_songs_is_refused(rendered, tmp_path):
    root, _, _, _ = rendered
    out = tmp_path / "four"
    shutil.copytree(root / "base", tmp_path / "four.partial" / "1")  # the base alone: not base + pool-mary
    with pytest.raises(ValueError, match="partial build of other songs"):
        distractors.build_catalogue(root / "base", out, 4, root / "distractors", chunk=1)
    assert not out.exists() and (tmp_path / "four.partial" / "1" / "manifest.json").exists()
