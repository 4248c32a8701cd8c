"""Statistics of real amateur singing, fitted from hand-labelled pitch tracks.

The MIR-1K development labels (`mir1k-dev/pitch/*.pv`: one MIDI value per 20 ms frame,
the first centred at 20 ms, 0 where unvoiced; clips named singer_song_clip) come without
scores, so every statistic is estimated from the tracks alone:

- Notes. A voiced run is cut where the pitch stays more than `_SPLIT_SEMITONES` away
  (same side) from the median of the current piece's last `_LEVEL_FRAMES` frames for
  `_SPLIT_FRAMES` frames in a row; the cut falls on the first frame that left. Frames
  farther than `_SPLIT_SEMITONES` from a piece's median are trimmed off both of its
  ends; what remains is a note if it lasts at least `_MIN_NOTE_FRAMES` frames and its
  linear trend stays below `_MAX_NOTE_SLOPE` semitones/s. Other pieces are glides,
  scoops or ornaments. Two notes are connected when no unvoiced frame lies between them.
  A note's pitch is its median, its time the centre of its frames.
- Drift and intonation sd, per singer. Every pair of notes i, j within a clip gives
  cos(2 pi (p_i - p_j - g (t_i - t_j))) for a drift g; pooled over the P ordered pairs
  of all the singer's clips (sum over clips of |sum_k exp(2 pi i (p_k - g t_k))|^2 - n,
  over P) it estimates rho^2(g). The drift is the g within
  +-`_MAX_DRIFT_SEMITONES_PER_S` that maximises it. Under independent Gaussian note
  errors of sd s around a drifting semitone grid (of any tuning), rho^2 at the true g
  is exp(-4 pi^2 s^2), so s = sqrt(-ln rho^2) / (2 pi). The tuning and wrong notes drop
  out (a note a whole semitone off counts as in tune). Were the notes' fractional
  parts uniform, rho^2 would scatter with sd 1/sqrt(P); a maximum below
  `_RESOLVED_SDS` / sqrt(P) is not told apart from that: the singer's drift is then
  NaN and the sd `_MAX_INTONATION_SD`, a stand-in for "above the resolution limit
  sqrt(-ln(3 / sqrt(P))) / (2 pi)" (about 0.3 semitone for 40 clips). Every clip of a
  singer gets the singer's values. Why pooled: with 10-20 notes of about 0.3 semitone
  error per clip, rho^2 is about 0.03, far below the noise of one clip's 100-300 pairs,
  and a clip's own drift is no better resolved. Biases: clips that drift differently
  average out and flatten rho^2, which reads as intonation error; the labels' steps of
  about 0.2 semitone add about 0.06 in quadrature; pitch bends within notes and
  mis-segmented notes count as intonation error; the singers sang along with an
  accompaniment, which holds drift down.
- Vibrato, per clip. On notes of at least `_VIBRATO_MIN_S`: the pitch minus its linear
  trend, Hann-windowed and zero-padded to `_VIBRATO_FFT_FRAMES` frames; the highest
  spectral peak within `_VIBRATO_BAND_HZ` and at least two cycles per note (a local
  maximum, not a band edge) gives the rate, and the amplitude of a least-squares
  sinusoid at that rate (plus a line) the depth, as the peak deviation in semitones.
  Without a clear peak (the sinusoid explains less than `_VIBRATO_MIN_EXPLAINED` of the
  variance, or is below `_VIBRATO_MIN_DEPTH`) the depth is 0 and the note has no rate.
  The clip's rate is the median over notes with vibrato (NaN when none has any); its
  depth the mean over all long notes, zeros included, so a singer who shakes half the
  notes gets half the depth. Biases: vibrato that fades in reads shallow; the labels'
  20 ms frames and steps of about 0.2 semitone hide depths under about 0.1.
- Glide, per clip. Between connected notes at least `_MIN_GLIDE_INTERVAL` semitones
  apart, the time the pitch takes from 10% to 90% of the way between the two notes'
  pitches (crossings interpolated between frames), divided by 0.59: the 10-90% share
  of a raised-cosine glide, the shape `training.hum` sings. The clip's value is the
  median (NaN without such a pair). Biases: vibrato at either end stretches or shortens
  the crossing; a jump within one frame still reads 27 ms.
- Timing, per clip. Onsets are the start of voicing for a note after a rest and, for
  a connected note, the passage halfway between the two notes' pitches (for steps of
  at least `_MIN_GLIDE_INTERVAL`; else the middle of the frames between them).
  Inter-onset intervals (IOIs) up to `_MAX_IOI_S` are matched to multiples k u
  (k = 1..4) of a unit u: starting from their 25th percentile (the shortest common
  IOI), u and the k are refitted by least squares five times. The jitter is
  sqrt(sum e^2 / (n - 1) / 2) of the residuals e: the sd of independent errors on each
  onset that would give IOI errors of that size. Biases:
  rubato, tempo drift, dotted or triplet rhythms and notes split by the segmentation
  all add to it, as does vibrato, which moves the halfway passage (about 0.02 s in
  quadrature for 0.3 semitone of vibrato); an error past u/2 is rounded to the next
  multiple and counts small. On MIR-1K the residuals spread over most of +-u/2, so the
  value sits near that ceiling (u / sqrt(24) for u of about 0.3 s): read it as "onsets
  wander by up to about this much", rhythm the grid misses included.
- Note duration, per clip: the median length of the notes' stable parts (a little
  shorter than the sung notes).

Run `python -m training.singing_stats --shared-data ../shared/data --out
training/singing_stats.json` to refit the packaged file that `load` reads.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import sys
from pathlib import Path

import numpy as np

FRAME_RATE_HZ = 50.0
FIRST_FRAME_S = 0.02
STATISTICS = ("intonation_sd_semitones", "drift_semitones_per_10s", "vibrato_rate_hz",
              "vibrato_depth_semitones", "glide_s", "timing_jitter_s", "note_duration_s")
_SPLIT_SEMITONES = 0.6
_SPLIT_FRAMES = 3
_LEVEL_FRAMES = 25
_MIN_NOTE_FRAMES = 5
_MAX_NOTE_SLOPE = 4.0  # semitones per second
_MAX_DRIFT_SEMITONES_PER_S = 0.1
_MAX_INTONATION_SD = 0.4
_RESOLVED_SDS = 3.0
_VIBRATO_MIN_S = 0.4
_VIBRATO_BAND_HZ = (3.0, 9.0)
_VIBRATO_MIN_EXPLAINED = 0.5
_VIBRATO_MIN_DEPTH = 0.1
_VIBRATO_FFT_FRAMES = 1024
_MIN_GLIDE_INTERVAL = 1.0
_RAISED_COSINE_10_90 = 0.59  # (arccos(-0.8) - arccos(0.8)) / pi
_MAX_IOI_S = 2.0
_MIN_IOIS = 4


@dataclasses.dataclass(frozen=True, eq=False)
class SingingStats:
    """Per-clip estimates from `fit`: each array is read-only float64 (n_clips,), NaN
    where a clip gave no estimate (no vibrato, no connected leap, too few notes).

    Attributes:
        clips: clip names, e.g. "Ani_1_01".
        singers: the singer of each clip (the name up to the first "_").
        intonation_sd_semitones: sd of each note's pitch error (the singer's value;
            0.4 stands for "not resolved, above about 0.3").
        drift_semitones_per_10s: linear pitch drift, negative = going flat (the
            singer's value, NaN where not resolved).
        vibrato_rate_hz: median vibrato rate of the notes with vibrato.
        vibrato_depth_semitones: mean peak deviation over notes of 0.4 s or more.
        glide_s: raised-cosine duration of the transitions between connected notes.
        timing_jitter_s: sd of each onset's error around a grid of note values.
        note_duration_s: median duration of the notes' stable parts.
    """

    clips: tuple[str, ...]
    singers: tuple[str, ...]
    intonation_sd_semitones: np.ndarray
    drift_semitones_per_10s: np.ndarray
    vibrato_rate_hz: np.ndarray
    vibrato_depth_semitones: np.ndarray
    glide_s: np.ndarray
    timing_jitter_s: np.ndarray
    note_duration_s: np.ndarray


@dataclasses.dataclass(frozen=True)
class NoteSpan:
    """A note's stable core: frames [start, stop) of voiced run `run`, from `run_start`."""

    run: int
    run_start: int
    start: int
    stop: int


def segment(track: np.ndarray) -> list[NoteSpan]:
    """Splits a pitch track into notes (see the module docstring).

    Args:
        track: float64 array (n_frames,): MIDI pitch per frame, 0 where unvoiced.

    Returns:
        The notes in time order.
    """
    voiced = np.concatenate([[0], (track > 0).astype(np.int8), [0]])
    run_starts = np.flatnonzero(np.diff(voiced) == 1)
    run_stops = np.flatnonzero(np.diff(voiced) == -1)
    notes = []
    for run, (a, b) in enumerate(zip(run_starts, run_stops)):
        cuts, start, away, side = [a], a, 0, 0
        for i in range(a + 1, b):
            deviation = track[i] - np.median(track[max(start, i - _LEVEL_FRAMES):i])
            new_side = int(np.sign(deviation)) if abs(deviation) > _SPLIT_SEMITONES else 0
            away = away + 1 if new_side != 0 and new_side == side else int(new_side != 0)
            side = new_side
            if away == _SPLIT_FRAMES:
                start, away, side = i - _SPLIT_FRAMES + 1, 0, 0
                cuts.append(start)
        for lo, hi in zip(cuts, cuts[1:] + [b]):
            piece = track[lo:hi]
            inside = np.flatnonzero(np.abs(piece - np.median(piece)) <= _SPLIT_SEMITONES)
            if inside.size == 0 or inside[-1] + 1 - inside[0] < _MIN_NOTE_FRAMES:
                continue
            start, stop = lo + inside[0], lo + inside[-1] + 1
            slope = np.polyfit(np.arange(stop - start) / FRAME_RATE_HZ, track[start:stop], 1)[0]
            if abs(slope) < _MAX_NOTE_SLOPE:
                notes.append(NoteSpan(run=run, run_start=int(a), start=int(start), stop=int(stop)))
    return notes


def _tuning(clip_pitches: list[np.ndarray], clip_times_s: list[np.ndarray]
            ) -> tuple[float, float]:
    """(drift in semitones per second, intonation sd in semitones) of one singer.

    Args:
        clip_pitches, clip_times_s: per clip, float64 arrays (n_notes,): each note's
            MIDI pitch and time.

    Returns:
        The drift maximising the pooled pair concordance rho^2 and the sd it implies;
        (NaN, `_MAX_INTONATION_SD`) where rho^2 is not resolved (see the module
        docstring).
    """
    pairs = sum(p.size * (p.size - 1) for p in clip_pitches)
    if pairs == 0:
        return math.nan, _MAX_INTONATION_SD
    slopes = np.linspace(-_MAX_DRIFT_SEMITONES_PER_S, _MAX_DRIFT_SEMITONES_PER_S, 201)
    concordance = np.zeros(slopes.size)
    for pitches, times_s in zip(clip_pitches, clip_times_s):
        phasors = np.exp(2j * np.pi * (pitches[None, :] - slopes[:, None] * times_s[None, :]))
        concordance += np.abs(phasors.sum(axis=1)) ** 2 - pitches.size
    best = int(np.argmax(concordance))
    rho2 = concordance[best] / pairs
    if rho2 <= _RESOLVED_SDS / math.sqrt(pairs):
        return math.nan, _MAX_INTONATION_SD
    return float(slopes[best]), math.sqrt(-math.log(rho2)) / (2.0 * math.pi)


def _vibrato(pitch: np.ndarray) -> tuple[float, float]:
    """(rate Hz or NaN, peak deviation in semitones or 0) of one note's frames."""
    n = pitch.size
    t = np.arange(n) / FRAME_RATE_HZ
    y = pitch - np.polyval(np.polyfit(t, pitch, 1), t)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(n), _VIBRATO_FFT_FRAMES))
    freqs = np.fft.rfftfreq(_VIBRATO_FFT_FRAMES, 1.0 / FRAME_RATE_HZ)
    lowest = max(_VIBRATO_BAND_HZ[0], 2.0 * FRAME_RATE_HZ / n)
    band = np.flatnonzero((freqs >= lowest) & (freqs <= _VIBRATO_BAND_HZ[1]))
    k = band[np.argmax(spectrum[band])]
    if k in (band[0], band[-1]) or float(np.var(y)) == 0.0:
        return math.nan, 0.0
    rate = float(freqs[k])
    basis = np.column_stack([np.sin(2 * np.pi * rate * t), np.cos(2 * np.pi * rate * t),
                             np.ones(n), t])
    coefficients, *_ = np.linalg.lstsq(basis, y, rcond=None)
    explained = 1.0 - float(np.var(y - basis @ coefficients)) / float(np.var(y))
    depth = float(np.hypot(coefficients[0], coefficients[1]))
    if explained < _VIBRATO_MIN_EXPLAINED or depth < _VIBRATO_MIN_DEPTH:
        return math.nan, 0.0
    return rate, depth


def _transition(track: np.ndarray, before: NoteSpan, after: NoteSpan) -> tuple[float, float]:
    """Where and how fast the pitch moves between two connected notes.

    Returns:
        (frame index, fractional, at which the pitch passes halfway between the notes;
        raised-cosine glide duration in seconds), NaNs for steps under
        `_MIN_GLIDE_INTERVAL` semitones or without clean crossings.
    """
    low = float(np.median(track[before.start:before.stop]))
    high = float(np.median(track[after.start:after.stop]))
    if abs(high - low) < _MIN_GLIDE_INTERVAL:
        return math.nan, math.nan
    first = max(before.stop - _MIN_NOTE_FRAMES, before.start)
    share = (track[first:after.start + _MIN_NOTE_FRAMES] - low) / (high - low)
    top = np.flatnonzero(share >= 0.9)
    if top.size == 0 or not np.any(share[:top[0]] < 0.1):
        return math.nan, math.nan
    reach = int(top[0])

    def crossing(level: float) -> float:
        """Last passage through `level` before `reach`, interpolated between frames."""
        k = int(np.flatnonzero(share[:reach] < level)[-1])
        return k + (level - share[k]) / (share[k + 1] - share[k])

    glide_s = (crossing(0.9) - crossing(0.1)) / FRAME_RATE_HZ / _RAISED_COSINE_10_90
    return first + crossing(0.5), glide_s


def _timing_jitter_s(onsets_s: np.ndarray) -> float:
    """Per-onset timing error in seconds around a grid of note values; NaN for few IOIs."""
    iois = np.diff(onsets_s)
    iois = iois[iois <= _MAX_IOI_S]
    if iois.size < _MIN_IOIS:
        return math.nan
    unit = float(np.percentile(iois, 25.0))
    for _ in range(5):
        multiples = np.clip(np.round(iois / unit), 1, 4)
        unit = float(np.sum(multiples * iois) / np.sum(multiples ** 2))
    errors = iois - np.clip(np.round(iois / unit), 1, 4) * unit
    return float(np.sqrt(np.sum(errors ** 2) / (iois.size - 1) / 2.0))


def _clip_stats(track: np.ndarray, notes: list[NoteSpan]) -> dict[str, float]:
    """The per-clip statistics (vibrato, glide, timing, note duration) of one track."""
    frame_s = 1.0 / FRAME_RATE_HZ
    long_notes = [n for n in notes if (n.stop - n.start) * frame_s >= _VIBRATO_MIN_S]
    vibratos = np.array([_vibrato(track[n.start:n.stop]) for n in long_notes]).reshape(-1, 2)
    rates = vibratos[:, 0][np.isfinite(vibratos[:, 0])]
    glides, onsets = [], []
    for before, note in zip([None] + notes[:-1], notes):
        if before is not None and before.run == note.run:
            halfway, glide_s = _transition(track, before, note)
            if not np.isfinite(halfway):
                halfway = 0.5 * (before.stop - 1 + note.start)
            glides.append(glide_s)
            onsets.append(FIRST_FRAME_S + halfway * frame_s)
        else:
            onsets.append(FIRST_FRAME_S + (note.run_start - 0.5) * frame_s)
    glides = np.array(glides)
    glides = glides[np.isfinite(glides)]
    return {
        "vibrato_rate_hz": float(np.median(rates)) if rates.size else math.nan,
        "vibrato_depth_semitones": float(np.mean(vibratos[:, 1])) if long_notes else math.nan,
        "glide_s": float(np.median(glides)) if glides.size else math.nan,
        "timing_jitter_s": _timing_jitter_s(np.array(onsets)),
        "note_duration_s": float(np.median([(n.stop - n.start) * frame_s for n in notes]))
        if notes else math.nan,
    }


def fit(pitch_dir: Path) -> dict:
    """Fits every `*.pv` track in `pitch_dir` (see the module docstring).

    Returns:
        {"source", "frame_rate_hz", "clips": {"name": [...], "singer": [...],
        "n_notes": [...], statistic: [...] for each of STATISTICS},
        "summary": {statistic: {"n", "p10", "p50", "p90"} over the clips with a value}},
        JSON-ready: NaN is None.
    """
    paths = sorted(Path(pitch_dir).glob("*.pv"))
    if not paths:
        raise FileNotFoundError(f"no .pv pitch labels in {pitch_dir}")
    singers = [path.stem.split("_")[0] for path in paths]
    rows, pitches, times = [], [], []
    for path in paths:
        track = np.loadtxt(path, dtype=np.float64, ndmin=1)
        notes = segment(track)
        pitches.append(np.array([np.median(track[n.start:n.stop]) for n in notes]))
        times.append(FIRST_FRAME_S + np.array([0.5 * (n.start + n.stop - 1) for n in notes])
                     / FRAME_RATE_HZ)
        rows.append(_clip_stats(track, notes))
    for singer in sorted(set(singers)):
        mine = [k for k, name in enumerate(singers) if name == singer]
        drift, intonation_sd = _tuning([pitches[k] for k in mine], [times[k] for k in mine])
        for k in mine:
            rows[k]["drift_semitones_per_10s"] = 10.0 * drift
            rows[k]["intonation_sd_semitones"] = intonation_sd

    columns = {name: np.array([row[name] for row in rows]) for name in STATISTICS}
    summary = {}
    for name, values in columns.items():
        finite = values[np.isfinite(values)]
        p10, p50, p90 = ([round(float(v), 5) for v in np.percentile(finite, [10.0, 50.0, 90.0])]
                         if finite.size else [None] * 3)
        summary[name] = {"n": int(finite.size), "p10": p10, "p50": p50, "p90": p90}
    clips = {"name": [path.stem for path in paths], "singer": singers,
             "n_notes": [int(p.size) for p in pitches]}
    clips.update({name: [round(float(v), 5) if np.isfinite(v) else None for v in values]
                  for name, values in columns.items()})
    return {"source": f"{Path(pitch_dir).resolve().parent.name} pitch labels "
                      f"({len(paths)} clips, {len(set(singers))} singers)",
            "frame_rate_hz": FRAME_RATE_HZ, "clips": clips, "summary": summary}


@functools.cache
def load(path: Path | None = None) -> SingingStats:
    """Reads the statistics `fit` wrote; by default the file packaged beside this module."""
    path = Path(__file__).with_name("singing_stats.json") if path is None else Path(path)
    clips = json.loads(path.read_text(encoding="utf-8"))["clips"]
    arrays = {}
    for name in STATISTICS:
        values = np.array([math.nan if v is None else v for v in clips[name]], dtype=np.float64)
        values.flags.writeable = False
        arrays[name] = values
    return SingingStats(clips=tuple(clips["name"]), singers=tuple(clips["singer"]), **arrays)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fit singing statistics from MIR-1K pitch labels.")
    parser.add_argument("--shared-data", type=Path, required=True, help="the ../shared/data folder")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    fitted = fit(args.shared_data / "mir1k-dev" / "pitch")
    args.out.write_text(json.dumps(fitted, indent=1) + "\n", encoding="utf-8")
    print(f"{fitted['source']} -> {args.out}")
    print(f"{'statistic':<26}{'clips':>6}{'p10':>9}{'median':>9}{'p90':>9}")
    for name, row in fitted["summary"].items():
        cells = "".join(f"{row[k]:>9.3f}" if row["n"] else f"{'-':>9}"
                        for k in ("p10", "p50", "p90"))
        print(f"{name:<26}{row['n']:>6}{cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
