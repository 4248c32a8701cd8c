#!/usr/bin/env bash
# Proof on aarch64, under emulation: a 64-bit ARM Debian root (debootstrap + qemu-user-static,
# binfmt), the wheel built here installed in it with its `device` extra from the package
# registry (faiss-cpu has aarch64 wheels), then in it: `./run demo`'s command, the tests
# that need no training extra, `hum-search bench --json`, and each demo's answer and stage
# outputs compared with this machine's (benchmarks/aarch64_compare.py: same ranking, scores
# within tolerance). Results: benchmarks/results/aarch64-emulated/.
#
#   sudo benchmarks/aarch64_emulated.sh [ROOT]      # ROOT: default /var/tmp/hum-search-arm64
#
# Run as root on a Debian (or Ubuntu) host with apt: it installs debootstrap,
# qemu-user-static and binfmt-support if missing and registers qemu's aarch64 handler.
# ROOT must lie outside the repository; an existing root made by this script is reused
# (each step is skipped when done: the debootstrap, the venv for an unchanged wheel), so a
# rerun costs the demo, the tests and the bench. Everything slow runs under `nice -n 19`.
# Under emulation (2 shared x86 cores) the set-up takes about 20 min the first time, the demo
# 3 min, the tests 15 min, the bench 4 min: it is not part of CI.
#
# Environment:
#   STEPS="demo tests bench compare"  what to run after the set-up (any subset, in that order)
#   SUITE=bookworm MIRROR=http://deb.debian.org/debian   the Debian release and mirror of the root
#   BENCH_REPEATS=3    hum-search bench --repeats (the CLI's default is 5)
#   PYTEST_ARGS=       more pytest arguments (e.g. -k 'not fuzz' or a file list), replacing "tests"
#   RESULTS=benchmarks/results/aarch64-emulated   where the results go
#   X86_PYTHON=.venv/bin/python   the x86 reference environment (./run demo's)
#   PIP_INDEX_URL      passed on into the root (else the host pip's global.index-url, else PyPI)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=$(realpath -m "${1:-/var/tmp/hum-search-arm64}")
STEPS=${STEPS:-demo tests bench compare}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
BENCH_REPEATS=${BENCH_REPEATS:-3}
RESULTS=$(realpath -m "${RESULTS:-$REPO/benchmarks/results/aarch64-emulated}")
X86_PYTHON=${X86_PYTHON:-$REPO/.venv/bin/python}
W=/opt/hum-search            # the work folder inside the root
HOST_W=$ROOT$W
NICE=(nice -n 19)
ROOT_PACKAGES=(python3 python3-venv python3-dev g++ libsndfile1 libportaudio2 ca-certificates)

say() { printf '[aarch64 %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { say "error: $*"; exit 1; }
has_step() { [[ " $STEPS " == *" $1 "* ]]; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot, mount and binfmt need it)"
case "$ROOT/" in
  /|/bin/*|/usr/*|/etc/*|/var/|/tmp/) die "refusing ROOT=$ROOT" ;;
  "$REPO"/*) die "ROOT=$ROOT lies inside the repository; give a folder outside it" ;;
esac
[ -x "$X86_PYTHON" ] || die "no x86 reference environment at $X86_PYTHON: run ./run demo first"

# --- host: packages and the binfmt handler -------------------------------------------------
host_packages() {
  local missing=() p
  for p in debootstrap qemu-user-static binfmt-support; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

register_binfmt() {
  local entry=/proc/sys/fs/binfmt_misc/qemu-aarch64
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
      || die "cannot mount binfmt_misc on /proc/sys/fs/binfmt_misc (a container without the privilege?)"
  fi
  if [ ! -e "$entry" ]; then
    say "registering qemu-aarch64 with binfmt_misc"
    update-binfmts --enable qemu-aarch64 2>/dev/null || true
    [ -e "$entry" ] || { systemctl restart systemd-binfmt 2>/dev/null || true; }
    [ -e "$entry" ] || die "qemu-aarch64 is not registered in binfmt_misc (update-binfmts --enable qemu-aarch64 failed)"
  fi
  grep -q '^enabled' "$entry" || die "$entry is disabled: update-binfmts --enable qemu-aarch64"
  # F (fix binary): the kernel opens qemu when registering, so the root needs no copy of it
  grep -q '^flags: .*F' "$entry" || die "$entry lacks the F flag: the chroot cannot find qemu (Debian's qemu-user-static sets it)"
}

# --- the root -------------------------------------------------------------------------------
make_root() {
  if [ -x "$ROOT/usr/bin/python3" ] && [ ! -e "$ROOT/debootstrap" ]; then
    say "reusing the arm64 root at $ROOT"
  elif [ -e "$ROOT/debootstrap" ]; then
    die "$ROOT holds an unfinished debootstrap (its debootstrap/ folder): delete $ROOT and rerun"
  elif [ -d "$ROOT" ] && [ -n "$(ls -A "$ROOT")" ]; then
    die "$ROOT is not empty and not a root this script made"
  else
    say "debootstrap $SUITE arm64 into $ROOT (under emulation: 15-30 min)"
    mkdir -p "$ROOT"
    "${NICE[@]}" debootstrap --arch=arm64 --variant=minbase --include="$(IFS=,; echo "${ROOT_PACKAGES[*]}")" \
      "$SUITE" "$ROOT" "$MIRROR"
  fi
  [ "$(chroot "$ROOT" /usr/bin/uname -m)" = aarch64 ] || die "the root does not run as aarch64"
  local missing=() p
  for p in "${ROOT_PACKAGES[@]}"; do chroot "$ROOT" dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} in the root"
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    "${NICE[@]}" chroot "$ROOT" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${NICE[@]}" chroot "$ROOT" apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# No /sys: under qemu-user, /proc/cpuinfo is the x86 host's (qemu 7.2 passes it through), and
# the cpuinfo library inside LiteRT's XNNPACK, finding CPUs and caches in /sys but no ARM
# processor in /proc/cpuinfo, dereferences NULL while loading the model (SIGSEGV, exit 139).
# With only one of the two it falls back and runs; on a board both describe the same CPU.
MOUNTED=()
mount_root() {
  local target
  if mountpoint -q "$ROOT/sys"; then die "$ROOT/sys is mounted: unmount it (see the comment above mount_root)"; fi
  for target in proc dev dev/pts dev/shm; do
    mountpoint -q "$ROOT/$target" && continue
    mkdir -p "$ROOT/$target"
    case $target in
      proc) mount -t proc proc "$ROOT/proc" ;;
      dev) mount --bind /dev "$ROOT/dev" ;;
      dev/pts) mount -t devpts devpts "$ROOT/dev/pts" -o newinstance,ptmxmode=0666 ;;
      dev/shm) mount -t tmpfs tmpfs "$ROOT/dev/shm" ;;
    esac
    MOUNTED=("$ROOT/$target" "${MOUNTED[@]}")
  done
}
unmount_root() {
  local target
  for target in "${MOUNTED[@]}"; do umount "$target" 2>/dev/null || umount -l "$target" || true; done
  MOUNTED=()
}
trap unmount_root EXIT

# Commands in the root: a clean environment, the host's CA bundle (a TLS-inspecting proxy's
# CA included, where the host trusts one), the host's index URL and proxies, nice 19.
INDEX_URL=${PIP_INDEX_URL:-$("$X86_PYTHON" -m pip config get global.index-url 2>/dev/null || true)}
in_root() {
  local env=(HOME=/root LANG=C.UTF-8 "PATH=$W/venv/bin:/usr/local/bin:/usr/bin:/bin"
             "PIP_CERT=$W/host-ca.crt" "SSL_CERT_FILE=$W/host-ca.crt" "REQUESTS_CA_BUNDLE=$W/host-ca.crt"
             PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 PIP_NO_INPUT=1
             "XDG_CACHE_HOME=$W/cache" PYTHONDONTWRITEBYTECODE=1)
  [ -n "$INDEX_URL" ] && env+=(PIP_INDEX_URL="$INDEX_URL")
  local v
  for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -n "${!v:-}" ] && env+=("$v=${!v}")
  done
  "${NICE[@]}" chroot "$ROOT" /usr/bin/env -i "${env[@]}" /bin/bash -c "$1"
}

# --- the package inside ---------------------------------------------------------------------
install_package() {
  mkdir -p "$HOST_W/dist" "$HOST_W/cache"
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  cp -L /etc/ssl/certs/ca-certificates.crt "$HOST_W/host-ca.crt"
  say "building the wheel here"
  rm -rf "$HOST_W/dist.new" && mkdir -p "$HOST_W/dist.new"
  (cd "$REPO" && "${NICE[@]}" "$X86_PYTHON" -m build --wheel --outdir "$HOST_W/dist.new" > "$HOST_W/build.log" 2>&1) \
    || die "python -m build failed: $HOST_W/build.log"
  local wheel sum
  wheel=$(cd "$HOST_W/dist.new" && ls hum_search-*.whl)
  # the digest of the wheel's RECORD (every file's sha256): equal for equal contents, unlike
  # the wheel's own bytes (zip timestamps)
  sum=$("$X86_PYTHON" -c 'import hashlib, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
print(hashlib.sha256(z.read(next(n for n in z.namelist() if n.endswith(".dist-info/RECORD")))).hexdigest()[:16])' \
    "$HOST_W/dist.new/$wheel")
  rm -rf "$HOST_W/dist" && mv "$HOST_W/dist.new" "$HOST_W/dist"
  # the sources the tests import besides the runtime (the runtime is the wheel's: no device/)
  rm -rf "$HOST_W/src" && mkdir -p "$HOST_W/src/assets"
  cp -r "$REPO/tests" "$REPO/training" "$REPO/converter" "$HOST_W/src/"
  mkdir -p "$HOST_W/src/benchmarks" && cp "$REPO"/benchmarks/*.py "$HOST_W/src/benchmarks/"
  cp -r "$REPO/assets/demo" "$HOST_W/src/assets/demo"
  find "$HOST_W/src" -name __pycache__ -prune -exec rm -rf {} +
  cp "$REPO/benchmarks/aarch64_compare.py" "$HOST_W/aarch64_compare.py"
  write_skip_plugin > "$HOST_W/hum_extra_skip.py"
  if [ -f "$HOST_W/venv/.installed-$sum" ]; then
    say "the wheel is unchanged ($sum): reusing the root's venv"
    return
  fi
  say "pip install ${wheel}[device] pytest in the root (minutes under emulation)"
  in_root "set -e; [ -x $W/venv/bin/python ] || python3 -m venv $W/venv
           pip install -q --upgrade pip
           pip install '$W/dist/${wheel}[device]' pytest
           pip install -q --no-deps --force-reinstall '$W/dist/$wheel'
           rm -f $W/venv/.installed-*; touch $W/venv/.installed-$sum"
}

# A pytest plugin, loaded with -p: a test that fails only because a module of an extra the
# board does not install (train, plot, distributed, dev) is missing is reported as skipped,
# naming the module; any other failure stays a failure. (tests/ import training modules at
# module level, which the training extra's packages back.)
write_skip_plugin() {
  cat <<'EOF'
import re

import pytest

EXTRA_MODULES = {"scipy", "tensorflow", "keras", "tensorboard", "music21", "pretty_midi", "fluidsynth",
                 "matplotlib", "librosa", "pyroomacoustics", "pedalboard", "mir_eval", "numba", "jax",
                 "jaxlib", "apache_beam", "build"}
MISSING = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")


def _extra_module(text):
    names = {name.split(".")[0] for name in MISSING.findall(text)}
    found = sorted(names & EXTRA_MODULES)
    return found[0] if found and names <= EXTRA_MODULES else None


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    module = report.failed and _extra_module(str(report.longrepr))
    if module:
        report.outcome = "skipped"
        report.longrepr = (str(collector.path), 0, f"Skipped: needs the {module} module (an extra)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    module = report.failed and call.excinfo is not None and _extra_module(str(report.longrepr))
    if module:
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: needs the {module} module (an extra)")
EOF
}

# --- the steps ------------------------------------------------------------------------------
ARM=$HOST_W/out          # this run's outputs from inside the root
X86=$HOST_W/x86          # the same from this machine's reference environment
LOG=$ARM/run.txt         # the latest run of each step: name, when it ended, wall time, exit status
note() {  # note NAME WALL STATUS
  touch "$LOG"
  { grep -v "^$1	" "$LOG" || true; printf '%s\t%s\t%s\t%s\n' "$1" "$(date -u +%FT%TZ)" "$2" "$3"; } > "$LOG.new"
  mv "$LOG.new" "$LOG"
}
timed() {  # timed NAME COMMAND: runs it in the root, notes wall time and status in run.txt
  local name=$1 t0 rc
  t0=$(date +%s)
  set +e; in_root "$2"; rc=$?; set -e
  note "$name" "$(( $(date +%s) - t0 )) s" "exit $rc"
  say "$name: $(( $(date +%s) - t0 )) s, exit $rc"
  return 0
}

step_demo() {
  say "demo (./run demo's command), demo --json and the stage dump, in the root"
  rm -f "$ARM"/demo.* "$ARM/probe.npz" "$X86"/demo.* "$X86/probe.npz"
  timed demo "cd $W/src && hum-search identify assets/demo/*.wav > $W/out/demo.txt 2> $W/out/demo.stderr"
  timed demo-json "cd $W/src && hum-search demo --json > $W/out/demo.jsonl 2>> $W/out/demo.stderr"
  say "the same here (x86 reference: $X86_PYTHON)"
  mkdir -p "$X86"
  local bin
  bin=$(dirname "$X86_PYTHON")
  (cd "$REPO" && "${NICE[@]}" "$bin/hum-search" identify assets/demo/*.wav > "$X86/demo.txt")
  "${NICE[@]}" "$bin/hum-search" demo --json > "$X86/demo.jsonl"
  "${NICE[@]}" "$X86_PYTHON" "$REPO/benchmarks/aarch64_compare.py" dump "$X86/probe.npz" >/dev/null
  # in the root, each stage's output; the kernel check runs the model on x86's spectrograms
  timed probe "cd $W && python aarch64_compare.py dump $W/out/probe.npz --spectrograms $W/x86/probe.npz \
               >> $W/out/demo.stderr 2>&1"
}

PYTEST_ARGV="-m pytest -p hum_extra_skip -p no:cacheprovider -q -rsfE --durations=20 ${PYTEST_ARGS:-tests}"
step_tests() {
  say "the tests that need no training extra, in the root (15-30 min under emulation)"
  # a fuzz case counts as a hang after 60 s natively; emulated, everything is 10-20 times slower
  timed tests "cd $W/src && HUM_SEARCH_FUZZ_TIMEOUT_S=900 PYTHONPATH=$W python $PYTEST_ARGV > $W/out/pytest.txt 2>&1"
  # the same selection here, in a venv with the same wheel and no more (the like-for-like count)
  say "the same tests here, in a device-only venv ($X86/venv)"
  mkdir -p "$X86"
  local wheel stamp t0 rc
  wheel=$(ls "$HOST_W"/dist/hum_search-*.whl)
  stamp=$(basename "$(ls "$HOST_W"/venv/.installed-*)")  # the root's: .installed-<digest of the wheel>
  if [ ! -f "$X86/venv/$stamp" ]; then
    rm -rf "$X86/venv"
    "${PYTHON:-python3}" -m venv "$X86/venv"
    "${NICE[@]}" "$X86/venv/bin/pip" install -q "${wheel}[device]" pytest
    touch "$X86/venv/$stamp"
  fi
  t0=$(date +%s)
  set +e
  # shellcheck disable=SC2086  # PYTEST_ARGV: words
  (cd "$HOST_W/src" && PYTHONPATH=$HOST_W XDG_CACHE_HOME=$X86/cache "${NICE[@]}" "$X86/venv/bin/python" $PYTEST_ARGV \
    > "$X86/pytest.txt" 2>&1)
  rc=$?
  set -e
  note tests-x86 "$(( $(date +%s) - t0 )) s (not emulated)" "exit $rc"
}

step_bench() {
  say "hum-search bench --json --repeats $BENCH_REPEATS, in the root and here"
  timed bench "cd $W && hum-search bench --json --repeats $BENCH_REPEATS > $W/out/bench.json 2> $W/out/bench.stderr"
  mkdir -p "$X86"
  "${NICE[@]}" "$(dirname "$X86_PYTHON")/hum-search" bench --json --repeats "$BENCH_REPEATS" > "$X86/bench.json"
}

step_compare() {
  say "comparing the answers and each stage with this machine's"
  local rc=0
  if [ ! -f "$ARM/probe.npz" ] || [ ! -f "$X86/probe.npz" ]; then
    note compare - "not run: no probe.npz from the demo step"
    say "comparison not run: the demo step left no probe.npz"
    return 0
  fi
  "$X86_PYTHON" "$REPO/benchmarks/aarch64_compare.py" compare "$X86" "$ARM" --out "$RESULTS" > /dev/null || rc=$?
  note compare - "exit $rc"
  say "comparison: $([ $rc = 0 ] && echo 'same answers' || echo 'DIFFERENT answers') ($RESULTS/comparison.md)"
}

collect() {  # the small files go to RESULTS (the stage dumps, probe.npz, stay in the root)
  mkdir -p "$RESULTS"
  local f
  for f in demo.txt demo.jsonl bench.json; do
    [ -f "$ARM/$f" ] && cp "$ARM/$f" "$RESULTS/aarch64-$f"
    [ -f "$X86/$f" ] && cp "$X86/$f" "$RESULTS/x86-$f"
  done
  [ -f "$ARM/pytest.txt" ] && cp "$ARM/pytest.txt" "$RESULTS/aarch64-pytest.txt"
  [ -f "$X86/pytest.txt" ] && cp "$X86/pytest.txt" "$RESULTS/x86-pytest.txt"
  in_root "uname -m; . /etc/os-release; echo \$PRETTY_NAME; python3 --version; $W/venv/bin/pip freeze" \
    > "$RESULTS/aarch64-environment.txt" 2>&1 || true
  { printf '# the latest run of each step on %s (%s), root %s\n' "$(uname -m)" \
      "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" "$ROOT"
    printf '# step\tended (UTC)\twall (under emulation)\tstatus\n'; cat "$LOG"; } > "$RESULTS/run.txt"
}

host_packages
register_binfmt
make_root
mount_root
install_package
mkdir -p "$ARM"
for step in demo tests bench compare; do
  if has_step "$step"; then "step_$step"; fi
done
collect
if grep -v "	exit 0$" "$LOG" | grep -q .; then
  say "done, with failures (see $RESULTS/run.txt):"; grep -v "	exit 0$" "$LOG" >&2
  exit 1
fi
say "done: $RESULTS"
