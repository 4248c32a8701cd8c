"""Adds a trained shortlist embedder to a model directory.

    python -m converter.embedder --run runs/embedder --model assets/model

Copies the run's exported weights (embedder.npz) beside the melody model and records them
in the model's manifest ("embedder": file, sha256, dim, and what it was trained on). The
embedder was trained on lines heard by one melody model; it is refused for another. The
manifest is rewritten atomically; the melody model is left as it is. Catalogues built
from this directory carry the embedder; an existing catalogue takes it with
`hum-search index reembed`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from device import embedder as em
from device import manifest as mf
from device.catalogue import EMBEDDER_FILE


def add(run_dir: Path, model_dir: Path) -> dict:
    """Copies run_dir/embedder.npz into model_dir and records it; returns the manifest.

    Raises:
        ManifestError: the model directory is unreadable, or the run is not a finished
            embedder run for this model.
    """
    manifest = mf.read(model_dir, mf.MODEL_FORMAT)
    mf.check_file(model_dir, manifest["model"], "model")
    weights, state_path = run_dir / "embedder.npz", run_dir / "state.json"
    if not weights.is_file() or not state_path.is_file():
        raise mf.ManifestError(f"{run_dir}: no embedder.npz and state.json; not an embedder run")
    state = json.loads(state_path.read_text())
    if state.get("model_sha256") != manifest["model"]["sha256"]:
        raise mf.ManifestError(f"{run_dir}: trained on lines of model {str(state.get('model_sha256'))[:8]}, "
                               f"not of this model {manifest['model']['sha256'][:8]}")
    try:
        embedder = em.Embedder(weights)
    except em.EmbedderError as exc:
        raise mf.ManifestError(str(exc)) from exc
    tmp = model_dir / f".{EMBEDDER_FILE}.tmp"
    shutil.copyfile(weights, tmp)
    tmp.replace(model_dir / EMBEDDER_FILE)
    best = max(state["history"], key=lambda h: h["val_top1"])
    manifest["embedder"] = {
        "file": EMBEDDER_FILE, "sha256": mf.sha256_of(model_dir / EMBEDDER_FILE), "dim": embedder.dim,
        "window_frames": int(state["config"]["window_frames"]),
        "parameters": embedder.parameters,
        "macs_per_window": embedder.macs_per_window(state["config"]["window_frames"]),
        "training_run": {"run": run_dir.name, "lines": state.get("lines"), "epoch": best["epoch"],
                         "validation_top1_in_batch": round(best["val_top1"], 4),
                         "config": state.get("config"), "train": state.get("train")},
    }
    mf.write(model_dir, manifest)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, type=Path, help="embedder run (training.embedder_train)")
    parser.add_argument("--model", required=True, type=Path, help="model directory to add it to")
    args = parser.parse_args(argv)
    try:
        manifest = add(args.run, args.model)
    except (mf.ManifestError, OSError, ValueError, KeyError) as exc:
        print(f"error: {mf.one_line(exc)}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in manifest["embedder"].items() if k != "training_run"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
