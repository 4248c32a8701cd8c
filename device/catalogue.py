"""Catalogue: each song's melody (a byte per melody frame) and an Annoy index of its windows.

Files of a catalogue directory:
    melody.bin   uint8, every song's melody line (device.melody.encode) end to end
    windows.npy  float32 (n_items, 3): song row, start (melody frames) and key (semitones)
                 of each shortlist window, in index item order
    index.ann    Annoy (angular) over the windows' key-free vectors (device.shortlist)
    songs.csv    song_id, title, artist, first_frame, n_frames (into melody.bin), duration_s
    model.tflite the melody model that heard the recordings
    manifest.json what each file holds, with checksums, the frontend, the model's
                 settings and the shortlist's
"""
from __future__ import annotations

import csv
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from device import manifest as mf
from device import melody as mel
from device import shortlist as sl
from device.matcher import MatcherConfig

INDEX_FILE = "index.ann"
MELODY_FILE = "melody.bin"
WINDOWS_FILE = "windows.npy"
SONGS_FILE = "songs.csv"
MODEL_FILE = "model.tflite"
SONG_COLUMNS = ("song_id", "title", "artist", "first_frame", "n_frames", "duration_s")


@dataclasses.dataclass(frozen=True)
class IndexConfig:
    """How catalogue melodies are windowed and indexed."""

    shortlist: sl.ShortlistConfig = sl.ShortlistConfig()
    n_trees: int = 8
    metric: str = "angular"
    search_k_factor: int = 8  # Annoy search_k = n_trees * neighbours * factor


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
        self.manifest = mf.read(self.directory, mf.CATALOGUE_FORMAT)
        self.frontend = mf.check_frontend(self.manifest, self.directory)
        try:
            self.model_path = mf.check_file(self.directory, self.manifest["model"], "model")
            index_path = mf.check_file(self.directory, self.manifest["index"], "index")
            melody_path = mf.check_file(self.directory, self.manifest["melody"], "melody")
            windows_path = mf.check_file(self.directory, self.manifest["windows"], "windows")
            songs_path = mf.check_file(self.directory, self.manifest["songs"], "song list")
            section = self.manifest["index"]
            if section.get("metric") != "angular":
                raise mf.ManifestError(f"{self.directory}: index metric {section.get('metric')!r} "
                                       "is not supported (angular only)")
            shortlist = sl.ShortlistConfig(**dict(section["shortlist"],
                                                  scales=tuple(section["shortlist"]["scales"])))
            self.config = IndexConfig(shortlist, n_trees=int(section["n_trees"]), metric=section["metric"])
            self.melody_config = mel.MelodyConfig(**self.manifest["model"]["melody"])
            self.melody_rate_hz = float(self.manifest["melody"]["frame_rate_hz"])
            self.matcher = MatcherConfig.for_model(self.manifest["model"])
            n_items = int(section["n_items"])
        except (KeyError, TypeError, ValueError) as exc:
            raise mf.ManifestError(f"{self.directory}: malformed manifest ({exc!r})") from exc
        self.songs = read_songs(songs_path)
        # melodies and windows are memory-mapped like the index: a query reads the few
        # pages it needs, and the kernel may drop them again under memory pressure
        self._codes = (np.memmap(melody_path, dtype=np.uint8, mode="r") if melody_path.stat().st_size
                       else np.zeros(0, dtype=np.uint8))
        if sum(s.n_frames for s in self.songs) != self._codes.size:
            raise mf.ManifestError(f"{self.directory}: songs.csv covers "
                                   f"{sum(s.n_frames for s in self.songs)} melody frames, "
                                   f"{MELODY_FILE} holds {self._codes.size}")
        try:
            self._windows = np.load(windows_path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise mf.ManifestError(f"{windows_path}: unreadable ({exc})") from exc
        if self._windows.shape != (n_items, 3):
            raise mf.ManifestError(f"{windows_path}: shape {self._windows.shape}, expected ({n_items}, 3)")
        self._index = AnnoyIndex(self.config.shortlist.dim, "angular")
        self._index.load(str(index_path))  # memory-mapped
        if self._index.get_n_items() != n_items:
            raise mf.ManifestError(f"{index_path}: holds {self._index.get_n_items()} items, "
                                   f"the manifest says {n_items}")

    @property
    def n_items(self) -> int:
        return self._index.get_n_items()

    def codes(self, row: int) -> np.ndarray:
        """uint8 (n_frames,): a song's stored melody."""
        song = self.songs[row]
        return np.asarray(self._codes[song.first_frame:song.first_frame + song.n_frames])

    def melody(self, row: int) -> np.ndarray:
        """float32 (n_frames,): a song's melody line, MIDI per melody frame (0: none)."""
        return mel.decode(self.codes(row))

    def search(self, vector: np.ndarray, neighbours: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Nearest windows to one query vector.

        Returns:
            rows int64 (k,), starts int64 (k,) melody frames, similarity float32 (k,)
            cosine, best first, keys float32 (k,).
        """
        search_k = self.config.n_trees * neighbours * self.config.search_k_factor
        items, distances = self._index.get_nns_by_vector(
            vector.tolist(), neighbours, search_k=search_k, include_distances=True)
        found = self._windows[np.asarray(items, dtype=np.int64)].reshape(-1, 3)
        distance = np.asarray(distances, dtype=np.float32)
        return (found[:, 0].astype(np.int64), found[:, 1].astype(np.int64),
                1.0 - distance * distance / 2.0, found[:, 2])

    def unload(self) -> None:
        self._index.unload()


def read_songs(path: Path) -> list[SongInfo]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        return [SongInfo(r["song_id"], r["title"], r["artist"], int(r["first_frame"]),
                         int(r["n_frames"]), float(r["duration_s"])) for r in rows]
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise mf.ManifestError(f"{path}: unreadable song list ({exc})") from exc


def write_catalogue(out_dir: Path, model_dir_manifest: dict, model_path: Path,
                    songs: Iterable[tuple[tuple[str, str, str, float], np.ndarray]],
                    config: IndexConfig, melody_rate_hz: float) -> None:
    """Writes a complete catalogue directory atomically, in memory bounded whatever the
    number of songs: each song's melody and windows go to disk as it comes (`songs` may
    be a generator), and Annoy builds its index in the file (on_disk_build).

    Everything is written to a temporary sibling directory and swapped in at the end, so a
    failure (also one raised by the `songs` generator) leaves any catalogue already at
    `out_dir` untouched.

    Args:
        model_dir_manifest: the model directory's manifest (frontend and "model" section).
        songs: per song ((song_id, title, artist, duration_s), uint8 (n_frames,) its melody
            (device.melody.encode)).
        melody_rate_hz: melody frames per second.
    """
    out_dir = Path(out_dir).resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; a catalogue is an ordinary directory
        index = AnnoyIndex(config.shortlist.dim, config.metric)
        index.on_disk_build(str(tmp / INDEX_FILE))
        infos, first, item = [], 0, 0
        rows_path = tmp / ".windows.raw"  # float32 rows of 3, windows.npy's data
        with open(tmp / MELODY_FILE, "wb") as melody, open(rows_path, "wb") as rows:
            for row, ((song_id, title, artist, duration_s), code) in enumerate(songs):
                code = np.asarray(code, np.uint8)
                starts, vectors, keys = sl.catalogue_windows(mel.decode(code), config.shortlist)
                for vector in vectors:
                    index.add_item(item, vector.tolist())
                    item += 1
                np.stack([np.full(starts.size, row, np.float32), starts.astype(np.float32), keys],
                         axis=1).astype(np.float32).tofile(rows)
                code.tofile(melody)
                infos.append(SongInfo(song_id, title, artist, first, int(code.size), duration_s))
                first += int(code.size)
        index.build(config.n_trees, n_jobs=1)  # n_jobs=1: a deterministic index
        index.unload()
        (tmp / INDEX_FILE).chmod(0o644)  # Annoy creates it private, as save() does not
        _rows_to_npy(rows_path, tmp / WINDOWS_FILE, item)
        shutil.copyfile(model_path, tmp / MODEL_FILE)
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
            "melody": {"file": MELODY_FILE, "sha256": mf.sha256_of(tmp / MELODY_FILE),
                       "frame_rate_hz": melody_rate_hz, "frames": first,
                       "encoding": "uint8 per melody frame: 0 no melody, else 1 + quarter "
                                   f"semitones above MIDI {mel.CODE_FMIN_MIDI:g}"},
            "windows": {"file": WINDOWS_FILE, "sha256": mf.sha256_of(tmp / WINDOWS_FILE),
                        "columns": ["song_row", "start_melody_frame", "key_semitones"]},
            "index": {"file": INDEX_FILE, "sha256": mf.sha256_of(tmp / INDEX_FILE),
                      "metric": config.metric, "n_trees": config.n_trees,
                      "n_items": item, "dim": config.shortlist.dim,
                      "shortlist": config.shortlist.to_dict()},
            "songs": {"file": SONGS_FILE, "sha256": mf.sha256_of(tmp / SONGS_FILE), "count": len(infos)},
        }
        mf.write(tmp, manifest)
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _rows_to_npy(raw: Path, out: Path, n_rows: int, chunk_bytes: int = 1 << 22) -> None:
    """windows.npy (float32 (n_rows, 3)) from a raw file of its rows, copied in chunks; the
    raw file is removed."""
    with open(out, "wb") as handle, open(raw, "rb") as source:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                     "fortran_order": False, "shape": (n_rows, 3)})
        shutil.copyfileobj(source, handle, chunk_bytes)
    raw.unlink()
