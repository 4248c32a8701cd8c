"""Paired features: recordings and queries of the same melody excerpts.

For each song a seeded excerpt is arranged and rendered with FluidSynth (one of several
soundfonts; sometimes with a synthetic singer carrying the melody), produced (reverb,
compression, EQ), and queried several times: hums, sung syllables and whistles made
from the notes or along the pitch-track path, each through a simulated room, noise and
microphone. Every pair carries its melody targets: the lead's pitch per recording frame
as played, and each query's own f0 per frame; and the pitches the backing plays per
recording frame, for a model that learns to tell the two apart. The device frontend
turns everything into dB spectrograms (float16), cached with the time map from query
frames to recording frames, in shards that a restarted build skips. Everything derives
from DataConfig.seed and the song id, so a rebuild gives the same shards.

    python -m training.pairs --shared-data ../shared/data --out data/pairs/v2
"""
from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

from device import frontend as fe
from training import corpora
from training.acoustics import MicChain, ProductionChain
from training.config import DataConfig
from training.hum import HumStyle, synthesize_hum
from training.melody import Song, sounding_pitch, sounding_roll
from training.pair_shards import SongPairs, save, song_seed
from training.pitch_track import track_at, track_hum
from training.render import (Arrangement, Renderer, arrange, find_soundfonts, is_hard, lead_notes, mix_lead,
                              part_notes)

SHARD_SONGS = 50
MARGIN_S = 2.0  # recording context rendered around the hummed excerpt
HARD_DRAWS = 32  # arrangements drawn at most for a recording that should be hard
SINGER_VOICES = ("la", "da", "oo")  # syllables of the synthetic singer in recordings
BACKING_PARTS = ("line", "accompaniment", "bass", "timpani")  # pitched parts that are not the melody


def is_test_song(song: Song, data: DataConfig) -> bool:
    """Shippable songs held out of training, for the evaluation (a stable hash of the id)."""
    return song.shippable and is_test_id(song.song_id, data)


def is_test_id(song_id: str, data: DataConfig) -> bool:
    """Whether a shippable song with this id is held out (catalogue songs are shippable)."""
    return song_seed(song_id, data.seed + 1) % 10_000 < data.test_fraction * 10_000


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


class PairMaker:
    """Makes one song's pairs: everything a build worker holds open.

    A Renderer per soundfont (each song draws its own). Use as a context manager.
    """

    def __init__(self, data: DataConfig, frontend: fe.FrontendConfig, soundfonts: list[Path]):
        """
        Args:
            data: the recipe.
            frontend: the device frontend configuration.
            soundfonts: General MIDI soundfonts to render with (at least one).
        """
        if not soundfonts:
            raise ValueError("no soundfont to render with")
        self.data, self.frontend = data, frontend
        self.renderers = [Renderer(Path(sf), frontend.sample_rate_hz) for sf in soundfonts]

    def close(self) -> None:
        for renderer in self.renderers:
            renderer.close()

    def __enter__(self) -> PairMaker:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def make(self, song: Song) -> SongPairs | None:
        """Renders, produces, queries and featurises one song; None when its excerpt is
        too short. The same song and DataConfig.seed always give the same pairs."""
        data, config = self.data, self.frontend
        sr = config.sample_rate_hz
        rng = np.random.default_rng(song_seed(song.song_id, data.seed))
        notes = excerpt_notes(song, rng, data.excerpt_s)
        if len(notes) < 4:
            return None
        start_s = max(0.0, notes[0].start_s - MARGIN_S)
        duration_s = notes[-1].end_s + MARGIN_S - start_s
        sf = int(rng.integers(len(self.renderers)))
        recording, recording_midi, backing, arrangement = self._record(song, notes, self.renderers[sf], rng,
                                                                       start_s, duration_s)
        recording_db = fe.log_spectrogram(recording, config)
        if recording_db.shape[0] < config.window_frames:
            return None
        hop_s = config.hop_length_samples / sr
        offset_s = config.frame_length_samples / 2 / sr
        queries, maps, kinds, midis = [], [], [], []
        for _ in range(data.hums_per_song):
            style = HumStyle.sample(rng)
            if rng.random() < data.track_fraction:
                tone = bool(rng.random() < data.tone_fraction)
                hum = track_hum(notes, style, sr, rng, tone=tone)
                kind = "track-tone" if tone else f"track-{style.voice}"
            else:
                hum = synthesize_hum(notes, style, sr, rng)
                kind = style.voice
            audio = hum.audio
            if rng.random() < data.mic_chain_fraction:
                audio = MicChain.sample(rng).apply(audio, sr, rng)
            query_db = fe.log_spectrogram(audio, config)
            centres_s = frame_centres_s(query_db.shape[0], config)
            song_t = hum.song_time(centres_s)
            queries.append(query_db.astype(np.float16))
            maps.append(((song_t - start_s - offset_s) / hop_s).astype(np.float32))
            kinds.append(kind)
            midis.append(track_at(hum.audio, sr, centres_s))
        return SongPairs(song.song_id, recording_db.astype(np.float16), queries, maps, kinds,
                         recording_midi[:recording_db.shape[0]], midis, arrangement.lead_db,
                         is_hard(arrangement), np.packbits(backing[:recording_db.shape[0]], axis=1))

    def _record(self, song: Song, notes: list, renderer: Renderer, rng: np.random.Generator,
                start_s: float, duration_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, Arrangement]:
        """The recording of [start_s, start_s + duration_s): an arrangement (a hard one
        for DataConfig.hard_render_fraction of them), maybe sung, maybe produced, its
        lead's pitch and the backing's pitches.

        Returns:
            (float32 (n_samples,) audio, float32 (n_frames,) MIDI pitch of the lead per
            frontend frame as played, 0 where it is silent, bool (n_frames, 128) the MIDI
            pitches the BACKING_PARTS play per frame, the arrangement).
        """
        sr = self.frontend.sample_rate_hz
        centres_s = frame_centres_s(fe.n_frames(round(duration_s * sr), self.frontend), self.frontend)
        seed = int(rng.integers(2**31))
        if self.data.hard_render_fraction and rng.random() < self.data.hard_render_fraction:
            for _ in range(HARD_DRAWS):
                if is_hard(arrange(song, seed)):
                    break
                seed = int(rng.integers(2**31))
        arrangement = arrange(song, seed)
        if rng.random() < self.data.sung_lead_fraction:
            audio = renderer.render(song, seed, start_s=start_s, duration_s=duration_s, lead=False)
            singer = dataclasses.replace(  # a studio singer: in time, in key, no wrong notes
                HumStyle.sample(rng), transpose_semitones=0.0, tempo_factor=1.0,
                voice=str(rng.choice(SINGER_VOICES)), hiss_db=-90.0, wrong_note_probability=0.0,
                missed_note_probability=0.0, octave_jump_probability=0.0)
            voice = synthesize_hum(notes, singer, sr, rng)
            at = int(round((voice.knots_song_s[0] - start_s) * sr))
            lead = np.zeros_like(audio)
            lo, hi = max(at, 0), min(at + voice.audio.size, audio.size)
            lead[lo:hi] = voice.audio[lo - at:hi - at]
            audio = mix_lead(audio, lead, arrangement.lead_db)
            lead_midi = track_at(lead, sr, centres_s)
        else:
            audio = renderer.render(song, seed, start_s=start_s, duration_s=duration_s)
            lead_midi = sounding_pitch(lead_notes(song), start_s + centres_s)
        if rng.random() < self.data.production_fraction:
            audio = ProductionChain.sample(rng).apply(audio, sr)
        parts = part_notes(song, seed, arrangement)
        backing = sounding_roll([n for name in BACKING_PARTS for n in parts.get(name, ())], start_s + centres_s)
        return audio, lead_midi, backing, arrangement


def _build_shard(job: tuple[list[Song], Path, DataConfig, list[str]]) -> str:
    songs, path, data, soundfonts = job
    config = fe.FrontendConfig()
    pairs = []
    with PairMaker(data, config, [Path(sf) for sf in soundfonts],
                   ) as maker:
        for song in songs:
            made = maker.make(song)
            if made is not None:
                pairs.append(made)
    save(pairs, path)
    return path.name


def build(songs: list[Song], out_dir: Path, data: DataConfig, workers: int = 2,
) -> list[Path]:
    """Builds (or completes) the shards for `songs` in out_dir; prints progress to stderr."""
    out_dir.mkdir(parents=True, exist_ok=True)
    soundfonts = [str(p) for p in find_soundfonts()]
    jobs, paths = [], []
    for i in range(0, len(songs), SHARD_SONGS):
        path = out_dir / f"shard_{i // SHARD_SONGS:05d}.pkl"
        paths.append(path)
        if not path.exists():
            jobs.append((songs[i:i + SHARD_SONGS], path, data, soundfonts))
    started = time.time()
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for done, name in enumerate(pool.imap_unordered(_build_shard, jobs), 1):
            elapsed = time.time() - started
            print(f"pairs: {name} ({done}/{len(jobs)} shards, {elapsed:.0f} s, "
                  f"~{elapsed / done * (len(jobs) - done):.0f} s left)", file=sys.stderr, flush=True)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the cached training pairs (resumable).")
    parser.add_argument("--shared-data", type=Path, required=True, help="the ../shared/data folder")
    parser.add_argument("--out", type=Path, required=True, help="directory for the shards")
    parser.add_argument("--preset", choices=("default", "melody", "hard", "smoke"), default="default")
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
