"""Keras run -> full-integer int8 TFLite (+ float baseline) and the model manifest.

    python -m converter.convert --run runs/melody --pairs data/pairs/melody --out assets/model

Calibration windows come from the run's cached pairs, which the device frontend made.
The model is exported with one named signature, "salience": "spectrogram" -> "salience".
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
import keras

from device import frontend as fe
from device import manifest as mf
from device import melody as mel
from device.model import INPUT_NAME, OUTPUT_NAME, SIGNATURE, MelodyModel
from training import config as cfg
from training import pair_shards
from training.model import salience_only
from training.salience import SalienceBatches

MODEL_FILE = "model.tflite"


def calibration_windows(songs: list[pair_shards.SongPairs], train: cfg.TrainConfig, n_batches: int,
                        seed: int) -> np.ndarray:
    """float32 (n, frames, bins): normalised recording and query windows from cached pairs."""
    batches = SalienceBatches(songs, [], train, fe.FrontendConfig(), n_batches, seed, fixed=True)
    return np.concatenate([batches[i][0] for i in range(n_batches)])


def pitch_agreement(a: np.ndarray, b: np.ndarray, config: mel.MelodyConfig) -> float:
    """Of the melody frames voiced in either of two saliences (n, frames, bins) of the same
    windows, the share voiced in both within half a semitone."""
    frontend = fe.FrontendConfig()
    la, _ = mel.pitch_line(a.reshape(-1, a.shape[-1]), frontend, config)
    lb, _ = mel.pitch_line(b.reshape(-1, b.shape[-1]), frontend, config)
    either = (la > 0) | (lb > 0)
    same = (la > 0) & (lb > 0) & (np.abs(la - lb) <= 0.5)
    return float(same.sum() / max(either.sum(), 1))


def to_tflite(model: keras.Model, calibration: np.ndarray | None) -> bytes:
    """TFLite flatbuffer; int8 inside and at the input and output when calibration is given."""
    frames, bins = model.input_shape[1:]

    def salience(spectrogram):
        return {OUTPUT_NAME: model(spectrogram, training=False)}

    with tempfile.TemporaryDirectory() as tmp:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(name=SIGNATURE, fn=salience, input_signature=[
            tf.TensorSpec([None, frames, bins], tf.float32, name=INPUT_NAME)])
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=[SIGNATURE])
        if calibration is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ({INPUT_NAME: w[None]} for w in calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        return converter.convert()


def multiply_accumulates(model: keras.Model) -> int:
    """Multiply-accumulates of one window through the conv and dense layers."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            _, h, w, _ = layer.output.shape
            total += h * w * kh * kw * cin * cout
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return int(total)


def convert(run_dir: Path, pairs_dir: Path, out_dir: Path, weights: str = "best.keras",
            float_dir: Path | None = None, melody_config: mel.MelodyConfig = mel.MelodyConfig()) -> dict:
    """Writes out_dir/model.tflite and manifest.json; returns the manifest.

    Args:
        float_dir: if given, the float32 model is written there as a model directory of its
            own (for measuring int8 against float with the device's code).
        melody_config: how the device reads a pitch line from this model's salience
            (the voicing threshold: `benchmarks.melody_accuracy` sweeps it); its pool is
            set for the run's time stride (MelodyConfig.pool_for).
    """
    _, train, _ = cfg.load(run_dir / "config.json")
    melody_config = dataclasses.replace(melody_config, pool=mel.MelodyConfig.pool_for(train.time_stride))
    model = salience_only(keras.models.load_model(run_dir / weights, compile=False))
    songs = pair_shards.load(sorted(pairs_dir.glob("shard_*.pkl"))[:4])
    calibration = calibration_windows(songs, train, n_batches=4, seed=99)
    float_bytes = to_tflite(model, None)
    int8_bytes = to_tflite(model, calibration)
    (run_dir / "model_float.tflite").write_bytes(float_bytes)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MODEL_FILE).write_bytes(int8_bytes)
    check = calibration_windows(songs, train, n_batches=4, seed=123)  # not the calibration set
    int8_model, float_model = MelodyModel(out_dir / MODEL_FILE), MelodyModel(run_dir / "model_float.tflite")
    agreement = pitch_agreement(int8_model.salience(check), float_model.salience(check), melody_config)
    history = run_dir / "final_metrics.json"
    model_section = {
        "parameters": int(model.count_params()),
        "macs_per_window": multiply_accumulates(model),
        "output_shape": list(int8_model.output_shape),
        "time_stride": int8_model.time_stride,
        "melody": melody_config.to_dict(),
        "int8_vs_float_pitch_agreement": round(agreement, 4),
        "training_run": {
            "name": train.name,
            "run": run_dir.name,
            "weights": weights,
            "config": json.loads((run_dir / "config.json").read_text()),
            "final_metrics": json.loads(history.read_text()) if history.exists() else None,
        },
    }
    if float_dir is not None:
        float_dir.mkdir(parents=True, exist_ok=True)
        (float_dir / MODEL_FILE).write_bytes(float_bytes)
        _write_manifest(float_dir, "float32", model_section)
    return _write_manifest(out_dir, "int8", model_section)


def _write_manifest(out_dir: Path, quantization: str, model_section: dict) -> dict:
    """The model directory's manifest.json for out_dir/model.tflite; returns it."""
    frontend = fe.FrontendConfig()
    manifest = {
        "format": mf.MODEL_FORMAT,
        "frontend": frontend.to_dict(),
        "model": {"file": MODEL_FILE, "sha256": mf.sha256_of(out_dir / MODEL_FILE),
                  "input_shape": [frontend.window_frames, frontend.n_bins],
                  "quantization": quantization, **model_section},
    }
    mf.write(out_dir, manifest)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--pairs", required=True, type=Path, help="cached pairs for calibration")
    parser.add_argument("--out", required=True, type=Path, help="model directory to write")
    parser.add_argument("--weights", default="best.keras", help="file in the run directory")
    parser.add_argument("--float-out", type=Path, help="also write the float32 model directory here")
    parser.add_argument("--voicing-threshold", type=float, default=mel.MelodyConfig().voicing_threshold,
                        help="salience a melody frame needs to have a pitch (default: %(default)s)")
    args = parser.parse_args(argv)
    for needed in (args.run / "config.json", args.run / args.weights):
        if not needed.is_file():
            parser.error(f"{needed}: no such file (is {args.run} a finished training run?)")
    manifest = convert(args.run, args.pairs, args.out, args.weights, args.float_out,
                       mel.MelodyConfig(voicing_threshold=args.voicing_threshold))
    print(json.dumps({k: v for k, v in manifest["model"].items() if k != "training_run"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
