"""Recognizer: one engine for files and streams.

Blocks of samples go in; frames are computed incrementally, each query window is embedded
as soon as it is complete (unless it is silence or non-tonal noise), its neighbours vote,
and the matcher ranks songs. `feed`/`result` give the ranking of everything so far;
`push`/`finish` turn the same steps into events for a live stream, with an early answer
as soon as the match is confident.
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
        min_prominence_db: a frame is tonal when some bin stands this many dB above the
            median of its neighbourhood (see `tonal_frames`). Hums, sung syllables and
            whistles have peaks 20-50 dB above it; white, pink or brown noise about 7 dB.
        prominence_half_width_bins: the neighbourhood: this many bins either side (6 bins
            = 3 semitones).
        min_tonal_fraction: windows with fewer tonal frames than this fraction are noise
            and are not embedded.
        early_min_windows: `push` answers before the time limit only once this many
            windows have been embedded (6 windows: 6.5 s of humming) ...
        early_min_confidence: ... the decision is a match with at least this confidence ...
        early_consecutive: ... and has been, with the same best song, after this many
            consecutive windows. So the earliest answer comes after early_min_windows +
            early_consecutive - 1 windows (7 windows: 7 s of humming).
        max_seconds: `push` stops after this many seconds of audio and answers with the
            decision on them (None: no limit; `finish` ends the query).
        matcher: aggregation and decision parameters; None: those calibrated for the
            catalogue's model (`Catalogue.matcher`).
    """

    query_hop_frames: int = 25
    min_peak_db: float = -10.0
    min_prominence_db: float = 15.0
    prominence_half_width_bins: int = 6
    min_tonal_fraction: float = 0.2
    early_min_windows: int = 6
    early_min_confidence: float = 0.2
    early_consecutive: int = 2
    max_seconds: float | None = 20.0
    matcher: MatcherConfig | None = None


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
        windows: query windows embedded; skipped: windows skipped as silence or noise.
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


EVENT_KINDS = ("candidates", "match", "no_match")


@dataclasses.dataclass(frozen=True)
class Event:
    """What `Recognizer.push` and `Recognizer.finish` report.

    Attributes:
        kind: "candidates" (the ranking changed: a window was embedded; the query goes
            on), "match" or "no_match" (the final answer; the query is over).
        result: the ranking and decision at that moment.
        window_end_s: seconds from the start of the query to the end of the last window
            embedded (for an early match, the window that decided it); 0 if none.
    """

    kind: str
    result: Result
    window_end_s: float

    def __post_init__(self):
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"event kind {self.kind!r} is not one of {EVENT_KINDS}")

    @property
    def final(self) -> bool:
        return self.kind != "candidates"


def tonal_frames(frames_db: np.ndarray, min_prominence_db: float, half_width_bins: int) -> np.ndarray:
    """Which frames have a clear spectral peak (a pitched voice or whistle), not noise.

    A bin's prominence is its level minus the median level of the bins within
    `half_width_bins` of it (the spectrum's edges are extended). Noise of any colour is
    smooth across a few semitones and stays below about 15 dB; the fundamental or a low
    harmonic of a voice stands 20 dB or more above its neighbours.

    Args:
        frames_db: float32 array (n_frames, n_bins) from frontend.log_spectrogram.
        min_prominence_db: the prominence a frame's most prominent bin needs.
        half_width_bins: neighbourhood half-width, in bins.

    Returns:
        bool array (n_frames,).
    """
    frames_db = np.asarray(frames_db, dtype=np.float32)
    if frames_db.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    padded = np.pad(frames_db, ((0, 0), (half_width_bins, half_width_bins)), mode="edge")
    neighbourhood = np.lib.stride_tricks.sliding_window_view(padded, 2 * half_width_bins + 1, axis=1)
    prominence = (frames_db - np.median(neighbourhood, axis=-1)).max(axis=1)
    return prominence >= min_prominence_db


class Recognizer:
    """Owns a catalogue's embedder and the state of one query.

    Two ways to use it, on the same steps: `identify(audio)` (or `feed` then `result`)
    for a whole recording; `push(block)` for a stream, which returns events as windows
    complete and ends with a match or no_match event (`finish` ends it early).

    Args:
        catalogue: a loaded Catalogue.
        config: query-side parameters.
        num_threads: interpreter threads.
    """

    def __init__(self, catalogue: Catalogue, config: RecognizerConfig = RecognizerConfig(),
                 num_threads: int | None = None):
        self.catalogue = catalogue
        if config.matcher is None:
            config = dataclasses.replace(config, matcher=catalogue.matcher)
        self.config = config
        self.frontend = catalogue.frontend
        self.embedder = Embedder(catalogue.model_path, num_threads=num_threads)
        self.reset()

    def reset(self) -> None:
        """Forgets the current query."""
        self._stream = fe.FrameStream(self.frontend)
        self._frames = np.zeros((0, self.frontend.n_bins), dtype=np.float32)
        self._tonal = np.zeros(0, dtype=bool)  # tonal_frames of self._frames
        self._first_frame = 0  # absolute index of self._frames[0]
        self._next_window = 0  # absolute start frame of the next query window
        self._votes = Votes.empty()
        self._windows = 0
        self._window_end_sample = 0  # end of the last embedded window, in samples
        self._streak = 0  # consecutive confident matches on the same song (early answer)
        self._streak_song = ""
        self._final: Event | None = None
        self._skipped = 0
        self._samples = 0
        self._timing = {"frontend": 0.0, "embed": 0.0, "search": 0.0, "match": 0.0}

    def _complete_windows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cuts every query window that is complete.

        Returns:
            starts: int64 (n,) absolute start frames; windows: float32 (n, window_frames,
            n_bins) in dB; tonal: float64 (n,) fraction of each window's frames that are tonal.
        """
        size, hop = self.frontend.window_frames, self.config.query_hop_frames
        end = self._first_frame + self._frames.shape[0]
        starts = np.arange(self._next_window, end - size + 1, hop, dtype=np.int64)
        offsets = (starts - self._first_frame).tolist()
        cut = np.stack([self._frames[o:o + size] for o in offsets]) \
            if starts.size else np.zeros((0, size, self.frontend.n_bins), dtype=np.float32)
        tonal = np.array([self._tonal[o:o + size].mean() for o in offsets], dtype=np.float64)
        if starts.size:
            self._next_window = int(starts[-1]) + hop
        drop = max(0, self._next_window - self._first_frame)
        self._frames = self._frames[drop:]
        self._tonal = self._tonal[drop:]
        self._first_frame += drop
        return starts, cut, tonal

    def _windows_from(self, samples: np.ndarray) -> list[tuple[int, Votes]]:
        """Frontend, gates, embedding and search for the windows `samples` complete.

        Returns:
            (start frame, that window's neighbours as Votes) per embedded window, in order.
        """
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._samples += samples.size
        t0 = time.perf_counter()
        new_frames = self._stream.push(samples)
        self._frames = np.concatenate([self._frames, new_frames])
        self._tonal = np.concatenate([self._tonal, tonal_frames(
            new_frames, self.config.min_prominence_db, self.config.prominence_half_width_bins)])
        starts, cut, tonal = self._complete_windows()
        keep = (cut.max(axis=(1, 2)) >= self.config.min_peak_db) & (tonal >= self.config.min_tonal_fraction)
        self._skipped += int(np.count_nonzero(~keep))
        starts, cut = starts[keep], cut[keep]
        t1 = time.perf_counter()
        self._timing["frontend"] += t1 - t0
        if starts.size == 0:
            return []
        embeddings = self.embedder.embed(fe.normalize_windows(cut, self.frontend))
        t2 = time.perf_counter()
        found = []
        for start, embedding in zip(starts, embeddings):
            items, sim = self.catalogue.search(embedding, self.config.matcher.top_k)
            row, frame = self.catalogue.locate(items)
            found.append((int(start), Votes(np.full(items.size, start, dtype=np.int64), row, frame, sim)))
        t3 = time.perf_counter()
        self._timing["embed"] += t2 - t1
        self._timing["search"] += t3 - t2
        return found

    def _add(self, start: int, votes: Votes) -> None:
        self._votes = self._votes.extend(votes)
        self._windows += 1
        last_frame = start + self.frontend.window_frames - 1
        self._window_end_sample = (last_frame * self.frontend.hop_length_samples
                                   + self.frontend.frame_length_samples)

    def feed(self, samples: np.ndarray) -> bool:
        """Adds samples (float32 (n,) mono at the frontend's rate).

        Returns:
            True when new query windows were embedded (the result may have changed).
        """
        found = self._windows_from(samples)
        for start, votes in found:
            self._add(start, votes)
        return bool(found)

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

    @property
    def done(self) -> bool:
        """True once `push` or `finish` has given the final event of the current query."""
        return self._final is not None

    def _event(self, kind: str, result: Result) -> Event:
        return Event(kind, result, self._window_end_sample / self.frontend.sample_rate_hz)

    def _confident(self, result: Result) -> bool:
        """The early-answer policy, applied after each embedded window."""
        config = self.config
        best = result.matches[0].song_id if result.matches else ""
        if (result.decision == "match" and result.windows >= config.early_min_windows
                and result.confidence >= config.early_min_confidence):
            self._streak = self._streak + 1 if best == self._streak_song else 1
            self._streak_song = best
        else:
            self._streak, self._streak_song = 0, ""
        return self._streak >= config.early_consecutive

    def push(self, samples: np.ndarray, top: int = 10) -> list[Event]:
        """Adds a block of a stream and reports what changed.

        Windows are judged one at a time, so the events do not depend on how the stream
        is cut into blocks. After a final event the query is over: further pushes return
        nothing until `reset`.

        Args:
            samples: float32 (n,) mono at the frontend's rate, any n >= 0.
            top: candidates per result.

        Returns:
            In order: a "candidates" event per window embedded; then at most one final
            event: "match" as soon as the early-answer policy of the config is met, else
            the decision ("match" or "no_match") once max_seconds of audio have arrived.
        """
        if self._final is not None:
            return []
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        limit = None
        if self.config.max_seconds is not None:
            limit = int(round(self.config.max_seconds * self.frontend.sample_rate_hz))
            samples = samples[:max(0, limit - self._samples)]
        events = []
        for start, votes in self._windows_from(samples):
            self._add(start, votes)
            result = self.result(top=top)
            if self._confident(result):
                self._final = self._event("match", result)
                events.append(self._final)
                return events
            events.append(self._event("candidates", result))
        if limit is not None and self._samples >= limit:
            events.append(self.finish(top=top))
        return events

    def finish(self, top: int = 10) -> Event:
        """Ends the query (end of a file, a time limit, the user stopping it).

        Returns:
            The final event: the one `push` already gave, if any; else "match" or
            "no_match" as decided on all the audio pushed, exactly as `result` (and so
            `identify` on the same audio) decides.
        """
        if self._final is None:
            result = self.result(top=top)
            self._final = self._event(result.decision, result)
        return self._final
