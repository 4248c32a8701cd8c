"""Paired features: rendered recordings and synthetic hums of the same melody excerpts.

Building renders each song's excerpt with FluidSynth and hums it, runs the device
frontend on both, and caches the dB spectrograms (float16) with the time map from hum
frames to recording frames, in shards that a restarted build skips.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import multiprocessing
import pickle
import sys
import time
from pathlib import Path

import numpy as np

from device import frontend as fe
from training import corpora
from training.config import DataConfig
from training.hum import HumStyle, synthesize_hum
from training.melody import Song
from training.render import Renderer, find_soundfonts

SHARD_SONGS = 50
MARGIN_S = 2.0  # recording context rendered around the hummed excerpt


@dataclasses.dataclass
class SongPairs:
    """Cached features of one song.

    Attributes:
        recording_db: float16 (T_r, n_bins) spectrogram of the rendered excerpt.
        hums_db: per hum, float16 (T_h, n_bins).
        hum_to_recording: per hum, float32 (T_h,): the recording frame (fractional) that
            sounds the same melody moment as each hum frame.
    """

    song_id: str
    recording_db: np.ndarray
    hums_db: list[np.ndarray]
    hum_to_recording: list[np.ndarray]


def song_seed(song_id: str, seed: int) -> int:
    """A stable per-song seed (independent of corpus order and Python's hash salt)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{song_id}".encode()).digest()[:4], "little")


def is_test_song(song: Song, data: DataConfig) -> bool:
    """Shippable songs held out of training, for the evaluation (a stable hash of the id)."""
    return song.shippable and song_seed(song.song_id, data.seed + 1) % 10_000 < data.test_fraction * 10_000


def training_songs(shared_data: Path, data: DataConfig) -> list[Song]:
    """Every corpus, minus the held-out test songs, in a stable shuffled order (so that
    any prefix of the shards mixes the corpora)."""
    songs = (corpora.load_pop909(shared_data / "pop909") + corpora.load_openewld(shared_data / "openewld")
             + corpora.load_nottingham(shared_data / "nottingham") + corpora.written_tunes()
             + (corpora.load_music21_essen(data.essen_limit) if data.essen_limit else []))
    songs = [s for s in songs if not is_test_song(s, data)]
    order = np.random.default_rng(data.seed).permutation(len(songs))
    return [songs[i] for i in order]


def excerpt_notes(song: Song, rng: np.random.Generator, excerpt_s: float):
    """Melody notes of a contiguous excerpt of at most excerpt_s seconds, starting at a note."""
    onsets = np.array([n.start_s for n in song.melody])
    last_start = onsets[-1] - excerpt_s
    candidates = np.flatnonzero(onsets <= max(last_start, onsets[0]))
    first = int(rng.choice(candidates))
    t0 = onsets[first]
    return [n for n in song.melody[first:] if n.start_s < t0 + excerpt_s]


def frame_centres_s(n: int, config: fe.FrontendConfig) -> np.ndarray:
    """float64 (n,): time of each frame's centre, seconds from the start of the audio."""
    return (np.arange(n) * config.hop_length_samples + config.frame_length_samples / 2) / config.sample_rate_hz


def make_song_pairs(song: Song, renderer: Renderer, data: DataConfig,
                    config: fe.FrontendConfig) -> SongPairs | None:
    """Renders, hums and featurises one song; None when its excerpt is too short."""
    rng = np.random.default_rng(song_seed(song.song_id, data.seed))
    notes = excerpt_notes(song, rng, data.excerpt_s)
    if len(notes) < 4:
        return None
    start_s = max(0.0, notes[0].start_s - MARGIN_S)
    duration_s = notes[-1].end_s + MARGIN_S - start_s
    recording = renderer.render(song, seed=int(rng.integers(2**31)), start_s=start_s, duration_s=duration_s)
    recording_db = fe.log_spectrogram(recording, config)
    if recording_db.shape[0] < config.window_frames:
        return None
    hop_s = config.hop_length_samples / config.sample_rate_hz
    offset_s = config.frame_length_samples / 2 / config.sample_rate_hz
    hums, maps = [], []
    for _ in range(data.hums_per_song):
        hum = synthesize_hum(notes, HumStyle.sample(rng), config.sample_rate_hz, rng)
        hum_db = fe.log_spectrogram(hum.audio, config)
        song_t = hum.song_time(frame_centres_s(hum_db.shape[0], config))
        hums.append(hum_db.astype(np.float16))
        maps.append(((song_t - start_s - offset_s) / hop_s).astype(np.float32))
    return SongPairs(song.song_id, recording_db.astype(np.float16), hums, maps)


def _build_shard(job: tuple[list[Song], Path, DataConfig, str]) -> str:
    songs, path, data, soundfont = job
    config = fe.FrontendConfig()
    pairs = []
    with Renderer(Path(soundfont), config.sample_rate_hz) as renderer:
        for song in songs:
            made = make_song_pairs(song, renderer, data, config)
            if made is not None:
                pairs.append(made)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:  # plain dicts: loading must not depend on where the class lived
        pickle.dump([dataclasses.asdict(p) for p in pairs], handle, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return path.name


def build(songs: list[Song], out_dir: Path, data: DataConfig, workers: int = 2) -> list[Path]:
    """Builds (or completes) the shards for `songs` in out_dir; prints progress to stderr.

    Soundfonts alternate between shards so the model hears more than one.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    soundfonts = [str(p) for p in find_soundfonts()]
    jobs, paths = [], []
    for i in range(0, len(songs), SHARD_SONGS):
        path = out_dir / f"shard_{i // SHARD_SONGS:05d}.pkl"
        paths.append(path)
        if not path.exists():
            jobs.append((songs[i:i + SHARD_SONGS], path, data, soundfonts[(i // SHARD_SONGS) % len(soundfonts)]))
    started = time.time()
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for done, name in enumerate(pool.imap_unordered(_build_shard, jobs), 1):
            elapsed = time.time() - started
            print(f"pairs: {name} ({done}/{len(jobs)} shards, {elapsed:.0f} s, "
                  f"~{elapsed / done * (len(jobs) - done):.0f} s left)", file=sys.stderr, flush=True)
    return paths


def load(paths: list[Path]) -> list[SongPairs]:
    pairs = []
    for path in paths:
        with open(path, "rb") as handle:
            pairs.extend(SongPairs(**fields) for fields in pickle.load(handle))
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the cached training pairs (resumable).")
    parser.add_argument("--shared-data", type=Path, required=True, help="the ../shared/data folder")
    parser.add_argument("--out", type=Path, required=True, help="directory for the shards")
    parser.add_argument("--preset", choices=("default", "smoke"), default="default")
    parser.add_argument("--limit", type=int, default=None, help="at most this many songs (smoke runs)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    data = getattr(DataConfig, args.preset)()
    songs = training_songs(args.shared_data, data)[:args.limit]
    print(f"pairs: {len(songs)} training songs", file=sys.stderr)
    build(songs, args.out, data, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
