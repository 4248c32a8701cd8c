"""Mined positive pairs: another version of a song, aligned to its recording by a model.

Hum to Search mined extra positives by aligning versions of a song by different artists
with a preliminary model. Here a version is the same passage at another tempo and key,
arranged from another seed (and rendered with another soundfont where there is one).
The time map from version frames to recording frames comes from the model alone:
windows of both spectrograms are embedded every `hop_frames`, and the straight line
through their similarity matrix with the highest mean (slope within the allowed tempo
ratios, covering most of both sides, since both play the same passage) maps each
version frame to a recording frame. A version differs from its recording by one tempo
factor, so a line is the exact shape of the map; a slope-constrained DTW path, even
smoothed, was less accurate (0.81-0.91 of frames within 0.5 s against 0.99 for the line,
on the same 40 songs), its ends wandering at the borders of the matrix.

The cosine similarity is double-centred (each window's mean similarity to the other
side removed: some windows resemble everything) and scaled to unit standard deviation;
the line's mean on that scale is the confidence. The known tempo factor only serves to
measure the mining, and to choose `min_confidence`:

    python -m training.mine --shared-data ../shared/data --model assets/model --n 40
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from device import frontend as fe
from device import manifest as mf
from device.embedder import Embedder
from training import corpora
from training.config import DataConfig
from training.melody import Chord, Note, Song
from training.render import Renderer, find_soundfonts

_COARSE_SLOPE_STEP = 0.01  # log-slope step of the first search (1 %)
_COARSE_CENTRE_STEP = 0.5  # windows
_FINE_SLOPE_SPAN, _FINE_CENTRE_SPAN, _FINE_POINTS = 0.02, 1.0, 41  # refinement around the best
_REPORTED_THRESHOLDS = (-np.inf, 1.0, 1.2, 1.5)  # besides MineConfig.min_confidence


@dataclasses.dataclass(frozen=True)
class MineConfig:
    """How versions are drawn, aligned and accepted.

    Attributes:
        hop_frames: frames between embedded window starts, in the version and the recording.
        min_slope, max_slope: recording frames per version frame that a line may have
            (a version tempo_factor times faster has slope tempo_factor).
        min_overlap: the line must cover this fraction of the version's windows and of
            the recording's (a version plays the same passage as the recording).
        min_confidence: alignments with a lower confidence are rejected (see `align`).
            1.3 lies above all 546 wrong-song alignments of a 212-song development set
            (OpenEWLD, POP909, Nottingham, Essen, written tunes; 45 s excerpts or whole
            short tunes), whose highest was 1.23; 88 % of the right ones pass it.
        tempo_range: (slowest, fastest) version tempo as a factor of the song's.
        max_transpose_semitones: versions are transposed by up to this many semitones.
    """

    hop_frames: int = 25
    min_slope: float = 0.5
    max_slope: float = 2.0
    min_overlap: float = 0.9
    min_confidence: float = 1.3
    tempo_range: tuple[float, float] = (0.8, 1.25)
    max_transpose_semitones: int = 5

    @staticmethod
    def default() -> MineConfig:
        return MineConfig()


@dataclasses.dataclass(frozen=True)
class Version:
    """Another version of a song: tempo factor (> 1 faster), transposition, arrangement seed."""

    tempo_factor: float
    transpose_semitones: int
    seed: int

    @staticmethod
    def sample(rng: np.random.Generator, config: MineConfig) -> Version:
        """Tempo log-uniform in config.tempo_range, transposition uniform, a fresh seed."""
        factor = float(np.exp(rng.uniform(*np.log(config.tempo_range))))
        steps = int(rng.integers(-config.max_transpose_semitones, config.max_transpose_semitones + 1))
        return Version(factor, steps, int(rng.integers(2**31)))


@dataclasses.dataclass(frozen=True)
class Alignment:
    """A mined time map.

    Attributes:
        recording_frames: float32 (T_query,): the recording frame (fractional) sounding the
            same moment as each query frame, like SongPairs' hum-to-recording maps.
        confidence: mean of the scaled, double-centred similarity along the line.
    """

    recording_frames: np.ndarray
    confidence: float


@dataclasses.dataclass(frozen=True)
class MinedVersion:
    """A rendered version and its alignment to the recording (None: rejected)."""

    version: Version
    version_db: np.ndarray  # float16 (T_version, n_bins)
    alignment: Alignment | None


def version_of(song: Song, tempo_factor: float, transpose_semitones: float) -> Song:
    """The song tempo_factor times faster (every time and beat_s divided by it), its
    melody, accompaniment and chords transposed by a whole number of semitones."""
    steps = int(transpose_semitones)
    if steps != transpose_semitones:
        raise ValueError(f"transposition must be whole semitones, got {transpose_semitones}")

    def note(n: Note) -> Note:
        return Note(n.pitch + steps, n.start_s / tempo_factor, n.end_s / tempo_factor, n.velocity)

    def chord(c: Chord) -> Chord:
        return Chord(c.start_s / tempo_factor, c.end_s / tempo_factor, tuple(p + steps for p in c.pitches))

    return dataclasses.replace(
        song, melody=tuple(map(note, song.melody)), accompaniment=tuple(map(note, song.accompaniment)),
        chords=tuple(map(chord, song.chords)), beat_s=song.beat_s / tempo_factor)


def version_audio(song: Song, version: Version, renderer: Renderer, start_s: float,
                  duration_s: float) -> np.ndarray:
    """The version playing the song's span [start_s, start_s + duration_s).

    Returns:
        float32 (n_samples,): the span lasts duration_s / tempo_factor seconds.
    """
    return renderer.render(version_of(song, version.tempo_factor, version.transpose_semitones),
                           seed=version.seed, start_s=start_s / version.tempo_factor,
                           duration_s=duration_s / version.tempo_factor)


def render_version(song: Song, version: Version, renderer: Renderer, start_s: float,
                   duration_s: float, frontend: fe.FrontendConfig) -> np.ndarray:
    """float16 (T_version, n_bins) dB spectrogram of `version_audio`."""
    audio = version_audio(song, version, renderer, start_s, duration_s)
    return fe.log_spectrogram(audio, frontend).astype(np.float16)


def true_map(n_frames: int, tempo_factor: float, frontend: fe.FrontendConfig) -> np.ndarray:
    """The exact map, for measuring only: float32 (n_frames,) recording frame per version
    frame, when both render the same song span (the version tempo_factor times faster)."""
    hop_s = frontend.hop_length_samples / frontend.sample_rate_hz
    centre_s = frontend.frame_length_samples / 2 / frontend.sample_rate_hz
    version_s = np.arange(n_frames) * hop_s + centre_s
    return ((tempo_factor * version_s - centre_s) / hop_s).astype(np.float32)


def line_means(score: np.ndarray, slopes: np.ndarray, centres: np.ndarray,
               min_overlap: float) -> np.ndarray:
    """Mean score along lines j = slope * (i - (n - 1) / 2) + centre through a matrix.

    Args:
        score: float (n, m), n and m >= 2; rows i (query windows), columns j (recording).
        slopes, centres: float (n_slopes,) and (n_centres,): the lines, j interpolated linearly.
        min_overlap: a line must lie inside the matrix on at least this fraction of the
            rows and span this fraction of the columns.

    Returns:
        float64 (n_slopes, n_centres): mean over the rows where the line is inside; -inf
        where it covers too few.
    """
    n, m = score.shape
    rows = np.arange(n)[:, None]
    out = np.full((slopes.size, centres.size), -np.inf)
    for k, slope in enumerate(slopes):
        cols = slope * (rows - (n - 1) / 2) + centres[None, :]
        inside = (cols >= 0) & (cols <= m - 1)
        lo = np.clip(np.floor(cols), 0, m - 2).astype(np.int64)
        frac = np.clip(cols - lo, 0.0, 1.0)
        values = score[rows, lo] * (1.0 - frac) + score[rows, lo + 1] * frac
        count = inside.sum(axis=0)
        enough = (count >= max(min_overlap * n, 2)) & (slope * (count - 1) + 1 >= min_overlap * m)
        out[k, enough] = np.where(inside, values, 0.0).sum(axis=0)[enough] / count[enough]
    return out


def fit_line(score: np.ndarray, config: MineConfig) -> tuple[float, float, float] | None:
    """The line with the highest mean score: a coarse grid, then a finer one around its best.

    Args:
        score: float (n, m), n and m >= 2.

    Returns:
        (slope, centre, mean score) with the line j = slope * (i - (n - 1) / 2) + centre in
        window indices, or None when no line overlaps enough.
    """
    n, m = score.shape
    slopes = np.exp(np.arange(np.log(config.min_slope), np.log(config.max_slope) + 1e-9, _COARSE_SLOPE_STEP))
    reach = config.max_slope * (n - 1) / 2
    centres = np.arange(-reach, m - 1 + reach + 1e-9, _COARSE_CENTRE_STEP)
    best = None
    for _ in range(2):
        means = line_means(score, slopes, centres, config.min_overlap)
        k, c = np.unravel_index(int(np.argmax(means)), means.shape)
        if not np.isfinite(means[k, c]):
            return best
        best = (float(slopes[k]), float(centres[c]), float(means[k, c]))
        slopes = best[0] * np.exp(np.linspace(-_FINE_SLOPE_SPAN, _FINE_SLOPE_SPAN, _FINE_POINTS))
        slopes = slopes[(slopes >= config.min_slope) & (slopes <= config.max_slope)]
        centres = best[1] + np.linspace(-_FINE_CENTRE_SPAN, _FINE_CENTRE_SPAN, _FINE_POINTS)
    return best


def align(query_db: np.ndarray, recording_db: np.ndarray, embedder: Embedder, config: MineConfig,
          frontend: fe.FrontendConfig = fe.FrontendConfig()) -> Alignment | None:
    """Maps query frames to recording frames of the same melody, from the model alone.

    Args:
        query_db: float (T_query, n_bins) dB spectrogram, e.g. of another version.
        recording_db: float (T_recording, n_bins) dB spectrogram of the recording.
        embedder: the (preliminary) embedding model.

    Returns:
        The alignment, or None when either spectrogram holds fewer than two windows or the
        confidence is below config.min_confidence.
    """
    def embed(spectrogram_db: np.ndarray) -> np.ndarray:
        return embedder.embed(fe.windows(np.asarray(spectrogram_db, dtype=np.float32),
                                         config.hop_frames, frontend))

    query, recording = embed(query_db), embed(recording_db)
    if query.shape[0] < 2 or recording.shape[0] < 2:
        return None
    similarity = query @ recording.T
    centred = (similarity - similarity.mean(axis=1, keepdims=True)
               - similarity.mean(axis=0, keepdims=True) + similarity.mean())
    line = fit_line(centred / max(float(centred.std()), 1e-12), config)
    if line is None or line[2] < config.min_confidence:
        return None
    slope, centre, confidence = line
    first_centre = (frontend.window_frames - 1) / 2  # frame at the centre of window 0
    query_windows = (np.arange(query_db.shape[0]) - first_centre) / config.hop_frames
    recording_windows = slope * (query_windows - (query.shape[0] - 1) / 2) + centre
    return Alignment((recording_windows * config.hop_frames + first_centre).astype(np.float32), confidence)


def mine_version(song: Song, recording_db: np.ndarray, start_s: float, duration_s: float,
                 renderer: Renderer, embedder: Embedder, rng: np.random.Generator, config: MineConfig,
                 frontend: fe.FrontendConfig) -> MinedVersion:
    """Renders a random version of the span [start_s, start_s + duration_s) from which
    recording_db (float (T_recording, n_bins)) was made, and aligns it to recording_db."""
    version = Version.sample(rng, config)
    version_db = render_version(song, version, renderer, start_s, duration_s, frontend)
    return MinedVersion(version, version_db, align(version_db, recording_db, embedder, config, frontend))


@dataclasses.dataclass(frozen=True)
class _Trial:
    """One measured song: its version, the matched and the wrong-song alignment."""

    song_id: str
    version: Version
    recording_frames: int
    truth: np.ndarray  # float32 (T_version,)
    matched: Alignment | None
    wrong: Alignment | None
    seconds: float


def _measure(songs: list[Song], embedder: Embedder, soundfonts: list[Path], config: MineConfig,
             frontend: fe.FrontendConfig, excerpt_s: float, seed: int) -> list[_Trial]:
    """Renders each song's excerpt and a version (with the next soundfont), aligns the
    version with its own recording and with the next song's; thresholds are not applied."""
    rng = np.random.default_rng(seed)
    unthresholded = dataclasses.replace(config, min_confidence=-np.inf)
    renderers = [Renderer(path, frontend.sample_rate_hz) for path in soundfonts]
    try:
        renders = []
        for k, song in enumerate(songs):
            started = time.perf_counter()
            start_s = float(rng.uniform(0.0, max(song.duration_s - excerpt_s, 0.0)))
            duration_s = min(excerpt_s, song.duration_s - start_s)
            audio = renderers[k % len(renderers)].render(song, int(rng.integers(2**31)), start_s=start_s,
                                                         duration_s=duration_s)
            recording_db = fe.log_spectrogram(audio, frontend)
            mined = mine_version(song, recording_db, start_s, duration_s, renderers[(k + 1) % len(renderers)],
                                 embedder, rng, unthresholded, frontend)
            renders.append((recording_db, mined, time.perf_counter() - started))
        trials = []
        for k, (song, (recording_db, mined, seconds)) in enumerate(zip(songs, renders)):
            other_db = renders[(k + 1) % len(renders)][0]
            trials.append(_Trial(song.song_id, mined.version, recording_db.shape[0],
                                 true_map(mined.version_db.shape[0], mined.version.tempo_factor, frontend),
                                 mined.alignment, align(mined.version_db, other_db, embedder, unthresholded,
                                                        frontend), seconds))
        return trials
    finally:
        for renderer in renderers:
            renderer.close()


def _errors(trial: _Trial) -> np.ndarray:
    """float64: |mined - true| recording frames, over version frames that the recording holds."""
    inside = (trial.truth >= 0) & (trial.truth <= trial.recording_frames - 1)
    return np.abs(trial.matched.recording_frames - trial.truth)[inside].astype(np.float64)


def _report(trials: list[_Trial], threshold: float, tolerance_frames: float) -> str:
    """A summary line: acceptance of matched and wrong-song alignments at the threshold
    (pairs too different in length to align at all are left out), and the error of the
    accepted maps (median, 90th percentile, fraction within tolerance_frames)."""
    matched = [t for t in trials if t.matched is not None]
    accepted = [t for t in matched if t.matched.confidence >= threshold]
    wrong = [t.wrong.confidence for t in trials if t.wrong is not None]
    line = (f"threshold {threshold:.2f}: accepted {len(accepted)}/{len(matched)} matched, "
            f"{sum(c >= threshold for c in wrong)}/{len(wrong)} wrong-song")
    if accepted:
        errors = np.concatenate([_errors(t) for t in accepted])
        line += (f"; accepted maps: median error {np.median(errors):.1f} frames, 90th percentile "
                 f"{np.percentile(errors, 90):.1f}, within {tolerance_frames:g} frames "
                 f"{np.mean(errors <= tolerance_frames):.3f}")
    return line


def main(argv: list[str] | None = None) -> int:
    defaults = MineConfig.default()
    parser = argparse.ArgumentParser(description="Measure version mining against the known tempo.")
    parser.add_argument("--shared-data", type=Path, required=True, help="the ../shared/data folder")
    parser.add_argument("--model", type=Path, required=True, help="preliminary model directory")
    parser.add_argument("--n", type=int, default=40, help="songs (OpenEWLD and POP909, seeded sample)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    manifest = mf.read(args.model, mf.MODEL_FORMAT)
    frontend = mf.check_frontend(manifest, args.model)
    embedder = Embedder(mf.check_file(args.model, manifest["model"], "model"), num_threads=1)
    songs = (corpora.load_openewld(args.shared_data / "openewld")
             + corpora.load_pop909(args.shared_data / "pop909"))
    rng = np.random.default_rng(args.seed)
    sample = [songs[i] for i in rng.choice(len(songs), size=min(args.n, len(songs)), replace=False)]
    trials = _measure(sample, embedder, find_soundfonts(), defaults, frontend,
                      DataConfig.default().excerpt_s, args.seed)
    for t in trials:
        matched = f"{t.matched.confidence:.2f}" if t.matched else "-"
        wrong = f"{t.wrong.confidence:.2f}" if t.wrong else "-"
        error = f"{np.median(_errors(t)):.1f}" if t.matched else "-"
        print(f"{t.song_id}: tempo {t.version.tempo_factor:.2f}, {t.version.transpose_semitones:+d} st, "
              f"confidence {matched} (wrong song {wrong}), median error {error} frames, {t.seconds:.2f} s",
              file=sys.stderr)
    tolerance = 0.5 * frontend.frame_rate_hz
    print(f"{len(trials)} songs, {np.mean([t.seconds for t in trials]):.2f} s per song "
          f"(render both, embed, align)")
    for threshold in sorted({*_REPORTED_THRESHOLDS, defaults.min_confidence}):
        print(_report(trials, threshold, tolerance))
    return 0


if __name__ == "__main__":
    sys.exit(main())
