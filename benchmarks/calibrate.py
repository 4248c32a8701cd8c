"""Chooses the matcher's no-match thresholds on queries that are neither test songs nor mir1k.

    python -m benchmarks.calibrate --shared-data ../shared/data --out benchmarks/results

In-catalogue queries: hums of catalogue songs that were used in training (the held-out
test songs stay untouched). Out-of-catalogue queries: hums of Nottingham tunes (never in
the catalogue), noise, and speech (espeak-ng readings, other seeds than
benchmarks.false_accepts'; skipped with a note when espeak-ng is missing). For each query
the best and runner-up scores are recorded; the summary gives, for a grid of (min_score, min_margin), the share of in-catalogue
queries correctly matched and of out-of-catalogue queries falsely accepted, and the pair
that maximises correct matches with at most --max-false-accepts false accepts.

With --write, the chosen pair becomes the model's: it is stored in the "decision" section
of the model section of the catalogue's manifest, and of each --model-dir manifest
(`--write --model-dir assets/model`), where the runtime reads it (device.matcher.MatcherConfig.for_model).
The thresholds belong to the model: a catalogue built later from that model directory
inherits them.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks import false_accepts
from converter.package import catalogue_songs
from device import assets
from device import manifest as mf
from device.catalogue import Catalogue
from device.matcher import MatcherConfig
from device.recognizer import Recognizer, RecognizerConfig
from training import corpora
from training.config import DataConfig
from training.hum import hum_excerpt
from training.pairs import is_test_song


def store_decision(manifests: list[tuple[Path, dict]], decision: dict) -> None:
    """Stores `decision` as the "decision" section of each (directory, parsed manifest)'s
    model section and rewrites that manifest."""
    for directory, manifest in manifests:
        manifest["model"]["decision"] = decision
        mf.write(directory, manifest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, required=True)
    parser.add_argument("--index", type=Path, default=assets.default_catalogue_dir())
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=150, help="queries of each kind")
    parser.add_argument("--max-false-accepts", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=77)
    parser.add_argument("--write", action="store_true",
                        help="store the chosen thresholds in the catalogue's manifest")
    parser.add_argument("--model-dir", type=Path, action="append", default=[],
                        help="with --write, also store them in this model directory's manifest "
                             "(repeatable; it must hold the same model)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    data = DataConfig.default()
    catalogue = Catalogue(args.index)
    model_manifests = [(d, mf.read(d, mf.MODEL_FORMAT)) for d in args.model_dir]
    for directory, manifest in model_manifests:
        if manifest["model"].get("sha256") != catalogue.manifest["model"]["sha256"]:
            parser.error(f"{directory} holds another model than the catalogue {args.index}")
    # no decision thresholds here: record raw best and runner-up scores
    recognizer = Recognizer(catalogue, RecognizerConfig(matcher=MatcherConfig(min_score=0.0, min_margin=0.0)))
    rate = recognizer.frontend.sample_rate_hz
    inside = [s for s in catalogue_songs(args.shared_data) if not is_test_song(s, data)]
    outside = corpora.load_nottingham(args.shared_data / "nottingham")
    rows = []
    for kind, pool in (("in", inside), ("out", outside)):
        for index in rng.permutation(len(pool))[:args.n]:
            song = pool[index]
            result = recognizer.identify(hum_excerpt(song.melody, rng, rate)[0].audio, top=2)
            scores = [m.score for m in result.matches] + [0.0, 0.0]
            correct = bool(result.matches) and result.matches[0].song_id == song.song_id
            rows.append({"kind": kind, "query": song.song_id, "correct_top1": correct,
                         "best": scores[0], "runner_up": scores[1]})
    for i in range(args.n // 5):
        noise = rng.standard_normal(int(rate * rng.uniform(5, 15))).astype(np.float32) * 0.1
        result = recognizer.identify(noise, top=2)
        scores = [m.score for m in result.matches] + [0.0, 0.0]
        rows.append({"kind": "out", "query": f"noise-{i}", "correct_top1": False,
                     "best": scores[0], "runner_up": scores[1]})
    try:
        speech = false_accepts.speech_queries(args.n // 3, args.seed, rate)
    except false_accepts.SpeechUnavailable as exc:
        speech = []
        print(f"calibrate: speech skipped: {exc}", file=sys.stderr)
    for query in speech:
        result = recognizer.identify(query.audio, top=2)
        scores = [m.score for m in result.matches] + [0.0, 0.0]
        rows.append({"kind": "out", "query": f"speech {query.name}", "correct_top1": False,
                     "best": scores[0], "runner_up": scores[1]})
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "calibration.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    best = np.array([r["best"] for r in rows])
    second = np.array([r["runner_up"] for r in rows])
    margin = best - second  # as device.matcher.decide measures it
    is_in = np.array([r["kind"] == "in" for r in rows])
    correct = np.array([r["correct_top1"] for r in rows])
    grid = []
    for min_score in np.arange(0.3, 1.0, 0.01):
        for min_margin in np.arange(0.0, 0.3, 0.005):
            accept = (best >= min_score) & (margin >= min_margin)
            grid.append({"min_score": round(float(min_score), 3), "min_margin": round(float(min_margin), 3),
                         "correct_matches": float(np.mean(accept[is_in] & correct[is_in])),
                         "wrong_matches": float(np.mean(accept[is_in] & ~correct[is_in])),
                         "false_accepts": float(np.mean(accept[~is_in])),
                         "precision": float(np.sum(accept[is_in] & correct[is_in])
                                            / max(np.sum(accept[is_in]), 1))})
    allowed = [g for g in grid if g["false_accepts"] <= args.max_false_accepts]
    choice = max(allowed, key=lambda g: (g["correct_matches"] - g["wrong_matches"], -g["min_score"]))
    summary = {"in_catalogue_queries": int(is_in.sum()), "out_of_catalogue_queries": int((~is_in).sum()),
               "top1_in_catalogue": float(np.mean(correct[is_in])), "chosen": choice,
               "in_use": dataclasses.asdict(catalogue.matcher)}
    (args.out / "calibration_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if args.write:
        store_decision([(args.index, catalogue.manifest)] + model_manifests, {
            "min_score": choice["min_score"], "min_margin": choice["min_margin"],
            "calibration": {k: summary[k] for k in ("in_catalogue_queries", "out_of_catalogue_queries")}
            | {"false_accepts": choice["false_accepts"], "max_false_accepts": args.max_false_accepts,
               "seed": args.seed}})
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
