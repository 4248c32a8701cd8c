"""hum-search-beam: the catalogue built as an Apache Beam pipeline (DirectRunner) equals the
local build, keeps per-song shards that reruns reuse, leaves the old catalogue as it was
when a run fails, and sends files it cannot hear to a dead-letter output."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("apache_beam")


from beam_index import build as bb  # noqa: E402
from beam_index.cli import main as beam_main  # noqa: E402
from conftest import tone  # noqa: E402
from device import manifest  # noqa: E402
from device.assets import default_model_dir  # noqa: E402
from device.catalogue import Catalogue  # noqa: E402
from device.cli import main as hum_main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FILES = ("songs.csv", "melody.bin", "windows.npy", "index.npz", "manifest.json")


def digests(folder: Path) -> dict[str, str]:
    return {p.name: manifest.sha256_of(p) for p in sorted(folder.iterdir())}


def shard_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.npz"))


def identify(catalogue: Path, query: Path, capsys) -> dict:
    capsys.readouterr()
    assert hum_main(["identify", str(query), "--index", str(catalogue), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    answer.pop("timing_ms")
    return answer


def test_the_beam_build_equals_the_local_build(tmp_path, tone_songs, capsys):
    audio = tmp_path / "audio"
    shutil.copytree(tone_songs, audio)
    tone(audio / "sub-folder-song.wav", [65, 67, 69, 70, 72, 74, 76, 77, 72, 69, 65])
    (audio / "deeper").mkdir()  # its song sorts first, as paths sort part by part
    tone(audio / "deeper" / "zigzag.wav", [60, 67, 62, 69, 64, 71, 65, 72, 60, 67, 62])
    meta = tmp_path / "meta.csv"
    meta.write_text("song_id,title,artist\nrising,Rising Tune,Anon\n", encoding="utf-8")
    local, beam = tmp_path / "local", tmp_path / "beam"
    assert hum_main(["index", "build", str(audio), "--out", str(local), "--metadata", str(meta)]) == 0
    assert beam_main(["build", str(audio), "--out", str(beam), "--metadata", str(meta), "--runner", "direct"]) == 0
    assert "4 songs added (4 heard, 0 reused from shards), 0 files dead-lettered" in capsys.readouterr().out

    a, b = Catalogue(local), Catalogue(beam)
    assert [s for s in a.songs] == [s for s in b.songs]  # ids, titles, order, melody stretches, durations
    assert [s.song_id for s in b.songs] == ["zigzag", "falling", "rising", "sub-folder-song"]
    for row in range(len(a.songs)):
        assert np.array_equal(a.codes(row), b.codes(row))  # the stored melodies
    assert np.array_equal(np.load(local / "windows.npy"), np.load(beam / "windows.npy"))
    assert a.n_items == b.n_items > 0
    # the index's k-means and sample are seeded and built on one core, so every file is byte-equal
    assert {f: manifest.sha256_of(local / f) for f in FILES} == {f: manifest.sha256_of(beam / f) for f in FILES}
    import soundfile
    query = tmp_path / "query.wav"
    samples, rate = soundfile.read(audio / "rising.wav", dtype="float32")
    soundfile.write(query, samples[rate * 9:rate * 21], rate)  # 12 s from its middle
    assert identify(local, query, capsys) == identify(beam, query, capsys)
    assert identify(beam, query, capsys)["matches"][0]["title"] == "Rising Tune"


def test_index_add_on_beam_equals_the_local_add(tmp_path, tone_songs, capsys):
    more = tmp_path / "more"
    more.mkdir()
    tone(more / "new.wav", [67, 65, 64, 62, 60, 62, 64, 65, 67, 69, 71])
    tone(more / "rising.wav", [60, 60, 60, 60, 60, 60])  # its id is taken: skipped, as locally
    for name in ("local", "beam"):
        assert hum_main(["index", "build", str(tone_songs), "--out", str(tmp_path / name)]) == 0
    assert hum_main(["index", "add", str(more), "--index", str(tmp_path / "local")]) == 0
    assert beam_main(["add", str(more), "--index", str(tmp_path / "beam")]) == 0
    assert "1 songs added (1 heard, 0 reused from shards), 0 files dead-lettered" in capsys.readouterr().out
    assert digests(tmp_path / "local") == digests(tmp_path / "beam")


def test_files_it_cannot_hear_are_dead_letters_and_the_job_succeeds(tmp_path, tone_songs, capsys):
    import soundfile
    audio = tmp_path / "audio"
    shutil.copytree(tone_songs, audio)
    (audio / "noise.wav").write_bytes(np.random.default_rng(0).bytes(20_000))  # random bytes
    (audio / "empty.wav").write_bytes(b"")
    tone(tmp_path / "whole.wav", [60, 62, 64, 65, 67, 69])
    signal_, rate = soundfile.read(tmp_path / "whole.wav", dtype="float32")
    soundfile.write(tmp_path / "whole.flac", signal_, rate)
    raw = (tmp_path / "whole.flac").read_bytes()
    (audio / "truncated.flac").write_bytes(raw[:len(raw) // 2])
    tone(audio / "short.wav", [60, 62])  # 3 s: shorter than one model window
    out = tmp_path / "cat"
    assert beam_main(["build", str(audio), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "2 songs added" in captured.out and "4 files dead-lettered" in captured.out
    letters = [json.loads(line) for line in (tmp_path / "cat.shards" / "dead-letters.jsonl").read_text().splitlines()]
    assert sorted(Path(d["path"]).name for d in letters) == ["empty.wav", "noise.wav", "short.wav", "truncated.flac"]
    assert all(d["reason"] and "\n" not in d["reason"] for d in letters)
    assert captured.err.count("dead letter: ") == 4 and "Traceback" not in captured.err
    assert [s.song_id for s in Catalogue(out).songs] == ["falling", "rising"]


def test_a_failed_assembly_keeps_the_old_catalogue_and_the_rerun_hears_nothing_again(
        tmp_path, tone_songs, monkeypatch, capsys):
    audio = tmp_path / "audio"
    shutil.copytree(tone_songs, audio)
    out = tmp_path / "cat"
    assert beam_main(["build", str(audio), "--out", str(out)]) == 0
    before = digests(out)
    tone(audio / "third.wav", [62, 64, 66, 67, 69, 71, 73, 74, 69, 66, 62])

    from beam_index import assemble
    real = assemble.songs_of

    def dies_after_one_song(*args):
        songs = real(*args)
        yield next(songs)
        raise OSError(28, "No space left on device")  # as a full disk would, mid-write
    monkeypatch.setattr(assemble, "songs_of", dies_after_one_song)
    capsys.readouterr()
    assert beam_main(["build", str(audio), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "unchanged" in err and len(err.strip().splitlines()) == 1
    assert digests(out) == before  # the old catalogue, untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left
    assert len(shard_files(tmp_path / "cat.shards")) == 3  # every song heard once, kept

    monkeypatch.setattr(assemble, "songs_of", real)
    report = bb.build([str(audio)], out, default_model_dir(), log=lambda line: None)
    assert (report.heard, report.reused, report.added) == (0, 3, 3)
    assert report.counters.get("heard", 0) == 0 and report.counters["reused"] == 3  # Beam's own counters
    assert len(Catalogue(out).songs) == 3


def test_a_killed_run_keeps_the_old_catalogue_and_resumes_without_redoing_finished_songs(tmp_path, tone_songs):
    audio = tmp_path / "audio"
    shutil.copytree(tone_songs, audio)
    out, shards = tmp_path / "cat", tmp_path / "cat.shards"
    assert beam_main(["build", str(audio), "--out", str(out)]) == 0
    before = digests(out)
    rng = np.random.default_rng(1)
    for i in range(12):
        tone(audio / f"new-{i:02d}.wav", list(rng.integers(55, 80, 14)))
    done_before = len(shard_files(shards))
    run = subprocess.Popen([sys.executable, "-m", "beam_index.cli", "build", str(audio), "--out", str(out)],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(shard_files(shards)) <= done_before and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(run.pid, signal.SIGKILL)  # preempted, mid-pipeline
    assert run.wait() == -signal.SIGKILL, "the build finished before it could be killed"
    assert digests(out) == before
    finished = len(shard_files(shards)) - done_before
    assert 1 <= finished < 12

    assert len(list((shards / "runs").iterdir())) == 1  # the killed run's folder

    report = bb.build([str(audio)], out, default_model_dir(), log=lambda line: None)
    assert report.heard == 12 - finished and report.reused == 2 + finished
    assert len(Catalogue(out).songs) == 14
    assert list((shards / "runs").iterdir()) == []  # cleaned up after


def test_bad_command_lines_are_one_line_errors(tmp_path, tone_songs, capsys):
    assert beam_main(["build", str(tone_songs), "--out", str(tmp_path / "c"), "--no_such_option=1"]) == 2
    assert beam_main(["build", str(tmp_path / "missing"), "--out", str(tmp_path / "c")]) == 2
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    assert beam_main(["build", str(tone_songs), "--out", str(tmp_path / "mine")]) == 2
    assert beam_main(["build", str(tone_songs), "--out", str(tmp_path / "c"), "--shards", str(tmp_path / "mine")]) == 2
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("hum-search-beam: ") for line in err), err


def test_without_beam_it_says_how_to_install_it():
    code = ("import sys; sys.modules['apache_beam'] = None; from beam_index.cli import main; "
            "sys.exit(main(['build', 'x', '--out', 'y']))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "hum-search-beam: needs Apache Beam, which the device install leaves out; install it with: "
        "pip install 'hum-search[distributed]'"]
