"""A small seeded subset of benchmarks.fuzz (the full run is 10,000 cases): no crash, no
hang, every line JSON, every good file answered, and bounded memory.

A case slower than HUM_SEARCH_FUZZ_TIMEOUT_S (default 60 s) is a hang; an emulated machine
(benchmarks/aarch64_emulated.sh, 10-20 times slower) raises it."""
from __future__ import annotations

import json
import os
import subprocess
import sys

CASE_TIMEOUT_S = float(os.environ.get("HUM_SEARCH_FUZZ_TIMEOUT_S", "60"))


def test_a_seeded_fuzz_subset_finds_no_crash_hang_or_lost_answer(tmp_path):
    run = subprocess.run([sys.executable, "-m", "benchmarks.fuzz", "--cases", "80", "--seed", "3",
                          "--out", str(tmp_path), "--timeout-s", str(CASE_TIMEOUT_S)],
                         capture_output=True, text=True, timeout=15 * CASE_TIMEOUT_S)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert run.returncode == 0, summary["first_problems"]
    assert summary["cases"] >= 75 and set(summary["by_kind"]) == {
        "audio", "names", "build", "manifest", "songs", "windows", "melody", "index", "model"}
    assert summary["crashes"] == summary["hangs"] == summary["non_json_batches"] == 0
    assert summary["good_files_not_answered"] == 0
    assert summary["peak_mb_max"] < 300
