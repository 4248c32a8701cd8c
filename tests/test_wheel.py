"""The wheel works without the repository: built with `python -m build`, installed into a
new virtual environment outside the source tree and run from there.

Offline: pip installs only the wheel into the new environment (--no-deps); a .pth file
lends it the dependencies installed where the test runs.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from device import assets, manifest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("model", "catalogue", "demo")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel (and the sdist it is built from) of this checkout."""
    if importlib.util.find_spec("build") is None:
        pytest.skip("python -m build is not installed (pip install build; ./run test installs it)")
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    log = built.stdout[-3000:] + built.stderr[-3000:]
    if "Missing dependencies" in log:
        pytest.skip(f"cannot build the wheel in this environment: {log.strip().splitlines()[-1]}")
    assert built.returncode == 0, log
    assert len(list(out.glob("*.tar.gz"))) == 1, log
    (path,) = out.glob("hum_search-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A new environment holding only the wheel; the test's site-packages lend the dependencies."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                                "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    lent = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    (Path(purelib) / "lent-dependencies.pth").write_text("\n".join(lent) + "\n")
    return root


def run(venv: Path, program: str, *args: str) -> subprocess.CompletedProcess:
    """Runs a program of the new environment in a folder outside the repository."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(venv / "bin" / program), *args], cwd=venv.parent, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_wheel_holds_the_runtime_every_shipped_file_and_the_licences(wheel):
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = whl.read(metadata).decode()
    for folder in SHIPPED:
        for path in (ROOT / "assets" / folder).rglob("*"):
            if path.is_file():
                assert f"hum_search_assets/{path.relative_to(ROOT / 'assets')}" in names
    assert "hum_search_assets/LICENSES.md" in names
    assert any(n.endswith(".dist-info/LICENSES.md") for n in names)
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} \
        == {"device", "hum_search_assets", "beam_index"}  # beam_index: hum-search-beam, [distributed]
    assert "License: MIT" in meta and "Requires-Python: >=3.10" in meta
    assert {"Provides-Extra: device", "Provides-Extra: train"} <= set(meta.splitlines())
    runtime = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")
               and ("extra ==" not in line or 'extra == "device"' in line)]
    assert runtime and not any(name in line.lower() for line in runtime for name in ("tensorflow", "keras"))


def test_it_runs_from_the_installed_files_alone(venv):
    where = run(venv, "python", "-c", "import device, hum_search_assets; print(device.__file__); "
                                      "print(hum_search_assets.__file__)")
    assert where.returncode == 0, where.stderr
    assert all(Path(line).is_relative_to(venv) for line in where.stdout.splitlines())
    assert run(venv, "python", "-c", "import training").returncode != 0  # not in the wheel

    version = run(venv, "hum-search", "--version")
    model = manifest.read(assets.default_model_dir(), manifest.MODEL_FORMAT)["model"]
    assert version.stdout == f"hum-search {importlib.metadata.version('hum-search')} (model {model['sha256'][:8]})\n"

    info = run(venv, "hum-search", "info")
    assert info.returncode == 0, info.stderr
    assert Path(json.loads(info.stdout)["directory"]).is_relative_to(venv)


def test_the_installed_demo_answers_as_the_checkout_does(venv):
    installed = run(venv, "hum-search", "demo", "--json", "--top", "3")
    assert installed.returncode == 0, installed.stderr
    here = subprocess.run([sys.executable, "-m", "device.cli", "demo", "--json", "--top", "3"],
                          capture_output=True, text=True)
    assert here.returncode == 0, here.stderr
    theirs, ours = ([json.loads(line) for line in r.stdout.splitlines()] for r in (installed, here))
    assert [Path(a["file"]).name for a in theirs] == [Path(a["file"]).name for a in ours]
    assert all(Path(a["file"]).is_relative_to(venv) for a in theirs)
    assert [(a["decision"], a["matches"]) for a in theirs] == [(a["decision"], a["matches"]) for a in ours]


def test_index_build_and_identify_against_it(venv, tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    for demo in sorted(assets.demo_dir().glob("*.wav"))[:2]:
        shutil.copy(demo, audio)
    built = run(venv, "hum-search", "index", "build", str(audio), "--out", str(tmp_path / "catalogue"))
    assert built.returncode == 0, built.stderr
    query = sorted(audio.glob("*.wav"))[0]
    answer = run(venv, "hum-search", "identify", str(query), "--index", str(tmp_path / "catalogue"), "--json")
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["matches"][0]["song_id"] == query.stem


def test_listen_lists_the_input_devices_or_says_why_not(venv):
    listed = run(venv, "hum-search", "listen", "--list-devices")
    if listed.returncode == 0:
        assert sum(line.startswith("*") for line in listed.stdout.splitlines()) == 1
    else:  # no microphone or no PortAudio here: one line, no traceback
        assert listed.returncode == 2, listed.stderr
        assert listed.stderr.startswith("hum-search: ") and len(listed.stderr.strip().splitlines()) == 1
