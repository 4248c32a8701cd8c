"""Building and extending catalogues from folders of audio, on any machine (no TensorFlow):
the melody model hears each recording once and the catalogue keeps its melody line."""
from __future__ import annotations

import csv
import dataclasses
import multiprocessing
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

import numpy as np

from device import frontend as fe
from device import manifest as mf
from device import safe_write
from device.audio import AudioError, audio_blocks, printable
from device import melody as mel
from device.catalogue import MAX_FIELD_CHARS, Catalogue, IndexConfig, open_model, read_songs, write_catalogue
from device.model import MelodyModel

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".m4a", ".opus")


def read_metadata(path: Path | None) -> dict[str, tuple[str, str]]:
    """song_id -> (title, artist) from a CSV with columns song_id,title,artist (UTF-8, with
    or without the byte-order mark spreadsheets write; fields of at most MAX_FIELD_CHARS)."""
    if path is None:
        return {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = {"song_id", "title", "artist"} - set(reader.fieldnames or ())
            if missing:
                raise mf.ManifestError(f"{path}: metadata CSV lacks columns {sorted(missing)}")
            metadata = {}
            for row in reader:
                fields = (row["song_id"], row["title"], row["artist"])
                if any(f is None or len(f) > MAX_FIELD_CHARS for f in fields):
                    raise mf.ManifestError(f"{path}: line {reader.line_num}: a field is missing or longer "
                                           f"than {MAX_FIELD_CHARS} characters")
                metadata[fields[0]] = fields[1:]
            return metadata
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise mf.ManifestError(f"{path}: unreadable metadata CSV ({mf.one_line(exc)[:200]})") from exc


def audio_files(directory: Path) -> list[Path]:
    """Audio files directly in or below `directory`, sorted by path."""
    directory = Path(directory)
    if not directory.is_dir():
        raise mf.ManifestError(f"{directory}: no such directory")
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def melody_of(blocks: Iterable[np.ndarray], model: MelodyModel, frontend: fe.FrontendConfig,
              config: mel.MelodyConfig) -> tuple[np.ndarray, int]:
    """The encoded melody line of a recording heard block by block (device.melody), so
    that only its salience, not its samples or spectrogram, is ever held whole.

    Args:
        blocks: float32 (n,) blocks of mono audio at the frontend's rate, in order.

    Returns:
        (uint8 (n_melody_frames,), samples heard).
    """
    frames, salience, heard = fe.FrameStream(frontend), mel.SalienceStream(model, frontend, config), 0
    for block in blocks:
        heard += block.size
        salience.push(frames.push(block))
    line, _ = mel.pitch_line(salience.salience(), frontend, config)
    return mel.encode(line), heard


_worker: tuple | None = None  # (model, frontend, melody config) of a hearing process


def _start_worker(model_path: str, frontend: fe.FrontendConfig, config: mel.MelodyConfig) -> None:
    global _worker
    _worker = (MelodyModel(model_path, num_threads=1), frontend, config)


def hear(path: Path, model: MelodyModel, frontend: fe.FrontendConfig,
         config: mel.MelodyConfig) -> tuple[np.ndarray, float] | str:
    """One recording heard: (encoded melody uint8 (n_melody_frames,), seconds of audio), or
    the one-line reason it cannot be in a catalogue (unreadable, or shorter than a window)."""
    try:
        code, samples = melody_of(audio_blocks(path, frontend.sample_rate_hz), model, frontend, config)
    except AudioError as exc:
        return str(exc)
    if fe.n_frames(samples, frontend) < frontend.window_frames:
        return (f"{printable(str(path))}: {samples / frontend.sample_rate_hz:.2f} s is shorter "
                f"than one {frontend.window_seconds:.2f} s window of the model")
    return code, samples / frontend.sample_rate_hz


def _hear(path: Path) -> tuple[np.ndarray, float] | str:
    """hear() in a hearing process; a reason is returned as the line to log."""
    outcome = hear(path, *_worker)
    return f"skipped {outcome}" if isinstance(outcome, str) else outcome


@dataclasses.dataclass(frozen=True)
class Hearing:
    """What a catalogue's songs are heard and indexed with.

    Attributes:
        model_manifest: the model directory's manifest (or the base catalogue's).
        model_dir: where the model and its embedder lie.
        model_path: the melody model, verified against the manifest.
        frontend, melody: the frontend and melody-line settings the model was made with.
        config: the index settings (a base catalogue's own when extending it).
        melody_rate_hz: melody frames per second.
    """

    model_manifest: dict
    model_dir: Path
    model_path: Path
    frontend: fe.FrontendConfig
    melody: mel.MelodyConfig
    config: IndexConfig
    melody_rate_hz: float


def hearing(model_dir: Path | None, config: IndexConfig = IndexConfig(), base: Catalogue | None = None) -> Hearing:
    """The model (run once: a broken one is refused before any audio is heard) and index
    settings of a build: the model directory's, or the base catalogue's when extending it."""
    if base is not None:
        model_manifest, model_path, config = base.manifest, base.model_path, base.config
        model_dir = base.directory
    else:
        model_manifest = _read_model_manifest(Path(model_dir))
        model_path = mf.check_file(Path(model_dir), model_manifest["model"], "model")
    frontend = mf.check_frontend(model_manifest, model_dir)
    dim = (model_manifest.get("embedder") or {}).get("dim")
    if dim and (problem := config.layout(0).problem(int(dim))) is not None:
        raise mf.ManifestError(f"code bytes {config.code_bytes}: {problem} of the shortlist embedder's vectors")
    melody_config = mel.MelodyConfig(**model_manifest["model"]["melody"])
    time_stride = open_model(model_path, model_manifest["model"]["sha256"], frontend).time_stride
    return Hearing(model_manifest, Path(model_dir), model_path, frontend, melody_config, config,
                   melody_config.frame_rate_hz(frontend, time_stride))


def new_files(files: Iterable[Path | str], seen: Iterable[str], log: Callable[[str], None]) -> list[Path | str]:
    """The files (paths or URIs) whose song id (file stem) is not in `seen` nor taken by an
    earlier file; each other one is logged as skipped."""
    seen, todo = set(seen), []
    for path in files:
        stem = PurePosixPath(str(path)).stem
        if stem in seen:
            log(f"skipped {printable(str(path))}: song id {printable(stem)!r} is already in the catalogue")
        else:
            todo.append(path)
            seen.add(stem)
    return todo


def base_songs(base: Catalogue | None) -> Iterable[tuple[tuple[str, str, str, float], np.ndarray]]:
    """((song_id, title, artist, duration_s), melody code) of each song of the catalogue
    being extended, in order (none without one)."""
    for row, song in enumerate(base.songs if base is not None else ()):
        yield (song.song_id, song.title, song.artist, song.duration_s), base.codes(row)


def build(audio_dir: Path, out_dir: Path, model_dir: Path | None, metadata_csv: Path | None = None,
          config: IndexConfig = IndexConfig(), base: Catalogue | None = None,
          log: Callable[[str], None] = print, workers: int = 1) -> tuple[int, int]:
    """Hears every recording in audio_dir and writes a new catalogue at out_dir.

    Args:
        model_dir: a model directory (model.tflite + manifest.json), or a catalogue
            directory whose model is used; ignored when extending `base`.
        base: an existing catalogue whose songs are kept first (extending it); its model
            and index settings are used.
        log: receives one line per skipped file and progress lines.
        workers: processes hearing files at once (one interpreter thread each).

    Returns:
        (songs added, files skipped).
    """
    safe_write.check_output(out_dir, [audio_dir])  # before hours of hearing, not after
    metadata = read_metadata(metadata_csv)
    files = audio_files(audio_dir)
    setup = hearing(model_dir, config, base)
    todo = new_files(files, (s.song_id for s in base.songs) if base is not None else (), log)
    counts = {"added": 0, "skipped": len(files) - len(todo)}
    worker_setup = (str(setup.model_path), setup.frontend, setup.melody)

    def songs():
        """(song, code) of the base's songs, then of each file as it is heard: the catalogue
        is written as they come, so memory does not grow with their number."""
        yield from base_songs(base)
        if workers > 1:
            pool = multiprocessing.get_context("spawn").Pool(workers, _start_worker, worker_setup)
            heard = pool.imap(_hear, todo, chunksize=4)
        else:
            pool = None
            _start_worker(*worker_setup)
            heard = map(_hear, todo)
        try:
            for number, (path, outcome) in enumerate(zip(todo, heard), 1):
                if isinstance(outcome, str):
                    log(outcome)
                    counts["skipped"] += 1
                    continue
                title, artist = metadata.get(path.stem, (path.stem, ""))
                counts["added"] += 1
                yield (path.stem, title, artist, outcome[1]), outcome[0]
                if number % 100 == 0:
                    log(f"heard {number}/{len(todo)} files")
        finally:
            if pool is not None:
                pool.terminate()
        if counts["added"] == 0:  # raised inside the writer: nothing is written
            raise mf.ManifestError(f"{audio_dir}: no new readable audio files; nothing was written")

    write_catalogue(out_dir, setup.model_manifest, setup.model_path, songs(), setup.config,
                    setup.melody_rate_hz, inputs=(Path(audio_dir),))
    return counts["added"], counts["skipped"]


def reembed(catalogue_dir: Path, out_dir: Path, model_dir: Path, config: IndexConfig = IndexConfig(),
            log: Callable[[str], None] = print) -> int:
    """Writes a catalogue with the model directory's shortlist embedder from the melodies
    another catalogue stores (no audio is heard again); returns the number of songs.

    The catalogue may be of an earlier format (melody.bin and songs.csv have not changed),
    but its melodies must have been heard by the model directory's melody model.
    `out_dir` may be `catalogue_dir` itself: it is replaced only once the new one is
    complete (device.safe_write).
    """
    manifest = mf.parse(Path(catalogue_dir) / mf.MANIFEST)
    if not str(manifest.get("format", "")).startswith(mf.CATALOGUE_FORMAT_PREFIX):
        raise mf.ManifestError(f"{catalogue_dir}: not a catalogue (format {str(manifest.get('format'))[:80]!r})")
    model_manifest = _read_model_manifest(Path(model_dir))
    model_path = mf.check_file(Path(model_dir), model_manifest["model"], "model")
    try:
        heard_by = str(manifest["model"]["sha256"])
        melody_path = mf.check_file(Path(catalogue_dir), manifest["melody"], "melody")
        songs_path = mf.check_file(Path(catalogue_dir), manifest["songs"], "song list")
        rate_hz, count = float(manifest["melody"]["frame_rate_hz"]), int(manifest["songs"]["count"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise mf.ManifestError(f"{catalogue_dir}: manifest lacks {mf.one_line(exc)[:80]}") from exc
    if heard_by != model_manifest["model"]["sha256"]:
        raise mf.ManifestError(f"{catalogue_dir}: its melodies were heard by model {heard_by[:8]}, not by "
                               f"{model_manifest['model']['sha256'][:8]}; build it again from the audio")
    codes = np.fromfile(melody_path, dtype=np.uint8)
    songs = read_songs(songs_path, count, codes.size)
    log(f"re-embedding {len(songs)} songs")
    write_catalogue(Path(out_dir), model_manifest, model_path,
                    (((s.song_id, s.title, s.artist, s.duration_s), codes[s.first_frame:s.first_frame + s.n_frames])
                     for s in songs), config, rate_hz)
    return len(songs)


def _read_model_manifest(model_dir: Path) -> dict:
    """A model directory's manifest, or the model part of a catalogue directory's."""
    try:
        return mf.read(model_dir, mf.MODEL_FORMAT)
    except mf.ManifestError:
        catalogue = mf.read(model_dir, mf.CATALOGUE_FORMAT)
        return {"format": mf.MODEL_FORMAT, "frontend": catalogue["frontend"], "model": catalogue["model"],
                "embedder": catalogue["embedder"]}
