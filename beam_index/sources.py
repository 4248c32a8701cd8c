"""The recordings a build hears: the audio files in or below each given folder, a local
path or a URI of any filesystem Beam reads (gs://bucket/music, hdfs://..., s3://...)."""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from apache_beam.io.filesystems import FileSystems

from device import manifest as mf
from device.audio import printable
from device.indexing import AUDIO_SUFFIXES, audio_files


def is_local(uri: str) -> bool:
    return FileSystems.get_scheme(uri) is None


def audio_uris(source: str) -> list[str]:
    """The audio files of one folder, in the order a local build hears them (sorted by
    path, component by component).

    A local folder is listed as device.indexing.audio_files lists it, so a Beam build of
    it equals `hum-search index build` of it; a remote one through Beam's FileSystems.
    """
    if is_local(source):
        return [str(path) for path in audio_files(Path(source))]
    pattern = FileSystems.join(source.rstrip("/"), "**")
    try:
        found = FileSystems.match([pattern])[0].metadata_list
    except Exception as exc:  # each filesystem raises its own errors
        raise mf.ManifestError(f"{printable(source)}: cannot list ({mf.one_line(exc)[:200]})") from exc
    uris = [m.path for m in found if PurePosixPath(m.path).suffix.lower() in AUDIO_SUFFIXES]
    if not uris:
        raise mf.ManifestError(f"{printable(source)}: no audio files there")
    return sorted(uris, key=lambda uri: uri.split("/"))


def local_folders(sources: list[str]) -> list[Path]:
    """The local ones among the sources (an output may neither be nor contain them)."""
    return [Path(os.path.abspath(s)) for s in sources if is_local(s)]
