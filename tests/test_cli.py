"""The CLI contracts, end to end, on the shipped assets and on catalogues built here."""
from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from device import assets, manifest
from device.frontend import FrontendConfig

RATE = FrontendConfig().sample_rate_hz


def hum_search(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "device.cli", *args], capture_output=True, text=True)


def written_hum(tmp_path: Path, song_id: str, seed: int) -> Path:
    from training import corpora
    from training.hum import HumStyle, synthesize_hum
    song = next(s for s in corpora.written_tunes() if s.song_id == song_id)
    rng = np.random.default_rng(seed)
    hum = synthesize_hum(song.melody, HumStyle.sample(rng), RATE, rng)
    path = tmp_path / f"{song_id}-{seed}.wav"
    soundfile.write(path, hum.audio, RATE)
    return path


def test_info_prints_the_manifest():
    result = hum_search("info")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["frontend"] == FrontendConfig().to_dict()
    assert info["index"]["kind"] == "ivf-pq" and info["index"]["pq_m"] == 16
    assert info["songs"]["count"] >= 1000
    assert info["size"]["songs"] == info["songs"]["count"] and 0 < info["size"]["bytes_per_3min_song"] < 8000


def test_identify_json_contract_on_the_demo_hums():
    demos = sorted(assets.demo_dir().glob("*.wav"))
    assert 3 <= len(demos) <= 5
    result = hum_search("identify", *map(str, demos), "--json", "--top", "3")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(d) for d in demos]
    for line in lines:
        assert set(line) == {"file", "decision", "matches", "timing_ms"}
        assert line["decision"] in ("match", "no_match")
        assert 1 <= len(line["matches"]) <= 3
        assert set(line["matches"][0]) == {"song_id", "title", "artist", "score", "offset_s"}
        scores = [m["score"] for m in line["matches"]]
        assert scores == sorted(scores, reverse=True)
    # Which songs come first is the model's accuracy on four hums of written-out tunes, whose
    # recordings bury the lead (the README states it; benchmarks.scorecard measures accuracy);
    # that the pipeline finds a known hum first is the next test's.


def test_the_shipped_assets_rank_the_demo_hums_first_or_second_and_answer_three():
    """Twinkle, Ode to Joy and Happy Birthday are answered `match`, rightly; Jingle Bells
    comes second, 0.02 under a near-tie, and is not answered (the README says so)."""
    demos = sorted(assets.demo_dir().glob("*.wav"))
    result = hum_search("identify", *map(str, demos), "--json", "--top", "2")
    assert result.returncode == 0, result.stderr
    answers = {Path(line["file"]).stem: (line["decision"], [m["song_id"] for m in line["matches"]])
               for line in map(json.loads, result.stdout.splitlines())}
    assert answers["twinkle-twinkle-hum"][0] == "match"
    assert answers["twinkle-twinkle-hum"][1][0] == "written-twinkle-twinkle"
    assert answers["ode-to-joy-la"][0] == "match" and answers["ode-to-joy-la"][1][0] == "written-ode-to-joy"
    assert answers["happy-birthday-to-you-la"][0] == "match"
    assert answers["happy-birthday-to-you-la"][1][0] == "openewld-Happy_Birthday_to_You"
    assert answers["jingle-bells-oo"][0] == "no_match" and "openewld-Jingle_Bells" in answers["jingle-bells-oo"][1]


def test_demo_identifies_every_shipped_demo_hum():
    result = hum_search("demo", "--json", "--top", "1")
    assert result.returncode == 0, result.stderr
    files = [json.loads(line)["file"] for line in result.stdout.splitlines()]
    assert files == [str(d) for d in sorted(assets.demo_dir().glob("*.wav"))]


def test_version_names_the_package_and_the_shipped_model():
    result = hum_search("--version")
    assert result.returncode == 0, result.stderr
    model = manifest.read(assets.default_model_dir(), manifest.MODEL_FORMAT)["model"]
    version = importlib.metadata.version("hum-search")
    assert result.stdout == f"hum-search {version} (model {model['sha256'][:8]})\n"


# Hums the shipped model ranks first against the shipped catalogue, clearly: of the written
# tunes (all a clone without ../shared has), Frere Jacques at seeds 0-39 comes first with a
# margin of 0.19-0.30 after 0 to 0.45 s of leading silence alike, except seed 13 (0.05-0.10)
# and seed 28 (a near-tie with pop909-150, which small changes of the search flip). Accuracy
# is measured by benchmarks.scorecard, not here; these tests check the plumbing end to end.
@pytest.mark.parametrize("seed", [1, 4])
def test_a_synthesized_hum_of_a_catalogue_song_is_identified(tmp_path, seed):
    query = written_hum(tmp_path, "written-frere-jacques", seed)
    result = hum_search("identify", str(query), "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["matches"][0]["song_id"] == "written-frere-jacques"  # ranked first
    assert answer["decision"] in ("match", "no_match")


def test_bad_files_get_one_line_errors_and_no_match(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF nonsense")
    result = hum_search("identify", str(garbage), str(tmp_path / "missing.flac"), "--json")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 2
    assert [json.loads(l)["decision"] for l in result.stdout.splitlines()] == ["no_match", "no_match"]


def test_silence_is_no_match(tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros(RATE * 8, np.float32), RATE)
    answer = json.loads(hum_search("identify", str(path), "--json").stdout)
    assert answer["decision"] == "no_match"


def test_built_index_is_found_by_identify_index(tmp_path, written_catalogue):
    query = written_hum(tmp_path, "written-ode-to-joy", seed=5)
    result = hum_search("identify", str(query), "--index", str(written_catalogue), "--json")
    assert result.returncode == 0, result.stderr
    best = json.loads(result.stdout)["matches"][0]
    assert best["song_id"] == "written-ode-to-joy"
    assert best["title"] == "ODE TO JOY" and best["artist"] == "Trad."  # from the metadata CSV


def test_index_add_keeps_what_was_there(tmp_path, written_catalogue):
    catalogue = tmp_path / "cat"
    shutil.copytree(written_catalogue, catalogue)
    before = (catalogue / "songs.csv").read_text().splitlines()
    new_dir = tmp_path / "new"
    new_dir.mkdir()
    t = np.arange(RATE * 6) / RATE
    soundfile.write(new_dir / "a-tone.wav", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), RATE)
    assert hum_search("index", "add", str(new_dir), "--index", str(catalogue)).returncode == 0
    after = (catalogue / "songs.csv").read_text().splitlines()
    assert after[:len(before)] == before and after[-1].startswith("a-tone,a-tone,")
    # a failed extension (nothing readable) leaves the catalogue byte for byte as it was
    digest = manifest.sha256_of(catalogue / "index.npz")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "broken.wav").write_bytes(b"junk")
    failed = hum_search("index", "add", str(empty), "--index", str(catalogue))
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert manifest.sha256_of(catalogue / "index.npz") == digest
    assert hum_search("info", "--index", str(catalogue)).returncode == 0


def test_the_catalogue_models_calibrated_thresholds_decide(tmp_path, written_catalogue):
    query = str(written_hum(tmp_path, "written-ode-to-joy", seed=5))
    answers = {}
    for name, threshold in (("lenient", 0.0), ("strict", 1.0)):  # no margin reaches 1
        catalogue = tmp_path / name
        shutil.copytree(written_catalogue, catalogue)
        data = json.loads((catalogue / "manifest.json").read_text())
        data["model"]["decision"] = {"min_score": threshold, "min_margin": threshold}
        (catalogue / "manifest.json").write_text(json.dumps(data))
        answers[name] = json.loads(hum_search("identify", query, "--index", str(catalogue), "--json").stdout)
    assert answers["strict"]["matches"] == answers["lenient"]["matches"]
    assert answers["lenient"]["decision"] == "match" and answers["strict"]["decision"] == "no_match"


@pytest.mark.parametrize("tamper", ["frontend", "index_bytes", "missing_model", "decision"])
def test_runtime_refuses_inconsistent_assets(tmp_path, written_catalogue, tamper):
    catalogue = tmp_path / "cat"
    shutil.copytree(written_catalogue, catalogue)
    data = json.loads((catalogue / "manifest.json").read_text())
    if tamper == "frontend":
        data["frontend"]["hop_length_samples"] += 1
        (catalogue / "manifest.json").write_text(json.dumps(data))
    elif tamper == "decision":
        data["model"]["decision"] = {"min_score": "high", "min_margin": 0.3}
        (catalogue / "manifest.json").write_text(json.dumps(data))
    elif tamper == "index_bytes":
        with open(catalogue / "index.npz", "r+b") as handle:
            handle.seek(100)
            handle.write(b"\x00\x01\x02\x03")
    else:
        (catalogue / "model.tflite").unlink()
    result = hum_search("identify", str(written_hum(tmp_path, "written-twinkle-twinkle", 1)),
                        "--index", str(catalogue))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
