"""The shortlist embedder: key-free features, the numpy network against its Keras twin,
the shipped weights on known melodies, and weights that are refused in one line."""
from __future__ import annotations

import numpy as np
import pytest

from device import assets
from device import embedder as em
from device import shortlist as sl


def tune(n_notes: int, frames_per_note: int = 4, seed: int = 0) -> np.ndarray:
    """A melody line: random notes of a major scale, each held a few frames."""
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12, 14])
    notes = 60 + np.random.default_rng(seed).choice(scale, n_notes)
    return np.repeat(notes, frames_per_note).astype(np.float32)


@pytest.fixture(scope="module")
def shipped() -> em.Embedder:
    return em.Embedder(assets.default_model_dir() / "embedder.npz")


def test_features_forget_the_key_and_the_octave():
    line = tune(12)[None, :48]
    key, strength = em.keys(line)
    base = em.features(line, key)
    assert base.shape == (1, 48, em.CHANNELS) and strength[0] > 0
    np.testing.assert_allclose(base[..., :12].sum(axis=2), 1.0, atol=1e-6)  # one pitch class per voiced frame
    for shift in (3.0, -5.0, 12.0, 7.5):
        moved = line + shift
        key_moved, _ = em.keys(moved)
        np.testing.assert_allclose(em.features(moved, key_moved), base, atol=1e-4)
        assert np.isclose(np.mod(key_moved - key - shift + 6, 12) - 6, 0, atol=1e-4)
    silent = line.copy()
    silent[:, 10:20] = 0
    assert np.all(em.features(silent, key)[0, 10:20] == 0)


def test_the_numpy_network_is_the_keras_network():
    pytest.importorskip("tensorflow", reason="the training extra is not installed")
    from training import embedder_model
    config = embedder_model.EmbedderConfig(channels=(8, 8), kernels=(5, 3), dilations=(1, 3), dim=6)
    model = embedder_model.encoder(config)
    x = em.features(np.stack([tune(12, seed=s)[:48] for s in range(5)]), np.zeros(5, np.float32))
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        embedder_model.export(model, Path(tmp) / "e.npz")
        ours = em.Embedder(Path(tmp) / "e.npz")
    assert ours.dim == 6 and ours.macs_per_window(48) == 48 * (5 * 13 * 8 + 3 * 8 * 8) + 16 * 6
    assert ours.parameters == model.count_params()
    np.testing.assert_allclose(ours.embed(x), np.asarray(model(x)), atol=1e-5)


def test_shipped_vectors_find_the_passage_despite_key_and_loose_timing(shipped):
    """A window hummed 3 semitones up with uneven note lengths stays nearer its own passage
    than to the song's other passages and to other songs."""
    config = sl.ShortlistConfig()
    songs = [tune(60, seed=s) for s in range(20)]
    rng = np.random.default_rng(3)
    passage = songs[4][96:144]
    notes = passage.reshape(12, 4)[:, 0]
    lengths = rng.integers(3, 6, size=12)  # each note held 3 to 5 frames instead of 4
    hummed = np.repeat(notes, lengths)[:48] + 3.0
    hummed = np.pad(hummed, (0, 48 - hummed.size), mode="edge")
    starts, vectors, _ = zip(*[sl.catalogue_windows(s, shipped, config) for s in songs])
    kept, query, _ = sl.vectors(hummed[None], shipped, config)
    assert kept.all()
    sims = [v @ query[0] for v in vectors]
    own = float(sims[4][list(starts[4]).index(96)])
    others = max(float(s.max()) for i, s in enumerate(sims) if i != 4)
    assert own > others
    assert np.linalg.norm(query[0]) == pytest.approx(1.0, abs=1e-5)


def test_windows_without_enough_melody_get_no_vector(shipped):
    config = sl.ShortlistConfig()
    line = tune(12)[:48].copy()
    line[: int(0.6 * line.size)] = 0
    kept, vectors, keys = sl.vectors(np.stack([line, tune(12)[:48]]), shipped, config)
    assert kept.tolist() == [False, True] and vectors.shape == (1, shipped.dim) and keys.shape == (1,)
    assert sl.query_windows(np.zeros(100, np.float32), shipped, config) == []


@pytest.mark.parametrize("damage", ["missing", "not_npz", "no_dense", "shapes", "nan"])
def test_damaged_weights_are_refused_in_one_line(tmp_path, shipped, damage):
    path = tmp_path / "e.npz"
    good = {f"conv{i}_{k}": v for i, layer in enumerate(shipped.layers)
            for k, v in (("kernel", layer.kernel), ("bias", layer.bias), ("dilation", np.array([layer.dilation])))}
    good.update(dense_kernel=shipped.dense, dense_bias=shipped.dense_bias)
    if damage == "not_npz":
        path.write_bytes(b"not a zip file")
    elif damage != "missing":
        if damage == "no_dense":
            del good["dense_kernel"]
        elif damage == "shapes":
            good["conv1_kernel"] = good["conv1_kernel"][:, :3]
        else:
            good["conv0_bias"] = np.full_like(good["conv0_bias"], np.nan)
        np.savez(path, **good)
    with pytest.raises(em.EmbedderError) as caught:
        em.Embedder(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
