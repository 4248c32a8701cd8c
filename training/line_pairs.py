"""Line pairs: the pitch lines the shipped melody model hears in the pair shards, for
training the shortlist embedder (training.shortlist_train).

For every song of the shards: the line heard in its recording, and per query the line
heard in the hum (non-tonal frames silenced, as the recognizer does) with, per hum melody
frame, the recording melody frame (fractional) that sounds the same moment. These are
exactly what the runtime compares: a hum's line against a catalogue song's stored line.

    python -m training.line_pairs --pairs data/pairs/melody --model assets/model \
        --out data/pairs/lines.pkl
"""
from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

import numpy as np

from device import melody as mel
from device import recognizer as rc
from device import manifest as mf
from device.catalogue import open_model
from training import pair_shards


def heard(spectrogram_db: np.ndarray, model, frontend, config: mel.MelodyConfig,
          tonal_only: bool) -> np.ndarray:
    """uint8 (n,) codes (`device.melody.encode`) of the line heard in a spectrogram."""
    frames = np.asarray(spectrogram_db, dtype=np.float32)
    line, _ = mel.pitch_line(mel.salience(frames, model, frontend, config), frontend, config)
    if tonal_only:
        tonal = rc.tonal_melody_frames(rc.audible_tonal(frames, rc.RecognizerConfig()), line.size,
                                       model.time_stride * config.pool)
        line = np.where(tonal, line, 0.0)
    return mel.encode(line)


def melody_map(hum_to_recording: np.ndarray, n_hum: int, per: int) -> np.ndarray:
    """float32 (n_hum,): the recording melody frame of each hum melody frame (frame
    centres; frames of `per` spectrogram frames)."""
    centres = np.minimum(np.arange(n_hum) * per + per // 2, hum_to_recording.size - 1)
    return ((hum_to_recording[centres] - per // 2) / per).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=Path, required=True, help="folder of shard_*.pkl")
    parser.add_argument("--model", type=Path, required=True, help="model folder (manifest.json, model.tflite)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        manifest = mf.read(args.model, mf.MODEL_FORMAT)
        frontend = mf.check_frontend(manifest, args.model)
        path = mf.check_file(args.model, manifest["model"], "model")
    except mf.ManifestError as exc:
        print(f"error: {mf.one_line(exc)}", file=sys.stderr)
        return 2
    sha256 = manifest["model"]["sha256"]
    config = mel.MelodyConfig(**manifest["model"]["melody"])
    model = open_model(path, sha256, frontend, num_threads=1)
    per = model.time_stride * config.pool
    songs, started = [], time.time()
    for shard in sorted(args.pairs.glob("shard_*.pkl")):
        for song in pair_shards.load([shard]):
            hums = [heard(h, model, frontend, config, tonal_only=True) for h in song.hums_db]
            songs.append({
                "song_id": song.song_id,
                "recording": heard(song.recording_db, model, frontend, config, tonal_only=False),
                "hums": hums,
                "hum_to_recording": [melody_map(m, h.size, per) for m, h in zip(song.hum_to_recording, hums)],
                "kinds": list(song.kinds)})
        print(f"{shard.name}: {len(songs)} songs, {time.time() - started:.0f} s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump({"model_sha256": sha256, "per_melody_frame": per, "songs": songs}, f)
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
