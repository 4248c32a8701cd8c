"""Fuzzing: seeded mutations of valid inputs, fed to the runtime as a user or an attacker would.

    python -m benchmarks.fuzz --cases 10000 --out benchmarks/results/fuzz [--seed 15]

Kinds (shares of --cases in KINDS):
    audio     mutated recordings (wav, flac, ogg, mp3, aiff, m4a; bytes, header fields,
              truncation) in batches through `hum-search identify --json`, a good hum
              between every few: every line must be JSON, one per file, and every good
              file answered as in a reference run;
    names     a good hum under file names of random bytes (not UTF-8, control characters,
              255 bytes), in the same batches;
    build     mutated recordings in batches through `hum-search index build`: the good
              ones become songs, every other file is skipped and counted;
    manifest, songs, windows, melody, index, model
              one catalogue file mutated (JSON-aware, CSV-aware, array-aware or byte-level)
              with its checksum updated as a hostile edit would; the catalogue is loaded
              (and, if accepted, searched and asked to identify a hum) in a worker process.
A crash is a Python exception other than the runtime's one-line errors, a traceback on
stderr or a process killed by a signal (a segmentation fault); a hang is a case over
--timeout-s; peak memory is the resident peak (ru_maxrss) of the process that ran a batch,
so it bounds every input of the batch. Writes cases.csv (one row per case) and
summary.json; prints the summary.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from device import assets, indexing
from device import vector_index as vi
from device import manifest as mf
from device.audio import load_audio, printable
from device.catalogue import Catalogue, IndexConfig
from device.model import ModelError
from device.shortlist import ShortlistConfig

KINDS = {"audio": 0.33, "names": 0.07, "build": 0.05, "manifest": 0.2, "songs": 0.15, "windows": 0.05,
         "melody": 0.03, "index": 0.09, "model": 0.03}
CATALOGUE_FILES = {"manifest": mf.MANIFEST, "songs": "songs.csv", "windows": "windows.npy",
                   "melody": "melody.bin", "index": "index.npz", "model": "model.tflite"}
CLI_BATCH = 60  # files per hum-search run
GOOD_EVERY = 10  # a good hum after every this many fuzzed files
WORKER_BATCH = 250  # catalogue cases per worker process
RATE = 16000
INTERESTING_INTS = (0, 1, -1, 2, 7, 255, 256, 65535, 2 ** 31 - 1, -2 ** 31, 2 ** 32 - 1, 2 ** 63 - 1, 5_000_000)
INTERESTING_FLOATS = (np.nan, np.inf, -np.inf, 0.0, -1.0, 1e30, 1e-30)
INTERESTING_JSON = (None, True, False, 0, -1, -5, 2 ** 31, 2 ** 64, 1e308, -1e308, 0.5, "", "x" * 10_000,
                    "../../etc/passwd", [], [1, 2], {}, {"a": {"b": [1]}}, "\udcff", "\x1b[2J")
INTERESTING_TEXT = ("", "-1", "0", "nan", "inf", "1e400", "9" * 400, "x" * 5000, '"', "\n", "\x00", "\x1b[31m",
                    "2147483648", "-2147483649", "1.5", " 3 ", "\ufeff")
FIELDS = ("kind", "case", "mutation", "outcome", "detail", "peak_mb", "wall_s")


# ---------------------------------------------------------------- mutations
def mutate_bytes(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """A byte-level mutation: bit flips, interesting integers or floats at a random offset,
    truncation, a repeated or zeroed stretch, appended garbage or random bytes throughout."""
    data = bytearray(data)
    choice = int(rng.integers(9))
    n = max(len(data), 1)
    at = int(rng.integers(n))
    if choice == 0:
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(n))
            if i < len(data):
                data[i] ^= 1 << int(rng.integers(8))
        return bytes(data), "bit flips"
    if choice == 1:
        value, width = INTERESTING_INTS[int(rng.integers(len(INTERESTING_INTS)))], (4, 8)[int(rng.integers(2))]
        data[at:at + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
        return bytes(data), f"int {value} ({width} bytes) at {at}"
    if choice == 2:
        value = INTERESTING_FLOATS[int(rng.integers(len(INTERESTING_FLOATS)))]
        data[at:at + 4] = np.float32(value).tobytes()
        return bytes(data), f"float {value} at {at}"
    if choice == 3:
        return bytes(data[:at]), f"truncated at {at}"
    if choice == 4:
        length = int(rng.integers(1, 4096))
        return bytes(data[:at] + data[at:at + length] * int(rng.integers(2, 5)) + data[at:]), f"repeated {length} at {at}"
    if choice == 5:
        length = int(rng.integers(1, 4096))
        data[at:at + length] = bytes(min(length, len(data) - at))
        return bytes(data), f"zeroed {length} at {at}"
    if choice == 6:
        return bytes(data) + rng.bytes(int(rng.integers(1, 5000))), "garbage appended"
    if choice == 7:
        return rng.bytes(int(rng.integers(0, 3 * n))), "random bytes"
    for _ in range(int(rng.integers(1, 64))):
        i = int(rng.integers(n))
        if i < len(data):
            data[i] = int(rng.integers(256))
    return bytes(data), "random byte values"


def mutate_header(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """An interesting integer written over one of the first 64 bytes (where WAV, AIFF and
    FLAC keep sample rate, channels and sizes)."""
    data = bytearray(data)
    at = int(rng.integers(0, min(64, len(data))))
    value, width = INTERESTING_INTS[int(rng.integers(len(INTERESTING_INTS)))], (2, 4, 8)[int(rng.integers(3))]
    order = ("little", "big")[int(rng.integers(2))]
    data[at:at + width] = (value % (1 << (8 * width))).to_bytes(width, order)
    return bytes(data), f"header {order} int {value} ({width} bytes) at {at}"


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _paths(sub, prefix + (key,))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from _paths(sub, prefix + (i,))


def mutate_json(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """A JSON-aware mutation: a value replaced, a key deleted or added, or the whole
    document replaced; or (one time in four) a byte-level mutation of the text."""
    if rng.random() < 0.25:
        return mutate_bytes(data, rng)
    document = json.loads(data)
    paths = list(_paths(document))
    path = paths[int(rng.integers(len(paths)))]
    value = INTERESTING_JSON[int(rng.integers(len(INTERESTING_JSON)))]
    if rng.random() < 0.1:
        value = json.loads("[" * 500 + "]" * 500) if rng.random() < 0.5 else value
    action = int(rng.integers(3))
    if not path:
        document = value
        what = "document"
    else:
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        if action == 0 and isinstance(parent, dict):
            del parent[path[-1]]
            what = "deleted"
        elif action == 1 and isinstance(parent, dict):
            parent[f"extra{int(rng.integers(10))}"] = value
            what = "added"
        else:
            parent[path[-1]] = value
            what = "replaced"
    text = json.dumps(document, ensure_ascii=False)
    return text.encode("utf-8", "surrogateescape"), f"{what} {'.'.join(map(str, path))} = {str(value)[:30]!r}"


def mutate_csv(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """A CSV-aware mutation of songs.csv: a field replaced, a line deleted, repeated or
    swapped, a column added; or (one time in four) a byte-level mutation."""
    if rng.random() < 0.25:
        return mutate_bytes(data, rng)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    r = int(rng.integers(len(rows)))
    action = int(rng.integers(5))
    if action == 0:
        c = int(rng.integers(len(rows[r])))
        rows[r][c] = INTERESTING_TEXT[int(rng.integers(len(INTERESTING_TEXT)))]
        what = f"field {r},{c} = {rows[r][c][:20]!r}"
    elif action == 1:
        del rows[r]
        what = f"line {r} deleted"
    elif action == 2:
        rows.insert(r, list(rows[r]))
        what = f"line {r} repeated"
    elif action == 3:
        s = int(rng.integers(len(rows)))
        rows[r], rows[s] = rows[s], rows[r]
        what = f"lines {r} and {s} swapped"
    else:
        rows[r].append("extra")
        what = f"column added to line {r}"
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode("utf-8", "surrogateescape"), what


def mutate_index(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """An array-aware mutation of index.npz: one value of one array (cell sizes, centroids,
    codebooks, codes) set to an interesting value, the file rewritten as the writer lays
    it out; or (one time in three) byte-level."""
    if rng.random() < 0.33:
        return mutate_bytes(data, rng)
    with np.load(io.BytesIO(data)) as archive:
        arrays = {name: archive[name].copy() for name in vi.ARRAYS}
    name = vi.ARRAYS[int(rng.integers(len(vi.ARRAYS)))]
    flat = arrays[name].reshape(-1)
    if not flat.size:
        return mutate_bytes(data, rng)
    at = int(rng.integers(flat.size))
    if flat.dtype.kind == "f":
        value = INTERESTING_FLOATS[int(rng.integers(len(INTERESTING_FLOATS)))]
    else:
        value = INTERESTING_INTS[int(rng.integers(len(INTERESTING_INTS)))]
        info = np.iinfo(flat.dtype)
        value = value if info.min <= value <= info.max else info.max
    flat[at] = value
    out = io.BytesIO()
    vi.write(out, arrays)
    return out.getvalue(), f"{name}[{at}] = {value}"


# ---------------------------------------------------------------- inputs
def base_recordings(work: Path) -> dict[str, Path]:
    """A 5 s hum (the start of a shipped demo: longer than one model window) in each format
    the harness mutates."""
    hum = load_audio(sorted(assets.demo_dir().glob("*.wav"))[-1], RATE)[:5 * RATE]
    work.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, fmt, subtype in (("pcm16.wav", "WAV", "PCM_16"), ("float.wav", "WAV", "FLOAT"),
                               ("flac.flac", "FLAC", "PCM_16"), ("ogg.ogg", "OGG", "VORBIS"),
                               ("mp3.mp3", "MP3", "MPEG_LAYER_III"), ("aiff.aiff", "AIFF", "PCM_16")):
        soundfile.write(work / name, hum, RATE, format=fmt, subtype=subtype)
        out[name] = work / name
    if shutil.which("ffmpeg"):
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(work / "pcm16.wav"),
                        str(work / "aac.m4a")], check=True)
        out["aac.m4a"] = work / "aac.m4a"
    return out


def fuzzed_recording(bases: dict[str, Path], rng: np.random.Generator, folder: Path, case: int) -> tuple[Path, str]:
    name = sorted(bases)[int(rng.integers(len(bases)))]
    data = bases[name].read_bytes()
    data, what = (mutate_header if rng.random() < 0.35 else mutate_bytes)(data, rng)
    path = folder / f"{case:05d}-{name}"
    path.write_bytes(data)
    return path, f"{name}: {what}"


def fuzzed_name(good: Path, rng: np.random.Generator, folder: Path, case: int) -> tuple[Path, str]:
    length = int(rng.integers(1, 240))
    raw = bytes(b for b in rng.integers(1, 256, length, dtype=np.uint8).tobytes() if b != ord("/"))
    name = os.fsencode(f"{case:05d}-") + raw[:240] + b".wav"
    path = Path(os.fsdecode(os.fsencode(folder) + b"/" + name))
    shutil.copyfile(good, path)
    return path, f"name of {len(name)} bytes"


def small_catalogue(work: Path) -> Path:
    """A catalogue of the shipped demo hums with windows every 3 melody frames (a few
    hundred items: several index cells), built by the device's code."""
    out = work / "catalogue"
    if not (out / mf.MANIFEST).exists():
        config = IndexConfig(ShortlistConfig(catalogue_hop_frames=3))
        indexing.build(assets.demo_dir(), out, assets.default_model_dir(), config=config, log=lambda line: None)
    return out


# ---------------------------------------------------------------- runners
def run_measured(command: list, timeout_s: float, **kwargs) -> tuple[int | None, bytes, bytes, float, float]:
    """(return code or None on timeout, stdout, stderr, peak MB, wall s) of a command."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, **kwargs)
        deadline, status, usage = t0 + timeout_s, None, None
        while status is None:
            pid, code, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                status = os.waitstatus_to_exitcode(code)
            elif time.perf_counter() > deadline:
                process.kill()
                _, code, usage = os.wait4(process.pid, 0)
                break
            else:
                time.sleep(0.05)
        process.returncode = status if status is not None else -9
        out.seek(0)
        err.seek(0)
        return status, out.read(), err.read(), usage.ru_maxrss / 1024, time.perf_counter() - t0


def cli_batch(kind: str, cases: list[tuple[int, Path, str]], good: Path, reference: dict, index: Path,
              timeout_s: float) -> list[dict]:
    """Runs one identify (or index build) over fuzzed files with good hums between them."""
    files, goods = [], []
    for number, (case, path, what) in enumerate(cases):
        files.append(path)
        if number % GOOD_EVERY == GOOD_EVERY - 1:
            goods.append(len(files))
            files.append(good)
    rows = [dict(kind=kind, case=c, mutation=what, outcome="", detail="") for c, _, what in cases]
    base = [sys.executable, "-m", "device.cli"]
    if kind == "build":
        folder = cases[0][1].parent
        shutil.copyfile(good, folder / "zz-good.wav")
        command = base + ["index", "build", str(folder), "--out", str(folder.parent / f"{folder.name}-cat")]
    else:
        command = base + ["identify", "--index", str(index), "--json", "--top", "3", "--"] + [str(f) for f in files]
    limit_s = timeout_s + 3.0 * len(files)
    status, out, err, peak, wall = run_measured(command, limit_s)
    text = err.decode("utf-8", "replace")
    problem = None
    if status is None:
        problem = ("hang", f"batch over {limit_s:.0f} s")
    elif status < 0:
        problem = ("crash", f"killed by signal {-status}")
    elif "Traceback" in text:
        problem = ("crash", text.strip().splitlines()[-1][:200])
    elif kind == "build":
        last = out.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        skipped = [line for line in text.splitlines() if line.startswith("skipped ")]
        if status != 0 or "files skipped" not in last[0]:
            problem = ("crash", f"status {status}: {text.strip()[-200:]}")
        else:
            added = int(last[0].split(": ")[-1].split()[0])
            catalogue = Catalogue(folder.parent / f"{folder.name}-cat")
            if "zz-good" not in {s.song_id for s in catalogue.songs} or added + len(skipped) != len(cases) + 1:
                problem = ("wrong", f"{added} added + {len(skipped)} skipped != {len(cases) + 1} files")
    else:
        lines = out.decode("utf-8", "replace").splitlines()
        try:
            answers = [json.loads(line) for line in lines]
        except json.JSONDecodeError:
            answers = None
        if status not in (0, 1) or answers is None or len(answers) != len(files):
            problem = ("non-json" if answers is None else "crash",
                       f"status {status}, {len(lines)} lines for {len(files)} files")
        elif any(answers[g]["matches"] != reference["matches"] for g in goods):
            problem = ("wrong", "a good hum was not answered as in the reference run")
        else:
            for row, answer, (_, path, _) in zip(rows, [a for i, a in enumerate(answers) if i not in goods], cases):
                row["detail"] = answer.get("error", "")[:160]
                if answer["file"] != printable(str(path)):
                    row["outcome"], row["detail"] = "wrong", "the file is not named as given"
                elif kind == "names" and answer["matches"] != reference["matches"]:
                    row["outcome"], row["detail"] = "wrong", "a good hum under an odd name was not answered"
                else:
                    row["outcome"] = "refused" if "error" in answer else "answered"
    for row in rows:
        if problem is not None:
            row["outcome"], row["detail"] = problem
        elif not row["outcome"]:
            row["outcome"] = "handled"
        row["peak_mb"], row["wall_s"] = round(peak, 1), round(wall / len(cases), 3)
    return rows


def catalogue_case(kind: str, catalogue: Path, data: bytes, hum: np.ndarray) -> tuple[str, str]:
    """Loads a catalogue whose `kind` file is `data` (checksum updated); if it is accepted,
    searches it and identifies a hum with it. Returns (outcome, detail)."""
    from device.recognizer import Recognizer
    name = CATALOGUE_FILES[kind]
    (catalogue / name).write_bytes(data)
    if kind != "manifest":
        document = json.loads((catalogue / mf.MANIFEST).read_text())
        for section in document.values():
            if isinstance(section, dict) and section.get("file") == name:
                section["sha256"] = mf.sha256_of(catalogue / name)
        (catalogue / mf.MANIFEST).write_text(json.dumps(document))
    try:
        loaded = Catalogue(catalogue)
        rng = np.random.default_rng(len(data))
        for _ in range(3):
            vector = rng.standard_normal(loaded.embedder.dim).astype(np.float32)
            loaded.search(vector[None] / np.linalg.norm(vector), loaded.config.shortlist.neighbours)
        result = Recognizer(loaded, num_threads=1).identify(hum)
        return "accepted", f"{result.decision} {len(result.matches)} matches"
    except (mf.ManifestError, ModelError) as exc:
        message = str(exc)
        return ("refused", message[:160]) if "\n" not in message else ("crash", "a message of several lines")
    except Exception as exc:  # the point of the harness: anything else is a crash
        return "crash", f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"


def worker(kind: str, seed: int, start: int, count: int, work: Path) -> None:
    """Runs catalogue cases start..start+count-1, printing 'start N' before and one JSON row after each."""
    base = small_catalogue(work)
    scratch = Path(tempfile.mkdtemp(dir=work, prefix=f"{kind}-"))
    catalogue = scratch / "cat"
    shutil.copytree(base, catalogue)
    pristine = {p.name: p.read_bytes() for p in catalogue.iterdir()}
    hum = load_audio(sorted(assets.demo_dir().glob("*.wav"))[0], RATE)[:6 * RATE]
    original = pristine[CATALOGUE_FILES[kind]]
    mutate = {"manifest": mutate_json, "songs": mutate_csv, "index": mutate_index}.get(kind, mutate_bytes)
    for case in range(start, start + count):
        print(f"start {case}", flush=True)
        rng = np.random.default_rng([seed, list(KINDS).index(kind), case])
        data, what = mutate(original, rng)
        t0 = time.perf_counter()
        outcome, detail = catalogue_case(kind, catalogue, data, hum)
        for name, content in pristine.items():
            (catalogue / name).write_bytes(content)
        print(json.dumps({"kind": kind, "case": case, "mutation": what, "outcome": outcome, "detail": detail,
                          "wall_s": round(time.perf_counter() - t0, 3)}), flush=True)
    shutil.rmtree(scratch, ignore_errors=True)


def run_workers(kind: str, seed: int, count: int, work: Path, timeout_s: float) -> list[dict]:
    """Catalogue cases in worker processes; a worker killed by a signal or silent for
    timeout_s marks the case in progress (a crash or a hang) and the next worker goes on."""
    rows, case, end = [], 0, count
    while case < end:
        size = min(WORKER_BATCH, end - case)
        command = [sys.executable, "-m", "benchmarks.fuzz", "--worker", kind, "--seed", str(seed),
                   "--start", str(case), "--count", str(size), "--work", str(work)]
        errors = tempfile.TemporaryFile()  # a file, not a pipe: a chatty worker cannot block on it
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
        current, done, batch_rows, stuck = case, case, [], False
        buffer = b""
        while True:
            ready, _, _ = select.select([process.stdout], [], [], timeout_s)
            if not ready:
                stuck = True
                process.kill()
                break
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                text = line.decode("utf-8", "replace")
                if text.startswith("start "):
                    current = int(text.split()[1])
                elif text.strip():
                    row = json.loads(text)
                    batch_rows.append(row)
                    done = row["case"] + 1
        _, code, usage = os.wait4(process.pid, 0)
        status = os.waitstatus_to_exitcode(code)
        errors.seek(0)
        err = errors.read().decode("utf-8", "replace")
        errors.close()
        process.stdout.close()
        process.returncode = status
        peak = usage.ru_maxrss / 1024
        if done < case + size:  # the case in progress did not finish
            outcome = "hang" if stuck else "crash"
            detail = f"no answer in {timeout_s:.0f} s" if stuck else (
                f"killed by signal {-status}" if status < 0 else err.strip()[-200:])
            batch_rows.append({"kind": kind, "case": current, "mutation": "(see the seed)", "outcome": outcome,
                               "detail": detail, "wall_s": timeout_s if stuck else 0.0})
            done = current + 1
        elif "Traceback" in err:
            batch_rows.append({"kind": kind, "case": current, "mutation": "", "outcome": "crash",
                               "detail": err.strip().splitlines()[-1][:200], "wall_s": 0.0})
        for row in batch_rows:
            row["peak_mb"] = round(peak, 1)
        rows += batch_rows
        case = done
    return rows


def run_cli_kind(kind: str, seed: int, count: int, work: Path, timeout_s: float, bases: dict,
                 reference: dict, good: Path) -> list[dict]:
    rows = []
    for start in range(0, count, CLI_BATCH):
        folder = work / f"{kind}-{start:05d}"
        folder.mkdir()
        cases = []
        for case in range(start, min(start + CLI_BATCH, count)):
            rng = np.random.default_rng([seed, list(KINDS).index(kind), case])
            path, what = (fuzzed_name(good, rng, folder, case) if kind == "names"
                          else fuzzed_recording(bases, rng, folder, case))
            cases.append((case, path, what))
        rows += cli_batch(kind, cases, good, reference, assets.default_catalogue_dir(), timeout_s)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(work / f"{folder.name}-cat", ignore_errors=True)
    return rows


def summarise(rows: list[dict], wall_s: float, args: argparse.Namespace) -> dict:
    by_kind = {}
    for kind in KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        if mine:
            by_kind[kind] = {outcome: sum(r["outcome"] == outcome for r in mine)
                             for outcome in sorted({r["outcome"] for r in mine})}
            by_kind[kind]["peak_mb"] = max(r.get("peak_mb", 0.0) for r in mine)
    bad = [r for r in rows if r["outcome"] in ("crash", "hang", "non-json", "wrong")]
    return {"cases": len(rows), "seed": args.seed, "crashes": sum(r["outcome"] == "crash" for r in rows),
            "hangs": sum(r["outcome"] == "hang" for r in rows),
            "non_json_batches": sum(r["outcome"] == "non-json" for r in rows),
            "good_files_not_answered": sum(r["outcome"] == "wrong" for r in rows),
            "peak_mb_max": max((r.get("peak_mb", 0.0) for r in rows), default=0.0),
            "timeout_s": args.timeout_s, "wall_s": round(wall_s, 1), "by_kind": by_kind,
            "first_problems": bad[:20]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fuzz"))
    parser.add_argument("--timeout-s", type=float, default=60.0, help="a case slower than this is a hang")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset of the kinds")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.seed, args.start, args.count, args.work)
        return 0
    kinds = [k for k in args.kinds.split(",") if k]
    share = sum(KINDS[k] for k in kinds)
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hum-fuzz-") as tmp:
        work = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(work / "cache")  # models noted as run: not in ~/.cache
        small_catalogue(work)
        bases = base_recordings(work / "bases")
        good = work / "good.wav"
        soundfile.write(good, load_audio(sorted(assets.demo_dir().glob("*.wav"))[-1], RATE), RATE)
        status, out, err, _, _ = run_measured([sys.executable, "-m", "device.cli", "identify", str(good),
                                               "--json", "--top", "3"], 120)
        reference = json.loads(out)
        for kind in kinds:
            count = max(1, round(args.cases * KINDS[kind] / share))
            print(f"{kind}: {count} cases", file=sys.stderr, flush=True)
            if kind in ("audio", "names", "build"):
                rows += run_cli_kind(kind, args.seed, count, work, args.timeout_s, bases, reference, good)
            else:
                rows += run_workers(kind, args.seed, count, work, args.timeout_s)
    summary = summarise(rows, time.perf_counter() - t0, args)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "cases.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: printable(str(v)) for k, v in r.items()} for r in rows)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "first_problems"}, indent=2))
    return 0 if not (summary["crashes"] or summary["hangs"] or summary["non_json_batches"]
                     or summary["good_files_not_answered"]) else 1


if __name__ == "__main__":
    sys.exit(main())
