"""Distractor songs, and the 1,000- and 10,000-song evaluation catalogues made with them.

    python -m benchmarks.distractors render --shared-data ../shared/data --out data/distractors \
        --count 8600 --workers 2
    python -m benchmarks.distractors build --base assets/catalogue --distractors data/distractors \
        --size 10000 --out data/eval/catalogue-10k
    python -m benchmarks.distractors build --base assets/catalogue --size 1000 --out data/eval/catalogue-1k

Then `python -m benchmarks.evaluate --index data/eval/catalogue-10k ...` (and
`benchmarks.false_accepts --index ...`) measure against them.

The melody pool: the folk collections bundled with music21 that nothing else here uses,
in this order: the Essen folk songs past the first `DataConfig.essen_limit` (those train
the model), O'Neill's Music of Ireland, Ryan's Mammoth Collection, Aird's Airs and the
miscFolk books. Nottingham trains the model and calibrates its threshold, so it is left
out. A pool tune is dropped when its title equals a catalogue song's, or when its melody
is mostly the same tune as a catalogue song or an earlier pool tune (see `_TuneIndex`):
a distractor must never be a right answer under another name. One in twenty of the rest
(a stable hash of the id) is reserved for the out-of-catalogue queries of
`benchmarks.false_accepts` and never becomes a distractor; the others are the
distractors, ordered by a seeded hash of their ids, so that a larger `--count` extends a
smaller one.

Rendering is that of the default catalogue (`converter.package`): `training.render` with
the first soundfont of `find_soundfonts` and the seed `song_seed(song_id, 0)`, 16-bit
FLAC at the frontend's rate. Folk tunes last 15-50 s, catalogue songs 50-300 s (median
224 s), and the number of indexed windows is what makes a large catalogue hard; so each
distractor is played through as many times as it takes (whole tune, bar-aligned, as folk
tunes are played) to last a duration drawn from the catalogue's own song durations, cut
at `--max-seconds` (default 120 s, for disk space: see `DEFAULT_MAX_SECONDS`). Rendering skips
files that exist, so an interrupted run resumes (keep --max-seconds the same across
runs: files already rendered keep their length); every rendered song appends its CPU
seconds to renders.csv, from which `render` prints the cost per song and per audio
minute.

Catalogue sizes: a size above the base catalogue's extends it with the first distractors
in order (`device.indexing.build` with `base=`, the device's own code), --chunk of them a
step, each step a complete catalogue kept in OUT.partial/ until the next, so that a build
stopped at the end of a session resumes where it was; a size below it
is a subset of the base that keeps every held-out test song (`training.pairs.is_test_song`,
the truth of `benchmarks.evaluate`'s synthetic queries; 149 in the default catalogue) and
fills up with a seeded sample of the other songs. Subsetting needs no re-hearing: a
catalogue keeps every song's melody (`Catalogue.codes`), from which a new catalogue and
its index are written with the base's settings (`device.catalogue.write_catalogue`),
and the 1k catalogue really holds 1,000 songs. The mir1k clips
are not in any base: `benchmarks.evaluate` adds them itself to whatever catalogue it is
given, so its mir1k queries meet size + 198 songs.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import dataclasses
import json
import math
import multiprocessing
import pickle
import re
import shutil
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from device import frontend as fe
from device import indexing
from device import manifest as mf
from device.catalogue import Catalogue, SongInfo, write_catalogue
from training.config import DataConfig
from training.melody import Song
from training.pairs import is_test_id, song_seed

# music21 corpus folder, id prefix, artist shown in results; in pool order.
COLLECTIONS = (
    ("essenFolksong", "essen", "Essen folk song collection"),
    ("oneills1850", "oneills", "O'Neill's Music of Ireland (1850)"),
    ("ryansMammoth", "ryans", "Ryan's Mammoth Collection (1883)"),
    ("airdsAirs", "airds", "Aird's Selection of Airs"),
    ("miscFolk", "miscfolk", "Traditional"),
)
RESERVE_MODULUS = 20  # one pool tune in 20 is reserved for out-of-catalogue queries
RESERVE_SALT = 9001
DEFAULT_SEED = 2026
# Why 120 s: disk, not time. Measured on 2 cores: rendering costs 0.22 CPU s per audio
# minute, so 8,600 distractors take 0.8 h at full length (the catalogue's durations, mean
# 193 s) and 0.45 h capped, but full length needs 36 GB of FLAC (1.43 MB per audio minute)
# and capped 21 GB. Capped, a distractor still lasts 106 s on average (53 windows in the
# index against 97 for an average catalogue song) and plays its tune through at least twice.
DEFAULT_MAX_SECONDS = 120.0
DEFAULT_CHUNK = 1000  # distractors heard per resumable step of `build` (about 10 minutes with 2 workers)
DUPLICATE_FRACTION = 0.4  # of a tune's melodic figures found on one alignment with another melody
MIN_ALIGNED = 5  # ... and at least this many
NGRAM = 6
ALIGN_SLACK = 2  # steps an alignment may slip (a note added or dropped in another edition)
MAX_POSTINGS = 300  # a figure in more melodies than this is a stock figure: it votes for none
POOL_FORMAT = "hum-search-distractor-pool/2"
METADATA_FILE = "metadata.csv"
RENDERS_FILE = "renders.csv"
RENDER_FIELDS = ("song_id", "title", "artist", "source", "tune_s", "plays", "audio_s", "cpu_s", "wall_s")
_BATCH = 10


@dataclasses.dataclass(frozen=True)
class Pool:
    """Melodies that are not in the default catalogue nor used in training.

    Attributes:
        distractors: songs that may be rendered as distractors, in collection order.
        reserved: songs kept for out-of-catalogue queries; never distractors.
        excluded: why tunes were dropped -> how many.
        catalogue_durations_s: the default catalogue's song durations, sorted; distractor
            durations are drawn from them.
    """

    distractors: tuple[Song, ...]
    reserved: tuple[Song, ...]
    excluded: dict
    catalogue_durations_s: tuple[float, ...]


def normalised_title(title: str) -> str:
    """'The Blue Bells of Scotland.' -> 'bluebellsofscotland' (accents, case, articles, marks dropped)."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"^(the|a|an)\s+", "", text.strip())
    return re.sub(r"[^a-z0-9]", "", text)


def title_key(title: str) -> str:
    """normalised_title(title) when it is long enough (four letters) to name one tune, else ""."""
    key = normalised_title(title)
    return key if len(key) >= 4 else ""


def melodic_figures(song: Song) -> list[tuple[int, tuple[int, ...]]]:
    """The tune's shape, for spotting the same tune in another key, rhythm or edition.

    Runs of NGRAM consecutive pitch steps with their positions, repeated notes removed
    (editions differ in how they split long notes), keeping only runs with at least three
    different steps (scale runs and alternations are in every tune).

    Returns:
        (position in the step sequence, run) pairs.
    """
    steps = np.diff([n.pitch for n in song.melody])
    steps = steps[steps != 0].tolist()
    runs = ((i, tuple(steps[i:i + NGRAM])) for i in range(len(steps) - NGRAM + 1))
    return [(i, run) for i, run in runs if len(set(run)) >= 3]


class _TuneIndex:
    """Which known melody, if any, a tune is the same tune as.

    Known melodies are indexed by their figures (melodic_figures) and positions. A tune's
    figures found in a known melody vote for an alignment (the difference of positions);
    the same tune in another key or edition puts most of its distinct figures on one
    alignment (within ALIGN_SLACK steps), whereas two different tunes share a few stock
    figures at scattered alignments. A tune repeated in one source and not in the other
    still aligns: each distinct figure needs one vote.
    """

    def __init__(self):
        self._postings: dict[tuple[int, ...], list[tuple[int, int]]] = collections.defaultdict(list)
        self._ids: list[str] = []

    def add(self, song_id: str, figures: list[tuple[int, tuple[int, ...]]]) -> None:
        for position, run in figures:
            self._postings[run].append((len(self._ids), position))
        self._ids.append(song_id)

    def duplicate_of(self, figures: list[tuple[int, tuple[int, ...]]]) -> str | None:
        distinct = {run for _, run in figures}
        need = max(MIN_ALIGNED, DUPLICATE_FRACTION * len(distinct))
        votes: dict[int, dict[int, set]] = collections.defaultdict(lambda: collections.defaultdict(set))
        for position, run in figures:
            postings = self._postings.get(run, ())
            if len(postings) <= MAX_POSTINGS:
                for melody, at in postings:
                    votes[melody][at - position].add(run)
        best, best_score = None, 0
        for melody, by_offset in votes.items():
            if len(set().union(*by_offset.values())) < need:
                continue
            slack = range(-ALIGN_SLACK, ALIGN_SLACK + 1)
            score = max(len(set().union(*(by_offset.get(o + d, ()) for d in slack))) for o in by_offset)
            if score >= need and score > best_score:
                best, best_score = melody, score
        return None if best is None else self._ids[best]


def is_reserved(song_id: str) -> bool:
    """Whether a pool tune is kept for out-of-catalogue queries (a stable hash of its id)."""
    return song_seed(song_id, RESERVE_SALT) % RESERVE_MODULUS == 0


def partition(candidates: Iterable[Song], catalogue: Iterable[Song],
              durations_s: Iterable[float] | None = None,
              log: Callable[[str], None] = lambda line: None) -> Pool:
    """Drops candidates that are (or duplicate) catalogue songs or earlier candidates,
    then splits the rest into distractors and reserved songs.

    Args:
        candidates: pool songs, in pool order (an earlier song wins a duplicate).
        catalogue: the songs of the default catalogue (their melodies, ids and titles).
        durations_s: the catalogue songs' durations; None: those of `catalogue`.
        log: receives one line per tune dropped as a catalogue melody.

    Returns:
        The Pool.
    """
    catalogue = list(catalogue)
    ids = {s.song_id for s in catalogue}
    titles = {title_key(s.title) for s in catalogue} - {""}
    known = _TuneIndex()
    for song in catalogue:
        known.add(song.song_id, melodic_figures(song))
    pool = _TuneIndex()
    excluded = collections.Counter()
    distractors, reserved = [], []
    for song in candidates:
        figures = melodic_figures(song)
        reason = None
        if song.song_id in ids:
            reason = "catalogue song id"
        elif title_key(song.title) in titles:
            reason = "catalogue song title"
        elif len({run for _, run in figures}) < MIN_ALIGNED:
            reason = "too few distinct melodic figures"
        elif (same := known.duplicate_of(figures)) is not None:
            reason = "catalogue melody"
            log(f"dropped {song.song_id} ({song.title!r}): the melody of {same}")
        elif (same := pool.duplicate_of(figures)) is not None:
            reason = "duplicate in pool"
        if reason is not None:
            excluded[reason] += 1
            continue
        pool.add(song.song_id, figures)
        (reserved if is_reserved(song.song_id) else distractors).append(song)
    if durations_s is None:
        durations_s = [s.duration_s for s in catalogue]
    durations = tuple(sorted(round(float(d), 2) for d in durations_s))
    return Pool(tuple(distractors), tuple(reserved), dict(excluded), durations)


def is_pool_id(song_id: str) -> bool:
    """Whether a song id names a tune of the pool's collections (a distractor or reserved tune)."""
    return song_id.split("-", 1)[0] in {prefix for _, prefix, _ in COLLECTIONS}


def same_tunes(known: Iterable[Song], tunes: Iterable[Song]) -> set[str]:
    """Ids of `tunes` that are the same tune as one of `known`: by `partition`'s melodic-figure
    test, or by the same title (at least four letters once normalised; folk collections
    share their tunes under their names)."""
    index, titles = _TuneIndex(), set()
    for song in known:
        index.add(song.song_id, melodic_figures(song))
        titles.add(title_key(song.title))
    titles.discard("")
    return {song.song_id for song in tunes
            if title_key(song.title) in titles or index.duplicate_of(melodic_figures(song)) is not None}


def select(songs: Iterable[Song], count: int, seed: int = DEFAULT_SEED) -> list[Song]:
    """The first `count` songs in the seeded order (a hash of seed and id, so a song's
    place does not depend on the rest of the pool and a larger count extends a smaller)."""
    return sorted(songs, key=lambda s: (song_seed(s.song_id, seed), s.song_id))[:count]


def _collection_songs(folder: str, prefix: str, artist: str) -> list[Song]:
    """Every readable tune of one music21 folk collection (ABC files, sorted)."""
    import music21  # training extra: imported where needed

    from training import corpora
    root = Path(music21.__file__).resolve().parent / "corpus" / folder
    songs: list[Song] = []
    used: set[str] = set()
    for path in sorted(root.glob("*.abc")):
        stem = re.sub(r"[^A-Za-z0-9_-]", "", path.stem) or "untitled"
        songs.extend(corpora.abc_songs(path, f"{prefix}-{stem}", used, artist=artist,
                                        source=f"music21-{folder}", licence="public-domain",
                                        shippable=False))
    return songs


def pool_candidates(data: DataConfig, log: Callable[[str], None]) -> list[Song]:
    """Every tune of COLLECTIONS except the Essen songs that train the model (the first
    data.essen_limit of corpora.load_music21_essen, which reads them in the same order)."""
    from training import corpora
    songs: list[Song] = []
    for folder, prefix, artist in COLLECTIONS:
        started = time.process_time()
        if folder == "essenFolksong":
            found = [dataclasses.replace(s, artist=artist)
                     for s in corpora.load_music21_essen(None)[data.essen_limit:]]
        else:
            found = _collection_songs(folder, prefix, artist)
        log(f"pool: {len(found)} tunes from {folder} ({time.process_time() - started:.0f} s)")
        songs.extend(found)
    return songs


def load_pool(shared_data: Path, cache: Path | None = None,
              log: Callable[[str], None] = lambda line: None) -> Pool:
    """The pool, partitioned against the default catalogue's songs.

    Parsing the scores takes about ten CPU minutes; `cache` (a pickle) keeps the parsed
    candidates and catalogue melodies for the next call, as long as the music21 version,
    the shared data and DataConfig.essen_limit are the same.
    """
    import music21
    data = DataConfig.default()
    key = {"format": POOL_FORMAT, "music21": music21.__version__,
           "shared_data": str(Path(shared_data).resolve()), "essen_limit": data.essen_limit}
    parsed = None
    if cache is not None and cache.is_file():
        try:
            with open(cache, "rb") as handle:
                stored = pickle.load(handle)
        except (OSError, EOFError, AttributeError, ImportError, pickle.UnpicklingError):
            stored = None  # unreadable here: made by other code
        if isinstance(stored, dict) and stored.get("key") == key:
            parsed = stored
        else:
            log(f"pool: {cache} was made differently; parsing again")
    if parsed is None:
        from converter.package import catalogue_songs
        catalogue = catalogue_songs(Path(shared_data))
        parsed = {"key": key, "candidates": pool_candidates(data, log),
                  # the melodies are all partition needs; accompaniments are most of the bytes
                  "catalogue": [dataclasses.replace(s, accompaniment=(), chords=()) for s in catalogue],
                  "catalogue_durations_s": [s.duration_s for s in catalogue]}
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.name + ".part")
            with open(tmp, "wb") as handle:
                pickle.dump(parsed, handle, protocol=pickle.HIGHEST_PROTOCOL)
            tmp.replace(cache)
    started = time.process_time()
    pool = partition(parsed["candidates"], parsed["catalogue"], parsed["catalogue_durations_s"], log)
    log(f"pool: {len(pool.distractors)} distractors, {len(pool.reserved)} reserved, "
        f"dropped {pool.excluded} ({time.process_time() - started:.0f} s)")
    return pool


def repeated(song: Song, min_duration_s: float) -> Song:
    """The song played through whole as often as needed to last at least min_duration_s.

    Each play starts on a bar line (the first play's length rounded up to whole bars), so
    bars, chords and drum patterns stay aligned.
    """
    bar_s = song.beat_s * song.beats_per_bar
    period = math.ceil(song.duration_s / bar_s - 1e-6) * bar_s
    plays = max(1, math.ceil(min_duration_s / period - 1e-9))
    if plays == 1:
        return song

    def shifted(t: float) -> Callable:
        return lambda x: dataclasses.replace(x, start_s=x.start_s + t, end_s=x.end_s + t)

    shifts = [shifted(k * period) for k in range(plays)]
    return dataclasses.replace(
        song,
        melody=tuple(f(n) for f in shifts for n in song.melody),
        accompaniment=tuple(f(n) for f in shifts for n in song.accompaniment),
        chords=tuple(f(c) for f in shifts for c in song.chords))


def target_seconds(song: Song, durations_s: tuple[float, ...], max_seconds: float) -> float:
    """The distractor's duration: a catalogue song's duration (drawn by a hash of the id)
    cut at max_seconds."""
    rng = np.random.default_rng(song_seed(song.song_id, 1))
    return float(min(durations_s[int(rng.integers(len(durations_s)))], max_seconds))


def _render_batch(job: tuple[list[tuple[Song, float]], Path, str]) -> list[dict]:
    import soundfile

    from training.render import Renderer
    items, out_dir, soundfont = job
    rate = fe.FrontendConfig().sample_rate_hz
    rows = []
    with Renderer(Path(soundfont), rate) as renderer:
        for song, seconds in items:
            cpu, wall = time.process_time(), time.perf_counter()
            played = repeated(song, seconds)
            audio = renderer.render(played, seed=song_seed(song.song_id, 0), duration_s=seconds)
            path = out_dir / f"{song.song_id}.flac"
            tmp = path.with_name(path.name + ".part")  # not an audio suffix: never indexed half-written
            soundfile.write(tmp, audio, rate, format="FLAC", subtype="PCM_16")
            tmp.replace(path)
            rows.append({"song_id": song.song_id, "title": song.title, "artist": song.artist,
                         "source": song.source, "tune_s": round(song.duration_s, 2),
                         "plays": len(played.melody) // len(song.melody),
                         "audio_s": round(audio.size / rate, 2),
                         "cpu_s": round(time.process_time() - cpu, 3),
                         "wall_s": round(time.perf_counter() - wall, 3)})
    return rows


def write_metadata(songs: list[Song], path: Path) -> None:
    """song_id,title,artist for `hum-search index build --metadata`, in distractor order."""
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("song_id", "title", "artist"))
        for s in songs:
            writer.writerow((s.song_id, s.title, s.artist))
    tmp.replace(path)


def render(songs: list[Song], out_dir: Path, durations_s: tuple[float, ...],
           max_seconds: float = DEFAULT_MAX_SECONDS, workers: int = 2,
           log: Callable[[str], None] = lambda line: None) -> list[dict]:
    """Renders each song to out_dir/<song_id>.flac unless it exists, and writes
    out_dir/metadata.csv for all of them (in the given order).

    Args:
        songs: the distractors, in order.
        durations_s: durations to draw from (target_seconds).
        max_seconds: no distractor lasts longer.
        workers: rendering processes.
        log: progress lines.

    Returns:
        One row (RENDER_FIELDS) per song rendered now; also appended to renders.csv.
    """
    from training.render import find_soundfonts
    out_dir.mkdir(parents=True, exist_ok=True)
    write_metadata(songs, out_dir / METADATA_FILE)
    todo = [(s, target_seconds(s, durations_s, max_seconds)) for s in songs
            if not (out_dir / f"{s.song_id}.flac").exists()]
    if not todo:
        return []
    soundfonts = find_soundfonts()
    if not soundfonts:
        raise RuntimeError("no General MIDI soundfont found (Debian: fluid-soundfont-gm)")
    soundfont = str(soundfonts[0])
    jobs = [(todo[i:i + _BATCH], out_dir, soundfont) for i in range(0, len(todo), _BATCH)]
    renders = out_dir / RENDERS_FILE
    new_file = not renders.exists()
    started, rows = time.perf_counter(), []
    with open(renders, "a", newline="", encoding="utf-8") as handle, contextlib.ExitStack() as stack:
        writer = csv.DictWriter(handle, fieldnames=RENDER_FIELDS)
        if new_file:
            writer.writeheader()
        if workers > 1:
            batches = stack.enter_context(multiprocessing.get_context("spawn").Pool(workers)).imap_unordered(
                _render_batch, jobs)
        else:  # in this process
            batches = map(_render_batch, jobs)
        for batch in batches:
            writer.writerows(batch)
            handle.flush()
            rows.extend(batch)
            elapsed = time.perf_counter() - started
            log(f"render: {len(rows)}/{len(todo)} songs, {sum(r['audio_s'] for r in rows) / 60:.0f} "
                f"audio min, {elapsed:.0f} s, ~{elapsed / len(rows) * (len(todo) - len(rows)):.0f} s left")
    return rows


def render_cost(rows: list[dict], out_dir: Path, estimate_songs: int, workers: int) -> dict:
    """CPU time and disk per song and per audio minute of rendered rows (renders.csv), and
    what `estimate_songs` such songs would take on `workers` otherwise idle cores."""
    cpu = np.array([float(r["cpu_s"]) for r in rows])
    audio = np.array([float(r["audio_s"]) for r in rows])
    paths = [out_dir / f"{r['song_id']}.flac" for r in rows]
    megabytes = sum(p.stat().st_size for p in paths if p.exists()) / 1e6
    return {"songs": len(rows), "audio_min": round(float(audio.sum()) / 60, 1),
            "mean_audio_s": round(float(audio.mean()), 1),
            "cpu_s_per_song": round(float(cpu.mean()), 2),
            "cpu_s_per_audio_min": round(float(cpu.sum() / audio.sum() * 60), 2),
            "flac_mb_per_audio_min": round(megabytes / (float(audio.sum()) / 60), 3),
            "estimate": {"songs": estimate_songs, "workers": workers,
                         "hours": round(float(cpu.mean()) * estimate_songs / workers / 3600, 2),
                         "flac_gb": round(megabytes / len(rows) * estimate_songs / 1000, 1)}}


def build_catalogue(base_dir: Path, out_dir: Path, size: int, distractors_dir: Path | None = None,
                    seed: int = DEFAULT_SEED, log: Callable[[str], None] = lambda line: None,
                    chunk: int = DEFAULT_CHUNK, workers: int = 1) -> dict:
    """An evaluation catalogue of exactly `size` songs from the base catalogue.

    Above the base's size: the base extended with the first size - len(base) distractors
    of distractors_dir/metadata.csv (every one must be rendered), `chunk` at a time and
    resumably (`extend_in_steps`), heard by `workers` processes. At or below it: the
    base's held-out test songs plus a seeded sample of its other songs, their stored
    melodies re-indexed with the base's settings.

    Returns:
        A description: songs, items, and how many came from where.
    """
    base = Catalogue(base_dir)
    if size <= len(base.songs):
        songs = subset(base, size, seed)
        rows = {s.song_id: row for row, s in enumerate(base.songs)}
        write_catalogue(out_dir, base.manifest, base.model_path,
                        [((s.song_id, s.title, s.artist, s.duration_s), base.codes(rows[s.song_id]))
                         for s in songs], base.config, base.melody_rate_hz)
        n_test = sum(is_test_id(s.song_id, DataConfig.default()) for s in songs)
        description = {"base_songs": size, "of_them_test_songs": n_test, "distractors": 0}
    else:
        if distractors_dir is None:
            raise ValueError(f"{size} songs need distractors: the base holds {len(base.songs)}")
        wanted = size - len(base.songs)
        order = list(indexing.read_metadata(distractors_dir / METADATA_FILE))
        files = {p.stem: p for p in indexing.audio_files(distractors_dir)}
        chosen = order[:wanted]
        missing = [i for i in chosen if i not in files]
        if len(chosen) < wanted or missing:
            raise ValueError(f"{distractors_dir}: {wanted} distractors needed, "
                             f"{len(chosen) - len(missing)} rendered; render more first")
        added = extend_in_steps(base, out_dir, [files[i] for i in chosen],
                                distractors_dir / METADATA_FILE, chunk, workers, log)
        description = {"base_songs": len(base.songs),
                       "of_them_test_songs": sum(is_test_id(s.song_id, DataConfig.default()) for s in base.songs),
                       "distractors": added}
    built = Catalogue(out_dir)
    description.update({"songs": len(built.songs), "items": built.n_items, "out": str(out_dir)})
    return description


def extend_in_steps(base: Catalogue, out_dir: Path, files: list[Path], metadata_csv: Path, chunk: int,
                    workers: int, log: Callable[[str], None]) -> int:
    """Extends the catalogue `base` with `files` (in order) into out_dir, `chunk` files a
    step: each step is a complete catalogue (written atomically) in the sibling folder
    out_dir.partial/<files so far>/, extending the step before, which is then removed. A
    build that is stopped resumes from its last complete step, after checking that it holds
    the base's model and exactly the base's songs and the first files; hearing 8,600
    distractors takes hours, more than a session.

    Returns:
        The number of files added (all of them, or ValueError).
    """
    partial = out_dir.with_name(out_dir.name + ".partial")
    steps = [int(p.name) for p in partial.glob("*") if p.name.isdigit() and 0 < int(p.name) < len(files)
             and (p / mf.MANIFEST).exists()]
    done = max(steps, default=0)
    current = Catalogue(partial / str(done)) if done else base
    if done:
        expected = {s.song_id for s in base.songs} | {f.stem for f in files[:done]}
        if (current.manifest["model"]["sha256"] != base.manifest["model"]["sha256"]
                or {s.song_id for s in current.songs} != expected or len(current.songs) != len(expected)):
            raise ValueError(f"{current.directory}: a partial build of other songs or another model; remove it")
        log(f"resuming from {current.directory}: {done} of {len(files)} distractors heard")
    while done < len(files):
        stop = min(done + chunk, len(files))
        step = out_dir if stop == len(files) else partial / str(stop)
        with tempfile.TemporaryDirectory() as tmp:
            for path in files[done:stop]:  # only these files, under their own stems
                (Path(tmp) / path.name).symlink_to(path.resolve())
            added, skipped = indexing.build(Path(tmp), step, None, metadata_csv, base=current,
                                            log=log, workers=workers)
        if added != stop - done:
            raise ValueError(f"{step}: {added} distractors indexed of {stop - done} ({skipped} skipped)")
        if current is not base:
            shutil.rmtree(current.directory)
        current, done = Catalogue(step), stop
        log(f"{done} of {len(files)} distractors in {step}")
    with contextlib.suppress(OSError):
        partial.rmdir()  # only when empty: nothing but this build's steps is ever removed
    return len(files)


def subset(base: Catalogue, size: int, seed: int) -> list[SongInfo]:
    """`size` songs of the base, in base order: every held-out test song, then a sample."""
    test = [s for s in base.songs if is_test_id(s.song_id, DataConfig.default())]
    if len(test) > size:
        raise ValueError(f"{size} songs cannot hold the base's {len(test)} held-out test songs")
    others = sorted((s for s in base.songs if not is_test_id(s.song_id, DataConfig.default())),
                    key=lambda s: (song_seed(s.song_id, seed), s.song_id))
    chosen = {s.song_id for s in test + others[:size - len(test)]}
    return [s for s in base.songs if s.song_id in chosen]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    r = commands.add_parser("render", help="render distractors (resumable)")
    r.add_argument("--shared-data", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True, help="folder for the audio and metadata.csv")
    r.add_argument("--count", type=int, required=True, help="distractors to have rendered")
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS)
    r.add_argument("--seed", type=int, default=DEFAULT_SEED, help="distractor order")
    r.add_argument("--pool-cache", type=Path, help="pool pickle (default: OUT/pool.pkl)")
    r.add_argument("--estimate", type=int, default=8600, help="songs to estimate the render time of")
    b = commands.add_parser("build", help="an evaluation catalogue of --size songs")
    b.add_argument("--base", type=Path, required=True, help="the default catalogue directory")
    b.add_argument("--size", type=int, required=True)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--distractors", type=Path, help="rendered distractors (sizes above the base's)")
    b.add_argument("--seed", type=int, default=DEFAULT_SEED, help="sample of a smaller catalogue")
    b.add_argument("--chunk", type=int, default=DEFAULT_CHUNK,
                   help="distractors heard per resumable step (kept in OUT.partial/)")
    b.add_argument("--workers", type=int, default=2, help="processes hearing distractors")
    args = parser.parse_args(argv)
    if args.command == "build":
        if args.chunk < 1 or args.workers < 1:
            parser.error("--chunk and --workers must be at least 1")
        print(json.dumps(build_catalogue(args.base, args.out, args.size, args.distractors, args.seed,
                                         log=_stderr, chunk=args.chunk, workers=args.workers), indent=2))
        return 0
    pool = load_pool(args.shared_data, args.pool_cache or args.out / "pool.pkl", log=_stderr)
    if args.count > len(pool.distractors):
        _stderr(f"render: the pool holds {len(pool.distractors)} distractors, not {args.count}")
        return 2
    songs = select(pool.distractors, args.count, args.seed)
    rows = render(songs, args.out, pool.catalogue_durations_s, args.max_seconds, args.workers, log=_stderr)
    every = []
    if (args.out / RENDERS_FILE).exists():
        with open(args.out / RENDERS_FILE, newline="", encoding="utf-8") as handle:
            every = list(csv.DictReader(handle))
    summary = {"rendered_now": len(rows), "distractors": len(songs),
               "pool": {"distractors": len(pool.distractors), "reserved": len(pool.reserved),
                        "excluded": pool.excluded}}
    if every:
        summary["cost"] = render_cost(every, args.out, args.estimate, args.workers)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
