"""Manifests: every asset directory describes itself, and the runtime refuses a mismatch.

A model directory holds `model.tflite` and `manifest.json` with sections "frontend" and
"model". A catalogue directory is self-contained: a copy of the model, `index.ann`,
`songs.csv` and a `manifest.json` that adds the sections "index" and "songs".
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from device.frontend import FrontendConfig

MANIFEST = "manifest.json"
MODEL_FORMAT = "hum-search-model/2"  # 2: the melody model (1: window embeddings)
CATALOGUE_FORMAT = "hum-search-catalogue/2"  # 2: melodies + shortlist windows


class ManifestError(Exception):
    """Assets that are missing, corrupt or inconsistent with this runtime (one-line message)."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read(directory: Path, expected_format: str) -> dict:
    """Reads and parses `directory/manifest.json`, checking its format tag."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ManifestError(f"{directory}: no {MANIFEST}; not a hum-search asset directory")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: unreadable manifest ({exc})") from exc
    if manifest.get("format") != expected_format:
        raise ManifestError(f"{path}: format {manifest.get('format')!r}, expected {expected_format!r}")
    return manifest


def write(directory: Path, manifest: dict) -> None:
    """Writes `directory/manifest.json` atomically (a failure leaves the old one)."""
    path = Path(directory) / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def check_frontend(manifest: dict, where: Path) -> FrontendConfig:
    """The runtime's frontend must equal the one the assets were made with."""
    ours = FrontendConfig()
    theirs = manifest.get("frontend")
    if theirs != ours.to_dict():
        raise ManifestError(f"{where}: assets were made with frontend {theirs}, this runtime "
                            f"computes {ours.to_dict()}; rebuild the assets")
    return ours


def check_file(directory: Path, section: dict, name: str) -> Path:
    """The file named in `section` exists and has the recorded sha256."""
    path = Path(directory) / section.get("file", "")
    if not path.is_file():
        raise ManifestError(f"{directory}: the manifest names {name} file {path.name!r}, which is missing")
    if sha256_of(path) != section.get("sha256"):
        raise ManifestError(f"{path}: checksum differs from the manifest; the {name} was changed or corrupted")
    return path
