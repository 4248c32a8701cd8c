"""PairMaker: the whole recipe for one song, deterministic, with mined versions."""
import dataclasses

import numpy as np
import pytest

from device import frontend as fe
from device.assets import default_model_dir
from training import corpora
from training.config import DataConfig
from training.pairs import PairMaker
from training.render import find_soundfonts

FRONTEND = fe.FrontendConfig()
KINDS = {"hum", "la", "da", "oo", "whistle", "track-tone", "track-hum", "track-la", "track-da",
         "track-oo", "track-whistle", "version"}


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


def test_a_mined_version_maps_onto_the_same_passage(song):
    model = default_model_dir()
    if not (model / "model.tflite").is_file():
        pytest.skip("no shipped model")
    data = dataclasses.replace(DataConfig.smoke(), excerpt_s=30.0, hums_per_song=1, version_fraction=1.0)
    with PairMaker(data, FRONTEND, find_soundfonts(), miner_model=model) as maker:
        pairs = maker.make(song)
    assert pairs.kinds[-1] == "version", "the shipped model should align a version of Ode to Joy"
    version, to_recording = pairs.hums_db[-1], pairs.hum_to_recording[-1]
    assert version.shape[0] == to_recording.size and np.all(np.diff(to_recording) > 0)
    # The version renders the recording's span at another tempo: its map spans it too.
    n = pairs.recording_db.shape[0]
    assert abs(to_recording[0]) < 0.05 * n and abs(to_recording[-1] - n) < 0.05 * n


def test_mining_needs_a_model():
    with pytest.raises(ValueError, match="preliminary model"):
        PairMaker(dataclasses.replace(DataConfig.smoke(), version_fraction=0.5), FRONTEND, find_soundfonts())
