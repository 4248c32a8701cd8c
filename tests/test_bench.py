"""hum-search bench: every phase reported, with values that hang together (no speed targets:
those are benchmark results, benchmarks/results/board/)."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

from device import assets, bench
from device.catalogue import Catalogue


def test_bench_json_reports_every_phase_with_sane_values():
    demo = assets.demo_dir() / "twinkle-twinkle-hum.wav"  # 14.2 s: cut to 10 s
    done = subprocess.run([sys.executable, "-m", "device.cli", "bench", "--json", "--repeats", "2",
                           "--queries", str(demo)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {"bench", "machine", "catalogue", "queries", "startup", "identify_command", "load",
                           "identify", "stream"}

    machine = report["machine"]
    assert machine["cores"] == os.cpu_count() and machine["python"] == platform.python_version()
    assert report["load"]["backend"] in machine["runtimes"]

    catalogue = Catalogue(assets.default_catalogue_dir())
    size = report["catalogue"]
    assert size["songs"] == len(catalogue.songs) and size["windows"] == catalogue.n_items
    grows = sum(n for name, n in size["bytes"].items() if name != "model.tflite")
    assert size["bytes_per_song"] == round(grows / len(catalogue.songs))
    assert size["bytes"]["index.npz"] == (catalogue.directory / "index.npz").stat().st_size
    seconds = sum(s.duration_s for s in catalogue.songs)
    assert size["bytes_per_3min_song"] == round(grows / seconds * 180) < 8000  # issue 16: at most 8 KB

    assert report["queries"] == {"files": [demo.name], "seconds": 10.0, "repeats": 2}
    identify = report["identify"]
    assert set(identify["stages_ms"]) == set(bench.STAGES) | {"total"}
    for spread in list(identify["stages_ms"].values()) + [identify["model_per_window_ms"],
                                                         report["startup"]["wall_ms"], report["startup"]["cpu_ms"],
                                                         report["identify_command"]["wall_ms"]]:
        assert 0.0 <= spread["median"] <= spread["p90"]
    for stage in ("frontend", "model", "shortlist", "alignment"):
        assert identify["stages_ms"][stage]["median"] > 0.0
    # each query's total is the sum of its stages, so its median bounds every stage's
    assert all(identify["stages_ms"]["total"]["median"] >= s["median"] for s in identify["stages_ms"].values())
    # 10 s make 3 windows of 4 s every 3.2 s; the model's time per window is less than for all
    assert identify["model_per_window_ms"]["median"] < identify["stages_ms"]["model"]["median"]
    assert identify["answers"] == [dict(identify["answers"][0], file=demo.name, audio_s=10.0,
                                        song_id="written-twinkle-twinkle")]

    stream = report["stream"]
    assert stream["audio_s"] == 10.0 and stream["real_time_factor"] > 0.0
    assert stream["block_ms"]["median"] <= stream["block_ms"]["p90"] <= stream["block_ms"]["max"]
    for phase in (report["load"], identify, stream):
        assert 10.0 < phase["peak_rss_mb"] < 4096.0
        assert phase["end_anon_mb"] + phase["end_file_mb"] <= phase["peak_rss_mb"] + 1.0
    # each child's own peak (Linux would count the parent's memory in a child's rusage)
    assert 10.0 < report["startup"]["peak_rss_mb"] < report["identify_command"]["peak_rss_mb"]
    assert report["identify_command"]["file"] == demo.name

    text = bench.table(report)
    for label in bench.STAGES + ("start-up", "real-time factor", "KB per song", demo.name):
        assert label in text
