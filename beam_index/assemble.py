"""The assembly: the catalogue from the pipeline's song records, on one machine, through
device.catalogue.write_catalogue (the local build's writer): shards are read one at a
time in the local build's song order, the index is trained and filled from the vectors
spooled to disk, and the manifest is written last into a staging folder that is swapped in atomically
(device.safe_write), so a failure leaves the catalogue already there as it was."""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from beam_index import shards
from device import manifest as mf
from device.catalogue import Catalogue, write_catalogue
from device.indexing import Hearing, base_songs


def songs_of(records: list[dict], metadata: dict[str, tuple[str, str]], dim: int):
    """(song, code, windows) per record, in order, each read from its shard as it is
    written (memory does not grow with the number of songs)."""
    for record in records:
        song = shards.read(record["shard"], dim)
        if song is None:
            raise mf.ManifestError(f"{record['shard']}: the shard of {record['uri']} vanished or is damaged; "
                                   "run the build again")
        song_id = PurePosixPath(record["uri"]).stem
        title, artist = metadata.get(song_id, (song_id, ""))
        yield (song_id, title, artist, song.seconds), song.code, song.windows


def assemble(out_dir: Path, setup: Hearing, records: list[dict], metadata: dict[str, tuple[str, str]],
             dim: int, base: Catalogue | None = None, inputs: tuple[Path, ...] = ()) -> None:
    """Writes the catalogue: the base's songs first (extending it), then the records'.

    Args:
        records: HearSong's song records in the order of the files.
        dim: values per shortlist vector.
        inputs: local folders `out_dir` may neither equal nor contain.
    """
    def songs():
        yield from base_songs(base)
        yield from songs_of(records, metadata, dim)

    write_catalogue(out_dir, setup.model_manifest, setup.model_path, songs(), setup.config, setup.melody_rate_hz,
          inputs=inputs)
