"""PairMaker: the whole recipe for one song, deterministic, with melody targets."""
import dataclasses

import numpy as np
import pytest

from device import frontend as fe
from training import corpora
from training.config import DataConfig
from training.pairs import PairMaker
from training.render import find_soundfonts

FRONTEND = fe.FrontendConfig()
KINDS = {"hum", "la", "da", "oo", "whistle", "track-tone", "track-hum", "track-la", "track-da",
         "track-oo", "track-whistle"}


@pytest.fixture(scope="module")
def song():
    return next(s for s in corpora.written_tunes() if s.song_id == "written-ode-to-joy")


def test_same_song_same_pairs_and_every_query_is_labelled(song):
    data = dataclasses.replace(DataConfig.smoke(), hums_per_song=3, track_fraction=0.5)
    with PairMaker(data, FRONTEND, find_soundfonts()) as maker:
        first, other, again = maker.make(song), maker.make(corpora.written_tunes()[0]), maker.make(song)
    assert other is not None and len(first.kinds) == len(first.hums_db) == 3
    assert set(first.kinds) <= KINDS
    np.testing.assert_array_equal(first.recording_db, again.recording_db)
    for a, b in zip(first.hums_db + first.hum_to_recording, again.hums_db + again.hum_to_recording):
        np.testing.assert_array_equal(a, b)


def test_every_frame_carries_the_melody_as_played(song):
    """The recording's target follows the written melody (octave as the lead plays it),
    each query's follows its own f0: the same tune, so the same intervals."""
    data = dataclasses.replace(DataConfig.smoke(), hums_per_song=2, track_fraction=0.0,
                               sung_lead_fraction=0.0, mic_chain_fraction=0.0)
    with PairMaker(data, FRONTEND, find_soundfonts()) as maker:
        pairs = maker.make(song)
    assert pairs.recording_midi.shape == (pairs.recording_db.shape[0],)
    voiced = pairs.recording_midi > 0
    assert 0.3 < voiced.mean() < 1.0
    written = {n.pitch % 12 for n in song.melody}
    assert set(np.round(pairs.recording_midi[voiced]).astype(int) % 12) <= written
    for hum_db, midi, to_recording in zip(pairs.hums_db, pairs.hums_midi, pairs.hum_to_recording):
        assert midi.shape == (hum_db.shape[0],) and (midi > 0).mean() > 0.5
        # Where both sound, the hum's pitch minus the recording's is one constant (its key
        # and octave), give or take intonation and glides.
        at = np.clip(np.round(to_recording).astype(int), 0, pairs.recording_midi.size - 1)
        both = (midi > 0) & (pairs.recording_midi[at] > 0)
        offset = midi[both] - pairs.recording_midi[at][both]
        assert np.mean(np.abs(offset - np.median(offset)) < 1.0) > 0.7


def test_hard_recordings_are_drawn_as_asked_and_say_so():
    """With hard_render_fraction 1 every recording is one the model hears worst (the lead
    at or under its backing, or solo piano), and each pair records its lead's level."""
    songs = corpora.written_tunes()[:4]
    hard = dataclasses.replace(DataConfig.smoke(), hums_per_song=1, hard_render_fraction=1.0)
    with PairMaker(hard, FRONTEND, find_soundfonts()) as maker:
        made = [maker.make(s) for s in songs]
    made = [p for p in made if p is not None]
    assert len(made) >= 3
    assert all(p.recording_hard for p in made)
    assert all(-5.0 <= p.recording_lead_db <= 8.0 for p in made)
    assert sum(p.recording_lead_db <= 0.0 for p in made) >= 1
