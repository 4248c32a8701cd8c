"""Catalogue: window embeddings of recordings in an Annoy index, with song metadata.

Item i of the index is one window of one song; songs.csv lists the songs in index order
with the first item and number of items of each, so item -> (song, offset) needs no
per-item table.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from device import manifest as mf
from device.matcher import MatcherConfig

INDEX_FILE = "index.ann"
SONGS_FILE = "songs.csv"
MODEL_FILE = "model.tflite"
SONG_COLUMNS = ("song_id", "title", "artist", "first_item", "n_items", "duration_s")


@dataclasses.dataclass(frozen=True)
class IndexConfig:
    """How catalogue recordings are cut and indexed."""

    hop_frames: int = 100  # 2.0 s between catalogue windows
    n_trees: int = 8
    metric: str = "angular"
    search_k_factor: int = 8  # Annoy search_k = n_trees * top_k * factor


@dataclasses.dataclass(frozen=True)
class SongInfo:
    song_id: str
    title: str
    artist: str
    first_item: int
    n_items: int
    duration_s: float


class Catalogue:
    """A loaded, verified catalogue directory.

    Attributes:
        directory: where it was loaded from.
        manifest: its parsed manifest.
        songs: SongInfo per song, in index order.
        model_path: the embedding model that made the index.
        matcher: the decision thresholds calibrated for that model (MatcherConfig.for_model).
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise mf.ManifestError(f"{self.directory}: no such catalogue directory")
        self.manifest = mf.read(self.directory, mf.CATALOGUE_FORMAT)
        self.frontend = mf.check_frontend(self.manifest, self.directory)
        self.model_path = mf.check_file(self.directory, self.manifest["model"], "model")
        index_path = mf.check_file(self.directory, self.manifest["index"], "index")
        songs_path = mf.check_file(self.directory, self.manifest["songs"], "song list")
        section = self.manifest["index"]
        if section.get("metric") != "angular":
            raise mf.ManifestError(f"{self.directory}: index metric {section.get('metric')!r} "
                                   "is not supported (angular only)")
        self.config = IndexConfig(hop_frames=int(section["hop_frames"]), n_trees=int(section["n_trees"]),
                                  metric=section["metric"])
        self.embedding_dim = int(self.manifest["model"]["embedding_dim"])
        try:
            self.matcher = MatcherConfig.for_model(self.manifest["model"])
        except ValueError as exc:
            raise mf.ManifestError(f"{self.directory}: {exc}") from exc
        self.songs = read_songs(songs_path)
        self._first = np.array([s.first_item for s in self.songs], dtype=np.int64)
        n_items = sum(s.n_items for s in self.songs)
        if n_items != int(section["n_items"]):
            raise mf.ManifestError(f"{self.directory}: songs.csv covers {n_items} items, "
                                   f"the index {section['n_items']}")
        self._index = AnnoyIndex(self.embedding_dim, "angular")
        self._index.load(str(index_path))  # memory-mapped
        if self._index.get_n_items() != n_items:
            raise mf.ManifestError(f"{index_path}: holds {self._index.get_n_items()} items, "
                                   f"the manifest says {n_items}")

    @property
    def n_items(self) -> int:
        return self._index.get_n_items()

    def locate(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Maps item ids to (song row, window start frame within the song), int64 arrays."""
        rows = np.searchsorted(self._first, items, side="right") - 1
        return rows, (items - self._first[rows]) * self.config.hop_frames

    def search(self, embedding: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        """Nearest windows to one embedding.

        Args:
            embedding: float32 (embedding_dim,), unit norm.

        Returns:
            items: int64 (k,), similarity: float32 (k,) cosine similarity, best first.
        """
        search_k = self.config.n_trees * top_k * self.config.search_k_factor
        items, distances = self._index.get_nns_by_vector(
            embedding.tolist(), top_k, search_k=search_k, include_distances=True)
        distance = np.asarray(distances, dtype=np.float32)
        return np.asarray(items, dtype=np.int64), 1.0 - distance * distance / 2.0

    def vectors(self) -> np.ndarray:
        """float32 (n_items, embedding_dim): every stored embedding, for extending the catalogue."""
        return np.array([self._index.get_item_vector(i) for i in range(self.n_items)], dtype=np.float32)

    def unload(self) -> None:
        self._index.unload()


def read_songs(path: Path) -> list[SongInfo]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        return [SongInfo(r["song_id"], r["title"], r["artist"], int(r["first_item"]),
                         int(r["n_items"]), float(r["duration_s"])) for r in rows]
    except (OSError, KeyError, ValueError) as exc:
        raise mf.ManifestError(f"{path}: unreadable song list ({exc})") from exc


def write_catalogue(out_dir: Path, model_dir_manifest: dict, model_path: Path,
                    songs: list[SongInfo], vectors: np.ndarray, config: IndexConfig) -> None:
    """Writes a complete catalogue directory atomically.

    Everything is written to a temporary sibling directory and swapped in at the end, so a
    failure leaves any catalogue already at `out_dir` untouched.

    Args:
        songs: song metadata in item order (first_item / n_items consistent with vectors).
        vectors: float32 (n_items, embedding_dim).
    """
    out_dir = Path(out_dir).resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; a catalogue is an ordinary directory
        dim = int(model_dir_manifest["model"]["embedding_dim"])
        index = AnnoyIndex(dim, config.metric)
        for i, vector in enumerate(vectors):
            index.add_item(i, vector.tolist())
        index.build(config.n_trees, n_jobs=1)  # n_jobs=1: a deterministic index
        index.save(str(tmp / INDEX_FILE))
        index.unload()
        shutil.copyfile(model_path, tmp / MODEL_FILE)
        with open(tmp / SONGS_FILE, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(SONG_COLUMNS)
            for s in songs:
                writer.writerow([s.song_id, s.title, s.artist, s.first_item, s.n_items, f"{s.duration_s:.2f}"])
        manifest = {
            "format": mf.CATALOGUE_FORMAT,
            "frontend": model_dir_manifest["frontend"],
            "model": dict(model_dir_manifest["model"], file=MODEL_FILE,
                          sha256=mf.sha256_of(tmp / MODEL_FILE)),
            "index": {"file": INDEX_FILE, "sha256": mf.sha256_of(tmp / INDEX_FILE),
                      "metric": config.metric, "n_trees": config.n_trees,
                      "n_items": int(vectors.shape[0]), "hop_frames": config.hop_frames,
                      "embedding_dim": dim},
            "songs": {"file": SONGS_FILE, "sha256": mf.sha256_of(tmp / SONGS_FILE), "count": len(songs)},
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
