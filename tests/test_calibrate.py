"""benchmarks.calibrate --write: the chosen thresholds become the model's, in its manifests."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile

from benchmarks import calibrate
from device import assets
from device import indexing
from device import manifest as mf
from device.catalogue import Catalogue
from device.frontend import FrontendConfig
from device.matcher import MatcherConfig
from device.recognizer import Recognizer, RecognizerConfig

RATE = FrontendConfig().sample_rate_hz


def test_stored_thresholds_are_the_ones_the_runtime_uses(tmp_path):
    catalogue, model = tmp_path / "catalogue", tmp_path / "model"
    shutil.copytree(assets.default_catalogue_dir(), catalogue)
    shutil.copytree(assets.default_model_dir(), model)
    calibrate.store_decision([(catalogue, mf.read(catalogue, mf.CATALOGUE_FORMAT)),
                              (model, mf.read(model, mf.MODEL_FORMAT))],
                             {"min_score": 0.125, "min_margin": 0.45, "calibration": {"seed": 1}})
    matcher = Recognizer(Catalogue(catalogue)).config.matcher
    assert (matcher.min_score, matcher.min_margin) == (0.125, 0.45)
    assert mf.read(model, mf.MODEL_FORMAT)["model"]["decision"]["min_margin"] == 0.45
    explicit = Recognizer(Catalogue(catalogue), RecognizerConfig(matcher=MatcherConfig()))
    assert explicit.config.matcher == MatcherConfig()  # an explicit matcher config wins
    audio = tmp_path / "audio"  # a catalogue built later from the model directory inherits them
    audio.mkdir()
    t = np.arange(RATE * 6) / RATE
    soundfile.write(audio / "a-tone.wav", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), RATE)
    indexing.build(audio, tmp_path / "built", model)
    assert Catalogue(tmp_path / "built").matcher == matcher


def test_a_model_directory_of_another_model_is_refused_before_any_work(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(assets.default_model_dir(), model)
    data = json.loads((model / "manifest.json").read_text())
    data["model"]["sha256"] = "0" * 64
    (model / "manifest.json").write_text(json.dumps(data))
    before = (model / "manifest.json").read_text()
    with pytest.raises(SystemExit):  # --shared-data is not even looked at
        calibrate.main(["--shared-data", str(tmp_path / "absent"), "--out", str(tmp_path / "out"),
                        "--write", "--model-dir", str(model)])
    assert (model / "manifest.json").read_text() == before
    assert not (tmp_path / "out").exists()
