"""Training and conversion, each stage for real on a tiny scale: FluidSynth renders, hums,
pairs with melody targets, a Keras model trained for seconds, int8 TFLite read back by
the device's melody model."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="the training extra is not installed")

from device import frontend as fe  # noqa: E402
from device import manifest as mf  # noqa: E402
from device import melody as mel  # noqa: E402
from device.model import MelodyModel  # noqa: E402
from training import corpora, pair_shards, pairs  # noqa: E402
from training.melody import Note, sounding_roll  # noqa: E402
from training.salience import (SalienceBatches, held_note_weights, roll_map, seconds_into_note,  # noqa: E402
                               shift_bins, stretch_frames, stretch_track, target_map)
from training.config import DataConfig, TrainConfig  # noqa: E402
from training.render import find_soundfonts  # noqa: E402

FRONTEND = fe.FrontendConfig()


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    data = DataConfig.smoke()
    out = tmp_path_factory.mktemp("pairs")
    with pairs.PairMaker(data, FRONTEND, find_soundfonts()) as maker:
        made = [maker.make(s) for s in corpora.written_tunes()]
    pair_shards.save([m for m in made if m is not None], out / "shard_00000.pkl")
    return out


def test_pairs_are_aligned_in_time(pairs_dir):
    songs = pair_shards.load([pairs_dir / "shard_00000.pkl"])
    assert len(songs) >= 4
    for song in songs:
        assert song.recording_db.shape[1] == FRONTEND.n_bins
        for hum, to_rec in zip(song.hums_db, song.hum_to_recording):
            assert hum.shape[0] == to_rec.size
            assert np.all(np.diff(to_rec) >= 0)
            assert -50 < to_rec[0] < song.recording_db.shape[0] and to_rec[-1] > to_rec[0]


def test_batches_hold_normalised_windows_and_their_melody(pairs_dir):
    songs = pair_shards.load([pairs_dir / "shard_00000.pkl"])
    config = TrainConfig.smoke()
    batches = SalienceBatches(songs, [], config, FRONTEND, n_batches=2, seed=0)
    x, y, w = batches[0]
    assert x.shape == (config.batch_windows, FRONTEND.window_frames, FRONTEND.n_bins)
    assert y.shape == (config.batch_windows, FRONTEND.window_frames // config.time_stride, FRONTEND.n_bins)
    assert x.min() >= 0 and np.allclose(x.max(axis=(1, 2)), 1.0)
    assert 0 <= y.min() and y.max() <= 1 and (y.max(axis=2) > 0.9).mean() > 0.2  # voiced frames peak at 1
    assert w.shape == y.shape[:2] and np.all(w == 1.0)  # held notes weigh no more by default
    np.testing.assert_array_equal(batches[0][0], x)  # same index, same batch (resumable)
    held = SalienceBatches(songs, [], dataclasses.replace(config, held_weight=3.0), FRONTEND, n_batches=2, seed=0)[0]
    np.testing.assert_array_equal(held[1], y)  # the same windows and targets ...
    assert held[2].min() == 1.0 and 1.0 < held[2].max() <= 4.0  # ... reweighted,
    assert np.all(y[held[2] > 1.0].max(axis=-1) > 0)  # on sounding frames only


def test_held_notes_weigh_more_the_longer_they_sound():
    midi = np.array([0, 60, 60, 60, 60, 60, 60, 60.3, 62, 62, 0, 62], np.float32)
    since = seconds_into_note(midi, 0.25)
    np.testing.assert_allclose(since, [0, 0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 0, 0.25, 0, 0])  # 60.3 is still 60
    weights = held_note_weights(midi, 0.25, 3.0)
    np.testing.assert_allclose(weights[:8], [1, 1, 1, 1 + 3 * 0.25 / 0.75, 1 + 3 * 0.5 / 0.75, 4, 4, 4], rtol=1e-6)
    assert weights[10] == 1.0 and np.all(held_note_weights(midi, 0.25, 0.0) == 1.0)


def test_targets_follow_the_pitch_and_the_augmentations_move_both():
    target = target_map(np.array([0.0, 60.0, 60.25, 200.0]), FRONTEND, sigma_bins=1.0)
    assert target[0].max() == 0 and target[3].max() == 0  # silent, and beyond the range
    assert target[1].argmax() == (60 - FRONTEND.fmin_midi) * FRONTEND.bins_per_semitone and target[1].max() == 1.0
    assert target[2].argmax() == target[1].argmax()
    spec = np.full((10, 8), -120.0, np.float32)
    spec[:, 3] = 0.0
    assert shift_bins(spec, 2)[:, 5].max() == 0.0 and shift_bins(spec, -3)[:, 0].max() == 0.0
    ramp = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 8), np.float32)
    np.testing.assert_allclose(stretch_frames(ramp, 19)[:, 0], np.linspace(0, 9, 19), atol=1e-5)
    track = np.array([0, 0, 60, 60, 62, 0], np.float32)
    assert set(stretch_track(track, 11)) == {0.0, 60.0, 62.0}  # no pitch between voicing edges


def test_recordings_carry_the_backings_pitches_and_batches_turn_them_into_a_second_target(pairs_dir):
    roll = sounding_roll([Note(60, 0.0, 1.0), Note(64, 0.5, 1.5), Note(300, 0.0, 9.0)], np.array([0.25, 0.75, 1.25, 2.0]))
    assert roll.shape == (4, 128)
    assert [list(np.flatnonzero(r)) for r in roll] == [[60], [60, 64], [64], []]
    target = roll_map(roll[1:2], 0, FRONTEND, sigma_bins=1.0)[0]
    at = [int(round((p - FRONTEND.fmin_midi) * FRONTEND.bins_per_semitone)) for p in (60, 64)]
    assert target[at].tolist() == [1.0, 1.0] and target.max() <= 1.0 and target[at[0] + 4] < 0.2
    assert roll_map(roll[1:2], 3, FRONTEND, 1.0)[0].argmax() == at[0] + 3  # transposed with the window
    songs = pair_shards.load([pairs_dir / "shard_00000.pkl"])
    for song in songs:
        assert song.recording_backing.shape == (song.recording_db.shape[0], 16)
        played = np.unpackbits(song.recording_backing, axis=1)
        assert played.sum(axis=1).mean() > 1  # chords and a bass under the tune
    config = dataclasses.replace(TrainConfig.smoke(), backing_weight=0.5, batch_windows=8)
    x, y, w = SalienceBatches(songs, [], config, FRONTEND, n_batches=1, seed=0)[0]
    assert set(y) == set(w) == {"salience", "backing"} and y["backing"].shape == y["salience"].shape
    np.testing.assert_array_equal(x, SalienceBatches(songs, [], dataclasses.replace(config, backing_weight=0.0),
                                                     FRONTEND, n_batches=1, seed=0)[0][0])  # same windows
    from_queries = y["backing"].max(axis=(1, 2)) == 0  # a hum has no backing
    assert 0 < from_queries.sum() < len(x) and np.all(w["backing"] == 1.0)
    # a backing that plays the lead's own notes gets the lead's target, however the window
    # was cropped, stretched, subsampled and transposed
    echo = []
    for song in songs:
        midi = np.round(song.recording_midi).astype(int)
        one_hot = np.zeros((midi.size, 128), bool)
        one_hot[np.arange(midi.size), midi] = midi > 0
        echo.append(dataclasses.replace(song, recording_backing=np.packbits(one_hot, axis=1),
                                        recording_midi=np.where(midi > 0, midi, 0).astype(np.float32)))
    for stride in (1, 4):
        _, y, _ = SalienceBatches(echo, [], dataclasses.replace(config, recording_fraction=1.0, time_stride=stride),
                                  FRONTEND, n_batches=1, seed=1)[0]
        assert y["salience"].max() == 1.0
        np.testing.assert_allclose(y["backing"], y["salience"], atol=1e-6)


def test_a_backing_head_trains_beside_the_salience_and_the_device_runs_the_salience_alone(pairs_dir, tmp_path):
    import keras
    from converter.convert import convert
    from training.config import override
    from training.model import build_model, load_weights_from
    from training.train import run
    plain_config = override(TrainConfig.smoke(), ["epochs=1"])
    run(pairs_dir, tmp_path / "plain", DataConfig.smoke(), plain_config)
    plain = keras.models.load_model(tmp_path / "plain" / "best.keras", compile=False)
    config = override(plain_config, ["backing_weight=0.5"])
    both = build_model(FRONTEND, config)
    load_weights_from(both, plain)  # the head is left as initialised
    x = SalienceBatches(pair_shards.load([pairs_dir / "shard_00000.pkl"]), [], plain_config,
                        FRONTEND, 1, seed=5)[0][0]
    out = both.predict(x, verbose=0)
    np.testing.assert_allclose(out["salience"], plain.predict(x, verbose=0), atol=1e-6)
    assert out["backing"].shape == out["salience"].shape
    metrics = run(pairs_dir, tmp_path / "both", DataConfig.smoke(), config, init=tmp_path / "plain" / "best.keras")
    assert np.isfinite(metrics["backing_loss"]) and np.isfinite(metrics["val_salience_loss"])
    written = convert(tmp_path / "both", pairs_dir, tmp_path / "model")
    trained = keras.models.load_model(tmp_path / "both" / "best.keras", compile=False)
    assert written["model"]["parameters"] == trained.count_params() - trained.get_layer("backing_conv").count_params()
    int8 = MelodyModel(tmp_path / "model" / "model.tflite").salience(x)
    reference = keras.ops.convert_to_numpy(trained(x)["salience"])
    assert int8.shape == reference.shape and np.abs(int8 - reference).mean() < 0.02


def test_train_then_convert_to_int8_read_by_the_device(pairs_dir, tmp_path):
    import keras
    from converter.convert import convert
    from training.train import run
    run_dir = tmp_path / "run"
    metrics = run(pairs_dir, run_dir, DataConfig.smoke(), TrainConfig.smoke())
    for name in ("config.json", "best.keras", "last.keras", "history.csv"):
        assert (run_dir / name).is_file()
    assert np.isfinite(metrics["loss"]) and 0 <= metrics["pitch_accuracy"] <= 1
    out, float_out = tmp_path / "model", tmp_path / "float"
    written = convert(run_dir, pairs_dir, out, float_dir=float_out)
    assert written["frontend"] == FRONTEND.to_dict()
    float_manifest = mf.read(float_out, mf.MODEL_FORMAT)
    assert (written["model"]["quantization"], float_manifest["model"]["quantization"]) == ("int8", "float32")
    assert mf.check_file(float_out, float_manifest["model"], "model").stat().st_size > out.joinpath("model.tflite").stat().st_size
    assert written["model"]["melody"] == mel.MelodyConfig().to_dict()
    model = MelodyModel(out / "model.tflite")
    assert model.backend == "ai-edge-litert" and model.time_stride == written["model"]["time_stride"] == 2
    x = SalienceBatches(pair_shards.load([pairs_dir / "shard_00000.pkl"]), [], TrainConfig.smoke(),
                        FRONTEND, 1, seed=5)[0][0]
    int8 = model.salience(x)
    reference = keras.ops.convert_to_numpy(keras.models.load_model(run_dir / "best.keras", compile=False)(x))
    assert int8.shape == reference.shape and np.abs(int8 - reference).mean() < 0.02  # int8 stays close
    np.testing.assert_allclose(MelodyModel(float_out / "model.tflite").salience(x), reference, atol=1e-4)


def test_a_coarser_time_stride_keeps_the_line_at_80_ms(pairs_dir, tmp_path):
    """A model whose salience has a frame per 4 input frames is read without pooling, so
    catalogue lines and the shortlist embedder keep their rate."""
    from converter.convert import convert
    from training.config import override
    from training.train import run
    config = override(TrainConfig.smoke(), ["time_stride=4", "epochs=1"])
    run(pairs_dir, tmp_path / "run", DataConfig.smoke(), config)
    written = convert(tmp_path / "run", pairs_dir, tmp_path / "model")
    model = MelodyModel(tmp_path / "model" / "model.tflite")
    melody = mel.MelodyConfig(**written["model"]["melody"])
    assert model.time_stride == 4 and model.output_shape[0] == FRONTEND.window_frames // 4
    assert melody.pool == 1 and melody.frame_rate_hz(FRONTEND, model.time_stride) == 12.5
    spec = np.full((600, FRONTEND.n_bins), -60.0, np.float32)
    line, _ = mel.pitch_line(mel.salience(spec, model, FRONTEND, melody), FRONTEND, melody)
    assert line.size == 600 // mel.LINE_FRAMES
    with pytest.raises(ValueError, match="does not divide"):  # refused before any training
        run(pairs_dir, tmp_path / "run3", DataConfig.smoke(), override(TrainConfig.smoke(), ["time_stride=3"]))
    assert not (tmp_path / "run3").exists()


def test_a_widened_model_computes_what_the_narrow_one_did_then_trains_on(pairs_dir, tmp_path):
    """training.widen: more channels, the same salience (exactly without noise), and
    training.train starts from it."""
    import keras
    from training import widen
    from training.config import override
    from training.model import build_model
    from training.train import run
    narrow_config = override(TrainConfig.smoke(), ["epochs=1"])
    run(pairs_dir, tmp_path / "narrow", DataConfig.smoke(), narrow_config)
    x = SalienceBatches(pair_shards.load([pairs_dir / "shard_00000.pkl"]), [], narrow_config,
                        FRONTEND, 1, seed=5)[0][0]
    narrow = keras.models.load_model(tmp_path / "narrow" / "best.keras", compile=False)
    wide = build_model(FRONTEND, override(narrow_config, ["channels=7,6,5"]))
    widen.widen(narrow, wide, noise=0.0, seed=1)
    assert wide.count_params() > narrow.count_params()
    np.testing.assert_allclose(wide.predict(x, verbose=0), narrow.predict(x, verbose=0), atol=1e-5)
    widen.widen(narrow, wide, noise=0.05, seed=1)  # the copies part ways, a little
    assert 0 < np.abs(wide.predict(x, verbose=0) - narrow.predict(x, verbose=0)).max() < 0.2
    with pytest.raises(ValueError, match="cannot hold"):
        widen.widen(wide, narrow, noise=0.0, seed=1)
    out = tmp_path / "wide.keras"
    assert widen.main(["--init", str(tmp_path / "narrow" / "best.keras"), "--channels", "7,6,5",
                       "--out", str(out), "--noise", "0"]) == 0
    metrics = run(pairs_dir, tmp_path / "wide", DataConfig.smoke(),
                  override(narrow_config, ["channels=7,6,5"]), init=out)
    assert np.isfinite(metrics["loss"])
    with pytest.raises(SystemExit):  # never overwrites
        widen.main(["--init", str(tmp_path / "narrow" / "best.keras"), "--channels", "7,6,5", "--out", str(out)])


def test_context_blocks_start_neutral_from_a_model_without_them_then_train(pairs_dir, tmp_path):
    """A model with context blocks given a trained model's weights computes what it did,
    trains on from there, and is read by the device as any other."""
    import keras
    from converter.convert import convert
    from training.config import override
    from training.model import build_model, load_weights_from
    from training.train import run
    plain_config = override(TrainConfig.smoke(), ["epochs=1"])
    run(pairs_dir, tmp_path / "plain", DataConfig.smoke(), plain_config)
    x = SalienceBatches(pair_shards.load([pairs_dir / "shard_00000.pkl"]), [], plain_config,
                        FRONTEND, 1, seed=5)[0][0]
    plain = keras.models.load_model(tmp_path / "plain" / "best.keras", compile=False)
    context_config = override(plain_config, ["context_dilations=2,6"])
    context = build_model(FRONTEND, context_config)
    assert context.count_params() > plain.count_params()
    load_weights_from(context, plain)
    np.testing.assert_allclose(context.predict(x, verbose=0), plain.predict(x, verbose=0), atol=1e-6)
    with pytest.raises(ValueError, match="trunks differ"):
        load_weights_from(build_model(FRONTEND, override(plain_config, ["channels=5,4,4"])), plain)
    metrics = run(pairs_dir, tmp_path / "context", DataConfig.smoke(), context_config,
                  init=tmp_path / "plain" / "best.keras")
    assert np.isfinite(metrics["loss"])
    trained = keras.models.load_model(tmp_path / "context" / "best.keras", compile=False)
    assert not np.allclose(trained.predict(x, verbose=0), plain.predict(x, verbose=0), atol=1e-4)
    with pytest.raises(ValueError, match="does not have"):  # its blocks cannot go into a plain model
        load_weights_from(plain, trained)
    convert(tmp_path / "context", pairs_dir, tmp_path / "model")
    int8 = MelodyModel(tmp_path / "model" / "model.tflite").salience(x)
    reference = keras.ops.convert_to_numpy(trained(x))
    assert int8.shape == reference.shape and np.abs(int8 - reference).mean() < 0.02


def test_overrides_set_fields_and_reject_what_is_not_a_field():
    from training.config import override
    config = override(TrainConfig.smoke(), ["epochs=4", "tempo_range=0.9,1.1", "channels=2,2,2"])
    assert (config.epochs, config.tempo_range, config.channels) == (4, (0.9, 1.1), (2, 2, 2))
    assert override(config, []) == config
    assert override(config, ["context_dilations=4,12"]).context_dilations == (4, 12)
    assert override(config, ["context_dilations="]).context_dilations == ()
    for bad in (["epoch=4"], ["epochs"]):
        with pytest.raises(ValueError, match="NAME=VALUE"):
            override(config, bad)


def test_an_interrupted_run_resumes_where_it_stopped(pairs_dir, tmp_path):
    import csv

    import keras
    from training.train import run

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt  # as if the session ended after the first epoch

    config = TrainConfig.smoke()
    with pytest.raises(KeyboardInterrupt):
        run(pairs_dir, tmp_path, DataConfig.smoke(), config, callbacks=(Interrupt(),))
    assert (tmp_path / "backup").is_dir()
    run(pairs_dir, tmp_path, DataConfig.smoke(), config)
    with open(tmp_path / "history.csv") as handle:
        epochs = [int(row["epoch"]) for row in csv.DictReader(handle)]
    assert epochs == list(range(config.epochs))  # the second start continued, it did not restart


def test_training_needs_neither_tensorflow_nor_the_pair_builders_libraries():
    """A lent GPU machine has numpy, scipy, JAX and (carried) Keras, not FluidSynth,
    music21 or the acoustics: training must import without them."""
    import os
    import subprocess
    import sys
    pytest.importorskip("jax", reason="the dev extra (jax) is not installed")
    probe = ("import sys, training.train; print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'tensorflow', 'fluidsynth', 'music21', 'pretty_midi', 'librosa', 'pedalboard', "
             "'pyroomacoustics', 'sounddevice', 'soundfile', 'annoy'}))")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_the_jax_backend_trains_the_same_model_and_tensorflow_converts_it(pairs_dir, tmp_path):
    """The GPU path: KERAS_BACKEND=jax trains (here on the CPU), the usual converter reads it."""
    import json
    import os
    import subprocess
    import sys

    import keras
    from converter.convert import convert
    from training.model import build_model
    pytest.importorskip("jax", reason="the dev extra (jax) is not installed")
    run_dir = tmp_path / "run"
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-m", "training.train", "--pairs", str(pairs_dir), "--run",
                           str(run_dir), "--preset", "smoke"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((run_dir / "config.json").read_text())["backend"] == "jax"
    epochs = (run_dir / "history.csv").read_text().splitlines()[1:]
    assert len(epochs) == TrainConfig.smoke().epochs and all(np.isfinite(float(e.split(",")[1])) for e in epochs)
    trained = keras.models.load_model(run_dir / "best.keras", compile=False)
    same = build_model(FRONTEND, TrainConfig.smoke())
    assert [w.shape for w in trained.get_weights()] == [w.shape for w in same.get_weights()]
    written = convert(run_dir, pairs_dir, tmp_path / "model")
    assert MelodyModel(tmp_path / "model" / "model.tflite").output_shape == tuple(written["model"]["output_shape"])


def test_line_pairs_train_a_shortlist_embedder_that_the_model_and_its_catalogues_carry(
        pairs_dir, tone_songs, tmp_path):
    """The shortlist embedder's chain for real on a tiny scale: the lines the shipped model
    hears in the pairs, a few steps of training that resume, the weights added to a model
    directory (refused for another model's lines), a catalogue built with them and an
    existing one re-embedded."""
    import json
    import pickle
    import shutil

    from converter import embedder as add_embedder
    from device import assets, indexing
    from device.catalogue import Catalogue
    from training import embedder_train, line_pairs

    model_dir = tmp_path / "model"
    shutil.copytree(assets.default_model_dir(), model_dir)
    manifest = mf.read(model_dir, mf.MODEL_FORMAT)
    del manifest["embedder"]
    mf.write(model_dir, manifest)
    (model_dir / "embedder.npz").unlink()
    with pytest.raises(mf.ManifestError, match="no shortlist embedder"):
        indexing.build(tone_songs, tmp_path / "refused", model_dir, log=lambda line: None)

    lines = tmp_path / "lines.pkl"
    assert line_pairs.main(["--pairs", str(pairs_dir), "--model", str(model_dir), "--out", str(lines)]) == 0
    data = pickle.loads(lines.read_bytes())
    assert data["model_sha256"] == manifest["model"]["sha256"] and data["per_melody_frame"] == 4
    song = data["songs"][0]
    assert song["recording"].dtype == np.uint8 and np.count_nonzero(song["recording"]) > 0.3 * song["recording"].size
    for hum, where in zip(song["hums"], song["hum_to_recording"]):
        assert hum.shape == where.shape and np.all(np.diff(where) > 0)  # a hum moves forward in the song

    run = tmp_path / "run"
    common = ["--lines", str(lines), "--run", str(run), "--steps", "3", "--batch", "8"]
    assert embedder_train.main(common + ["--epochs", "2"]) == 0
    assert embedder_train.main(common + ["--epochs", "3"]) == 0  # resumes: one more epoch
    state = json.loads((run / "state.json").read_text())
    assert [h["epoch"] for h in state["history"]] == [1, 2, 3] and all(np.isfinite(h["loss"]) for h in state["history"])

    elsewhere = tmp_path / "other-run"
    shutil.copytree(run, elsewhere)
    (elsewhere / "state.json").write_text(json.dumps(dict(state, model_sha256="0" * 64)))
    with pytest.raises(mf.ManifestError, match="trained on lines of model 00000000"):
        add_embedder.add(elsewhere, model_dir)
    written = add_embedder.add(run, model_dir)
    assert written["embedder"]["dim"] == 32 and mf.read(model_dir, mf.MODEL_FORMAT)["embedder"] == written["embedder"]

    built = tmp_path / "catalogue"
    indexing.build(tone_songs, built, model_dir, log=lambda line: None)
    catalogue = Catalogue(built)
    assert catalogue.manifest["embedder"]["sha256"] == written["embedder"]["sha256"] and catalogue.n_items > 0
    shipped = tmp_path / "shipped-embedder"
    indexing.build(tone_songs, shipped, assets.default_model_dir(), log=lambda line: None)
    assert indexing.reembed(shipped, shipped, model_dir, log=lambda line: None) == len(catalogue.songs)
    again = Catalogue(shipped)
    assert again.manifest["embedder"]["sha256"] == written["embedder"]["sha256"]
    assert np.array_equal(again.codes(0), catalogue.codes(0)) and again.n_items == catalogue.n_items
