"""Training and conversion, each stage for real on a tiny scale: FluidSynth renders, hums,
pairs, a Keras model trained for seconds, int8 TFLite read back by the device embedder."""
from __future__ import annotations


import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="the training extra is not installed")

from device import frontend as fe  # noqa: E402
from device import manifest as mf  # noqa: E402
from device.embedder import Embedder  # noqa: E402
from training import corpora, losses, pair_shards, pairs  # noqa: E402
from training.batches import PairBatches, shift_bins, stretch_frames  # noqa: E402
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


def test_batches_hold_aligned_normalised_pairs(pairs_dir):
    songs = pair_shards.load([pairs_dir / "shard_00000.pkl"])
    config = TrainConfig.smoke()
    batches = PairBatches(songs, config, FRONTEND, n_batches=2, seed=0)
    x, _ = batches[0]
    assert x.shape == (2 * config.batch_pairs, FRONTEND.window_frames, FRONTEND.n_bins)
    assert x.min() >= 0 and np.allclose(x.max(axis=(1, 2)), 1.0)
    np.testing.assert_array_equal(batches[0][0], x)  # same index, same batch (resumable)


def test_augmentations_move_pitch_and_time():
    spec = np.full((10, 8), -120.0, np.float32)
    spec[:, 3] = 0.0
    assert shift_bins(spec, 2)[:, 5].max() == 0.0 and shift_bins(spec, -3)[:, 0].max() == 0.0
    ramp = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 8), np.float32)
    np.testing.assert_allclose(stretch_frames(ramp, 19)[:, 0], np.linspace(0, 9, 19), atol=1e-5)


def test_losses_prefer_matched_pairs():
    import keras
    rng = np.random.default_rng(0)
    q = rng.standard_normal((6, 8)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    aligned = np.concatenate([q, q])
    shuffled = np.concatenate([q, q[::-1]])
    for fn in (lambda e: losses.triplet_loss(e, 0.2, "semi-hard"), lambda e: losses.triplet_loss(e, 0.2, "hard"),
               lambda e: losses.confidence_loss(e, 0.1)):
        assert float(keras.ops.convert_to_numpy(fn(aligned))) < float(keras.ops.convert_to_numpy(fn(shuffled)))
    assert float(keras.ops.convert_to_numpy(losses.batch_top1(aligned))) == 1.0


def test_train_then_convert_to_int8_read_by_the_device(pairs_dir, tmp_path):
    import keras
    from converter.convert import convert
    from training.train import run
    run_dir = tmp_path / "run"
    metrics = run(pairs_dir, run_dir, DataConfig.smoke(), TrainConfig.smoke())
    for name in ("config.json", "best.keras", "last.keras", "history.csv"):
        assert (run_dir / name).is_file()
    assert np.isfinite(metrics["loss"])
    out, float_out = tmp_path / "model", tmp_path / "float"
    written = convert(run_dir, pairs_dir, out, float_dir=float_out)
    assert written["frontend"] == FRONTEND.to_dict()
    float_manifest = mf.read(float_out, mf.MODEL_FORMAT)
    assert (written["model"]["quantization"], float_manifest["model"]["quantization"]) == ("int8", "float32")
    assert mf.check_file(float_out, float_manifest["model"], "model").stat().st_size > out.joinpath("model.tflite").stat().st_size
    assert mf.check_file(out, written["model"], "model").stat().st_size > 0
    embedder = Embedder(out / "model.tflite")
    assert embedder.backend == "ai-edge-litert" and embedder.embedding_dim == TrainConfig.smoke().embedding_dim
    batches = PairBatches(pair_shards.load([pairs_dir / "shard_00000.pkl"]), TrainConfig.smoke(), FRONTEND, 1, seed=5)
    x = batches[0][0]
    int8 = embedder.embed(x)
    reference = keras.ops.convert_to_numpy(keras.models.load_model(run_dir / "best.keras", compile=False)(x))
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert np.mean(np.sum(int8 * reference, axis=1)) > 0.9  # int8 stays close to float
    np.testing.assert_allclose(Embedder(float_out / "model.tflite").embed(x), reference, atol=1e-4)


def test_overrides_pick_the_losses_and_reject_what_is_not_a_field():
    from training.config import override
    from training.train import compile_model, build_model
    config = override(TrainConfig.smoke(), ["epochs=4", "confidence_weight=0", "tempo_range=0.9,1.1",
                                            "triplet_mining=hard", "triplet_weight=1"])
    assert (config.epochs, config.confidence_weight, config.tempo_range, config.triplet_mining,
            config.triplet_weight) == (4, 0.0, (0.9, 1.1), "hard", 1.0)
    assert override(config, []) == config
    for bad in (["epoch=4"], ["epochs"]):
        with pytest.raises(ValueError, match="NAME=VALUE"):
            override(config, bad)
    with pytest.raises(ValueError, match="no loss"):
        compile_model(build_model(FRONTEND, config), override(config, ["triplet_weight=0"]))


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


def test_pair_figure_cycles_through_query_kinds(pairs_dir, tmp_path):
    from training import show_pairs
    songs = pair_shards.load([pairs_dir / "shard_00000.pkl"])
    kinds = {kind for song in songs for kind in song.kinds}
    rows = show_pairs.chosen_pairs(songs, len(kinds), np.random.default_rng(0), FRONTEND)
    assert {label.split(" (")[0] for label, _, _ in rows} == kinds
    assert all(q.shape == r.shape == (FRONTEND.window_frames, FRONTEND.n_bins) for _, q, r in rows)
    show_pairs.plot(pairs_dir, tmp_path / "pairs.png", n=2, seed=0)
    assert (tmp_path / "pairs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
    assert Embedder(tmp_path / "model" / "model.tflite").embedding_dim == written["model"]["embedding_dim"]
