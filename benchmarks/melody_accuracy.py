"""How well the melody model hears the melody: mir_eval's melody metrics of the pitch line
it reads, on held-out renders, on held-out synthetic queries and on the mixes of the
mir1k-dev singers held out of training (against their hand labels).

    python -m benchmarks.melody_accuracy --model assets/model --pairs data/pairs/melody \
        --shared-data ../shared/data --out benchmarks/results/melody

Renders and queries come from the pair shards' validation songs (never trained on). The
pitch line is read as the device reads it (one pitch per melody frame, 80 ms) with the
model's voicing threshold; a sweep of thresholds shows where overall accuracy peaks (`--thresholds`).
Raw pitch is also scored on held notes alone (the reference's frames 1 s or more into their
note, where a lead under its backing decays and the backing's fresh attacks take over).
Writes summary.json and per_item.csv.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
from pathlib import Path

import mir_eval
import numpy as np

from device import frontend as fe
from device import manifest as mf
from device import melody as mel
from device.model import MelodyModel
from training import mir1k, pair_shards
from training.config import DataConfig
from training.salience import seconds_into_note
from training.train import split_by_song

HELD = "Raw Pitch Accuracy, held notes"  # on the reference's frames 1 s or more into their note
HELD_AFTER_S = 1.0
METRICS = ("Raw Pitch Accuracy", "Raw Chroma Accuracy", "Voicing Recall", "Voicing False Alarm",
           "Overall Accuracy", HELD)


def midi_to_hz(midi: np.ndarray) -> np.ndarray:
    """MIDI (0: unvoiced) -> Hz (0: unvoiced)."""
    return np.where(midi > 0, 440.0 * 2.0 ** ((midi - 69.0) / 12.0), 0.0)


def scores(reference_midi: np.ndarray, salience_map: np.ndarray, frontend: fe.FrontendConfig,
           config: mel.MelodyConfig, stride: int) -> dict:
    """mir_eval melody metrics of the pitch line read from salience_map against a reference,
    and its raw pitch accuracy on held notes (HELD: nan where the reference holds none).

    Args:
        reference_midi: float (n_frames,) per frontend frame, 0 where unvoiced.
        salience_map: float32 (ceil(n_frames / stride), n_bins).
    """
    line, _ = mel.pitch_line(salience_map, frontend, config)
    frame_s = frontend.hop_length_samples / frontend.sample_rate_hz
    ref_t = np.arange(reference_midi.size) * frame_s
    est_t = (np.arange(line.size) * config.pool + (config.pool - 1) / 2) * stride * frame_s  # pooled frames' centres
    # mir_eval.melody.evaluate's metrics, from one resampling shared with the held notes'
    ref_v, ref_c, est_v, est_c = mir_eval.melody.to_cent_voicing(ref_t, midi_to_hz(reference_midi),
                                                                 est_t, midi_to_hz(line))
    held = seconds_into_note(reference_midi, frame_s) >= HELD_AFTER_S
    melody = mir_eval.melody
    return {"Voicing Recall": melody.voicing_recall(ref_v, est_v),
            "Voicing False Alarm": melody.voicing_false_alarm(ref_v, est_v),
            "Raw Pitch Accuracy": melody.raw_pitch_accuracy(ref_v, ref_c, est_v, est_c),
            "Raw Chroma Accuracy": melody.raw_chroma_accuracy(ref_v, ref_c, est_v, est_c),
            "Overall Accuracy": melody.overall_accuracy(ref_v, ref_c, est_v, est_c),
            HELD: (melody.raw_pitch_accuracy(ref_v[held], ref_c[held], est_v[held], est_c[held])
                   if held.any() else float("nan"))}


def items(pairs_dir: Path, shared_data: Path | None, frontend: fe.FrontendConfig):
    """(set, name, dB spectrogram (n, bins), reference MIDI (n,), the render's lead over its
    backing in dB or None) of every evaluated item."""
    songs = pair_shards.load(sorted(pairs_dir.glob("shard_*.pkl")))
    _, held_out = split_by_song(songs, DataConfig.melody().validation_fraction, DataConfig.melody().seed, 1)
    for song in held_out:
        yield ("renders", song.song_id, song.recording_db.astype(np.float32), song.recording_midi,
               song.recording_lead_db)
        for q, (spec, midi, kind) in enumerate(zip(song.hums_db, song.hums_midi, song.kinds)):
            yield "queries", f"{song.song_id}#{q} {kind}", spec.astype(np.float32), midi, None
    if shared_data is not None:
        for path in mir1k.clip_paths(shared_data):
            if mir1k.is_training_clip(path):
                continue
            clip = mir1k.load_clip(path, frontend.sample_rate_hz)
            mix = clip.accompaniment + clip.voice
            spec = fe.log_spectrogram(mix / max(float(np.abs(mix).max()), 1e-9), frontend)
            yield "mir1k_held_out", clip.name, spec, mir1k.frame_labels(clip, spec.shape[0], frontend), None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="model directory")
    parser.add_argument("--pairs", type=Path, required=True, help="pair shards with melody targets")
    parser.add_argument("--shared-data", type=Path, help="adds mir1k-dev's held-out singers")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--thresholds", default="0.1,0.2,0.3,0.4,0.5,0.6",
                        help="voicing thresholds swept for overall accuracy")
    args = parser.parse_args(argv)
    manifest = mf.read(args.model, mf.MODEL_FORMAT)
    frontend = mf.check_frontend(manifest, args.model)
    model = MelodyModel(mf.check_file(args.model, manifest["model"], "model"))
    config = mel.MelodyConfig(**manifest["model"]["melody"])
    sweep = [float(t) for t in args.thresholds.split(",")]
    rows, swept = [], {}
    for subset, name, spec, reference, lead_db in items(args.pairs, args.shared_data, frontend):
        salience_map = mel.salience(spec, model, frontend, config)
        row = {"set": subset, "item": name, "lead_db": "" if lead_db is None else round(lead_db, 2),
               **{k: round(float(v), 4) for k, v in
                                                 scores(reference, salience_map, frontend, config,
                                                        model.time_stride).items() if k in METRICS}}
        rows.append(row)
        for t in sweep:
            overall = scores(reference, salience_map, frontend,
                             dataclasses.replace(config, voicing_threshold=t), model.time_stride)["Overall Accuracy"]
            swept.setdefault((subset, t), []).append(overall)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "per_item.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = {"model": args.model.name, "model_sha256": manifest["model"]["sha256"],
               "voicing_threshold": config.voicing_threshold, "sets": {}}
    for subset in dict.fromkeys(r["set"] for r in rows):
        mine = [r for r in rows if r["set"] == subset]
        summary["sets"][subset] = {"items": len(mine), **{m: round(float(np.nanmean([r[m] for r in mine])), 4)
                                                          for m in METRICS},
                                   "overall_accuracy_by_threshold": {
                                       str(t): round(float(np.mean(swept[(subset, t)])), 4) for t in sweep}}
        levelled = [r for r in mine if r["lead_db"] != ""]
        if levelled:  # renders of pairs that record their lead's level (training.render.is_hard)
            summary["sets"][subset]["by_lead_level"] = {
                band: {"items": len(part), **{m: round(float(np.nanmean([r[m] for r in part])), 4)
                                              for m in (*METRICS[:2], HELD)}}
                for band, part in (("at or under 0 dB", [r for r in levelled if r["lead_db"] <= 0]),
                                   ("over 0 dB", [r for r in levelled if r["lead_db"] > 0])) if part}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
