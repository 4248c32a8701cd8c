"""Corpus readers on small real samples: one POP909 song, one lead sheet, one ABC file."""
import re
import shutil
from pathlib import Path

import pytest

from training.corpora import (load_music21_essen, load_nottingham, load_openewld,
                              load_pop909, written_tunes)
from training.melody import Song


def assert_valid(song: Song) -> None:
    """The contract every loader keeps: a safe id and a sorted monophonic melody."""
    assert re.fullmatch(r"[A-Za-z0-9_-]+", song.song_id)
    assert len(song.melody) >= 8
    for note, following in zip(song.melody, song.melody[1:]):
        assert note.start_s < note.end_s <= following.start_s
    assert song.beat_s > 0 and song.beats_per_bar >= 1
    for chord in song.chords:
        assert chord.start_s < chord.end_s
        assert 48 <= chord.pitches[0] < 60  # root in octave 3
        assert list(chord.pitches) == sorted(chord.pitches)


def pitches(song: Song, n: int) -> list[int]:
    return [note.pitch for note in song.melody[:n]]


def test_written_tunes_are_valid_and_shippable():
    songs = written_tunes()
    assert len({song.song_id for song in songs}) == len(songs) >= 6
    for song in songs:
        assert_valid(song)
        assert song.source == "written" and song.licence == "public-domain" and song.shippable
        assert song.chords[0].start_s == 0.0
        assert song.chords[-1].end_s == pytest.approx(song.melody[-1].end_s)


def test_written_tunes_start_with_their_well_known_notes():
    songs = {song.song_id: song for song in written_tunes()}
    C4, D4, E4, F4, G4, A4 = 60, 62, 64, 65, 67, 69
    assert pitches(songs["written-twinkle-twinkle"], 7) == [C4, C4, G4, G4, A4, A4, G4]
    assert pitches(songs["written-ode-to-joy"], 8) == [E4, E4, F4, G4, G4, F4, E4, D4]
    assert pitches(songs["written-mary-had-a-little-lamb"], 7) == [E4, D4, C4, D4, E4, E4, E4]
    assert pitches(songs["written-frere-jacques"], 4) == [C4, D4, E4, C4]
    assert pitches(songs["written-london-bridge"], 7) == [G4, A4, G4, F4, E4, F4, G4]
    assert pitches(songs["written-row-row-row-your-boat"], 5) == [C4, C4, C4, D4, E4]
    twinkle = songs["written-twinkle-twinkle"]
    assert twinkle.chords[0].pitches == (48, 52, 55)  # C major, root C3
    assert twinkle.melody[-1].end_s == pytest.approx(12 * 4 * twinkle.beat_s)


def test_pop909_song_001(pop909_song_001_root: Path):

    (song,) = load_pop909(pop909_song_001_root)
    assert_valid(song)
    assert song.song_id == "pop909-001" and song.title == "123我爱你"
    assert song.licence == "MIT" and song.shippable
    assert len(song.melody) > 100 and len(song.accompaniment) > 500
    assert song.beats_per_bar == 2
    assert song.beat_s == pytest.approx(60 / 90, rel=1e-3)


def test_openewld_jingle_bells(shared_data: Path, tmp_path: Path):
    composers = tmp_path / "dataset" / "James_Pierpont-[Traditional]"
    shutil.copytree(shared_data / "openewld" / "dataset" / "James_Pierpont" / "Jingle_Bells",
                    composers / "Jingle_Bells")

    (song,) = load_openewld(tmp_path)
    assert_valid(song)
    assert song.song_id == "openewld-Jingle_Bells" and song.title == "Jingle Bells"
    assert song.artist == "James Pierpont, Traditional"
    assert song.licence == "public-domain" and song.shippable
    assert pitches(song, 4) == [62, 71, 69, 67]  # D4 B4 A4 G4, "Dashing through the snow"
    assert len(song.chords) > 10
    assert song.chords[0].pitches == (55, 59, 62)  # G major
    assert song.beat_s == pytest.approx(0.6)  # no metronome mark: 100 bpm


def test_nottingham_file(shared_data: Path, tmp_path: Path):
    (tmp_path / "ABC_cleaned").mkdir()
    shutil.copy(shared_data / "nottingham" / "ABC_cleaned" / "slip.abc", tmp_path / "ABC_cleaned")

    songs = load_nottingham(tmp_path)
    assert len(songs) >= 10
    for song in songs:
        assert_valid(song)
        assert song.song_id.startswith("nottingham-slip-")
        assert song.licence == "GPL-3" and not song.shippable
    assert sum(bool(song.chords) for song in songs) >= len(songs) - 1
    assert all(song.beats_per_bar == 3 for song in songs)  # slip jigs, 9/8


def test_music21_essen_stops_at_limit():
    songs = load_music21_essen(limit=3)
    assert len(songs) == 3
    for song in songs:
        assert_valid(song)
        assert song.song_id.startswith("essen-") and not song.chords
        assert song.source == "music21-essen" and not song.shippable
    # "G2 | _B2B2c2c2": an ABC accidental holds to the end of its bar
    assert songs[0].title == "Das Hildebrandslied"
    assert pitches(songs[0], 5) == [67, 70, 70, 72, 72]
