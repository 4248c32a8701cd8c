"""Recognizer: one engine for files and streams.

Blocks of samples go in; frames are computed incrementally, each query window is embedded
as soon as it is complete, its neighbours vote, and the matcher ranks songs.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from device import frontend as fe
from device.catalogue import Catalogue
from device.embedder import Embedder
from device.matcher import MatcherConfig, Votes, decide


@dataclasses.dataclass(frozen=True)
class RecognizerConfig:
    """Query-side parameters.

    Attributes:
        query_hop_frames: frames between query windows (25 = 0.5 s).
        min_peak_db: windows whose loudest bin is below this (dB, frontend scale; a full
            scale tone is about +53 dB) are silence and are not embedded.
        matcher: aggregation and decision parameters.
    """

    query_hop_frames: int = 25
    min_peak_db: float = -10.0
    matcher: MatcherConfig = MatcherConfig()


@dataclasses.dataclass(frozen=True)
class Match:
    song_id: str
    title: str
    artist: str
    score: float
    offset_s: float  # where in the song the query starts

    def to_dict(self) -> dict:
        return {"song_id": self.song_id, "title": self.title, "artist": self.artist,
                "score": round(self.score, 4), "offset_s": round(self.offset_s, 2)}


@dataclasses.dataclass(frozen=True)
class Result:
    """What the recognizer concludes from the audio so far.

    Attributes:
        decision: "match" or "no_match".
        confidence: in [0, 1].
        matches: best first.
        windows: query windows embedded; skipped: windows skipped as silence.
        audio_s: seconds of audio received.
        timing_ms: time spent per stage.
    """

    decision: str
    confidence: float
    matches: tuple[Match, ...]
    windows: int
    skipped: int
    audio_s: float
    timing_ms: dict


class Recognizer:
    """Owns a catalogue's embedder and the state of one query.

    Args:
        catalogue: a loaded Catalogue.
        config: query-side parameters.
        num_threads: interpreter threads.
    """

    def __init__(self, catalogue: Catalogue, config: RecognizerConfig = RecognizerConfig(),
                 num_threads: int | None = None):
        self.catalogue = catalogue
        self.config = config
        self.frontend = catalogue.frontend
        self.embedder = Embedder(catalogue.model_path, num_threads=num_threads)
        self.reset()

    def reset(self) -> None:
        """Forgets the current query."""
        self._stream = fe.FrameStream(self.frontend)
        self._frames = np.zeros((0, self.frontend.n_bins), dtype=np.float32)
        self._first_frame = 0  # absolute index of self._frames[0]
        self._next_window = 0  # absolute start frame of the next query window
        self._votes = Votes.empty()
        self._windows = 0
        self._skipped = 0
        self._samples = 0
        self._timing = {"frontend": 0.0, "embed": 0.0, "search": 0.0, "match": 0.0}

    def _complete_windows(self) -> tuple[np.ndarray, np.ndarray]:
        """Cuts every query window that is complete; returns (starts, dB windows)."""
        size, hop = self.frontend.window_frames, self.config.query_hop_frames
        end = self._first_frame + self._frames.shape[0]
        starts = np.arange(self._next_window, end - size + 1, hop, dtype=np.int64)
        cut = np.stack([self._frames[s - self._first_frame:s - self._first_frame + size] for s in starts]) \
            if starts.size else np.zeros((0, size, self.frontend.n_bins), dtype=np.float32)
        if starts.size:
            self._next_window = int(starts[-1]) + hop
        drop = max(0, self._next_window - self._first_frame)
        self._frames = self._frames[drop:]
        self._first_frame += drop
        return starts, cut

    def feed(self, samples: np.ndarray) -> bool:
        """Adds samples (float32 (n,) mono at the frontend's rate).

        Returns:
            True when new query windows were embedded (the result may have changed).
        """
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._samples += samples.size
        t0 = time.perf_counter()
        self._frames = np.concatenate([self._frames, self._stream.push(samples)])
        starts, cut = self._complete_windows()
        t1 = time.perf_counter()
        self._timing["frontend"] += t1 - t0
        if starts.size == 0:
            return False
        loud = cut.max(axis=(1, 2)) >= self.config.min_peak_db
        self._skipped += int(np.count_nonzero(~loud))
        starts, cut = starts[loud], cut[loud]
        if starts.size == 0:
            return False
        embeddings = self.embedder.embed(fe.normalize_windows(cut, self.frontend))
        t2 = time.perf_counter()
        query, rows, song_frames, similarity = [], [], [], []
        for start, embedding in zip(starts, embeddings):
            items, sim = self.catalogue.search(embedding, self.config.matcher.top_k)
            row, frame = self.catalogue.locate(items)
            query.append(np.full(items.size, start))
            rows.append(row)
            song_frames.append(frame)
            similarity.append(sim)
        self._votes = self._votes.extend(Votes(np.concatenate(query), np.concatenate(rows),
                                               np.concatenate(song_frames), np.concatenate(similarity)))
        self._windows += int(starts.size)
        t3 = time.perf_counter()
        self._timing["embed"] += t2 - t1
        self._timing["search"] += t3 - t2
        return True

    def result(self, top: int = 10) -> Result:
        """The ranking and decision from everything fed since the last reset."""
        t0 = time.perf_counter()
        decision = decide(self._votes, self._windows, self.config.matcher, top=top)
        self._timing["match"] += time.perf_counter() - t0
        rate = self.frontend.frame_rate_hz
        matches = []
        for c in decision.candidates:
            song = self.catalogue.songs[c.song]
            matches.append(Match(song.song_id, song.title, song.artist, c.score,
                                 max(0.0, c.offset_frames / rate)))
        return Result("match" if decision.is_match else "no_match", decision.confidence,
                      tuple(matches), self._windows, self._skipped,
                      self._samples / self.frontend.sample_rate_hz,
                      {k: round(v * 1000.0, 2) for k, v in self._timing.items()})

    def identify(self, audio: np.ndarray, top: int = 10) -> Result:
        """One-shot identification of a whole recording (the same path as streaming)."""
        self.reset()
        self.feed(audio)
        return self.result(top=top)
