"""Per-song results kept between runs, so that a rerun, a resumed run or a catalogue with
more songs never hears a recording twice.

A shard holds what hearing one recording produced: its melody (device.melody.encode), its
length and its shortlist windows (device.catalogue.song_windows). It is named by the
sha256 of the file's bytes under a folder named by the recipe, the digest of everything
else the result depends on (model, frontend, melody settings, embedder, shortlist
windows), so a new model or window hop never picks up an old result:

    SHARDS/<recipe[:16]>/<sha[:2]>/<sha>.npz

Shards are written whole to a temporary name and renamed, so a killed worker leaves no
half shard under the final name; one that does not read back as a valid shard is heard
again. Any filesystem Beam reads (a local folder, gs://, hdfs://, s3://) can hold them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import uuid

import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from device.catalogue import IndexConfig
from device.frontend import FrontendConfig
from device.melody import MelodyConfig

SHARD_FORMAT = "hum-search-song/1"
RAW = CompressionTypes.UNCOMPRESSED  # never guess a compression from a file name
CHUNK_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class Song:
    """One heard recording.

    Attributes:
        code: uint8 (n_frames,) its melody.
        seconds: its length.
        starts: int32 (n,) shortlist window starts, melody frames.
        vectors: float32 (n, dim) their vectors.
        keys: float32 (n,) their keys, semitones.
    """

    code: np.ndarray
    seconds: float
    starts: np.ndarray
    vectors: np.ndarray
    keys: np.ndarray

    @property
    def windows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.starts, self.vectors, self.keys


def recipe(model_sha256: str, embedder_sha256: str, frontend: FrontendConfig, melody: MelodyConfig,
           config: IndexConfig) -> str:
    """The digest of what a song's result depends on besides its audio (hex sha256).

    Args:
        config: the index settings as device.catalogue.indexed_config returns them.
    """
    parts = {"format": SHARD_FORMAT, "model": model_sha256, "embedder": embedder_sha256,
             "frontend": frontend.to_dict(), "melody": dataclasses.asdict(melody),
             "shortlist": config.shortlist.to_dict()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def shard_uri(root: str, recipe_digest: str, content_sha256: str) -> str:
    return FileSystems.join(root, recipe_digest[:16], content_sha256[:2], f"{content_sha256}.npz")


def write(uri: str, song: Song) -> None:
    """Writes a shard whole under a temporary name, then renames it into place."""
    buffer = io.BytesIO()
    np.savez(buffer, format=np.array(SHARD_FORMAT), code=np.asarray(song.code, np.uint8),
             seconds=np.float64(song.seconds), starts=np.asarray(song.starts, np.int32),
             vectors=np.asarray(song.vectors, np.float32), keys=np.asarray(song.keys, np.float32))
    tmp = f"{uri}.tmp-{uuid.uuid4().hex}"
    with FileSystems.create(tmp, compression_type=RAW) as handle:
        handle.write(buffer.getvalue())
    if FileSystems.exists(uri):  # another worker heard the same bytes: same result
        FileSystems.delete([tmp])
    else:
        FileSystems.rename([tmp], [uri])


def read(uri: str, dim: int) -> Song | None:
    """The shard at `uri`, or None when it is missing or is not a complete, valid shard of
    `dim`-value vectors (then the song is heard again)."""
    try:
        if not FileSystems.exists(uri):
            return None
        with FileSystems.open(uri, compression_type=RAW) as handle:
            data = np.load(io.BytesIO(handle.read()), allow_pickle=False)
            fields = {name: data[name] for name in ("format", "code", "seconds", "starts", "vectors", "keys")}
    except Exception:  # a damaged shard of any kind is only a cache miss
        return None
    code, starts, vectors, keys = fields["code"], fields["starts"], fields["vectors"], fields["keys"]
    n = starts.shape[0] if starts.ndim == 1 else -1
    valid = (str(fields["format"]) == SHARD_FORMAT and code.dtype == np.uint8 and code.ndim == 1
             and starts.dtype == np.int32 and n >= 0 and vectors.dtype == np.float32
             and vectors.shape == (n, dim) and keys.dtype == np.float32 and keys.shape == (n,)
             and np.isfinite(vectors).all() and np.isfinite(keys).all()
             and bool(((starts >= 0) & (starts <= code.size)).all())
             and fields["seconds"].shape == () and 0.0 < float(fields["seconds"]) < 1e7)
    return Song(code, float(fields["seconds"]), starts, vectors, keys) if valid else None
