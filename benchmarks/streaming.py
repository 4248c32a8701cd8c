"""Live recognition: how much humming, how fast, how much CPU and memory.

    python -m benchmarks.streaming --out benchmarks/results [--index DIR] [--shared-data ../shared/data]

Every measurement goes through the stream path of `hum-search listen`: blocks at a
microphone's rate (48 kHz, 20 ms) -> StreamResampler -> Recognizer.push, with the
recognizer's default early-answer policy and time limit.

(a) seconds of humming before a confident answer, over seeded synthetic hums of
    catalogue songs (held-out songs of the corpora with --shared-data, else the written-out
    tunes that the catalogue holds), each followed by silence up to the time limit as
    when a person stops humming; median and 90th percentile over the correct answers.
(b) latency from the decisive window's last sample to the printed answer: the wait for
    the rest of its 20 ms block plus the time to process that block and print the event.
(c) CPU share of one core while listening: process CPU time / wall time over a feed
    paced in real time (time.process_time counts every thread of the process).
(d) resident memory over a soak run: `--soak-minutes` of audio (hums, silence, noise,
    looped) pushed as fast as possible through the same Listener loop as the microphone,
    one query after another; VmRSS sampled every `--rss-every-s` seconds of audio.
Writes streaming_queries.csv, streaming_rss.csv (with headers) and streaming_summary.json;
prints the summary.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

from device import assets
from device.audio import StreamResampler, resample
from device.catalogue import Catalogue
from device.listening import FileSource, Listener
from device.microphone import MicrophoneConfig
from device.recognizer import Recognizer, RecognizerConfig
from training import corpora
from training.config import DataConfig
from training.hum import HumStyle, synthesize_hum
from training.pairs import is_test_song

QUERY_FIELDS = ("query", "truth", "answer", "top1", "correct", "early", "answer_s", "window_end_s",
                "block_wait_ms", "compute_ms", "latency_ms", "windows", "skipped")
RSS_FIELDS = ("audio_s", "wall_s", "rss_kib", "queries")


def rss_kib() -> int:
    """Resident set size of this process, from /proc/self/status (KiB)."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def query_songs(catalogue: Catalogue, shared_data: Path | None) -> list:
    """Songs with melodies that the catalogue holds: held-out corpus songs, or written tunes."""
    held = {s.song_id for s in catalogue.songs}
    if shared_data is not None:
        from converter.package import catalogue_songs
        data = DataConfig.default()
        songs = [s for s in catalogue_songs(shared_data) if s.song_id in held and is_test_song(s, data)]
    else:
        songs = [s for s in corpora.written_tunes() if s.song_id in held]
    if not songs:
        raise SystemExit("none of the query songs is in the catalogue; give --shared-data for the "
                         "default catalogue, or use a catalogue that holds the written-out tunes")
    return songs


def make_queries(songs: list, n: int, hum_seconds: float, rate: int, seed: int) -> list[tuple[str, str, np.ndarray]]:
    """(query name, song_id, float32 hum at rate): n hums of up to hum_seconds of melody."""
    rng = np.random.default_rng(seed)
    queries = []
    for i in range(n):
        song = songs[int(rng.integers(len(songs)))]
        onsets = np.array([note.start_s for note in song.melody])
        last_start = max(1, int(np.searchsorted(onsets, onsets[-1] - hum_seconds)))
        first = int(rng.integers(last_start))
        notes = [x for x in song.melody[first:] if x.start_s < onsets[first] + hum_seconds]
        hum = synthesize_hum(notes, HumStyle.sample(rng), rate, rng)
        queries.append((f"{i:03d} {song.song_id}@{onsets[first]:.1f}", song.song_id, hum.audio))
    return queries


def stream_query(recognizer: Recognizer, audio: np.ndarray, source_rate: int, block: int,
                 max_seconds: float) -> dict:
    """One query through the listen path: (a) and (b) for it.

    Args:
        audio: float32 (n,) hum at source_rate; silence follows it up to max_seconds.
    """
    rate = recognizer.frontend.sample_rate_hz
    total = int(round(max_seconds * source_rate)) + block
    padded = np.zeros(max(total, audio.size), dtype=np.float32)
    padded[:audio.size] = audio
    resampler = StreamResampler(source_rate, rate)
    recognizer.reset()
    printed = io.StringIO()
    for start in range(0, padded.size, block):
        chunk = padded[start:start + block]
        t0 = time.perf_counter()
        events = recognizer.push(resampler.push(chunk))
        for event in events:  # what `listen --json` prints
            printed.write(json.dumps({"event": event.kind, "elapsed_s": round(event.result.audio_s, 2),
                                      "matches": [m.to_dict() for m in event.result.matches[:5]],
                                      "overflows": 0}) + "\n")
        compute_s = time.perf_counter() - t0
        if recognizer.done:
            final = events[-1]
            block_end_s = (start + chunk.size) / source_rate
            return {"event": final, "compute_ms": compute_s * 1000.0,
                    "block_wait_ms": (block_end_s - final.window_end_s) * 1000.0}
    return {"event": recognizer.finish(), "compute_ms": float("nan"), "block_wait_ms": float("nan")}


def measure_queries(recognizer: Recognizer, queries, source_rate: int, block: int) -> list[dict]:
    rows = []
    max_seconds = recognizer.config.max_seconds
    for name, truth, hum in queries:
        outcome = stream_query(recognizer, resample(hum, recognizer.frontend.sample_rate_hz, source_rate),
                               source_rate, block, max_seconds)
        event = outcome["event"]
        top1 = event.result.matches[0].song_id if event.result.matches else ""
        rows.append({"query": name, "truth": truth, "answer": event.kind, "top1": top1,
                     "correct": int(event.kind == "match" and top1 == truth),
                     "early": int(event.result.audio_s < max_seconds - 1e-6),
                     "answer_s": round(event.result.audio_s, 3), "window_end_s": round(event.window_end_s, 3),
                     "block_wait_ms": round(outcome["block_wait_ms"], 2),
                     "compute_ms": round(outcome["compute_ms"], 2),
                     "latency_ms": round(outcome["block_wait_ms"] + outcome["compute_ms"], 2),
                     "windows": event.result.windows, "skipped": event.result.skipped})
    return rows


def listen_material(queries, rate: int, seed: int) -> np.ndarray:
    """float32 audio at rate: each hum, then 3 s of silence and 3 s of white noise."""
    rng = np.random.default_rng(seed)
    parts = []
    for _, _, hum in queries:
        parts += [hum, np.zeros(3 * rate, np.float32), (0.05 * rng.standard_normal(3 * rate)).astype(np.float32)]
    return np.concatenate(parts)


def measure_cpu(recognizer: Recognizer, material: np.ndarray, source_rate: int, block: int,
                seconds: float) -> dict:
    """(c): CPU time / wall time while the Listener consumes a real-time paced feed."""
    listener = Listener(FileSource(material, source_rate, block, loop=True, realtime=True), recognizer)
    queries, wall0, cpu0 = 0, time.monotonic(), time.process_time()
    while time.monotonic() - wall0 < seconds:
        for event in listener.events(wall_limit_s=max(0.0, seconds - (time.monotonic() - wall0))):
            queries += event.final
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    return {"cpu_share_of_one_core": round(cpu / wall, 4), "cpu_wall_s": round(wall, 1),
            "cpu_queries": queries}


class _MeteredSource(FileSource):
    """A looped FileSource that samples VmRSS every `every_s` seconds of audio served."""

    def __init__(self, audio: np.ndarray, rate_hz: int, block_samples: int, every_s: float):
        super().__init__(audio, rate_hz, block_samples, loop=True)
        self.every = int(every_s * rate_hz)
        self.served = 0
        self.samples: list[dict] = []
        self.queries = 0
        self._wall0 = time.monotonic()

    def read(self, timeout_s: float | None = None) -> np.ndarray | None:
        block = super().read(timeout_s)
        before, self.served = self.served, self.served + block.size
        if self.served // self.every > before // self.every:
            self.samples.append({"audio_s": round(self.served / self.rate_hz, 1),
                                 "wall_s": round(time.monotonic() - self._wall0, 2),
                                 "rss_kib": rss_kib(), "queries": self.queries})
        return block


def measure_soak(recognizer: Recognizer, material: np.ndarray, source_rate: int, block: int,
                 minutes: float, every_s: float) -> tuple[list[dict], dict]:
    """(d): RSS over `minutes` of audio through the Listener loop, as fast as possible."""
    source = _MeteredSource(material, source_rate, block, every_s)
    listener = Listener(source, recognizer)
    total = int(minutes * 60 * source_rate)
    started = time.monotonic()
    while source.served < total:
        for event in listener.events():
            source.queries += event.final
            if source.served >= total:
                break
    wall = time.monotonic() - started
    samples = source.samples
    rss = np.array([s["rss_kib"] for s in samples])
    warm = [s["rss_kib"] for s in samples if s["audio_s"] >= 60.0] or list(rss)
    summary = {"soak_audio_minutes": round(source.served / source_rate / 60, 2), "soak_wall_s": round(wall, 1),
               "soak_speed_x_realtime": round(source.served / source_rate / wall, 1),
               "soak_queries": source.queries,
               "rss_after_1min_kib": int(warm[0]), "rss_end_kib": int(rss[-1]), "rss_max_kib": int(rss.max()),
               "rss_growth_after_1min_kib": int(rss[-1] - warm[0])}
    return samples, summary


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=assets.default_catalogue_dir(), help="catalogue directory")
    parser.add_argument("--shared-data", type=Path, default=None,
                        help="query held-out corpus songs (else the written-out tunes)")
    parser.add_argument("--out", type=Path, required=True, help="directory for the CSVs and the summary")
    parser.add_argument("--queries", type=int, default=50, help="synthetic queries for (a) and (b)")
    parser.add_argument("--hum-seconds", type=float, default=20.0, help="song seconds hummed per query")
    parser.add_argument("--source-rate", type=int, default=48000, help="the simulated microphone's rate (Hz)")
    parser.add_argument("--cpu-seconds", type=float, default=60.0, help="wall seconds of the paced feed (c)")
    parser.add_argument("--soak-minutes", type=float, default=30.0, help="minutes of audio for (d)")
    parser.add_argument("--rss-every-s", type=float, default=10.0, help="audio seconds between RSS samples")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    config = RecognizerConfig()
    catalogue = Catalogue(args.index)
    recognizer = Recognizer(catalogue, config, num_threads=args.threads)
    rate = recognizer.frontend.sample_rate_hz
    block = int(round(MicrophoneConfig().block_seconds * args.source_rate))
    queries = make_queries(query_songs(catalogue, args.shared_data), args.queries, args.hum_seconds, rate, args.seed)

    rows = measure_queries(recognizer, queries, args.source_rate, block)
    with open(args.out / "streaming_queries.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=QUERY_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    correct = [r for r in rows if r["correct"]]
    early = [r for r in rows if r["early"]]  # latency: from the decisive window, not a time limit

    material = resample(listen_material(queries[:10], rate, args.seed), rate, args.source_rate)
    cpu = measure_cpu(recognizer, material, args.source_rate, block, args.cpu_seconds)
    samples, soak = measure_soak(recognizer, material, args.source_rate, block, args.soak_minutes, args.rss_every_s)
    with open(args.out / "streaming_rss.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RSS_FIELDS)
        writer.writeheader()
        writer.writerows(samples)

    summary = {
        "queries": len(rows),
        "correct_matches": round(len(correct) / len(rows), 4),
        "wrong_matches": round(sum(r["answer"] == "match" and not r["correct"] for r in rows) / len(rows), 4),
        "no_match": round(sum(r["answer"] == "no_match" for r in rows) / len(rows), 4),
        "answered_before_time_limit": round(len(early) / len(rows), 4),
        "seconds_to_correct_answer_median": percentile([r["answer_s"] for r in correct], 50),
        "seconds_to_correct_answer_p90": percentile([r["answer_s"] for r in correct], 90),
        "latency_ms_median": percentile([r["latency_ms"] for r in early], 50),
        "latency_ms_p90": percentile([r["latency_ms"] for r in early], 90),
        "compute_ms_median": percentile([r["compute_ms"] for r in early], 50),
        **cpu, **soak,
        "source_rate_hz": args.source_rate, "block_samples": block,
        "recognizer_config": dataclasses.asdict(config),
        "catalogue": str(catalogue.directory), "catalogue_songs": len(catalogue.songs),
        "catalogue_items": catalogue.n_items, "model_backend": recognizer.model.backend,
    }
    (args.out / "streaming_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
