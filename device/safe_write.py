"""Replacing a catalogue directory without ever destroying what this tool did not write.

A new catalogue is written into a hidden staging sibling of the output directory, then
swapped in by two renames (output -> hidden old sibling, staging -> output) and the old
one is deleted. The output is only replaced when it is absent, an empty directory, or a
catalogue this tool wrote (its manifest has a catalogue format) holding nothing but the
files its manifest names; it never equals or contains an input folder. A run killed
midway leaves hidden siblings named after its process id; the next write to the same
place deletes those of dead processes, and first puts the old catalogue back if the run
died between the two renames.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from device import manifest as mf

STAGING, OLD = "staging", "old"  # hidden siblings: .<name>.hum-search-<kind>-<pid>[-<random>]


class OutputError(Exception):
    """An output directory that may not be replaced, or that could not be written (one line)."""


def _sibling_pattern(out_dir: Path) -> re.Pattern:
    return re.compile(rf"\.{re.escape(out_dir.name)}\.hum-search-({STAGING}|{OLD})-(\d+)(-.*)?")


def process_alive(pid: int) -> bool:
    """Whether process `pid` still runs (anyone's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def recover(out_dir: Path) -> None:
    """Cleans up after runs that died writing `out_dir`: restores the old catalogue a run
    had moved aside if `out_dir` is missing, and deletes the staging they left."""
    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():
        return
    pattern = _sibling_pattern(out_dir)
    left = []
    for sibling in out_dir.parent.iterdir():
        found = pattern.fullmatch(sibling.name)
        if found and int(found[2]) != os.getpid() and not process_alive(int(found[2])):
            left.append((found[1] != OLD, sibling.name, found[1]))  # old ones first
    for _, name, kind in sorted(left):
        sibling = out_dir.parent / name
        if kind == OLD and not os.path.lexists(out_dir):
            os.replace(sibling, out_dir)
        else:
            shutil.rmtree(sibling, ignore_errors=True)


def _refusal(out_dir: Path) -> str | None:
    """Why `out_dir` may not be replaced, or None."""
    if not os.path.lexists(out_dir):
        return None
    if not out_dir.is_dir():
        return "exists and is not a directory"
    entries = list(out_dir.iterdir())
    if not entries:
        return None
    manifest_path = out_dir / mf.MANIFEST
    try:
        manifest = mf.parse(manifest_path) if manifest_path.is_file() else None
    except mf.ManifestError:
        manifest = None
    if manifest is None or not str(manifest.get("format", "")).startswith(mf.CATALOGUE_FORMAT_PREFIX):
        return "is not empty and is not a catalogue written by hum-search"
    ours = {mf.MANIFEST} | {section["file"] for section in manifest.values()
                            if isinstance(section, dict) and isinstance(section.get("file"), str)}
    others = sorted(e.name for e in entries if e.name not in ours or e.is_symlink() or not e.is_file())
    if others:
        return f"holds {others[0]!r}, which hum-search did not write"
    return None


def check_output(out_dir: Path, inputs: Iterable[Path] = ()) -> Path:
    """The resolved output directory, if it may be replaced; else raises OutputError.

    Args:
        inputs: folders the output must neither equal nor contain (the audio folder).
    """
    out_dir = Path(out_dir).resolve()
    for folder in inputs:
        folder = Path(folder).resolve()
        if folder == out_dir or out_dir in folder.parents:
            raise OutputError(f"{out_dir}: the output may not be the audio folder or contain it "
                              f"({folder}); choose another --out")
    reason = _refusal(out_dir)
    if reason is not None:
        raise OutputError(f"{out_dir}: {reason}; refusing to replace it (nothing was changed), "
                          "choose a new or empty --out")
    return out_dir


def replace_directory(out_dir: Path, fill: Callable[[Path], None], inputs: Iterable[Path] = ()) -> None:
    """Makes `out_dir` anew, atomically: fill(staging) writes every file into a fresh
    hidden sibling, which then replaces `out_dir`. A failure leaves `out_dir` as it was.

    Raises:
        OutputError: `out_dir` may not be replaced (check_output), or writing failed (a
            full disk: the message says so and that the old directory is unchanged).
    """
    inputs = list(inputs)
    recover(out_dir)
    out_dir = check_output(out_dir, inputs)
    staging = None
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.hum-search-{STAGING}-{os.getpid()}-",
                                        dir=out_dir.parent))
        staging.chmod(0o755)  # mkdtemp makes it private; a catalogue is an ordinary directory
        fill(staging)
        check_output(out_dir, inputs)  # again: the folder may have changed during a long build
        if os.path.lexists(out_dir):
            old = out_dir.with_name(f".{out_dir.name}.hum-search-{OLD}-{os.getpid()}")
            os.replace(out_dir, old)
            os.replace(staging, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out_dir)
    except OSError as exc:
        state = "the directory there is unchanged" if os.path.lexists(out_dir) else "nothing was written"
        raise OutputError(f"{out_dir}: cannot write ({exc.strerror or mf.one_line(exc)}); {state}") from exc
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
