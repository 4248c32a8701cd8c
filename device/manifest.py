"""Manifests: every asset directory describes itself, and the runtime refuses a mismatch.

A model directory holds `model.tflite` and `manifest.json` with sections "frontend" and
"model". A catalogue directory is self-contained: a copy of the model, `index.npz`,
`songs.csv` and a `manifest.json` that adds the sections "index" and "songs".

A manifest is read defensively (a bounded size, UTF-8, finite numbers, bounded nesting)
and checked against the schema of its format before any value is used, so a damaged or
hostile manifest is refused with one line that names the field.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import tokenize
from pathlib import Path
from typing import BinaryIO

import numpy as np

from device.frontend import FrontendConfig

MANIFEST = "manifest.json"
MODEL_FORMAT = "hum-search-model/3"  # 3: + shortlist embedder; 2: the melody model; 1: window embeddings
CATALOGUE_FORMAT = "hum-search-catalogue/4"  # 4: IVF-PQ index; 3: learned vectors in Annoy; 2: phasors
CATALOGUE_FORMAT_PREFIX = "hum-search-catalogue/"  # every version this tool ever wrote
MAX_MANIFEST_BYTES = 1 << 20  # ours are about 4 KB
MAX_DEPTH = 32  # nesting of JSON containers; ours reach 5
# what reading a damaged npy header raises (numpy parses the header with tokenize and ast)
NPY_ERRORS = (OSError, ValueError, TypeError, SyntaxError, tokenize.TokenError, RecursionError, MemoryError)


class ManifestError(Exception):
    """Assets that are missing, corrupt or inconsistent with this runtime (one-line message)."""


def npy_header(handle: BinaryIO) -> tuple[tuple, bool, np.dtype]:
    """(shape, Fortran order, dtype) of the npy array at `handle`, in the versions numpy.save
    writes (1.0 and 2.0), leaving the handle at its data; raises one of NPY_ERRORS."""
    version = np.lib.format.read_magic(handle)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"npy version {version} is not one numpy.save writes")
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return read(handle)


def one_line(text: object) -> str:
    """`text` as one line (an exception's message may span several)."""
    return " ".join(str(text).split())


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _depth(value: object) -> int:
    """Nesting depth of JSON containers (0 for a scalar), without recursion."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth + 1)
            if depth + 1 <= MAX_DEPTH:
                todo.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse(path: Path) -> dict:
    """The JSON object in `path`: at most MAX_MANIFEST_BYTES of UTF-8, finite numbers,
    at most MAX_DEPTH levels of nesting. Raises ManifestError otherwise."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ManifestError(f"{path}: unreadable manifest ({exc.strerror or exc})") from exc
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path}: larger than {MAX_MANIFEST_BYTES} bytes; not a manifest")
    try:
        data = json.loads(raw.decode("utf-8"), parse_float=_finite, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ManifestError(f"{path}: not a valid JSON manifest ({one_line(exc)[:200]})") from exc
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: a manifest is a JSON object, this is {type(data).__name__}")
    if _depth(data) > MAX_DEPTH:
        raise ManifestError(f"{path}: nested more than {MAX_DEPTH} levels deep")
    return data


# The schema: a dict is a section whose keys are required ("name?": optional; extra keys
# are allowed unless the section is Closed), leaves are checkers below.
@dataclasses.dataclass(frozen=True)
class Int:
    lo: int
    hi: int

    def problem(self, value) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            return f"{value!r:.40} is not an integer"
        return None if self.lo <= value <= self.hi else f"{value!r:.40} is outside [{self.lo}, {self.hi}]"


@dataclasses.dataclass(frozen=True)
class Real:
    lo: float
    hi: float

    def problem(self, value) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{value!r:.40} is not a number"
        return None if self.lo <= value <= self.hi else f"{value!r:.40} is outside [{self.lo}, {self.hi}]"


@dataclasses.dataclass(frozen=True)
class Text:
    pattern: str

    def problem(self, value) -> str | None:
        if isinstance(value, str) and re.fullmatch(self.pattern, value):
            return None
        return f"{value!r:.80} does not match {self.pattern}"


@dataclasses.dataclass(frozen=True)
class Items:
    item: object
    lo: int
    hi: int

    def problem(self, value) -> str | None:
        if not isinstance(value, list) or not self.lo <= len(value) <= self.hi:
            return f"is not a list of {self.lo} to {self.hi} values"
        return next((f"[{i}] {p}" for i, v in enumerate(value) if (p := self.item.problem(v))), None)


class Closed(dict):
    """A section that may hold no other keys (it becomes a dataclass's arguments)."""


ANY_SECTION = {}  # checked elsewhere (the frontend: equality with this runtime's)
FILE = Text(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")  # a plain name inside the directory
SHA256 = Text(r"[0-9a-f]{64}")
MODEL_SECTION = {
    "file": FILE, "sha256": SHA256,
    "melody": Closed({"tile_hop_frames": Int(1, 10_000), "voicing_threshold": Real(0.0, 1.0),
                      "pool": Int(1, 64)}),
    # thresholds, or a linear evidence (device.decision; MatcherConfig.for_model needs one)
    "decision?": {"min_score?": Real(0.0, 1.0), "min_margin?": Real(0.0, 1.0),
                  "evidence?": Closed({"features": Items(Text(r"[a-z_]{1,32}"), 1, 64),
                                       "weights": Items(Real(-1e6, 1e6), 1, 64), "bias": Real(-1e6, 1e6),
                                       "min_songs?": Int(1, 10**9)})},
}
EMBEDDER_SECTION = {"file": FILE, "sha256": SHA256, "dim": Int(2, 1024), "window_frames": Int(1, 10_000)}
SCHEMAS = {
    MODEL_FORMAT: {"format": Text(re.escape(MODEL_FORMAT)), "frontend": ANY_SECTION, "model": MODEL_SECTION,
                   "embedder?": EMBEDDER_SECTION},
    CATALOGUE_FORMAT: {
        "format": Text(re.escape(CATALOGUE_FORMAT)), "frontend": ANY_SECTION, "model": MODEL_SECTION,
        "embedder": EMBEDDER_SECTION,
        "melody": {"file": FILE, "sha256": SHA256, "frame_rate_hz": Real(0.01, 1000.0),
                   "frames": Int(0, 2 ** 40)},
        "windows": {"file": FILE, "sha256": SHA256},
        "index": {"file": FILE, "sha256": SHA256, "kind": Text("ivf-pq"), "n_lists": Int(1, 2 ** 24),
                  "pq_m": Int(1, 1024), "pq_bits": Int(1, 8),
                  "n_items": Int(0, 2 ** 31 - 2), "dim": Int(2, 1024),
                  "shortlist": Closed({
                      "window_frames": Int(1, 10_000),
                      "catalogue_hop_frames": Int(1, 10_000), "query_hop_frames": Int(1, 10_000),
                      "scales": Items(Real(0.1, 10.0), 1, 32), "min_voiced": Real(0.0, 1.0),
                      "neighbours": Int(1, 10_000), "candidates": Int(1, 10_000)})},
        "songs": {"file": FILE, "sha256": SHA256, "count": Int(0, 10 ** 7)},
    },
}


def check_schema(value: object, schema: object, field: str = "") -> str | None:
    """The first problem of `value` against `schema`, as 'field a.b: problem', or None."""
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return f"field {field or '(top)'}: is {type(value).__name__}, not an object"
        names = {key.rstrip("?") for key in schema}
        if isinstance(schema, Closed) and (extra := sorted(set(value) - names)):
            return f"field {field}.{extra[0]}: unexpected" if field else f"field {extra[0]}: unexpected"
        for key, sub in schema.items():
            name = key.rstrip("?")
            where = f"{field}.{name}" if field else name
            if name not in value:
                if key.endswith("?"):
                    continue
                return f"field {where}: missing"
            if (problem := check_schema(value[name], sub, where)) is not None:
                return problem
        return None
    problem = schema.problem(value)
    return None if problem is None else f"field {field}: {problem}"


def read(directory: Path, expected_format: str) -> dict:
    """Reads `directory/manifest.json` and checks it against its format's schema and bounds."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ManifestError(f"{directory}: no {MANIFEST}; not a hum-search asset directory")
    manifest = parse(path)
    if manifest.get("format") != expected_format:
        found = str(manifest.get("format"))[:80]
        hint = ("; an earlier catalogue: re-index it from its melodies with hum-search index reembed --index "
                f"{directory}" if expected_format == CATALOGUE_FORMAT and found.startswith(CATALOGUE_FORMAT_PREFIX)
                else "")
        raise ManifestError(f"{path}: format {found!r}, expected {expected_format!r}{hint}")
    if (problem := check_schema(manifest, SCHEMAS[expected_format])) is not None:
        raise ManifestError(f"{path}: {problem}")
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
        raise ManifestError(f"{where}: assets were made with frontend {one_line(theirs)[:300]}, this "
                            f"runtime computes {ours.to_dict()}; rebuild the assets")
    return ours


def check_file(directory: Path, section: dict, name: str) -> Path:
    """The file named in `section` is a regular file with the recorded sha256."""
    path = Path(directory) / section.get("file", "")
    if not path.is_file():
        raise ManifestError(f"{directory}: the manifest names {name} file {path.name!r}, which is missing")
    try:
        digest = sha256_of(path)
    except OSError as exc:
        raise ManifestError(f"{path}: unreadable ({exc.strerror or exc})") from exc
    if digest != section.get("sha256"):
        raise ManifestError(f"{path}: checksum differs from the manifest; the {name} was changed or corrupted")
    return path
