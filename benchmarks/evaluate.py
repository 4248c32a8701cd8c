"""Accuracy of the shipped pipeline (int8 model, catalogue index, matcher) on seeded queries.

    python -m benchmarks.evaluate --shared-data ../shared/data --out benchmarks/results

(a) synthetic: hums (any voice, key, tempo) of songs held out of training, 5-15 s from a
    random point of the melody, against the default catalogue; "synthetic-mic" repeats
    the same hums through a simulated room, noise and microphone (training.acoustics).
(b) mir1k: the real voice (right channel) of each mir1k-dev clip of the two singers held
    out of the melody model's training (78 clips), transposed by a random +-3 semitones
    and time-stretched by +-10%, against the default catalogue extended with all 198
    mixed clips (both channels); the right answer is the clip itself.
Writes one CSV row per query (with a header) and a summary JSON; prints the summary.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile

from converter.package import catalogue_songs
from device import assets, indexing
from device.audio import resample, to_mono
from device.catalogue import Catalogue
from device.recognizer import Recognizer
from training.acoustics import MicChain
from training.augment import transpose_and_stretch
from training.config import DataConfig
from training.hum import Hum, hum_excerpt
from training.melody import Song
from training import mir1k
from training.pairs import is_test_song

FIELDS = ("set", "query", "truth", "rank", "top1", "score", "confidence", "decision", "seconds", "time_ms")


def rank_of(truth: str, result) -> int:
    """1-based rank of the right song among the returned matches; 0 if absent."""
    ids = [m.song_id for m in result.matches]
    return ids.index(truth) + 1 if truth in ids else 0


def row(set_name: str, query: str, truth: str, result, seconds: float, elapsed_s: float) -> dict:
    return {"set": set_name, "query": query, "truth": truth, "rank": rank_of(truth, result),
            "top1": result.matches[0].song_id if result.matches else "",
            "score": round(result.matches[0].score, 4) if result.matches else 0.0,
            "confidence": round(result.confidence, 4),  # the margin over the runner-up: the decision
            "decision": result.decision, "seconds": round(seconds, 2), "time_ms": round(elapsed_s * 1000, 1)}


def synthetic_hums(shared_data: Path, n: int, seed: int, rate: int) -> Iterator[tuple[Song, float, Hum]]:
    """(a)'s queries: (song, start second, hum) for n held-out catalogue songs, seeded;
    every benchmark that reports (a) draws them here."""
    data = DataConfig.default()
    songs = [s for s in catalogue_songs(shared_data) if is_test_song(s, data)]
    rng = np.random.default_rng(seed)
    for song in [songs[i] for i in rng.permutation(len(songs))[:n]]:
        hum, start_s = hum_excerpt(song.melody, rng, rate)
        yield song, start_s, hum


def synthetic_queries(shared_data: Path, recognizer: Recognizer, n: int, seed: int) -> list[dict]:
    """(a): hums of held-out catalogue songs, clean and through a microphone chain."""
    mic_rng = np.random.default_rng([seed, 1])  # its own stream: the clean hums stay the same
    rate = recognizer.frontend.sample_rate_hz
    rows = []
    for song, start_s, hum in synthetic_hums(shared_data, n, seed, rate):
        chain = MicChain.sample(mic_rng)
        for set_name, audio in (("synthetic", hum.audio),
                                ("synthetic-mic", chain.apply(hum.audio, rate, mic_rng))):
            started = time.perf_counter()
            result = recognizer.identify(audio)
            rows.append(row(set_name, f"{song.song_id}@{start_s:.1f}", song.song_id, result,
                            audio.size / rate, time.perf_counter() - started))
    return rows


def mir1k_clips(shared_data: Path) -> list[Path]:
    """The mir1k-dev clips (stereo FLAC: left accompaniment, right voice), sorted."""
    return mir1k.clip_paths(shared_data)


def held_out_clips(shared_data: Path) -> list[Path]:
    """The clips of the mir1k-dev singers the melody model never heard (the queries of (b))."""
    return [p for p in mir1k_clips(shared_data) if not mir1k.is_training_clip(p)]


def extend_with_mir1k(shared_data: Path, base: Catalogue, work: Path) -> Catalogue:
    """`base` plus every mixed mir1k-dev clip (both channels; song id = the clip's stem).

    Args:
        work: a scratch directory; the mixed clips and the new catalogue are written there
            (work/mir1k_mixed, work/catalogue), which must outlive the returned Catalogue.
    """
    mixed_dir = work / "mir1k_mixed"
    mixed_dir.mkdir(parents=True, exist_ok=True)
    for clip in mir1k_clips(shared_data):
        stereo, clip_rate = soundfile.read(clip, dtype="float32", always_2d=True)
        soundfile.write(mixed_dir / f"{clip.stem}.wav", to_mono(stereo), clip_rate)
    indexing.build(mixed_dir, work / "catalogue", None, base=base, log=lambda line: None)
    return Catalogue(work / "catalogue")


def read_voice(clip: Path, sample_rate_hz: int) -> np.ndarray:
    """The singing voice of a mir1k-dev clip (the right channel) at sample_rate_hz."""
    stereo, clip_rate = soundfile.read(clip, dtype="float32", always_2d=True)
    return resample(stereo[:, 1], clip_rate, sample_rate_hz)


def mir1k_voices(shared_data: Path, seed: int, rate: int) -> Iterator[tuple[str, str, np.ndarray]]:
    """(b)'s queries: (clip stem, query name, voice) for every held-out clip, the right channel
    transposed by a random +-3 semitones and stretched by +-10%, seeded."""
    rng = np.random.default_rng(seed)
    for clip in held_out_clips(shared_data):
        voice = read_voice(clip, rate)
        semitones, tempo = float(rng.uniform(-3, 3)), float(rng.uniform(0.9, 1.1))
        yield (clip.stem, f"{clip.stem} {semitones:+.1f}st x{tempo:.2f}",
               transpose_and_stretch(voice, rate, semitones, tempo))


def mir1k_queries(shared_data: Path, base: Catalogue, work: Path, seed: int) -> tuple[list[dict], Catalogue]:
    """(b): real voices against the default catalogue plus the mixed clips."""
    catalogue = extend_with_mir1k(shared_data, base, work)
    recognizer = Recognizer(catalogue)
    rate = base.frontend.sample_rate_hz
    rows = []
    for stem, name, query in mir1k_voices(shared_data, seed, rate):
        started = time.perf_counter()
        result = recognizer.identify(query)
        rows.append(row("mir1k", name, stem, result, query.size / rate, time.perf_counter() - started))
    return rows, catalogue


def summarise(rows: list[dict]) -> dict:
    """Accuracy and time of query rows; the decision rates only where every row has a
    decision (a method without a threshold, such as the classic baseline, has none)."""
    ranks = np.array([r["rank"] for r in rows])
    out = {"queries": len(rows),
           "top1": round(float(np.mean(ranks == 1)), 4),
           "top10": round(float(np.mean((ranks >= 1) & (ranks <= 10))), 4),
           "mrr": round(float(np.mean(np.where(ranks > 0, 1.0 / np.maximum(ranks, 1), 0.0))), 4)}
    if all(r.get("decision") for r in rows):
        out["match_decisions"] = round(float(np.mean([r["decision"] == "match" for r in rows])), 4)
        out["correct_matches"] = round(float(np.mean([r["decision"] == "match" and r["rank"] == 1
                                                      for r in rows])), 4)
    out.update({"median_query_s": round(float(np.median([r["seconds"] for r in rows])), 2),
                "median_time_ms": round(float(np.median([r["time_ms"] for r in rows])), 1),
                "p90_time_ms": round(float(np.percentile([r["time_ms"] for r in rows], 90)), 1)})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, required=True)
    parser.add_argument("--index", type=Path, default=assets.default_catalogue_dir())
    parser.add_argument("--out", type=Path, required=True, help="directory for the CSV and summary")
    parser.add_argument("--synthetic", type=int, default=100, help="synthetic queries")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    base = Catalogue(args.index)
    recognizer = Recognizer(base)
    rows = synthetic_queries(args.shared_data, recognizer, args.synthetic, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        mir_rows, extended = mir1k_queries(args.shared_data, base, Path(tmp), args.seed)
        extended_items = extended.n_items
    rows += mir_rows
    with open(args.out / "evaluation.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    model_path, index_path = base.model_path, base.directory / base.manifest["index"]["file"]
    summary = {
        "synthetic": summarise([r for r in rows if r["set"] == "synthetic"]),
        "synthetic_mic": summarise([r for r in rows if r["set"] == "synthetic-mic"]),
        "mir1k": summarise([r for r in rows if r["set"] == "mir1k"]),
        "catalogue_songs": len(base.songs), "catalogue_items": base.n_items,
        "mir1k_catalogue_items": extended_items,
        "model_bytes": model_path.stat().st_size, "index_bytes": index_path.stat().st_size,
        "model_backend": recognizer.model.backend,
    }
    (args.out / "evaluation_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
