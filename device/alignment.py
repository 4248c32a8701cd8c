"""Alignment: the whole query's pitch line against a stretch of a song's melody.

Subsequence dynamic time warping with local slopes between 1/2 and 2 (steps (1,1), (1,2)
and (2,1) in query x song frames, the last two with a small penalty), one key shift for
the whole query, octave-blind pitch distance capped at `cap_semitones`. Every voiced query frame is counted exactly once, so
the cost is a mean over the query's voiced frames, comparable across songs, stretches and
tempi. Vectorised over candidates (each with its own query line, at its own tempo), keys
and song frames; the loop runs over query frames.
"""
from __future__ import annotations

import dataclasses

import numpy as np

_INF = np.float32(1e9)


@dataclasses.dataclass(frozen=True)
class AlignConfig:
    """Alignment parameters.

    Attributes:
        cap_semitones: pitch distances are capped here (a wrong note costs this much).
        silent_cost: cost (in units of the cap) of a voiced query frame on a song frame
            without melody.
        step_penalty: added for every step off the diagonal (a song frame skipped, or two
            query frames on one), so that a jumpy song melody cannot be cherry-picked; the
            query comes at the song's tempo (`matcher` resamples it), so few are needed.
    """

    cap_semitones: float = 3.0
    silent_cost: float = 0.6
    step_penalty: float = 0.15


@dataclasses.dataclass(frozen=True)
class Alignment:
    """The best alignment of the query with one candidate.

    Attributes:
        score: 1 - mean cost over voiced query frames, in [0, 1] (1: every note on pitch).
        key_semitones: the shift added to the query's pitches.
        start, end: the song frames (within the candidate's stretch) where the query's
            first and last frames land.
        path: int64 (n_query,) song frame of each query frame, or None when not asked for.
    """

    score: float
    key_semitones: float
    start: int
    end: int
    path: np.ndarray | None = None


def folded_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| in semitones, octaves ignored: values in [0, 6]."""
    return np.abs(np.mod(a - b + 6.0, 12.0) - 6.0)


_STEPS = 48  # pitch resolution of the costs: quarter semitones, one octave
_UNVOICED = 4 * _STEPS  # the table offset of an unvoiced query frame's costs


def _cost_table(config: AlignConfig) -> np.ndarray:
    """float32 (4 * _STEPS,): the cost of every octave-folded difference in quarter
    semitones (indices 0 .. 2 * _STEPS - 1), then silent_cost (song frames without
    melody), then "impossible" (padding beyond a stretch's end)."""
    steps = np.arange(2 * _STEPS)
    distance = folded_distance(steps / 4.0, 0.0)
    voiced = np.minimum(distance, config.cap_semitones) / config.cap_semitones
    return np.concatenate([voiced, np.full(_STEPS, config.silent_cost), np.full(_STEPS, _INF)]
                          ).astype(np.float32)


def align(query: np.ndarray | list[np.ndarray], stretches: list[np.ndarray], keys: np.ndarray,
          config: AlignConfig = AlignConfig(), with_path: bool = False) -> list[Alignment]:
    """Aligns the query with each song stretch under each of its keys.

    Args:
        query: float32 (n,): MIDI pitch per melody frame, 0 where none; or one such line per
            candidate (each at its candidate's tempo), all aligned in one pass.
        stretches: per candidate, float32 (m_i,) song melody (0 where none), m_i >= 1.
        keys: float (C, K): the key shifts (semitones) to try per candidate.
        with_path: also return each best path (costs memory n x C x K x M).

    Returns:
        One Alignment per candidate, in order; score 0 when its query has no voiced frame.
    """
    n_cand = len(stretches)
    if n_cand == 0:
        return []
    queries = [np.asarray(q, dtype=np.float32) for q in
               (query if isinstance(query, (list, tuple)) else [query] * n_cand)]
    keys = np.asarray(keys, dtype=np.float32)
    lengths = np.array([q.size for q in queries])
    voiced_frames = np.array([np.count_nonzero(q > 0) for q in queries])
    n, m = int(lengths.max()), max(s.size for s in stretches)
    lines = np.zeros((n_cand, n), dtype=np.float32)
    songs = np.zeros((n_cand, m), dtype=np.float32)
    valid = np.zeros((n_cand, m), dtype=bool)
    for c, (q, s) in enumerate(zip(queries, stretches)):
        lines[c, :q.size] = q
        songs[c, :s.size] = s
        valid[c, :s.size] = True
    shape = (n_cand, keys.shape[1], m)
    # Per candidate, key and song frame, the table offset of its pitch: adding the query
    # frame's pitch class gives the index of the cost (2 * _STEPS and up: no melody).
    song_steps = np.round(songs * 4).astype(np.int64)
    key_steps = np.round(keys * 4).astype(np.int64)
    base = np.mod(key_steps[:, :, None] - song_steps[:, None, :], _STEPS)
    base = np.where((songs > 0)[:, None, :], base, 2 * _STEPS)
    base = np.where(valid[:, None, :], base, 3 * _STEPS)
    # an unvoiced query frame is looked up _UNVOICED further on: free on the stretch,
    # impossible past its end; small indices, so that each frame's lookup stays cheap
    table = np.concatenate([_cost_table(config), np.zeros(3 * _STEPS, np.float32),
                            np.full(_STEPS, _INF, np.float32)])
    base = base.astype(np.int16)
    query_steps = np.where(lines > 0, np.mod(np.round(lines * 4).astype(np.int64), _STEPS), _UNVOICED
                           ).astype(np.int16)

    penalty = np.float32(config.step_penalty)
    # D[i], D[i-1], D[i-2] and the song frame where each cell's path starts, in rotating
    # buffers with two "before the stretch" columns in front (infinite cost), so that the
    # steps from one or two song frames back are views, not copies
    d_rows = [np.full((*shape[:2], m + 2), _INF, np.float32) for _ in range(3)]
    frame_type = np.int16 if m < 2 ** 15 else np.int32  # song frames: the narrower, the faster
    start_rows = [np.zeros((*shape[:2], m + 2), frame_type) for _ in range(3)]
    skip, double = np.empty(shape, np.float32), np.empty(shape, np.float32)
    take_skip, take_double = np.empty(shape, bool), np.empty(shape, bool)
    shift = np.empty(shape, frame_type)
    final_d, final_start = np.empty(shape, np.float32), np.empty(shape, np.int32)  # at each query's last frame
    columns = np.broadcast_to(np.arange(m, dtype=frame_type), shape)
    moves = np.zeros((n, *shape), dtype=np.int8) if with_path else None
    # each candidate's costs under every query pitch that occurs, looked up once: a query
    # frame then picks its plane (much cheaper than a table lookup per cell and frame)
    steps_used, step_of = np.unique(query_steps, return_inverse=True)
    planes = np.empty((n_cand, steps_used.size, *shape[1:]), np.float32)
    for c in range(n_cand):  # one candidate at a time: no index array of the planes' size
        planes[c] = table[base[c] + steps_used[:, None, None]]
    step_of = step_of.reshape(n_cand, n)
    cand = np.arange(n_cand)
    for i in range(n):
        cost = planes[cand, step_of[:, i]]
        d_row, d_prev, d_prev2 = d_rows[i % 3], d_rows[(i - 1) % 3], d_rows[(i - 2) % 3]
        s_row, s_prev, s_prev2 = start_rows[i % 3], start_rows[(i - 1) % 3], start_rows[(i - 2) % 3]
        d, start = d_row[..., 2:], s_row[..., 2:]
        if i == 0:
            d[...] = cost
            start[...] = columns
        else:
            diagonal = d_prev[..., 1:-1]  # from (i-1, j-1)
            np.add(d_prev[..., :-2], penalty, out=skip)  # from (i-1, j-2)
            if i >= 2:  # from (i-2, j-1), query frames i-1 and i both on song frame j
                np.add(d_prev2[..., 1:-1], cost_prev, out=double)
            else:  # row -1 is "before the start": free, and the path starts at j
                double[...] = cost_prev
            double += penalty
            np.less(skip, diagonal, out=take_skip)
            np.minimum(skip, diagonal, out=d)
            np.less(double, d, out=take_double)
            np.minimum(double, d, out=d)
            d += cost
            # the start along the chosen step, by arithmetic (masked copies cost several times more)
            np.subtract(s_prev[..., :-2], s_prev[..., 1:-1], out=shift)
            np.multiply(shift, take_skip, out=shift)
            np.add(s_prev[..., 1:-1], shift, out=start)
            np.subtract(s_prev2[..., 1:-1] if i >= 2 else columns, start, out=shift)
            np.multiply(shift, take_double, out=shift)
            start += shift
            if moves is not None:
                moves[i] = np.where(take_double, 2, take_skip.astype(np.int8))
        ending = lengths == i + 1
        if ending.any():
            final_d[ending], final_start[ending] = d[ending], start[ending]
        cost_prev = cost
    flat = final_d.reshape(n_cand, -1)
    best = flat.argmin(axis=1)
    results = []
    for c in range(n_cand):
        if voiced_frames[c] == 0:
            results.append(Alignment(0.0, 0.0, 0, 0, None))
            continue
        k, end = divmod(int(best[c]), m)
        total = float(flat[c, best[c]])
        score = max(0.0, 1.0 - total / int(voiced_frames[c])) if total < _INF / 2 else 0.0
        path = _backtrack(moves[:lengths[c], c, k], end) if moves is not None else None
        results.append(Alignment(score, float(keys[c, k]), int(final_start[c, k, end]), end, path))
    return results


def _backtrack(moves: np.ndarray, end: int) -> np.ndarray:
    """int64 (n,): the song frame of each query frame along the best path ending at `end`."""
    n = moves.shape[0]
    path = np.zeros(n, dtype=np.int64)
    i, j = n - 1, end
    while i >= 0:
        path[i] = j
        if i == 0 or j <= 0:  # j <= 0 before the first row: an impossible path (score 0) ends here
            break
        move = int(moves[i, j])
        if move == 0:
            i, j = i - 1, j - 1
        elif move == 1:
            i, j = i - 1, j - 2
        else:
            path[i - 1] = j
            i, j = i - 2, j - 1
    return np.maximum(path, 0)
