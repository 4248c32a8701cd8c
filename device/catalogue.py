"""Catalogue: each song's melody (a byte per melody frame) and an IVF-PQ index of its windows.

Files of a catalogue directory:
    melody.bin   uint8, every song's melody line (device.melody.encode) end to end
    windows.npy  float32 (n_items, 3): song row, start (melody frames) and key (semitones)
                 of each shortlist window, in index item order
    index.npz    the windows' key-free vectors (device.shortlist), product-quantised in an
                 inverted file (device.vector_index)
    songs.csv    song_id, title, artist, first_frame, n_frames (into melody.bin), duration_s
    model.tflite the melody model that heard the recordings
    manifest.json what each file holds, with checksums, the frontend, the model's
                 settings and the shortlist's
"""
from __future__ import annotations

import csv
import dataclasses
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from device import assets
from device import embedder as em
from device.frontend import FrontendConfig
from device import manifest as mf
from device import melody as mel
from device import shortlist as sl
from device import vector_index as vi
from device.matcher import MatcherConfig
from device.model import MelodyModel, ModelError, check_in_child
from device.safe_write import replace_directory

INDEX_FILE = "index.npz"
MELODY_FILE = "melody.bin"
WINDOWS_FILE = "windows.npy"
SONGS_FILE = "songs.csv"
MODEL_FILE = "model.tflite"
EMBEDDER_FILE = "embedder.npz"
SONG_COLUMNS = ("song_id", "title", "artist", "first_frame", "n_frames", "duration_s")
MAX_FIELD_CHARS = 4096  # per songs.csv field
@dataclasses.dataclass(frozen=True)
class IndexConfig:
    """How catalogue melodies are windowed and indexed.

    Attributes:
        shortlist: the windows and the query's search.
        code_bytes: bytes of each window's code (sub-vectors of the product quantiser, 8
            bits each); must divide the embedder's dimension.
        lists_per_sqrt_item: coarse cells per square root of the windows (vector_index.Layout).
    """

    shortlist: sl.ShortlistConfig = sl.ShortlistConfig()
    code_bytes: int = 16
    lists_per_sqrt_item: float = 3.0

    def layout(self, n_items: int) -> vi.Layout:
        return vi.Layout.for_items(n_items, self.code_bytes, self.lists_per_sqrt_item)

    @staticmethod
    def n_probe(n_lists: int) -> int:
        """Cells searched per query vector: 16 up to 2,048 cells (1,400 songs), 32 at 4,096
        (10,000 songs), at most 64. benchmarks.shortlist_scale, 100 held-out hums: at 1,000
        songs 16 cells keep 98.8% of exact search's right songs among 30 candidates; at
        10,000 songs 16 keep 93.7%, 32 keep 96.2% for 30% more search time."""
        return min(n_lists, max(16, min(64, n_lists // 128)))


@dataclasses.dataclass(frozen=True)
class SongInfo:
    song_id: str
    title: str
    artist: str
    first_frame: int
    n_frames: int
    duration_s: float


class Catalogue:
    """A loaded, verified catalogue directory.

    Attributes:
        directory: where it was loaded from.
        manifest: its parsed manifest.
        songs: SongInfo per song, in melody.bin order.
        model_path: the melody model that heard the recordings.
        melody_config: how the model's salience becomes a melody line.
        melody_rate_hz: melody frames per second.
        config: the index settings (shortlist windows, trees).
        matcher: the decision thresholds calibrated for the model (MatcherConfig.for_model).
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise mf.ManifestError(f"{self.directory}: no such catalogue directory")
        self.manifest = mf.read(self.directory, mf.CATALOGUE_FORMAT)  # schema and bounds
        self.frontend = mf.check_frontend(self.manifest, self.directory)
        self.model_path = mf.check_file(self.directory, self.manifest["model"], "model")
        index_path = mf.check_file(self.directory, self.manifest["index"], "index")
        melody_path = mf.check_file(self.directory, self.manifest["melody"], "melody")
        windows_path = mf.check_file(self.directory, self.manifest["windows"], "windows")
        songs_path = mf.check_file(self.directory, self.manifest["songs"], "song list")
        section = self.manifest["index"]
        shortlist = sl.ShortlistConfig(**dict(section["shortlist"], scales=tuple(section["shortlist"]["scales"])))
        _, self.embedder = shortlist_embedder(self.manifest, self.directory)
        if section["dim"] != self.embedder.dim:
            raise mf.ManifestError(f"{self.directory}: index.dim {section['dim']} and the embedder's "
                                   f"{self.embedder.dim} values disagree")
        if shortlist.window_frames != self.manifest["embedder"]["window_frames"]:
            raise mf.ManifestError(f"{self.directory}: shortlist windows of {shortlist.window_frames} frames, "
                                   f"the embedder's of {self.manifest['embedder']['window_frames']}")
        self.config = IndexConfig(shortlist, code_bytes=int(section["pq_m"]))
        self.melody_config = mel.MelodyConfig(**self.manifest["model"]["melody"])
        self.melody_rate_hz = float(self.manifest["melody"]["frame_rate_hz"])
        try:
            self.matcher = MatcherConfig.for_model(self.manifest["model"])
        except ValueError as exc:
            raise mf.ManifestError(f"{self.directory}: {exc}") from exc
        n_items = int(section["n_items"])
        melody_bytes = melody_path.stat().st_size
        if melody_bytes != self.manifest["melody"]["frames"]:  # before mapping it
            raise mf.ManifestError(f"{melody_path}: {melody_bytes} melody frames, the manifest "
                                   f"says {self.manifest['melody']['frames']}")
        # melodies and windows are memory-mapped like the index: a query reads the few
        # pages it needs, and the kernel may drop them again under memory pressure
        self._codes = (np.memmap(melody_path, dtype=np.uint8, mode="r") if melody_bytes
                       else np.zeros(0, dtype=np.uint8))
        self.songs = read_songs(songs_path, self.manifest["songs"]["count"], self._codes.size)
        self._windows = read_windows(windows_path, n_items, self.songs)
        layout = vi.Layout(int(section["n_lists"]), int(section["pq_m"]), int(section["pq_bits"]))
        try:
            self._index = vi.VectorIndex(vi.read(index_path, layout, self.embedder.dim, n_items))
        except vi.IndexFileError as exc:
            raise mf.ManifestError(str(exc)) from exc

    def open_model(self, num_threads: int | None = None) -> MelodyModel:
        """The catalogue's melody model, checked against the frontend it was made with."""
        return open_model(self.model_path, self.manifest["model"]["sha256"], self.frontend, num_threads)

    @property
    def n_items(self) -> int:
        return self._index.n_items

    def codes(self, row: int) -> np.ndarray:
        """uint8 (n_frames,): a song's stored melody."""
        song = self.songs[row]
        return np.asarray(self._codes[song.first_frame:song.first_frame + song.n_frames])

    def melody(self, row: int) -> np.ndarray:
        """float32 (n_frames,): a song's melody line, MIDI per melody frame (0: none)."""
        return mel.decode(self.codes(row))

    def search(self, vectors: np.ndarray, neighbours: int
               ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Nearest windows to each query vector.

        Args:
            vectors: float32 (q, dim) unit rows.

        Returns:
            per vector (rows int64 (k,), starts int64 (k,) melody frames, similarity
            float32 (k,) cosine as the codes give it, best first, keys float32 (k,)), k <=
            neighbours.
        """
        vectors = np.asarray(vectors, np.float32).reshape(-1, self.embedder.dim)
        if not vectors.shape[0] or not self.n_items:
            return [(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32),
                     np.zeros(0, np.float32)) for _ in range(vectors.shape[0])]
        items, sims = self._index.search(vectors, neighbours, self.config.n_probe(self._index.n_lists))
        kept = items >= 0  # fewer than `neighbours` found: -1
        window = self._windows[np.where(kept, items, 0).reshape(-1)].reshape(*items.shape, 3)
        rows, starts = window[..., 0].astype(np.int64), window[..., 1].astype(np.int64)
        sims, keys = np.asarray(sims, np.float32), np.asarray(window[..., 2], np.float32)
        if kept.all():  # the usual case: each vector's rows as views
            return list(zip(rows, starts, sims, keys))
        return [(r[k], s[k], m[k], y[k]) for r, s, m, y, k in zip(rows, starts, sims, keys, kept)]


def open_model(path: Path, sha256: str, frontend: FrontendConfig, num_threads: int | None = None) -> MelodyModel:
    """A melody model whose windows are the frontend's (window_frames, n_bins).

    A model other than the shipped one runs once in a child process first (a damaged one
    can abort the interpreter); its checksum is then noted (assets.models_run_dir), so
    that this costs about a second once per model, not per run.

    Args:
        sha256: the model file's checksum, as verified against its manifest.
    """
    shipped = mf.read(assets.default_model_dir(), mf.MODEL_FORMAT)["model"]["sha256"]
    noted = assets.models_run_dir() / sha256
    if sha256 != shipped and not noted.is_file():
        check_in_child(path)
        try:
            noted.parent.mkdir(parents=True, exist_ok=True)
            noted.touch()
        except OSError:  # a read-only home: the check runs again next time
            pass
    model = MelodyModel(path, num_threads=num_threads)
    expected = (frontend.window_frames, frontend.n_bins)
    if model.input_shape != expected:
        raise ModelError(f"{path}: takes windows of {model.input_shape}, the frontend makes {expected}")
    return model


def read_songs(path: Path, count: int, total_frames: int) -> list[SongInfo]:
    """The song list, checked against the manifest's count and melody.bin's frames.

    Every row has the six columns, fields of at most MAX_FIELD_CHARS characters, unique
    song ids, and melody stretches that tile melody.bin in order; durations are finite."""
    problem, songs, first, ids = None, [], 0, set()
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = csv.reader(handle)
            if tuple(next(rows, ())) != SONG_COLUMNS:
                raise ValueError(f"the header is not {','.join(SONG_COLUMNS)}")
            for number, row in enumerate(rows, 2):
                if len(row) != len(SONG_COLUMNS) or max(map(len, row)) > MAX_FIELD_CHARS:
                    raise ValueError(f"line {number}: not {len(SONG_COLUMNS)} fields of at most "
                                     f"{MAX_FIELD_CHARS} characters")
                if len(songs) == count:
                    raise ValueError(f"line {number}: more songs than the manifest's {count}")
                song = SongInfo(row[0], row[1], row[2], int(row[3]), int(row[4]), float(row[5]))
                if song.first_frame != first or not 0 <= song.n_frames <= total_frames - first:
                    raise ValueError(f"line {number}: frames {song.first_frame}+{song.n_frames} do not "
                                     f"follow on at {first} within the {total_frames} of {MELODY_FILE}")
                if not 0.0 <= song.duration_s < 1e7 or song.song_id in ids:
                    raise ValueError(f"line {number}: duration {row[5]!r:.20} or a repeated song id")
                songs.append(song)
                ids.add(song.song_id)
                first += song.n_frames
    except (OSError, ValueError, csv.Error) as exc:  # UnicodeDecodeError is a ValueError
        problem = mf.one_line(exc)[:200]
    if problem is None and (len(songs) != count or first != total_frames):
        problem = f"{len(songs)} songs over {first} melody frames, the manifest says {count} over {total_frames}"
    if problem is not None:
        raise mf.ManifestError(f"{path}: unreadable song list ({problem})")
    return songs


def read_windows(path: Path, n_items: int, songs: list[SongInfo]) -> np.ndarray:
    """float32 (n_items, 3) memory-mapped, each window's song row, start and key, checked
    before use."""
    try:
        with open(path, "rb") as handle:
            shape, fortran, dtype = mf.npy_header(handle)
            offset = handle.tell()
    except mf.NPY_ERRORS as exc:
        raise mf.ManifestError(f"{path}: unreadable windows ({mf.one_line(exc)[:200]})") from exc
    if shape != (n_items, 3) or fortran or dtype != np.dtype("<f4") \
            or path.stat().st_size != offset + n_items * 12:
        raise mf.ManifestError(f"{path}: {shape} {dtype} in {path.stat().st_size} bytes, "
                               f"expected ({n_items}, 3) float32")
    windows = (np.memmap(path, dtype="<f4", mode="r", offset=offset, shape=(n_items, 3)) if n_items
               else np.zeros((0, 3), dtype="<f4"))  # mapped, like melody.bin
    rows, starts, keys = windows[:, 0], windows[:, 1], windows[:, 2]
    n_frames = np.array([s.n_frames for s in songs] or [0])
    valid = (np.isfinite(windows).all(axis=1) & (rows >= 0) & (rows < len(songs)) & (rows == np.round(rows))
             & (keys >= 0) & (keys <= 12))
    valid &= (starts >= 0) & (starts <= n_frames[np.where(valid, rows, 0).astype(np.int64)])
    if not valid.all():
        bad = int(np.argmin(valid))
        raise mf.ManifestError(f"{path}: window {bad} ({windows[bad].tolist()}) is not in a song of the list")
    return windows


def write_catalogue(out_dir: Path, model_dir_manifest: dict, model_path: Path,
                    songs: Iterable[tuple[tuple[str, str, str, float], np.ndarray]],
                    config: IndexConfig, melody_rate_hz: float, inputs: tuple[Path, ...] = ()) -> None:
    """Writes a complete catalogue directory atomically (device.safe_write): each song's
    melody, windows and vectors go to disk as it comes (`songs` may be a generator); the
    index is then trained on a sample of the vectors and filled from the file in chunks,
    so memory grows with the windows' codes (about 40 bytes a window: 75 MB at 10,000
    songs), not with the audio or the vectors.

    Everything is written to a hidden sibling directory and swapped in at the end, so a
    failure (also one raised by the `songs` generator) leaves any catalogue already at
    `out_dir` untouched; `out_dir` is only replaced when it is absent, empty or a
    catalogue this tool wrote.

    Args:
        model_dir_manifest: the model directory's manifest (frontend, "model" and
            "embedder" sections; the embedder's file lies beside model_path).
        songs: per song ((song_id, title, artist, duration_s), uint8 (n_frames,) its melody
            (device.melody.encode)), optionally followed by its shortlist windows as
            song_windows() makes them with this embedder and config (computed here if not).
        melody_rate_hz: melody frames per second.
        inputs: folders `out_dir` may neither equal nor contain (the audio folder).

    Raises:
        OutputError: `out_dir` may not be replaced, or the disk is full.
    """
    embedder_path, embedder = shortlist_embedder(model_dir_manifest, model_path.parent)
    config = indexed_config(config, model_dir_manifest)

    def fill(tmp: Path) -> None:
        infos, first, item = [], 0, 0
        rows_path = tmp / ".windows.raw"  # float32 rows of 3, windows.npy's data in song order
        vectors_path = tmp / ".vectors.raw"  # float32 rows of dim
        with open(tmp / MELODY_FILE, "wb") as melody, open(rows_path, "wb") as rows, \
                open(vectors_path, "wb") as vectors_file:
            for row, ((song_id, title, artist, duration_s), code, *windows) in enumerate(songs):
                code = np.asarray(code, np.uint8)
                starts, vectors, keys = windows[0] if windows else song_windows(code, embedder, config)
                np.asarray(vectors, np.float32).reshape(-1, embedder.dim).tofile(vectors_file)
                item += int(starts.size)
                np.stack([np.full(starts.size, row, np.float32), starts.astype(np.float32), keys],
                         axis=1).astype(np.float32).tofile(rows)
                code.tofile(melody)
                infos.append(SongInfo(song_id, title, artist, first, int(code.size), duration_s))
                first += int(code.size)
        layout = config.layout(item)
        arrays, order = vi.build(RowFile(vectors_path, item, embedder.dim), layout)
        vi.write(tmp / INDEX_FILE, arrays)
        del arrays
        vectors_path.unlink()
        np.save(tmp / WINDOWS_FILE, RowFile(rows_path, item, 3)[order])  # npy 1.0, as read_windows reads it
        rows_path.unlink()
        shutil.copyfile(model_path, tmp / MODEL_FILE)
        shutil.copyfile(embedder_path, tmp / EMBEDDER_FILE)
        with open(tmp / SONGS_FILE, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(SONG_COLUMNS)
            for s in infos:
                writer.writerow([s.song_id, s.title, s.artist, s.first_frame, s.n_frames, f"{s.duration_s:.2f}"])
        manifest = {
            "format": mf.CATALOGUE_FORMAT,
            "frontend": model_dir_manifest["frontend"],
            "model": dict(model_dir_manifest["model"], file=MODEL_FILE,
                          sha256=mf.sha256_of(tmp / MODEL_FILE)),
            "embedder": dict(model_dir_manifest["embedder"], file=EMBEDDER_FILE,
                             sha256=mf.sha256_of(tmp / EMBEDDER_FILE)),
            "melody": {"file": MELODY_FILE, "sha256": mf.sha256_of(tmp / MELODY_FILE),
                       "frame_rate_hz": melody_rate_hz, "frames": first,
                       "encoding": "uint8 per melody frame: 0 no melody, else 1 + quarter "
                                   f"semitones above MIDI {mel.CODE_FMIN_MIDI:g}"},
            "windows": {"file": WINDOWS_FILE, "sha256": mf.sha256_of(tmp / WINDOWS_FILE),
                        "columns": ["song_row", "start_melody_frame", "key_semitones"]},
            "index": {"file": INDEX_FILE, "sha256": mf.sha256_of(tmp / INDEX_FILE), "kind": "ivf-pq",
                      "n_lists": layout.n_lists, "pq_m": layout.pq_m, "pq_bits": layout.pq_bits,
                      "n_items": item, "dim": embedder.dim,
                      "shortlist": config.shortlist.to_dict()},
            "songs": {"file": SONGS_FILE, "sha256": mf.sha256_of(tmp / SONGS_FILE), "count": len(infos)},
        }
        mf.write(tmp, manifest)

    replace_directory(Path(out_dir), fill, inputs)


def indexed_config(config: IndexConfig, model_dir_manifest: dict) -> IndexConfig:
    """The index settings a catalogue is written with: `config` with the shortlist windows
    the model's embedder was trained on."""
    return dataclasses.replace(config, shortlist=dataclasses.replace(
        config.shortlist, window_frames=int(model_dir_manifest["embedder"]["window_frames"])))


def song_windows(code: np.ndarray, embedder: em.Embedder, config: IndexConfig
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A song's shortlist windows (device.shortlist.catalogue_windows of its melody).

    Args:
        code: uint8 (n_frames,) the song's encoded melody.
        config: as indexed_config() returns it.

    Returns:
        starts (n,) melody frames, vectors float32 (n, embedder.dim), keys float32 (n,) semitones.
    """
    return sl.catalogue_windows(mel.decode(np.asarray(code, np.uint8)), embedder, config.shortlist)


def shortlist_embedder(model_dir_manifest: dict, directory: Path) -> tuple[Path, em.Embedder]:
    """The shortlist embedder named by a model or catalogue manifest: its file, verified,
    and the loaded network.

    Raises:
        ManifestError: the manifest names none, or the file is missing, changed or not
            embedder weights.
    """
    section = model_dir_manifest.get("embedder")
    if section is None:
        raise mf.ManifestError(f"{directory}: the model has no shortlist embedder; add one with "
                               "python -m converter.embedder")
    path = mf.check_file(directory, section, "embedder")
    try:
        embedder = em.Embedder(path)
    except em.EmbedderError as exc:
        raise mf.ManifestError(str(exc)) from exc
    if embedder.dim != section["dim"]:
        raise mf.ManifestError(f"{path}: {embedder.dim} values per vector, the manifest says {section['dim']}")
    return path, embedder


class RowFile:
    """float32 rows of a raw file, read when asked for (not memory-mapped, so what was read
    does not stay in the process's memory): a slice reads its rows, indices (in any order)
    read the file chunk by chunk and keep theirs."""

    CHUNK_ROWS = 65_536

    def __init__(self, path: Path, n_rows: int, width: int):
        self.path, self.shape = Path(path), (n_rows, width)

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, first: int, count: int) -> np.ndarray:
        width = self.shape[1]
        rows = np.fromfile(self.path, dtype=np.float32, count=count * width, offset=first * width * 4)
        return rows.reshape(-1, width)

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, slice):
            first, stop, _ = rows.indices(self.shape[0])
            return self._read(first, max(stop - first, 0))
        rows = np.asarray(rows, np.int64)
        out = np.empty((rows.size, self.shape[1]), np.float32)
        for first in range(0, self.shape[0], self.CHUNK_ROWS):
            at = np.flatnonzero((rows >= first) & (rows < first + self.CHUNK_ROWS))
            if at.size:
                out[at] = self._read(first, self.CHUNK_ROWS)[rows[at] - first]
        return out

