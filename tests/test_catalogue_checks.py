"""Every catalogue file is checked before use: damaged or hostile bytes are refused with one
line (naming the manifest field), never a traceback, a hang or a segmentation fault. The
damaged files carry checksums updated to match, as a hostile edit would."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device import assets, manifest
from device.catalogue import Catalogue
from device.cli import main
from device.model import MelodyModel, ModelError


def damaged(catalogue: Path, tmp_path: Path, name: str, edit) -> Path:
    """A copy of `catalogue` whose file `name` is edit(bytes) -> bytes; the manifest's
    checksum of that file is updated (unless the file is the manifest itself)."""
    copy = tmp_path / "cat"
    shutil.copytree(catalogue, copy)
    path = copy / name
    path.write_bytes(edit(path.read_bytes()))
    if name != manifest.MANIFEST:
        data = json.loads((copy / manifest.MANIFEST).read_text())
        for section in data.values():
            if isinstance(section, dict) and section.get("file") == name:
                section["sha256"] = manifest.sha256_of(path)
        (copy / manifest.MANIFEST).write_text(json.dumps(data))
    return copy


def refused(directory: Path, match: str = "") -> str:
    with pytest.raises(manifest.ManifestError) as info:
        Catalogue(directory)
    message = str(info.value)
    assert "\n" not in message and match in message, message
    return message


def edited_json(change):
    def edit(raw: bytes) -> bytes:
        data = json.loads(raw)
        change(data)
        return json.dumps(data).encode()
    return edit


MANIFEST_CASES = {
    "missing section": (edited_json(lambda d: d.pop("index")), "field index: missing"),
    "missing key": (edited_json(lambda d: d["index"].pop("n_items")), "field index.n_items: missing"),
    "a list": (lambda raw: b"[1, 2]", "JSON object"),
    "null": (lambda raw: b"null", "JSON object"),
    "not UTF-8": (lambda raw: raw.replace(b'"ivf-pq"', b'"ivf\xff-pq"'), "not a valid JSON manifest"),
    "5,000 digits": (lambda raw: raw.replace(b'"pq_m": 16', b'"pq_m": ' + b"9" * 5000), "not a valid JSON"),
    "deep nesting": (lambda raw: raw[:-2] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "JSON"),
    "nesting past the bound": (lambda raw: raw[:-2] + b', "x": ' + b"[" * 40 + b"]" * 40 + b"}", "nested"),
    "n_lists 2^31": (edited_json(lambda d: d["index"].update(n_lists=2 ** 31)), "field index.n_lists"),
    "pq_m Infinity": (lambda raw: raw.replace(b'"pq_m": 16', b'"pq_m": Infinity'), "not a number"),
    "pq_m 1e999": (lambda raw: raw.replace(b'"pq_m": 16', b'"pq_m": 1e999'), "out of range"),
    "pq_m 0": (edited_json(lambda d: d["index"].update(pq_m=0)), "field index.pq_m"),
    "pq_bits 9": (edited_json(lambda d: d["index"].update(pq_bits=9)), "field index.pq_bits"),
    "n_lists -5": (edited_json(lambda d: d["index"].update(n_lists=-5)), "field index.n_lists"),
    "n_lists true": (edited_json(lambda d: d["index"].update(n_lists=True)), "field index.n_lists"),
    "pq_m text": (edited_json(lambda d: d["index"].update(pq_m="16")), "field index.pq_m"),
    "another kind of index": (edited_json(lambda d: d["index"].update(kind="annoy")), "field index.kind"),
    "sub-vectors that do not divide the vectors": (edited_json(lambda d: d["index"].update(pq_m=12)),
                                                   "do not divide"),
    "more cells than the file holds": (edited_json(lambda d: d["index"].update(n_lists=d["index"]["n_lists"] + 1)),
                                       "index.npz"),
    "hop 0": (edited_json(lambda d: d["index"]["shortlist"].update(catalogue_hop_frames=0)),
              "field index.shortlist.catalogue_hop_frames"),
    "hop -100": (edited_json(lambda d: d["index"]["shortlist"].update(query_hop_frames=-100)),
                 "field index.shortlist.query_hop_frames"),
    "no scales": (edited_json(lambda d: d["index"]["shortlist"].update(scales=[])), "field index.shortlist.scales"),
    "unknown shortlist key": (edited_json(lambda d: d["index"]["shortlist"].update(extra=1)),
                              "field index.shortlist.extra: unexpected"),
    "index and embedder sizes differ": (edited_json(lambda d: d["index"].update(dim=16)), "disagree"),
    "windows the embedder was not trained on": (edited_json(lambda d: d["index"]["shortlist"].update(window_frames=64)),
                                                "the embedder's of 48"),
    "wrong song count": (edited_json(lambda d: d["songs"].update(count=d["songs"]["count"] + 1)), "the manifest says"),
    "wrong item count": (edited_json(lambda d: d["index"].update(n_items=d["index"]["n_items"] + 1)), ""),
    "a file outside the folder": (edited_json(lambda d: d["model"].update(file="../model.tflite")), "field model.file"),
    "a bad checksum format": (edited_json(lambda d: d["songs"].update(sha256="x")), "field songs.sha256"),
    "voicing above 1": (edited_json(lambda d: d["model"]["melody"].update(voicing_threshold=2)),
                        "field model.melody.voicing_threshold"),
    "frame rate 0": (edited_json(lambda d: d["melody"].update(frame_rate_hz=0)), "field melody.frame_rate_hz"),
    "over a megabyte": (lambda raw: raw[:-2] + b', "x": "' + b"a" * (1 << 20) + b'"}', "larger than"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_a_malformed_manifest_is_refused_naming_the_problem(tone_catalogue, tmp_path, case):
    edit, match = MANIFEST_CASES[case]
    refused(damaged(tone_catalogue, tmp_path, manifest.MANIFEST, edit), match)


def song_lines(edit):
    def apply(raw: bytes) -> bytes:
        lines = raw.decode().split("\r\n")
        edit(lines)
        return "\r\n".join(lines).encode()
    return apply


def set_field(row: int, column: int, value: str):
    def edit(lines):
        fields = lines[row].split(",")
        fields[column] = value
        lines[row] = ",".join(fields)
    return edit


SONGS_CASES = {
    "a field of 200,000 characters": set_field(1, 1, "x" * 200_000),
    "a field of 5,000 characters": set_field(1, 1, "x" * 5000),
    "an extra column": set_field(1, 5, "1.0,extra"),
    "a missing column": set_field(1, 5, ""),
    "a renamed column": set_field(0, 3, "first_item"),
    "a huge first frame": set_field(1, 3, "9" * 5000),
    "first frame 2^70": set_field(1, 3, str(2 ** 70)),
    "a negative first frame": set_field(1, 3, "-1"),
    "swapped first frames": lambda lines: lines.__setitem__(slice(1, 3), lines[2:0:-1]),
    "a NaN duration": set_field(1, 5, "nan"),
    "a negative length": set_field(2, 4, "-3"),
    "a repeated song id": lambda lines: lines.__setitem__(2, lines[1].split(",")[0] + "," + lines[2].split(",", 1)[1]),
    "not UTF-8": set_field(1, 1, "\udcff"),
    "a missing row": lambda lines: lines.pop(2),
}


@pytest.mark.parametrize("case", sorted(SONGS_CASES))
def test_a_damaged_song_list_is_refused(tone_catalogue, tmp_path, case):
    edit = SONGS_CASES[case]
    if case == "not UTF-8":
        def raw_edit(raw):  # noqa: E306 - bytes that are not UTF-8
            return raw.replace(b"rising", b"ris\xffing", 1)
    else:
        raw_edit = song_lines(edit)
    refused(damaged(tone_catalogue, tmp_path, "songs.csv", raw_edit), "songs.csv")


def npy_edit(change):
    def edit(raw: bytes) -> bytes:
        header = raw.index(b"\n") + 1
        table = np.frombuffer(raw[header:], "<f4").reshape(-1, 3).copy()
        change(table)
        return raw[:header] + table.tobytes()
    return edit


@pytest.mark.parametrize("case,edit", [
    ("a header numpy cannot tokenize", lambda raw: raw.replace(b", }", b", (", 1)),  # TokenError
    ("a NaN song row", npy_edit(lambda t: t.__setitem__((0, 0), np.nan))),
    ("a song row of 2^31", npy_edit(lambda t: t.__setitem__((0, 0), 2.0 ** 31))),
    ("a header claiming 2^40 rows", lambda raw: raw.replace(b"'shape': (", b"'shape': (1099511627776, 3), 'x': (", 1)),
    ("a truncated table", lambda raw: raw[:-5]),
    ("a song row out of range", npy_edit(lambda t: t.__setitem__((0, 0), 999))),
    ("a fractional song row", npy_edit(lambda t: t.__setitem__((0, 0), 0.5))),
    ("a NaN key", npy_edit(lambda t: t.__setitem__((0, 2), np.nan))),
    ("a start past the song", npy_edit(lambda t: t.__setitem__((0, 1), 1e9))),
    ("not npy", lambda raw: b"garbage" * 10),
])
def test_damaged_windows_are_refused(tone_catalogue, tmp_path, case, edit):
    refused(damaged(tone_catalogue, tmp_path, "windows.npy", edit), "windows.npy")


def test_a_melody_file_of_the_wrong_size_is_refused(tone_catalogue, tmp_path):
    refused(damaged(tone_catalogue, tmp_path, "melody.bin", lambda raw: raw + b"\x01"), "melody frames")


@pytest.mark.parametrize("case,edit", [("truncated", lambda raw: raw[:-7]), ("empty", lambda raw: b""),
                                       ("not a zip", lambda raw: b"garbage" * 30),
                                       ("a flipped byte in the codes", lambda raw: raw[:-200] + bytes([raw[-200] ^ 255]) + raw[-199:])])
def test_a_damaged_index_file_is_refused_before_faiss_sees_it(tone_catalogue, tmp_path, case, edit):
    refused(damaged(tone_catalogue, tmp_path, "index.npz", edit), "index.npz")


@pytest.mark.parametrize("edit,match", [(lambda raw: raw[: len(raw) // 2], "unreadable embedder weights"),
                                        (lambda raw: b"PK" + bytes(100), "unreadable embedder weights")])
def test_damaged_embedder_weights_are_refused(tone_catalogue, tmp_path, edit, match):
    refused(damaged(tone_catalogue, tmp_path, "embedder.npz", edit), match)


def test_the_shipped_and_built_catalogues_pass_every_check(tone_catalogue):
    for directory in (assets.default_catalogue_dir(), tone_catalogue):
        assert len(Catalogue(directory).songs) >= 2


def zero_point_edits(raw: bytes) -> list[bytes]:
    """The model with each int8 zero-point of -128 (as the flatbuffer stores it, int64)
    set to 5, one at a time."""
    pattern = np.int64(-128).tobytes()
    spots = [i for i in range(len(raw) - 8) if raw[i:i + 8] == pattern]
    return [raw[:i] + np.int64(5).tobytes() + raw[i + 8:] for i in spots]


def test_a_model_with_a_damaged_zero_point_is_one_line_not_a_traceback(tone_catalogue, tmp_path, capsys):
    raw = (tone_catalogue / "model.tflite").read_bytes()
    outcomes = []
    for number, edited in enumerate(zero_point_edits(raw)):
        path = tmp_path / f"model-{number}.tflite"
        path.write_bytes(edited)
        try:
            MelodyModel(path)
            outcomes.append("runs")
        except ModelError as exc:
            assert "\n" not in str(exc)
            outcomes.append("refused")
    assert "refused" in outcomes  # e.g. "failed to prepare" in the interpreter, seen in issue 15
    bad = next(e for e, o in zip(zero_point_edits(raw), outcomes) if o == "refused")
    catalogue = damaged(tone_catalogue, tmp_path, "model.tflite", lambda _: bad)
    capsys.readouterr()
    assert main(["info", "--index", str(catalogue)]) == 2  # info validates the model too
    err = capsys.readouterr().err
    assert "not a usable melody model" in err and len(err.strip().splitlines()) == 1


def test_a_model_that_aborts_the_interpreter_is_one_line_not_a_dead_process(tone_catalogue, tmp_path):
    # found by zeroing 16-byte stretches of the shipped model 5f65e0f3 in turn from offset
    # 50,000 (benchmarks.fuzz found the first such case in ae1251b8; c524427c's was at
    # 48,242): 16 bytes zeroed from offset 66,016 make a kernel abort (SIGABRT) at the first run
    catalogue = damaged(tone_catalogue, tmp_path, "model.tflite",
                        lambda raw: raw[:66_016] + bytes(16) + raw[66_016 + 16:])
    for command in (["info"], ["identify", str(sorted(assets.demo_dir().glob("*.wav"))[0])]):
        run = subprocess.run([sys.executable, "-m", "device.cli", *command, "--index", str(catalogue)],
                             capture_output=True, text=True)
        assert run.returncode == 2, run.stderr
        assert run.stderr.startswith("hum-search: ") and "crashed running it (signal 6)" in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1
