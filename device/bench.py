"""hum-search bench: how quick and how small the recognizer is on this machine.

Every phase runs in a fresh Python process (`python -m device.bench PHASE_JSON`), so its
peak resident memory is its own and nothing is warm that a user's first command would
find cold:

    startup    `python -m device.cli --help`, `repeats` times: wall and CPU time, peak
               memory (the child's own VmHWM, see run_module).
    identify_command  `hum-search identify` of the first query, whole, likewise.
    load       importing the runtime, loading the catalogue (its checks included) and the
               melody model.
    identify   the queries cut to `query_seconds` (the shipped demo hums by default),
               each identified `repeats` times: per-stage milliseconds (decode, frontend,
               model, shortlist, alignment, decision; the model also per window), median
               and 90th percentile over every query and repeat.
    stream     the path of `hum-search listen`: each query at a microphone's rate, in
               blocks, through StreamResampler and Recognizer.push with early answers off
               (every look of a `query_seconds` hum is made): the real-time factor
               (compute seconds per second of audio) and per-block milliseconds.

Peak memory is the kernel's high-water mark (VmHWM: anonymous memory plus the pages of
mapped files touched, e.g. the melodies); the anonymous and file parts at the end of a
phase say how much of it is mapped files. With the catalogue's size and the machine, one
JSON object compares two boards line by line.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_FORMAT = 1
RUNTIMES = ("ai-edge-litert", "tflite-runtime", "tensorflow")  # device.model's order
STAGES = ("decode", "frontend", "model", "shortlist", "alignment", "decision")


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """What bench measures.

    Attributes:
        query_seconds: each query is cut to its first this many seconds.
        repeats: identifications per query, and `--help` runs of the start-up phase.
        stream_rate_hz: the rate the stream phase feeds (a microphone's).
        block_seconds: audio per pushed block (as device.microphone reads it).
    """

    query_seconds: float = 10.0
    repeats: int = 5
    stream_rate_hz: int = 48000
    block_seconds: float = 0.02


def memory_mb() -> dict:
    """This process's memory in MB: peak resident (VmHWM) and, now, its anonymous and
    mapped-file parts (None where /proc is missing; the peak then from getrusage)."""
    fields = _status_mb()
    if "VmHWM" not in fields:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fields["VmHWM"] = peak / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0)
    return {"peak_rss_mb": round(fields["VmHWM"], 1),
            "end_anon_mb": round(fields["RssAnon"], 1) if "RssAnon" in fields else None,
            "end_file_mb": round(fields["RssFile"], 1) if "RssFile" in fields else None}


def _spread(values: list[float]) -> dict:
    """{"median", "p90"} of milliseconds (numpy's linear-interpolated percentile)."""
    import numpy as np
    return {"median": round(float(np.median(values)), 2), "p90": round(float(np.percentile(values, 90)), 2)}


def _cpu_model() -> str:
    """The CPU's name: /proc/cpuinfo's "model name" (x86) or "Model"/"Hardware" (ARM boards)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            info = {}
            for line in handle:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        info = {}
    for key in ("model name", "Model", "Hardware", "cpu model"):
        if info.get(key):
            return info[key]
    return platform.processor() or platform.machine()


def machine() -> dict:
    """The machine and the software that ran the benchmark."""
    import importlib.metadata
    runtimes = {}
    for name in RUNTIMES:
        try:
            runtimes[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "arch": platform.machine(),
            "os": platform.platform(), "python": platform.python_version(),
            "numpy": importlib.metadata.version("numpy"), "runtimes": runtimes,
            "load_average": load}


def catalogue_size(directory: Path) -> dict:
    """Songs, shortlist windows and bytes of a catalogue, from its manifest and files.

    bytes_per_song counts what grows with the songs (every file but the model, the
    embedder and the manifest); bytes_per_3min_song scales it to a song of 180 s (the
    catalogue's songs' durations summed, from its song list)."""
    from device import manifest as mf
    from device.catalogue import read_songs
    found = mf.read(Path(directory), mf.CATALOGUE_FORMAT)
    files = {found[section]["file"]: (Path(directory) / found[section]["file"]).stat().st_size
             for section in ("index", "melody", "windows", "songs", "model")}
    songs, windows = int(found["songs"]["count"]), int(found["index"]["n_items"])
    per_song = sum(size for name, size in files.items() if name != found["model"]["file"])
    seconds = sum(s.duration_s for s in read_songs(Path(directory) / found["songs"]["file"], songs,
                                                   int(found["melody"]["frames"])))
    return {"directory": str(directory), "songs": songs, "windows": windows,
            "windows_per_song": round(windows / max(songs, 1), 1), "bytes": files,
            "bytes_per_song": round(per_song / max(songs, 1)),
            "bytes_per_3min_song": round(per_song / seconds * 180.0) if seconds > 0 else None}


# Runs a module as `python -m` does and writes its own VmHWM to stderr at exit: the rusage
# of a child (os.wait4) would not do, as Linux counts in it the parent's memory at the fork.
_AS_MAIN = """import atexit, runpy, sys
def _peak():
    try:
        with open('/proc/self/status') as handle:
            sys.stderr.write(''.join(line for line in handle if line.startswith('VmHWM:')))
    except OSError:
        pass
atexit.register(_peak)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)
"""


def run_module(module: str, args: list[str], env: dict | None = None, poll_s: float | None = None,
               cwd: str | None = None) -> dict:
    """Runs `python -m module args` to completion in a child process.

    Args:
        env: its environment (None: ours).
        poll_s: also sample the child's anonymous memory this often (None: do not).
        cwd: its working directory, which comes first on its sys.path as with `python -m`
            (None: ours).

    Returns:
        {"wall_ms", "cpu_ms" (user + system), "peak_rss_mb" (the child's VmHWM; None
        without /proc), "peak_anon_mb" (sampled; None unless poll_s)}.

    Raises:
        RuntimeError: the child failed (with the end of its stderr).
    """
    with tempfile.TemporaryFile() as stderr:  # a file, not a pipe: nothing blocks while polling
        t0 = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", _AS_MAIN, module, *args], env=env, cwd=cwd,
                                 stdout=subprocess.DEVNULL, stderr=stderr)
        anon, pid = None, 0
        while poll_s is not None and pid == 0:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid == 0:
                anon = max(anon or 0.0, _status_mb(child.pid).get("RssAnon", 0.0))
                time.sleep(poll_s)
        if pid == 0:
            _, status, usage = os.wait4(child.pid, 0)
        wall = (time.perf_counter() - t0) * 1000.0
        child.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        err = stderr.read().decode(errors="replace")
    if child.returncode != 0:
        raise RuntimeError(f"python -m {module} {' '.join(args)} failed: {err.strip()[-2000:]}")
    peak = [float(line.split()[1]) / 1024.0 for line in err.splitlines() if line.startswith("VmHWM:")]
    return {"wall_ms": wall, "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1000.0,
            "peak_rss_mb": peak[-1] if peak else None, "peak_anon_mb": anon}


def _status_mb(pid: int | str = "self") -> dict:
    """VmHWM, RssAnon and RssFile of a process from /proc (MB; empty without /proc)."""
    fields = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "RssAnon", "RssFile"):
                    fields[key] = int(value.split()[0]) / 1024.0
    except OSError:
        pass
    return fields


def _startup(config: BenchConfig) -> dict:
    """Wall time, CPU time (user + system: what a busy machine does not inflate) and peak
    memory of `python -m device.cli --help`, run `repeats` times."""
    runs = [run_module("device.cli", ["--help"]) for _ in range(config.repeats)]
    peaks = [r["peak_rss_mb"] for r in runs if r["peak_rss_mb"] is not None]
    return {"wall_ms": _spread([r["wall_ms"] for r in runs]), "cpu_ms": _spread([r["cpu_ms"] for r in runs]),
            "peak_rss_mb": round(max(peaks), 1) if peaks else None}


def _name(path: str) -> str:
    """A file's name escaped for printing (device.audio.printable)."""
    from device.audio import printable
    return printable(Path(path).name)


def _identify_command(path: str, index: str, config: BenchConfig) -> dict:
    """`hum-search identify FILE` (the whole file) from a cold start, run `repeats` times."""
    runs = [run_module("device.cli", ["identify", path, "--index", index]) for _ in range(config.repeats)]
    peaks = [r["peak_rss_mb"] for r in runs if r["peak_rss_mb"] is not None]
    return {"file": _name(path), "wall_ms": _spread([r["wall_ms"] for r in runs]),
            "cpu_ms": _spread([r["cpu_ms"] for r in runs]), "peak_rss_mb": round(max(peaks), 1) if peaks else None}


def _load(index: str) -> dict:
    """Phase: import the runtime, load the catalogue and the model."""
    t0 = time.perf_counter()
    from device.catalogue import Catalogue
    t1 = time.perf_counter()
    catalogue = Catalogue(index)
    t2 = time.perf_counter()
    model = catalogue.open_model()
    t3 = time.perf_counter()
    ms = lambda a, b: round((b - a) * 1000.0, 2)
    return {"import_ms": ms(t0, t1), "catalogue_ms": ms(t1, t2), "model_ms": ms(t2, t3),
            "backend": model.backend, **memory_mb()}


def _queries(files: list[str], rate_hz: int, seconds: float):
    """(name, float32 audio at rate_hz cut to `seconds`, decode ms) per file."""
    from device.audio import load_audio
    for path in files:
        t0 = time.perf_counter()
        audio = load_audio(path, rate_hz)
        decode_ms = (time.perf_counter() - t0) * 1000.0
        yield _name(path), audio[:int(round(seconds * rate_hz))], decode_ms


def _identify(index: str, files: list[str], config: BenchConfig) -> dict:
    """Phase: identify each query `repeats` times; per-stage median and p90."""
    from device.audio import printable
    from device.catalogue import Catalogue
    from device.recognizer import Recognizer
    recognizer = Recognizer(Catalogue(index))
    rate = recognizer.frontend.sample_rate_hz
    stages = {name: [] for name in STAGES + ("total",)}
    per_window, answers = [], []
    for _ in range(config.repeats):
        for name, audio, decode_ms in _queries(files, rate, config.query_seconds):
            result = recognizer.identify(audio)
            timing = dict(result.timing_ms, decode=decode_ms)
            for stage in STAGES:
                stages[stage].append(timing[stage])
            stages["total"].append(sum(timing[stage] for stage in STAGES))
            per_window.append(timing["model"] / max(result.windows, 1))
            if len(answers) < len(files):
                best = result.matches[0] if result.matches else None
                answers.append({"file": name, "audio_s": round(audio.size / rate, 2),
                                "decision": result.decision, "song_id": printable(best.song_id) if best else None,
                                "score": round(best.score, 4) if best else None})
    return {"stages_ms": {name: _spread(values) for name, values in stages.items()},
            "model_per_window_ms": _spread(per_window), "answers": answers, **memory_mb()}


def _stream(index: str, files: list[str], config: BenchConfig) -> dict:
    """Phase: the listen path over each query, early answers off; real-time factor."""
    from device.audio import StreamResampler, resample
    from device.catalogue import Catalogue
    from device.recognizer import Recognizer, RecognizerConfig
    recognizer = Recognizer(Catalogue(index), RecognizerConfig(max_seconds=None, early_consecutive=10 ** 9))
    rate = recognizer.frontend.sample_rate_hz
    block = int(round(config.block_seconds * config.stream_rate_hz))
    compute_ms, audio_s, blocks = 0.0, 0.0, []
    for _, audio, _ in _queries(files, rate, config.query_seconds):
        source = resample(audio, rate, config.stream_rate_hz)
        resampler = StreamResampler(config.stream_rate_hz, rate)
        recognizer.reset()
        for start in range(0, source.size, block):
            t0 = time.perf_counter()
            recognizer.push(resampler.push(source[start:start + block]))
            blocks.append((time.perf_counter() - t0) * 1000.0)
            compute_ms += blocks[-1]
        t0 = time.perf_counter()
        recognizer.finish()
        compute_ms += (time.perf_counter() - t0) * 1000.0
        audio_s += source.size / config.stream_rate_hz
    return {"real_time_factor": round(compute_ms / 1000.0 / audio_s, 4), "audio_s": round(audio_s, 2),
            "rate_hz": config.stream_rate_hz, "block_s": config.block_seconds,
            "block_ms": dict(_spread(blocks), max=round(max(blocks), 2)), **memory_mb()}


PHASES = {"load": _load, "identify": _identify, "stream": _stream}


def _run_phase(name: str, **kwargs) -> dict:
    """Runs one phase in a fresh interpreter and returns what it printed."""
    kwargs = dict(kwargs, config=dataclasses.asdict(kwargs["config"])) if "config" in kwargs else kwargs
    done = subprocess.run([sys.executable, "-m", "device.bench", json.dumps({"phase": name, **kwargs})],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench phase {name} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(index: Path, files: list[Path], config: BenchConfig = BenchConfig()) -> dict:
    """Every phase; one JSON-ready dict (see the module docstring)."""
    index, files = str(index), [str(f) for f in files]
    return {"bench": BENCH_FORMAT, "machine": machine(), "catalogue": catalogue_size(Path(index)),
            "queries": {"files": [_name(f) for f in files], "seconds": config.query_seconds,
                        "repeats": config.repeats},
            "startup": _startup(config),
            "identify_command": _identify_command(files[0], index, config),
            "load": _run_phase("load", index=index),
            "identify": _run_phase("identify", index=index, files=files, config=config),
            "stream": _run_phase("stream", index=index, files=files, config=config)}


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 1e6 else f"{n_bytes / 1e3:.0f} KB"


def table(report: dict) -> str:
    """The report as a readable table."""
    m, c, q = report["machine"], report["catalogue"], report["queries"]
    s, ld, ident, st = report["startup"], report["load"], report["identify"], report["stream"]
    runtimes = ", ".join(f"{k} {v}" for k, v in m["runtimes"].items()) or "no TFLite runtime"
    lines = [f"machine    {m['cpu']}, {m['cores']} cores, {m['arch']}, {m['os']}",
             f"           Python {m['python']}, numpy {m['numpy']}, {runtimes} (used: {ld['backend']}); "
             f"load average {m['load_average']}",
             f"catalogue  {c['songs']:,} songs, {c['windows']:,} windows ({c['windows_per_song']} per song), "
             f"{c['bytes_per_song'] / 1e3:.1f} KB per song"
             + (f" ({c['bytes_per_3min_song'] / 1e3:.1f} KB per 3-minute song)" if c["bytes_per_3min_song"] else "")
             + ": "
             + ", ".join(f"{name} {_size(size)}" for name, size in c["bytes"].items()),
             f"queries    {len(q['files'])} files cut to {q['seconds']:g} s, {q['repeats']} repeats",
             "",
             f"{'phase / stage':<30}{'median ms':>11}{'p90 ms':>9}{'peak MB':>9}{'anon MB':>9}{'file MB':>9}"]

    def row(label: str, ms: dict | float | None, memory: dict | None = None) -> str:
        if isinstance(ms, dict):
            times = f"{ms['median']:>11.1f}{ms['p90']:>9.1f}"
        else:
            times = f"{ms:>11.1f}{'':>9}" if ms is not None else f"{'':>20}"
        if memory:
            times += f"{memory['peak_rss_mb']:>9.1f}" + "".join(
                f"{memory[k]:>9.1f}" if memory.get(k) is not None else f"{'':>9}"
                for k in ("end_anon_mb", "end_file_mb"))
        return f"{label:<30}{times}".rstrip()

    lines.append(row("start-up (hum-search --help)", s["wall_ms"], {"peak_rss_mb": s["peak_rss_mb"]}))
    lines.append(row("  of it CPU (user + system)", s["cpu_ms"]))
    ic = report["identify_command"]
    lines.append(row("hum-search identify (1 file)", ic["wall_ms"], {"peak_rss_mb": ic["peak_rss_mb"]}))
    lines.append(row("  of it CPU (user + system)", ic["cpu_ms"]))
    lines.append(row("load: imports", ld["import_ms"]))
    lines.append(row("load: catalogue", ld["catalogue_ms"]))
    lines.append(row("load: model", ld["model_ms"], ld))
    lines.append(f"identify, per {q['seconds']:g} s query")
    for stage in STAGES:
        lines.append(row(f"  {stage}", ident["stages_ms"][stage]))
    lines.append(row("  model, per window", ident["model_per_window_ms"]))
    lines.append(row("  total", ident["stages_ms"]["total"], ident))
    lines.append(row(f"stream, per {1000 * st['block_s']:g} ms block", st["block_ms"], st))
    lines.append(f"stream: real-time factor {st['real_time_factor']:.3f} (compute s per audio s over "
                 f"{st['audio_s']:g} s of audio, a look every second), slowest block {st['block_ms']['max']:.0f} ms")
    lines.append("")
    lines += [f"answer     {a['file']} ({a['audio_s']:g} s): {a['decision']}, best {a['song_id']} ({a['score']})"
              for a in ident["answers"]]
    return "\n".join(lines)


def _phase_main(argv: list[str]) -> int:
    """`python -m device.bench PHASE_JSON`: one phase, its result as a JSON line."""
    request = json.loads(argv[0])
    phase = PHASES[request.pop("phase")]
    if "config" in request:
        request["config"] = BenchConfig(**request["config"])
    print(json.dumps(phase(**request)))
    return 0


if __name__ == "__main__":
    sys.exit(_phase_main(sys.argv[1:]))
