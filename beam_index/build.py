"""A catalogue built by the Beam pipeline, end to end: the launcher lists the files and
checks the output (before any hearing), the pipeline hears them on the runner's workers
(pipeline.py), and the launcher assembles the catalogue from their shards (assemble.py)."""
from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from beam_index import pipeline, shards, sources
from beam_index.assemble import assemble
from beam_index.hear import Recipe
from device import manifest as mf
from device import safe_write
from device.audio import printable
from device.catalogue import Catalogue, IndexConfig, indexed_config, shortlist_embedder
from device.indexing import hearing, new_files, read_metadata

SHARDS_MARKER = "hum-search-shards.json"  # says a folder holds shards this tool wrote
DEAD_LETTERS = "dead-letters.jsonl"


@dataclasses.dataclass(frozen=True)
class Report:
    """What a build did.

    Attributes:
        added: songs heard or reused into the catalogue; heard + reused.
        dead: files in the dead-letter output (dead_letters: where they are listed).
        skipped: files not heard because their song id was taken.
        counters: the runner's own counts (heard, reused, dead), where it reports them.
    """

    out: str
    added: int
    heard: int
    reused: int
    dead: int
    skipped: int
    dead_letters: str
    counters: dict

    def line(self) -> str:
        return (f"wrote {printable(self.out)}: {self.added} songs added ({self.heard} heard, {self.reused} "
                f"reused from shards), {self.dead} files dead-lettered ({printable(self.dead_letters)}), "
                f"{self.skipped} files skipped")


def default_shards(out_dir: Path) -> str:
    """Beside the catalogue, never inside it: <out>.shards."""
    out = Path(os.path.abspath(out_dir))
    return str(out.with_name(f"{out.name}.shards"))


def _check_shards(root: str, out_dir: Path) -> None:
    """A local shard folder is absent, empty or ours, and is not inside the catalogue."""
    if not sources.is_local(root):
        return
    folder, out = Path(os.path.abspath(root)), Path(os.path.abspath(out_dir))
    if folder == out or out in folder.parents:
        raise safe_write.OutputError(f"{folder}: shards may not live inside the catalogue {out}; choose "
                                     "another --shards")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())) \
            and not (folder / SHARDS_MARKER).is_file():
        raise safe_write.OutputError(f"{folder}: exists and holds no {SHARDS_MARKER}; refusing to write shards "
                                     "there, choose a new or empty --shards")


def build(sources_: list[str], out_dir: Path, model_dir: Path | None, metadata_csv: Path | None = None,
          config: IndexConfig = IndexConfig(), base: Catalogue | None = None, shard_root: str | None = None,
          runner: str = "direct", pipeline_options: PipelineOptions | None = None,
          log: Callable[[str], None] = print) -> Report:
    """Hears the audio files of `sources_` on a Beam runner and writes the catalogue at
    out_dir; the same catalogue as device.indexing.build of the same folder and model.

    Args:
        sources_: folders (local paths or URIs); their songs follow each other in this order.
        model_dir, metadata_csv, config, base: as device.indexing.build.
        shard_root: where per-song shards live (default: default_shards(out_dir)); on a
            cluster, a filesystem every worker reaches.
        pipeline_options: Beam's options (pipeline.options), for `runner`.
        log: receives the dead letters and skipped files, one line each.
    """
    out_dir = Path(out_dir)
    inputs = tuple(sources.local_folders(sources_))
    safe_write.recover(out_dir)
    safe_write.check_output(out_dir, inputs)  # before hours of hearing, not after
    shard_root = shard_root or default_shards(out_dir)
    _check_shards(shard_root, out_dir)
    metadata = read_metadata(metadata_csv)
    files = [uri for source in sources_ for uri in sources.audio_uris(source)]
    setup = hearing(model_dir, config, base)
    todo = new_files(files, (s.song_id for s in base.songs) if base is not None else (), log)
    if not todo:
        raise mf.ManifestError(f"{printable(', '.join(sources_))}: no new audio files; nothing was written")
    embedder_path, embedder = shortlist_embedder(setup.model_manifest, setup.model_path.parent)
    index_config = indexed_config(setup.config, setup.model_manifest)
    recipe = Recipe(setup.model_path.read_bytes(), embedder_path.read_bytes(), setup.frontend, setup.melody,
                    index_config, embedder.dim, shard_root,
                    shards.recipe(mf.sha256_of(setup.model_path), mf.sha256_of(embedder_path), setup.frontend,
                                  setup.melody, index_config))
    marker = FileSystems.join(shard_root, SHARDS_MARKER)
    if not FileSystems.exists(marker):
        pipeline.write_lines(marker, [{"format": "hum-search-shards/1"}])
    _remove_dead_runs(shard_root)
    run_dir = FileSystems.join(shard_root, "runs", f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    try:
        records, dead, counters = pipeline.run(recipe, [str(f) for f in todo], run_dir,
                                               pipeline_options or pipeline.options(runner, []))
        dead_letters = FileSystems.join(shard_root, DEAD_LETTERS)
        pipeline.write_lines(dead_letters, dead)
        for letter in dead:
            log(f"dead letter: {letter['reason']}")
        if not records:
            raise mf.ManifestError(f"{printable(', '.join(sources_))}: no new readable audio files; nothing "
                                   "was written")
        assemble(out_dir, setup, records, metadata, embedder.dim, base, inputs)
    finally:
        _remove(run_dir)
    heard = sum(not r["reused"] for r in records)
    return Report(str(out_dir), len(records), heard, len(records) - heard, len(dead), len(files) - len(todo),
                  dead_letters, counters)


def _remove_dead_runs(shard_root: str) -> None:
    """Deletes the run folders a killed launcher on this machine left in a local shard
    folder (its shards stay: they are what the next run reuses)."""
    runs = Path(shard_root) / "runs"
    if not sources.is_local(shard_root) or not runs.is_dir():
        return
    for folder in runs.iterdir():
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not safe_write.process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _remove(folder: str) -> None:
    if sources.is_local(folder):
        shutil.rmtree(folder, ignore_errors=True)
    else:
        try:
            FileSystems.delete([folder])
        except Exception:  # a leftover run folder is harmless
            pass
