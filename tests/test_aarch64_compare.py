"""benchmarks/aarch64_compare.py: two machines' answers are alike within the int8 rounding's
reach, measured from each machine's own default and reference kernels (the dump of this
machine stands in for both; the other's answers are then moved by hand)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import aarch64_compare as ac

pytest.importorskip("ai_edge_litert", reason="the reference kernels come with ai-edge-litert")


def _ranking(*pairs):
    return [{"song_id": song, "score": score, "offset_s": 0.0} for song, score in pairs]


def test_an_order_differs_only_where_scores_are_near_ties():
    a = _ranking(("x", 0.90), ("y", 0.70), ("z", 0.695), ("w", 0.60))
    assert ac._order_explained(a, _ranking(("x", 0.90), ("z", 0.70), ("y", 0.69), ("w", 0.60)), 0.01)
    assert not ac._order_explained(a, _ranking(("y", 0.91), ("x", 0.89), ("z", 0.69), ("w", 0.60)), 0.01)
    # w leaves the list shown and v enters: fine only when both sit at the cut
    assert ac._order_explained(a, _ranking(("x", 0.90), ("y", 0.70), ("z", 0.69), ("v", 0.605)), 0.01)
    assert not ac._order_explained(a, _ranking(("x", 0.90), ("y", 0.70), ("z", 0.69), ("v", 0.65)), 0.01)


def test_the_spread_counts_a_song_that_the_rounding_lets_into_the_list():
    answers = {"hum": {"matches": _ranking(("x", 0.90), ("y", 0.70), ("w", 0.68))}}
    exact = {"hum": {"matches": _ranking(("x", 0.905), ("y", 0.70), ("v", 0.64))}}
    # x moved 0.005; w is in the default kernels' list only, 0.04 above the exact list's last
    assert ac.kernel_spread({"answers": answers, "reference_kernel_answers": exact}) == pytest.approx(0.04)
    assert ac.kernel_spread({"answers": answers}) is None


@pytest.fixture(scope="module")
def x86(tmp_path_factory) -> Path:
    """This machine's dump and `hum-search demo --json` answers."""
    folder = tmp_path_factory.mktemp("x86")
    script = Path(ac.__file__)
    subprocess.run([sys.executable, str(script), "dump", str(folder / "probe.npz")], check=True,
                   capture_output=True)
    done = subprocess.run([sys.executable, "-m", "device.cli", "demo", "--json"], check=True,
                          capture_output=True, text=True)
    (folder / "demo.jsonl").write_text(done.stdout)
    return folder


def _moved(source: Path, target: Path, move) -> Path:
    """A copy of a machine's results whose CLI answers `move` changed in place."""
    shutil.copytree(source, target)
    lines = [json.loads(line) for line in (target / "demo.jsonl").read_text().splitlines() if line.strip()]
    for row in lines:
        move(row)
    (target / "demo.jsonl").write_text("".join(json.dumps(row) + "\n" for row in lines))
    return target


def test_the_tolerance_is_the_kernel_spread_of_both_machines(x86, tmp_path):
    meta = json.loads(str(ac.np.load(x86 / "probe.npz")["meta"]))
    spread = ac.kernel_spread(meta)
    assert spread is not None and 0.0 < spread < 0.1  # one int8 rounding moves a score, a little
    assert ac.compare(x86, x86, tmp_path / "self", 0.01, 0.08)
    report = json.loads((tmp_path / "self" / "comparison.json").read_text())
    assert report["score_tol"] == pytest.approx(max(0.01, 2 * spread))
    assert report["reference_answers_alike"] and report["reference_kernels_identical"]

    def within(row):  # every score moved by 90% of the tolerance
        for match in row["matches"]:
            match["score"] -= 0.9 * report["score_tol"]
    assert ac.compare(x86, _moved(x86, tmp_path / "within", within), tmp_path / "a", 0.01, 0.08)

    def beyond(row):  # the best song's score alone moved by twice the tolerance
        if row["matches"]:
            row["matches"][0]["score"] += 2 * report["score_tol"]
    assert not ac.compare(x86, _moved(x86, tmp_path / "beyond", beyond), tmp_path / "b", 0.01, 0.08)

    def decided(row):
        row["decision"] = "no_match" if row["decision"] == "match" else "match"
    assert not ac.compare(x86, _moved(x86, tmp_path / "decided", decided), tmp_path / "c", 0.01, 0.08)
