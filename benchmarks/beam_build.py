"""The Beam build (hum-search-beam) on this machine: throughput and the assembly's memory.

    nice -n 10 python -m benchmarks.beam_build --audio data/catalogue_audio --songs 40 \
        --out benchmarks/results/beam-build [--windows 10000 1000000]

(a) throughput: `hum-search-beam build` of the first --songs recordings of --audio (by
    name; linked into a scratch folder, the source folder is only read) on the
    DirectRunner with 1 and 2 workers (multi_processing, one process per worker, fresh
    shards: every song heard), then again with 2 workers over the shards the run left
    (every song reused); `hum-search index build --workers 1 / 2` of the same folder
    beside them. Each runs in a subprocess: wall time, and CPU time (user + system) of
    it and the workers it waited for (getrusage RUSAGE_CHILDREN).
(b) assembly: beam_index.assemble alone (shards -> index built from the spooled vectors -> catalogue) in a
    subprocess, over seeded synthetic shards of 180 windows each (random melodies and
    unit vectors, as many songs as --windows needs): its peak resident memory (ru_maxrss,
    which also counts the pages of the index file being built) and that after its
    imports, before the assembly.
Writes beam_build.json (with the command) under --out and prints it.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parents[1]
WINDOWS_PER_SONG = 180  # a 3-minute song at the default 1 s hop


def timed(command: list[str]) -> dict:
    """Wall and CPU seconds of a command (and the processes it waited for)."""
    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall, after = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "last_line": result.stdout.strip().splitlines()[-1]}


def throughput(audio: Path, n_songs: int, scratch: Path) -> dict:
    files = sorted(p for p in audio.iterdir() if p.suffix.lower() == ".flac")[:n_songs]
    folder = scratch / "audio"
    folder.mkdir()
    for path in files:
        (folder / path.name).symlink_to(path.resolve())
    hours = sum(soundfile.info(str(p)).duration for p in files) / 3600.0
    beam = [sys.executable, "-m", "beam_index.cli", "build", str(folder), "--runner", "direct",
            "--direct_running_mode=multi_processing"]
    runs = {}
    for workers in (1, 2):
        runs[f"beam_{workers}_workers"] = timed(beam + ["--out", str(scratch / f"beam-{workers}"),
                                                        "--shards", str(scratch / f"shards-{workers}"),
                                                        f"--direct_num_workers={workers}"])
    runs["beam_2_workers_shards_reused"] = timed(beam + ["--out", str(scratch / "beam-2"), "--shards",
                                                         str(scratch / "shards-2"), "--direct_num_workers=2"])
    for workers in (1, 2):
        runs[f"local_{workers}_workers"] = timed([sys.executable, "-m", "device.cli", "index", "build", str(folder),
                                                  "--out", str(scratch / f"local-{workers}"),
                                                  "--workers", str(workers)])
    for run in runs.values():
        run["songs_per_s"] = round(len(files) / run["wall_s"], 3)
        run["cpu_s_per_audio_hour"] = round(run["cpu_s"] / hours, 1)
        run["times_real_time"] = round(hours * 3600.0 / run["wall_s"], 1)
    same = all((scratch / "local-1" / f).read_bytes() == (scratch / f"beam-{w}" / f).read_bytes()
               for w in (1, 2) for f in ("songs.csv", "melody.bin", "windows.npy", "index.npz"))
    n_windows = json.loads((scratch / "beam-1" / "manifest.json").read_text())["index"]["n_items"]
    return {"songs": len(files), "audio_hours": round(hours, 3), "windows": n_windows,
            "beam_equals_local_byte_for_byte": same, "runs": runs}


def synthetic_shards(n_windows: int, folder: Path) -> Path:
    """Seeded shards of WINDOWS_PER_SONG windows each and their song records (JSON)."""
    from beam_index import shards
    from device.assets import default_model_dir
    from device.catalogue import Catalogue
    dim = Catalogue(ROOT / "assets" / "catalogue").embedder.dim
    rng, records, left, n = np.random.default_rng(0), [], n_windows, 0
    hop = 12  # melody frames per window hop: starts stay inside the melody
    while left > 0:
        k = min(WINDOWS_PER_SONG, left)
        code = rng.integers(0, 200, k * hop + 48).astype(np.uint8)
        vectors = rng.standard_normal((k, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        song = shards.Song(code, code.size / 12.5, np.arange(k, dtype=np.int32) * hop, vectors,
                           rng.integers(0, 12, k).astype(np.float32))
        uri = str(folder / "shards" / f"{n:07d}.npz")
        shards.write(uri, song)
        records.append({"n": n, "uri": f"/synthetic/song-{n:07d}.flac", "shard": uri})
        left, n = left - k, n + 1
    path = folder / "records.json"
    path.write_text(json.dumps({"model": str(default_model_dir()), "dim": dim, "records": records}))
    return path


def assembly_child(records_path: Path, out: Path) -> None:
    """Runs in the measured subprocess: the assembly alone; prints its memory as JSON."""
    from beam_index.assemble import assemble
    from device.indexing import hearing
    job = json.loads(records_path.read_text())
    setup = hearing(Path(job["model"]))
    imports_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    t0 = time.perf_counter()
    assemble(out, setup, job["records"], {}, job["dim"])
    print(json.dumps({"wall_s": round(time.perf_counter() - t0, 2), "after_imports_mb": round(imports_mb, 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
                      "index_mb": round((out / "index.npz").stat().st_size / 2 ** 20, 1)}))


def assembly(n_windows: int, scratch: Path) -> dict:
    folder = scratch / f"assembly-{n_windows}"
    folder.mkdir()
    records = synthetic_shards(n_windows, folder)
    result = subprocess.run([sys.executable, "-m", "benchmarks.beam_build", "--assembly-child", str(records),
                             str(folder / "catalogue")], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"assembly of {n_windows} windows failed: {result.stderr[-2000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]), windows=n_windows,
                songs=len(json.loads(records.read_text())["records"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--audio", type=Path, default=ROOT / "data" / "catalogue_audio")
    p.add_argument("--songs", type=int, default=40)
    p.add_argument("--windows", type=int, nargs="*", default=[10_000, 1_000_000])
    p.add_argument("--out", type=Path)
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--assembly-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.assembly_child:
        assembly_child(*args.assembly_child)
        return 0
    report = {"command": "python -m benchmarks.beam_build " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]}}
    with tempfile.TemporaryDirectory(prefix="beam-build-bench-") as scratch:
        if not args.skip_throughput:
            report["throughput"] = throughput(args.audio, args.songs, Path(scratch))
            print(json.dumps(report["throughput"], indent=1), flush=True)
        report["assembly"] = [assembly(n, Path(scratch)) for n in args.windows]
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "beam_build.json").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
