"""Safe with the user's files and with any input (issue 15): what `--out` may replace, a
full disk, a killed write, file names and titles that are not plain text, bad files in a
folder being indexed. Each test reproduces a failure that was seen."""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from device import assets, manifest
from device.cli import main
from device.frontend import FrontendConfig
from conftest import tone

RATE = FrontendConfig().sample_rate_hz


def hum_search(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "device.cli", *args], capture_output=True, **kwargs)


def snapshot(folder: Path) -> dict:
    """Every file below `folder` with its bytes."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("case", ["notes", "cwd", "audio_dir", "contains_audio_dir", "regular_file",
                                  "catalogue_plus_notes", "other_manifest"])
def test_build_never_replaces_what_it_did_not_write(tmp_path, tone_songs, monkeypatch, capsys, case):
    audio = tmp_path / "audio"
    shutil.copytree(tone_songs, audio)
    target = tmp_path / "v"
    if case == "notes":
        target.mkdir()
        (target / "notes.txt").write_text("precious")
    elif case == "cwd":
        target.mkdir()
        (target / "notes.txt").write_text("precious")
        monkeypatch.chdir(target)
    elif case == "audio_dir":
        target = audio
    elif case == "contains_audio_dir":
        target = tmp_path
    elif case == "regular_file":
        target.write_text("precious")
    elif case == "catalogue_plus_notes":
        assert main(["index", "build", str(audio), "--out", str(target)]) == 0
        (target / "notes.txt").write_text("precious")
    else:  # a model directory is not a catalogue
        shutil.copytree(assets.default_model_dir(), target)
    before = snapshot(tmp_path)
    out = "." if case == "cwd" else str(target)
    capsys.readouterr()
    assert main(["index", "build", str(audio), "--out", out]) == 2
    err = one_line_error(capsys)
    assert "refusing to replace it" in err or "may not be the audio folder or contain it" in err
    assert snapshot(tmp_path) == before


def test_index_add_out_never_replaces_what_it_did_not_write(tmp_path, tone_songs, capsys):
    catalogue, elsewhere = tmp_path / "cat", tmp_path / "elsewhere"
    assert main(["index", "build", str(tone_songs), "--out", str(catalogue)]) == 0
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("precious")
    more = tmp_path / "more"
    more.mkdir()
    tone(more / "third.wav", [64, 64, 65, 67, 67])
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert main(["index", "add", str(more), "--index", str(catalogue), "--out", str(elsewhere)]) == 2
    one_line_error(capsys)
    assert main(["index", "add", str(more), "--index", str(catalogue), "--out", str(more)]) == 2
    one_line_error(capsys)
    assert snapshot(tmp_path) == before


def test_an_empty_folder_and_its_own_catalogue_are_replaced(tmp_path, tone_songs):
    out = tmp_path / "cat"
    out.mkdir()
    assert main(["index", "build", str(tone_songs), "--out", str(out)]) == 0
    first = manifest.sha256_of(out / "songs.csv")
    assert main(["index", "build", str(tone_songs), "--out", str(out), "--code-bytes", "8"]) == 0
    assert json.loads((out / "manifest.json").read_text())["index"]["pq_m"] == 8
    assert manifest.sha256_of(out / "songs.csv") == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat"]  # nothing hidden left beside it


def dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout)


def test_a_killed_write_is_cleaned_up_and_the_catalogue_it_moved_aside_restored(tmp_path, tone_songs):
    catalogue = tmp_path / "cat"
    assert main(["index", "build", str(tone_songs), "--out", str(catalogue)]) == 0
    before = snapshot(catalogue)
    pid = dead_pid()
    # what SIGKILL between the two renames of a replacement leaves: the old catalogue moved
    # aside, the new one complete in its staging folder, nothing at the catalogue's name
    staging = tmp_path / f".cat.hum-search-staging-{pid}-x1y2"
    shutil.copytree(catalogue, staging)
    os.replace(catalogue, tmp_path / f".cat.hum-search-old-{pid}")
    (tmp_path / f".cat.hum-search-staging-{dead_pid()}-abcd").mkdir()  # killed while hearing
    more = tmp_path / "more"
    more.mkdir()
    tone(more / "third.wav", [64, 64, 65, 67, 67])
    assert main(["index", "add", str(more), "--index", str(catalogue)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat", "more"]
    after = snapshot(catalogue)
    old_songs = before[Path("songs.csv")].decode().splitlines()
    assert after[Path("songs.csv")].decode().splitlines()[:len(old_songs)] == old_songs


def test_a_real_kill_mid_write_leaves_only_what_the_next_run_cleans(tmp_path, tone_songs):
    catalogue = tmp_path / "cat"
    assert main(["index", "build", str(tone_songs), "--out", str(catalogue)]) == 0
    before = snapshot(catalogue)
    more = tmp_path / "more"
    more.mkdir()
    tone(more / "third.wav", [64, 64, 65, 67, 67])

    killed_copying_the_model = ("import os, shutil, signal, sys; from device.cli import main; "
                                "shutil.copyfile = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL); "
                                "sys.exit(main(sys.argv[1:]))")
    run = subprocess.run([sys.executable, "-c", killed_copying_the_model, "index", "add", str(more),
                          "--index", str(catalogue)], capture_output=True)
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert snapshot(catalogue) == before
    assert any(".hum-search-staging-" in p.name for p in tmp_path.iterdir())  # what the kill left
    assert main(["index", "add", str(more), "--index", str(catalogue)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat", "more"]


def test_a_full_disk_during_build_is_one_line_and_keeps_the_old_catalogue(tmp_path, tone_songs):
    catalogue = tmp_path / "cat"
    assert main(["index", "build", str(tone_songs), "--out", str(catalogue)]) == 0
    before = snapshot(catalogue)

    def small_disk():  # writes past 10 kB fail with EFBIG, as on a full disk with ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    run = hum_search("index", "build", str(tone_songs), "--out", str(catalogue), "--code-bytes", "8",
                     preexec_fn=small_disk, text=True, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert "cannot write" in run.stderr and "unchanged" in run.stderr
    assert snapshot(catalogue) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat"]


def test_identify_json_to_a_full_disk_is_one_line():
    demo = sorted(assets.demo_dir().glob("*.wav"))[0]
    with open("/dev/full", "w") as full:
        run = subprocess.run([sys.executable, "-m", "device.cli", "identify", str(demo), "--json"],
                             stdout=full, stderr=subprocess.PIPE, text=True)
    assert run.returncode == 1
    assert run.stderr.strip() == "hum-search: No space left on device"


def test_a_file_name_that_is_not_utf8_is_printed_safely_and_the_next_file_answered(tmp_path):
    demo = sorted(assets.demo_dir().glob("*.wav"))[0]
    bad = os.fsencode(tmp_path) + b"/bad-\xff.wav"
    shutil.copy(demo, bad)
    for as_json in (True, False):
        run = subprocess.run([sys.executable, "-m", "device.cli", "identify", bad, str(demo), "--top", "1"]
                             + ["--json"] * as_json, capture_output=True)
        assert run.returncode == 0, run.stderr
        lines = run.stdout.decode("utf-8").splitlines()
        if as_json:
            answers = [json.loads(line) for line in lines]
            assert answers[0]["file"] == f"{tmp_path}/bad-\\xff.wav" and answers[1]["file"] == str(demo)
            assert answers[0]["matches"] == answers[1]["matches"]
        else:
            assert lines[0].startswith(f"{tmp_path}/bad-\\xff.wav: ")
            assert any(line.startswith(f"{demo}: ") for line in lines)


def test_index_build_skips_and_counts_what_it_cannot_hear(tmp_path, tone_songs, capsys):
    audio = tmp_path / "audio"
    shutil.copytree(tone_songs, audio)
    soundfile.write(audio / "one-sample.wav", np.zeros(1, np.float32), RATE)
    tone(audio / "short.wav", [60, 62], seconds_each=1.0)  # 2 s: less than one model window
    (audio / "random.wav").write_bytes(np.random.default_rng(0).bytes(50_000))
    (audio / "empty.flac").write_bytes(b"")
    tone(audio / "cut.flac", [60, 62, 64, 65, 67])
    (audio / "cut.flac").write_bytes((audio / "cut.flac").read_bytes()[:20_000])
    rate1 = tone(audio / "rate1.wav", [60, 62, 64])
    data = bytearray(rate1.read_bytes())
    data[24:32] = (1).to_bytes(4, "little") + (2).to_bytes(4, "little")
    rate1.write_bytes(bytes(data))
    (audio / "folder.wav").mkdir()
    capsys.readouterr()
    assert main(["index", "build", str(audio), "--out", str(tmp_path / "cat")]) == 0
    out, err = capsys.readouterr()
    assert out.strip().endswith("2 songs added, 6 files skipped")
    skipped = [line for line in err.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 6 and "Traceback" not in err
    assert "shorter than one" in err and "damaged or truncated FLAC" in err and "sample rate 1 Hz" in err
    rows = (tmp_path / "cat" / "songs.csv").read_text().splitlines()[1:]
    assert sorted(r.split(",")[0] for r in rows) == ["falling", "rising"]


def test_a_metadata_csv_with_a_byte_order_mark_is_read(tmp_path, tone_songs):
    meta = tmp_path / "meta.csv"
    meta.write_text("song_id,title,artist\nrising,Up We Go,Someone\n", encoding="utf-8-sig")
    assert main(["index", "build", str(tone_songs), "--out", str(tmp_path / "cat"), "--metadata", str(meta)]) == 0
    assert "rising,Up We Go,Someone," in (tmp_path / "cat" / "songs.csv").read_text()


def test_titles_cannot_drive_the_terminal_or_forge_result_lines(tmp_path, tone_songs, capsys):
    evil = "Up\x1b[2J\x1b]0;pwned\x07\r\nfake.wav: Forged Song"
    meta = tmp_path / "meta.csv"
    with open(meta, "w", newline="", encoding="utf-8") as handle:
        handle.write('song_id,title,artist\nrising,"' + evil + '","Art\x1b[31mist"\n')
    catalogue = tmp_path / "cat"
    assert main(["index", "build", str(tone_songs), "--out", str(catalogue), "--metadata", str(meta)]) == 0
    capsys.readouterr()
    main(["identify", str(tone_songs / "rising.wav"), "--index", str(catalogue), "--top", "2"])
    human = capsys.readouterr().out
    assert "\x1b" not in human and "\r" not in human and "\x07" not in human
    assert not any(line.startswith("fake.wav") for line in human.splitlines())
    assert "Up\\x1b[2J" in human
    main(["identify", str(tone_songs / "rising.wav"), "--index", str(catalogue), "--top", "2", "--json"])
    titles = [m["title"] for m in json.loads(capsys.readouterr().out)["matches"]]
    assert evil in titles  # JSON carries the title exactly; its encoder escapes it


def test_bad_numbers_on_the_command_line_are_usage_errors(tmp_path, tone_songs, capsys):
    for option in (["--code-bytes", "0"], ["--window-hop", "-100"], ["--workers", "x"]):
        with pytest.raises(SystemExit) as exit_:
            main(["index", "build", str(tone_songs), "--out", str(tmp_path / "cat"), *option])
        assert exit_.value.code == 2
    assert not (tmp_path / "cat").exists()


def test_code_bytes_that_do_not_divide_the_vectors_are_one_line_before_any_hearing(tmp_path, tone_songs, capsys):
    assert main(["index", "build", str(tone_songs), "--out", str(tmp_path / "cat"), "--code-bytes", "12"]) == 2
    error = capsys.readouterr().err.strip()
    assert "do not divide" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "cat").exists()
