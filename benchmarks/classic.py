"""A classic query-by-humming baseline beside the neural recognizer: pYIN + subsequence DTW.

    python -m benchmarks.classic --shared-data ../shared/data --out benchmarks/results/classic

The upper-bound variant: the references are the catalogue's source melodies (the notes
of each song), not melodies extracted from its recordings, plus the hand-labelled pitch
of each mir1k-dev clip. The queries are the ones `benchmarks.evaluate` uses, drawn with
the same seed: (a) clean synthetic hums of 100 held-out catalogue songs, (b) the real
voices of mir1k-dev, transposed +-3 semitones and stretched +-10%.

Contours: MIDI semitones at `FRAME_RATE_HZ`. Voiced frames further than
`OUTLIER_SEMITONES` from the median count as unvoiced. Unvoiced stretches are filled
with the pitch before them (a rest in a score holds the last note too), and any such
stretch longer than `MAX_GAP_S` is cut to that length on both sides, so that a hummed
rest and a written one take about the same time. Leading and trailing silence is dropped.

Matching: subsequence DTW (the query may match anywhere in a reference) with steps
(1,1), (2,1) and (1,2) (query, reference), so the tempo may differ by a factor of 0.5-2
and every query frame is counted exactly once: costs of different references compare
without length normalisation. The frame cost is the absolute difference of the
key-normalised pitches, clipped at `COST_CLIP_SEMITONES` (a wrong or octave-jumped note
costs no more than a clearly different one). Key, locally: the query minus its mean,
against the reference minus the mean of the reference window of the query's length that
starts where the alignment would start at equal tempo (frame j - i for query frame i at
reference frame j). That estimate can be off by a semitone or two (tempo, drift, rests),
so every reference is screened at a few residual key shifts with a tolerant cost, and
the `SHORTLIST` best are aligned again exactly with finer shifts (`ClassicMatcher.rank`).

Writes `classic.csv` (one row per query, with a header) and `classic_summary.json`.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import librosa
import numba
import numpy as np

from benchmarks.evaluate import mir1k_voices, summarise, synthetic_hums
from converter.package import catalogue_songs
from device.frontend import FrontendConfig
from training.melody import Note

FRAME_RATE_HZ = 10.0  # contour frames per second, queries and references alike
MAX_GAP_S = 0.8  # unvoiced stretches (rests) are cut to this
OUTLIER_SEMITONES = 15.0  # voiced frames this far from the median count as unvoiced
COST_CLIP_SEMITONES = 3.0
# Screening of every reference: a few residual key shifts, each tolerating small errors.
SCREEN_SHIFTS_SEMITONES = (-1.2, 0.0, 1.2)
SCREEN_TOLERANCE_SEMITONES = 0.4
SHORTLIST = 50  # the best screened references, aligned again exactly:
KEY_SHIFTS_SEMITONES = (-2.5, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5)
PYIN_FMIN_HZ = 60.0  # B1: below any male hum
PYIN_FMAX_HZ = 2100.0  # C7: above any whistle
PYIN_HOP_S = 0.02
PYIN_FRAME_S = 0.064  # two periods of 31 Hz: room for the lowest pitch
PYIN_RESOLUTION_SEMITONES = 0.25  # pYIN's pitch bins; 0.1 costs 7x the time
PV_FRAME_S = 0.02  # MIR-1K .pv: one value per 20 ms, first frame centred at 20 ms
FIELDS = ("set", "query", "truth", "rank", "seconds", "time_ms")


def query_contour(audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """The pitch contour of a hummed, sung or whistled query.

    pYIN (librosa) with a 64 ms frame every 20 ms, centred frames padded with zeros,
    then `frames_contour`.

    Args:
        audio: float32 array (n_samples,), mono.
        sample_rate_hz: rate of `audio`.

    Returns:
        float32 array (n_frames,): MIDI semitones at FRAME_RATE_HZ, gaps filled (see
        the module docstring); empty when nothing is voiced.
    """
    audio = np.asarray(audio, dtype=np.float32)
    hop = round(PYIN_HOP_S * sample_rate_hz)
    frame = 1 << int(np.ceil(np.log2(PYIN_FRAME_S * sample_rate_hz)))
    if audio.size < frame or not np.any(audio):
        return np.zeros(0, dtype=np.float32)
    f0, voiced, _ = librosa.pyin(audio, fmin=PYIN_FMIN_HZ, fmax=PYIN_FMAX_HZ, sr=sample_rate_hz,
                                 frame_length=frame, hop_length=hop,
                                 resolution=PYIN_RESOLUTION_SEMITONES, fill_na=np.nan,
                                 center=True, pad_mode="constant")
    midi = np.where(voiced & np.isfinite(f0), librosa.hz_to_midi(np.where(f0 > 0, f0, 1.0)), np.nan)
    return frames_contour(midi, hop / sample_rate_hz)


def frames_contour(midi: np.ndarray, frame_s: float) -> np.ndarray:
    """A contour from frame-wise pitches: gaps held and capped, resampled to FRAME_RATE_HZ.

    Args:
        midi: float array (n_frames,): MIDI semitones, NaN (or <= 0) where unvoiced.
        frame_s: seconds between frames.

    Returns:
        float32 array: the voiced frames (less any further than OUTLIER_SEMITONES from
        their median: spurious pitches, e.g. of the accompaniment at pYIN's floor),
        each unvoiced run between them replaced by the previous pitch held for at most
        MAX_GAP_S, then the median of each 1 / FRAME_RATE_HZ bin; empty when no frame
        is voiced.
    """
    midi = np.asarray(midi, dtype=np.float64)
    voiced = np.isfinite(midi) & (midi > 0)
    if not voiced.any():
        return np.zeros(0, dtype=np.float32)
    voiced &= np.abs(midi - np.median(midi[voiced])) <= OUTLIER_SEMITONES
    idx = np.flatnonzero(voiced)
    midi = midi[idx[0]:idx[-1] + 1]
    voiced = voiced[idx[0]:idx[-1] + 1]
    held = midi[np.maximum.accumulate(np.where(voiced, np.arange(midi.size), 0))]
    # Keep every voiced frame and the first MAX_GAP_S of each unvoiced run.
    run_start = np.maximum.accumulate(np.where(voiced, np.arange(midi.size) + 1, 0))
    keep = voiced | (np.arange(midi.size) - run_start < round(MAX_GAP_S / frame_s))
    held = held[keep]
    per_bin = 1.0 / (FRAME_RATE_HZ * frame_s)
    bins = (np.arange(held.size) / per_bin).astype(np.int64)
    return _bin_medians(held, bins)


def _bin_medians(values: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """float32 array (bins[-1] + 1,): median of `values` in each (sorted, gapless) bin."""
    bounds = np.flatnonzero(np.diff(bins)) + 1
    return np.array([np.median(chunk) for chunk in np.split(values, bounds)], dtype=np.float32)


def notes_contour(notes: tuple[Note, ...] | list[Note]) -> np.ndarray:
    """The step contour of a monophonic melody, as `frames_contour` would see it sung.

    Each note holds until the next onset, but a rest after a note lasts at most
    MAX_GAP_S; the step function is sampled at FRAME_RATE_HZ from the first onset.

    Returns:
        float32 array (n_frames,): MIDI semitones.
    """
    if not notes:
        return np.zeros(0, dtype=np.float32)
    starts = np.array([n.start_s for n in notes])
    ends = np.array([n.end_s for n in notes])
    pitches = np.array([n.pitch for n in notes], dtype=np.float32)
    spans = np.minimum(np.diff(np.append(starts, ends[-1])),
                       np.maximum(ends - starts, 0.0) + MAX_GAP_S)
    onsets = np.concatenate([[0.0], np.cumsum(spans)])
    times = np.arange(int(np.ceil(onsets[-1] * FRAME_RATE_HZ))) / FRAME_RATE_HZ
    return pitches[np.clip(np.searchsorted(onsets, times, side="right") - 1, 0, pitches.size - 1)]


def pv_contour(path: Path) -> np.ndarray:
    """The contour of a MIR-1K hand-labelled pitch file (.pv: MIDI per 20 ms, 0 = unvoiced)."""
    return frames_contour(np.loadtxt(path, dtype=np.float64, ndmin=1), PV_FRAME_S)


def _key_normalised_query(contour: np.ndarray) -> np.ndarray:
    """float32 array like `contour`, minus its mean."""
    q = contour.astype(np.float64)
    return (q - q.mean()).astype(np.float32)


def _window_means(cumsum: np.ndarray, ref_ends: np.ndarray, length: int) -> np.ndarray:
    """float32 array (n_frames,): mean of refs[s : s + length], cut at each reference's end.

    Args:
        cumsum: float64 array (n_frames + 1,): 0, then the running sum of the
            concatenated references.
        ref_ends: int64 array (n_frames,): where the reference holding each frame ends.
    """
    position = np.arange(ref_ends.size)
    stop = np.minimum(position + length, ref_ends)
    return ((cumsum[stop] - cumsum[position]) / (stop - position)).astype(np.float32)


@numba.njit(cache=True, fastmath=True)
def _subsequence_dtw(query, refs, keys, starts, floors, shift, tolerance, clip, costs, ends):  # pragma: no cover
    """Best subsequence-DTW cost of `query` in each reference (see the module docstring).

    Args:
        query: float32 (n,), key-normalised.
        refs: float32 (total,), the references concatenated.
        keys: float32 (total,), local key of the window starting at each frame.
        starts: int64 (n_regions + 1,), where each region to search starts in `refs`
            (and where the last ends).
        floors: int64 (n_regions,), where the reference holding each region starts (the
            local key of a window reaching before it is taken there).
        shift: residual key shift (semitones) subtracted from the query.
        tolerance: pitch differences up to this cost nothing (semitones); larger ones
            cost the excess.
        clip: frame cost ceiling (applied after the tolerance).
        costs: float32 (n_regions,) out: the mean frame cost of the best alignment.
        ends: int64 (n_regions,) out: the reference frame where it ends (index into refs).
    """
    n = query.size
    inf, zero = np.float32(np.inf), np.float32(0.0)
    columns = np.empty((3, n), np.float32)  # D[:, j], D[:, j - 1], D[:, j - 2] in turn
    local = np.empty(n, np.float32)
    for r in range(starts.size - 1):
        a, b, floor = starts[r], starts[r + 1], floors[r]
        columns[:] = inf
        best, best_end = inf, a
        for j in range(a, b):
            current, prev1, prev2 = columns[j % 3], columns[(j - 1) % 3], columns[(j - 2) % 3]
            # The window of query frame i starts at j - i, not before the reference.
            level = refs[j] + shift
            inside = min(n, j - floor + 1)
            for i in range(inside):
                local[i] = min(max(abs(query[i] - level + keys[j - i]) - tolerance, zero), clip)
            first_key = keys[floor]
            for i in range(inside, n):
                local[i] = min(max(abs(query[i] - level + first_key) - tolerance, zero), clip)
            # Steps (1,1), (1,2) and (2,1); the last also pays for query frame i - 1.
            current[0] = local[0]
            if n > 1:
                current[1] = local[1] + min(prev1[0], prev2[0])
            for i in range(2, n):
                current[i] = local[i] + min(min(prev1[i - 1], prev2[i - 1]), prev1[i - 2] + local[i - 1])
            if current[n - 1] < best:
                best, best_end = current[n - 1], j
        costs[r] = best / n
        ends[r] = best_end


class ClassicMatcher:
    """Ranks references by their best subsequence-DTW alignment with a query contour.

    Args:
        references: song id -> contour (float array (n_frames,), MIDI semitones at
            FRAME_RATE_HZ, as `notes_contour`, `pv_contour` or `query_contour` make).
            Empty contours are ignored.
    """

    def __init__(self, references: dict[str, np.ndarray]):
        items = [(k, np.asarray(v, dtype=np.float32)) for k, v in references.items() if len(v)]
        self.song_ids = [k for k, _ in items]
        self.starts = np.cumsum([0] + [v.size for _, v in items]).astype(np.int64)
        self.refs = np.concatenate([v for _, v in items]) if items else np.zeros(0, np.float32)
        self._cumsum = np.concatenate([[0.0], np.cumsum(self.refs, dtype=np.float64)])
        self._ref_ends = np.repeat(self.starts[1:], np.diff(self.starts))

    def rank(self, contour: np.ndarray) -> list[tuple[str, float]]:
        """(song id, cost) of every reference, best first.

        Two passes. Screening aligns the query with every reference at each of
        SCREEN_SHIFTS_SEMITONES, forgiving SCREEN_TOLERANCE_SEMITONES of every frame's
        difference (so that a local key estimate off by up to about 1.6 semitones still
        finds its song). The SHORTLIST best are then aligned again exactly, around
        their best screening match, at each of KEY_SHIFTS_SEMITONES.

        Args:
            contour: float array (n_frames,) from `query_contour`.

        Returns:
            The shortlist first, by cost = mean clipped semitone distance per query
            frame of the best exact alignment (0 = identical up to key and tempo); then
            the other references by their screening cost, which is more lenient and so
            does not compare with the shortlist's. Empty when the contour has fewer than
            2 frames (no pitch: nothing to match) or there are no references.
        """
        if len(contour) < 2 or not self.song_ids:
            return []
        query = _key_normalised_query(np.asarray(contour))
        keys = _window_means(self._cumsum, self._ref_ends, query.size)
        n_refs = len(self.song_ids)
        screened, screened_ends = np.full(n_refs, np.inf, np.float32), np.zeros(n_refs, np.int64)
        costs, ends = np.empty(n_refs, np.float32), np.empty(n_refs, np.int64)
        for shift in SCREEN_SHIFTS_SEMITONES:
            _subsequence_dtw(query, self.refs, keys, self.starts, self.starts[:-1], np.float32(shift),
                             np.float32(SCREEN_TOLERANCE_SEMITONES), np.float32(COST_CLIP_SEMITONES),
                             costs, ends)
            better = costs < screened
            screened[better], screened_ends[better] = costs[better], ends[better]
        order = np.argsort(screened, kind="stable")
        head = [(r, self._exact_cost(query, keys, r, int(screened_ends[r]))) for r in order[:SHORTLIST]]
        head.sort(key=lambda item: item[1])
        return ([(self.song_ids[r], cost) for r, cost in head]
                + [(self.song_ids[r], float(screened[r])) for r in order[SHORTLIST:]])

    def _exact_cost(self, query: np.ndarray, keys: np.ndarray, r: int, end: int) -> float:
        """The best cost over KEY_SHIFTS_SEMITONES of reference r, searched up to `end`."""
        # The longest alignment the steps allow, and some slack: the lenient screening
        # may end its best alignment a little off the exact one.
        slack = query.size // 4 + 2
        a = max(end - 2 * query.size - slack, int(self.starts[r]))
        b = min(end + slack, int(self.starts[r + 1]))
        window, floor = np.array([a, b], dtype=np.int64), self.starts[r:r + 1]
        cost, cost_end = np.empty(1, np.float32), np.empty(1, np.int64)
        best = np.inf
        for shift in KEY_SHIFTS_SEMITONES:
            _subsequence_dtw(query, self.refs, keys, window, floor, np.float32(shift), np.float32(0.0),
                             np.float32(COST_CLIP_SEMITONES), cost, cost_end)
            best = min(best, float(cost[0]))
        return best


def references(songs: list, pitch_dir: Path) -> dict[str, np.ndarray]:
    """Song id -> contour: each song's melody, then each mir1k-dev clip's .pv (by stem)."""
    contours = {song.song_id: notes_contour(song.melody) for song in songs}
    contours.update({path.stem: pv_contour(path) for path in sorted(pitch_dir.glob("*.pv"))})
    return contours


def _row(set_name: str, query: str, truth: str, ranking: list[tuple[str, float]],
         seconds: float, elapsed_s: float) -> dict:
    ids = [song_id for song_id, _ in ranking]
    return {"set": set_name, "query": query, "truth": truth,
            "rank": ids.index(truth) + 1 if truth in ids else 0,
            "seconds": round(seconds, 2), "time_ms": round(elapsed_s * 1000, 1)}


def _identify(matcher: ClassicMatcher, audio: np.ndarray, rate: int) -> tuple[list, float]:
    """(ranking, CPU seconds taken): pitch tracking plus matching, as one query costs.

    CPU time of the process, not wall time: the development machine is shared, and
    everything here runs on one thread, so on an idle core the two agree.
    """
    started = time.process_time()
    ranking = matcher.rank(query_contour(audio, rate))
    return ranking, time.process_time() - started


def warm_up(matcher: ClassicMatcher, rate: int) -> None:
    """Compiles pYIN's and the matcher's kernels, so that no query's time includes it."""
    tone = np.sin(2 * np.pi * 220.0 * np.arange(rate) / rate).astype(np.float32)
    _identify(matcher, tone, rate)


def query_rows(shared_data: Path, matcher: ClassicMatcher, n: int, seed: int, rate: int) -> list[dict]:
    """Rows for (a) and (b): the very queries `benchmarks.evaluate` draws (its generators)."""
    rows = []
    for song, start_s, hum in synthetic_hums(shared_data, n, seed, rate):
        ranking, elapsed = _identify(matcher, hum.audio, rate)
        rows.append(_row("synthetic", f"{song.song_id}@{start_s:.1f}", song.song_id, ranking,
                         hum.audio.size / rate, elapsed))
    for stem, name, query in mir1k_voices(shared_data, seed, rate):
        ranking, elapsed = _identify(matcher, query, rate)
        rows.append(_row("mir1k", name, stem, ranking, query.size / rate, elapsed))
    return rows


def _summary(rows: list[dict]) -> dict:
    """`benchmarks.evaluate.summarise` without its decision fields (this baseline has none)."""
    summary = summarise([dict(r, decision="") for r in rows])
    return {k: v for k, v in summary.items() if k not in ("match_decisions", "correct_matches")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="directory for the CSV and summary")
    parser.add_argument("--synthetic", type=int, default=100, help="synthetic queries")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rate = FrontendConfig().sample_rate_hz
    songs = catalogue_songs(args.shared_data)
    mir1k = args.shared_data / "mir1k-dev"
    matcher = ClassicMatcher(references(songs, mir1k / "pitch"))
    warm_up(matcher, rate)
    rows = query_rows(args.shared_data, matcher, args.synthetic, args.seed, rate)
    with open(args.out / "classic.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    summary = {
        "synthetic": _summary([r for r in rows if r["set"] == "synthetic"]),
        "mir1k": _summary([r for r in rows if r["set"] == "mir1k"]),
        "references": len(matcher.song_ids), "reference_frames": int(matcher.refs.size),
        "frame_rate_hz": FRAME_RATE_HZ,
    }
    (args.out / "classic_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
