"""The per-song stage: a DoFn that hears each recording once (decode, frontend, melody
model, shortlist windows: device.indexing.hear and device.catalogue.song_windows, the
local build's own functions) and keeps the result as a shard, or reuses the shard a
previous run left. A file that cannot be heard becomes a dead letter, never a failure.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path, PurePosixPath

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_index import shards
from beam_index.sources import is_local
from device import embedder as em
from device import manifest as mf
from device.audio import printable
from device.catalogue import IndexConfig, song_windows
from device.frontend import FrontendConfig
from device.indexing import hear
from device.melody import MelodyConfig
from device.model import MelodyModel

DEAD = "dead"  # the tag of the dead-letter output
METRICS = "hum_search"  # namespace of the counters: heard, reused, dead


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything a worker needs to hear songs, shipped inside the pipeline (the model and
    embedder are small: a worker needs no access to the launcher's files).

    Attributes:
        model_bytes, embedder_bytes: the melody model (TFLite) and embedder weights (npz).
        config: index settings as device.catalogue.indexed_config returns them.
        dim: values per shortlist vector.
        shard_root: where shards live (shards.py).
        digest: shards.recipe of the above.
    """

    model_bytes: bytes
    embedder_bytes: bytes
    frontend: FrontendConfig
    melody: MelodyConfig
    config: IndexConfig
    dim: int
    shard_root: str
    digest: str


class HearSong(beam.DoFn):
    """JSON lines {"n", "uri"} in; per song a record {"n", "uri", "sha256", "shard",
    "seconds", "windows", "reused"} out, or on the DEAD output {"path", "reason"}."""

    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        self.heard = beam.metrics.Metrics.counter(METRICS, "heard")
        self.reused = beam.metrics.Metrics.counter(METRICS, "reused")
        self.dead = beam.metrics.Metrics.counter(METRICS, "dead")

    def setup(self):
        """Loads the model and embedder once per DoFn instance (per worker thread)."""
        self._folder = Path(tempfile.mkdtemp(prefix="hum-search-beam-"))
        (self._folder / "model.tflite").write_bytes(self.recipe.model_bytes)
        (self._folder / "embedder.npz").write_bytes(self.recipe.embedder_bytes)
        self._model = MelodyModel(self._folder / "model.tflite", num_threads=1)
        self._embedder = em.Embedder(self._folder / "embedder.npz")

    def teardown(self):
        shutil.rmtree(getattr(self, "_folder", ""), ignore_errors=True)

    def process(self, line: str):
        item = json.loads(line)
        uri = item["uri"]
        try:
            with _local_copy(uri, self._folder) as path:
                digest = mf.sha256_of(path)  # a local file (_local_copy)
                target = shards.shard_uri(self.recipe.shard_root, self.recipe.digest, digest)
                song = shards.read(target, self.recipe.dim)
                reused = song is not None
                if song is None:
                    outcome = hear(path, self._model, self.recipe.frontend, self.recipe.melody)
                    if isinstance(outcome, str):
                        self.dead.inc()
                        yield beam.pvalue.TaggedOutput(DEAD, {"path": printable(uri), "reason": outcome})
                        return
                    code, seconds = outcome
                    song = shards.Song(code, seconds, *song_windows(code, self._embedder, self.recipe.config))
                    shards.write(target, song)
        except Exception as exc:  # whatever a hostile file does in a decoder is one dead letter
            self.dead.inc()
            reason = f"{printable(uri)}: {type(exc).__name__}: {printable(mf.one_line(exc))[:300]}"
            yield beam.pvalue.TaggedOutput(DEAD, {"path": printable(uri), "reason": reason})
            return
        (self.reused if reused else self.heard).inc()
        yield {"n": item["n"], "uri": uri, "sha256": digest, "shard": target, "seconds": song.seconds,
               "windows": int(song.starts.size), "reused": reused}


@contextlib.contextmanager
def _local_copy(uri: str, folder: Path):
    """A local path of the recording: the file itself, or a temporary copy of a remote
    one (decoders read local files), removed afterwards."""
    if is_local(uri):
        yield Path(uri)
        return
    copy = folder / f"audio{PurePosixPath(uri).suffix.lower()}"
    try:
        with FileSystems.open(uri, compression_type=shards.RAW) as source, open(copy, "wb") as target:
            shutil.copyfileobj(source, target, shards.CHUNK_BYTES)
        yield copy
    finally:
        copy.unlink(missing_ok=True)
