"""The scorecard's pieces: sized catalogues kept by model and size, the summary per size
and method, the targets against the largest size, the cost figures and the plot."""
from __future__ import annotations

import shutil

import pytest

from benchmarks import scorecard
from benchmarks.calibrate import store_decision
from device import assets
from device import manifest as mf
from device.catalogue import Catalogue


def _rows(method, size, ranks):
    """Query rows as the model and the classic baseline give them (the baseline decides nothing)."""
    decision = {"decision": "no_match"} if method == "model" else {}
    return [{"method": method, "catalogue_songs": size, "set": s, "rank": r, "seconds": 8.0, "time_ms": 25.0,
             **decision} for s in ("synthetic", "synthetic-mic", "mir1k") for r in ranks]


def _fa(size, decisions):
    return [{"catalogue_songs": size, "kind": "noise", "variant": "white", "query": f"q{i}", "top1": "",
             "score": 0.0, "confidence": 0.0, "decision": d, "stream_decision": d, "windows": 1}
            for i, d in enumerate(decisions)]


def test_summary_splits_sizes_and_methods_and_checks_targets_at_the_largest(tmp_path):
    rows = _rows("model", 1000, [1, 1, 2, 0]) + _rows("model", 10000, [1, 0, 0, 0]) \
        + _rows("classic", 1000, [1, 1, 1, 1])
    fa = _fa(1000, ["no_match"] * 4) + _fa(10000, ["match", "no_match", "no_match", "no_match"])
    summary = scorecard.summary_of(rows, fa)
    assert set(summary) == {"1000", "10000"} and set(summary["10000"]) == {"model"}
    assert summary["1000"]["model"]["mir1k"]["top1"] == 0.5 and summary["1000"]["classic"]["synthetic"]["top1"] == 1.0
    assert "match_decisions" not in summary["1000"]["classic"]["mir1k"]
    assert summary["10000"]["model"]["false_accepts"]["overall"]["rate"] == 0.25
    checks = {c["target"]: c for c in scorecard.targets(summary, model_bytes=900_000)}
    assert checks["real voices (b) top-1 >= 0.9"] == {"target": "real voices (b) top-1 >= 0.9",
                                                       "catalogue_songs": 10000, "measured": 0.25, "met": False}
    assert checks["false accepts <= 0.01"]["measured"] == 0.25 and not checks["false accepts <= 0.01"]["met"]
    assert checks["model file <= 1000000 bytes"]["met"]
    scorecard.plot(summary, tmp_path / "scorecard.png")
    assert (tmp_path / "scorecard.png").stat().st_size > 10_000


@pytest.mark.skipif(not (assets.default_catalogue_dir() / "manifest.json").exists(), reason="no shipped catalogue")
def test_sized_catalogues_are_built_once_per_model_and_size(tmp_path):
    small = scorecard.sized_catalogue(assets.default_catalogue_dir(), 200, tmp_path, None)
    assert len(small.songs) == 200
    folder = small.directory
    assert folder.parent == tmp_path and folder.name.endswith("-200")
    stamp = (folder / "index.npz").stat().st_mtime_ns
    assert scorecard.sized_catalogue(assets.default_catalogue_dir(), 200, tmp_path, None).directory == folder
    assert (folder / "index.npz").stat().st_mtime_ns == stamp  # reused, not rebuilt
    base = tmp_path / "calibrated-since"  # the same model, calibrated after the sized one was kept
    shutil.copytree(assets.default_catalogue_dir(), base)
    store_decision([(base, mf.read(base, mf.CATALOGUE_FORMAT))], {"min_score": 0.2, "min_margin": 0.5})
    again = scorecard.sized_catalogue(base, 200, tmp_path, None)
    assert again.directory == folder and (folder / "index.npz").stat().st_mtime_ns == stamp
    assert (again.matcher.min_score, again.matcher.min_margin) == (0.2, 0.5)
    kept = mf.read(folder, mf.CATALOGUE_FORMAT)  # kept with another shortlist embedder: re-embedded
    mf.write(folder, kept | {"embedder": dict(kept["embedder"], sha256="0" * 64)})
    redone = scorecard.sized_catalogue(base, 200, tmp_path, None)
    assert redone.directory == folder and (folder / "index.npz").stat().st_mtime_ns != stamp
    assert redone.manifest["embedder"] == Catalogue(base).manifest["embedder"] and len(redone.songs) == 200
    stamp = (folder / "index.npz").stat().st_mtime_ns  # kept with other query settings: re-embedded
    kept = mf.read(folder, mf.CATALOGUE_FORMAT)
    mf.write(folder, kept | {"index": dict(kept["index"], shortlist=dict(kept["index"]["shortlist"], query_hop_frames=6))})
    redone = scorecard.sized_catalogue(base, 200, tmp_path, None)
    assert (folder / "index.npz").stat().st_mtime_ns != stamp
    assert redone.config.shortlist == Catalogue(base).config.shortlist
    cost = scorecard.model_cost(Catalogue(assets.default_catalogue_dir()))
    assert cost["hop_s"] == 3.2 and cost["macs_per_audio_s"] == round(cost["macs_per_window"] / 3.2)
