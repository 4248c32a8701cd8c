"""Does an install on another machine (aarch64 under qemu-user: benchmarks/aarch64_emulated.sh)
answer as this one does? Two steps, so that the first needs nothing but the runtime:

    python benchmarks/aarch64_compare.py dump OUT.npz [--spectrograms REF.npz]   # in each environment
    python benchmarks/aarch64_compare.py compare X86_DIR ARM_DIR --out DIR

`dump` imports only numpy and the installed `device` package (the wheel's, on the board): for
every shipped demo hum it keeps each stage's output (decoded audio, spectrogram, the melody
model's salience in int8 steps, the melody line, the shortlist, the top 10) and the versions
of what computed them; then the melody model alone on the spectrograms of REF.npz (the x86
dump, so that its inputs are identical), once with the runtime's default kernels and once
with TFLite's portable reference kernels. Each folder given to `compare` holds that dump
(`probe.npz`) and the CLI's own answers (`demo.jsonl`: `hum-search demo --json`).

`compare` passes when (1) every demo gets the same decision, the songs the CLI shows in the
same order but for near-ties, and each song's score and offset within tolerance, (2) the
reference kernels give bit-identical salience on both machines (the emulated CPU computes
as x86 does), and (3) with the reference kernels each demo's whole answer is alike on both.
The optimised int8 kernels round differently per architecture, as they differ from the
reference kernels on x86 itself, so the score tolerance is measured, not guessed: each
machine's `kernel_spread` (how far its default kernels move a song's score from the
reference kernels' answer, a song that enters or leaves the top 10 included), the two
added (or `--score-tol`, default 0.01, if larger); `--offset-tol`, default one 80 ms melody
frame. How far the rounding moves each stage, and the in-process top 10 below the five
answers shown, are reported, not judged. It writes `comparison.json` and `comparison.md`
and exits 1 when it fails.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np


def _versions() -> dict:
    from importlib import metadata
    out = {"python": platform.python_version(), "machine": platform.machine()}
    for dist in ("hum-search", "numpy", "soxr", "soundfile", "faiss-cpu", "ai-edge-litert", "tflite-runtime"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _answer(result) -> dict:
    return {"decision": result.decision, "confidence": result.confidence,
            "matches": [{"song_id": m.song_id, "score": m.score, "offset_s": m.offset_s} for m in result.matches],
            "keys": list(result.keys)}


def _kernel_check(recognizer, catalogue, spectrograms: dict[str, np.ndarray], audio: dict[str, np.ndarray],
                  scale: float, top: int) -> tuple[dict, dict]:
    """The salience of the given spectrograms (the reference machine's, so that the model's
    inputs are identical) with the runtime's default kernels and with TFLite's portable
    reference kernels (BUILTIN_REF): the latter must agree bit for bit across machines, the
    former may differ by the int8 rounding of each architecture's optimised kernels. Also
    each demo's whole answer with the reference kernels: how far one int8 rounding moves
    the scores on this machine (the comparison's tolerance). Returns (arrays, answers;
    empty without ai-edge-litert)."""
    from device import melody as mel
    from device.model import SIGNATURE
    model = recognizer.model
    out = {f"kernels/default/{name}": np.round(mel.salience(spec, model, recognizer.frontend,
                                                              catalogue.melody_config) / scale).astype(np.int16)
           for name, spec in spectrograms.items()}
    try:
        from ai_edge_litert import interpreter as lite
    except ImportError:  # tflite-runtime or TensorFlow: no reference kernels to ask for
        return out, {}
    # a probe, not the runtime: the loaded model's interpreter is swapped for one with reference kernels
    reference = lite.Interpreter(model_path=str(catalogue.model_path),
                                 experimental_op_resolver_type=lite.OpResolverType.BUILTIN_REF)
    model._interpreter, model._runner = reference, reference.get_signature_runner(SIGNATURE)
    for name, spec in spectrograms.items():
        out[f"kernels/reference/{name}"] = np.round(
            mel.salience(spec, model, recognizer.frontend, catalogue.melody_config) / scale).astype(np.int16)
    return out, {name: _answer(recognizer.identify(samples, top=top)) for name, samples in audio.items()}


def dump(out: Path, top: int, spectrograms_from: Path | None) -> None:
    from device import assets
    from device import frontend as fe
    from device import melody as mel
    from device.audio import load_audio
    from device.catalogue import Catalogue
    from device.matcher import shortlist
    from device.recognizer import Recognizer

    catalogue = Catalogue(assets.default_catalogue_dir())
    recognizer = Recognizer(catalogue)
    rate = recognizer.frontend.sample_rate_hz
    scale = float(recognizer.model._out["quantization"][0])  # one int8 step of the output
    arrays: dict[str, np.ndarray] = {}
    answers = {}
    for path in sorted(assets.demo_dir().glob("*.wav")):
        name = path.stem
        audio = load_audio(path, rate)
        spectrogram = fe.log_spectrogram(audio, recognizer.frontend)
        salience = mel.salience(spectrogram, recognizer.model, recognizer.frontend, catalogue.melody_config)
        result = recognizer.identify(audio, top=top)
        found = shortlist(result.melody, catalogue, recognizer.config.matcher)
        arrays[f"{name}/audio"] = audio
        arrays[f"{name}/spectrogram"] = spectrogram
        arrays[f"{name}/salience_steps"] = np.round(salience / scale).astype(np.int16)
        arrays[f"{name}/melody"] = result.melody
        arrays[f"{name}/shortlist_rows"] = np.array([c.row for c in found], dtype=np.int64)
        arrays[f"{name}/shortlist_votes"] = np.array([c.votes for c in found], dtype=np.float64)
        answers[name] = _answer(result)
    if spectrograms_from is not None:
        with np.load(spectrograms_from) as reference:
            spectrograms = {name: reference[f"{name}/spectrogram"] for name in answers}
    else:
        spectrograms = {name: arrays[f"{name}/spectrogram"] for name in answers}
    checked, reference_answers = _kernel_check(  # last: it swaps the kernels
        recognizer, catalogue, spectrograms, {name: arrays[f"{name}/audio"] for name in answers}, scale, top)
    arrays.update(checked)
    meta = {"versions": _versions(), "model_backend": recognizer.model.backend, "salience_step": scale,
            "answers": answers, "reference_kernel_answers": reference_answers,
            "kernel_check_input": str(spectrograms_from or "own spectrograms")}
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, meta=np.array(json.dumps(meta)), **arrays)
    print(f"wrote {out}: {len(answers)} demos, {meta['versions']['machine']}, {meta['model_backend']}")


def _read_demo(path: Path) -> dict:
    """`hum-search demo --json` lines by the demo's file name (the paths differ)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out[Path(row["file"]).name] = row
    return out


def _order_explained(a: list[dict], b: list[dict], tol: float) -> bool:
    """Whether two rankings (best first: song_id, score) differ only where scores are within
    `tol`: each pair of songs in both lists that swapped places was that close on `a`, and
    each song shown by one list only scored within `tol` of the other list's last song."""
    score_a = {m["song_id"]: m["score"] for m in a}
    rank_b = {m["song_id"]: i for i, m in enumerate(b)}
    common = [m["song_id"] for m in a if m["song_id"] in rank_b]
    for i, x in enumerate(common):
        for y in common[i + 1:]:
            if rank_b[x] > rank_b[y] and score_a[x] - score_a[y] > tol:
                return False
    for mine, other in ((a, b), (b, a)):
        ids = {m["song_id"] for m in other}
        last = other[-1]["score"] if other else 0.0
        if any(m["score"] - last > tol for m in mine if m["song_id"] not in ids):
            return False
    return True


def _compare_answers(a: dict, b: dict, score_tol: float, offset_tol: float) -> dict:
    """One demo's answers (`decision`, `matches` with song_id, score, offset_s): the same
    decision, the same songs in the same order but for near-ties (scores within
    score_tol), each song's score and offset within tolerance."""
    ids_a = [m["song_id"] for m in a["matches"]]
    ids_b = [m["song_id"] for m in b["matches"]]
    by_b = {m["song_id"]: m for m in b["matches"]}
    common = [m for m in a["matches"] if m["song_id"] in by_b]
    score_diff = max((abs(m["score"] - by_b[m["song_id"]]["score"]) for m in common), default=0.0)
    offset_diff = max((abs(m["offset_s"] - by_b[m["song_id"]]["offset_s"]) for m in common), default=0.0)
    same_prefix = next((i for i, (x, y) in enumerate(zip(ids_a, ids_b)) if x != y), min(len(ids_a), len(ids_b)))
    same_ranking = ids_a == ids_b
    ranking_ok = _order_explained(a["matches"], b["matches"], score_tol)
    ok = (a["decision"] == b["decision"] and ranking_ok and score_diff <= score_tol
          and offset_diff <= offset_tol + 1e-9)
    return {"ok": ok, "decision": [a["decision"], b["decision"]], "same_ranking": same_ranking,
            "ranking_within_ties": ranking_ok,
            "ranks_equal_to": same_prefix, "shown": [len(ids_a), len(ids_b)],
            "top1": [ids_a[:1], ids_b[:1]],
            "top1_score": [a["matches"][0]["score"] if ids_a else None, b["matches"][0]["score"] if ids_b else None],
            "max_score_diff": round(score_diff, 6), "max_offset_diff_s": round(offset_diff, 4),
            "ranking_a": ids_a, "ranking_b": ids_b,
            "only_a": [i for i in ids_a if i not in ids_b], "only_b": [i for i in ids_b if i not in ids_a]}


def kernel_spread(meta: dict) -> float | None:
    """How far one machine's default int8 kernels move a song's score from TFLite's
    reference kernels' answer, over its dump's demo answers (None: no reference answers):
    the largest change of a song in both top lists, or, for a song in one list only (its
    line moved enough to win or lose shortlist votes), at least how far it stands above
    the other list's last score."""
    reference = meta.get("reference_kernel_answers") or {}
    diffs = []
    for name, answer in meta["answers"].items():
        if name not in reference:
            continue
        lists = (answer["matches"], reference[name]["matches"])
        for mine, other in (lists, lists[::-1]):
            by_song = {m["song_id"]: m["score"] for m in other}
            last = other[-1]["score"] if other else 0.0
            diffs += [abs(m["score"] - by_song[m["song_id"]]) if m["song_id"] in by_song
                      else max(0.0, m["score"] - last) for m in mine]
    return max(diffs) if diffs else None


def _steps(pa, pb, key: str) -> dict | None:
    """Two int16 arrays of salience (in int8 steps): how many values differ, by how much."""
    if key not in pa.files or key not in pb.files or pa[key].shape != pb[key].shape:
        return None
    diff = np.abs(pa[key].astype(np.int32) - pb[key].astype(np.int32))
    return {"differing": int(np.count_nonzero(diff)), "values": int(diff.size), "max_steps": int(diff.max()),
            "histogram": np.bincount(diff.ravel()).tolist()}


def _stages(pa, pb, name: str) -> dict:
    """How far each stage's output moved between the two dumps, for one demo."""
    out = {}
    audio_a, audio_b = pa[f"{name}/audio"], pb[f"{name}/audio"]
    out["audio_samples"] = [int(audio_a.size), int(audio_b.size)]
    if audio_a.size == audio_b.size:
        out["audio_max_abs_diff"] = float(np.max(np.abs(audio_a - audio_b)))
    spec_a, spec_b = pa[f"{name}/spectrogram"], pb[f"{name}/spectrogram"]
    if spec_a.shape == spec_b.shape:
        out["spectrogram_max_abs_diff_db"] = float(np.max(np.abs(spec_a - spec_b)))
    out["salience"] = _steps(pa, pb, f"{name}/salience_steps")
    mel_a, mel_b = pa[f"{name}/melody"], pb[f"{name}/melody"]
    if mel_a.shape == mel_b.shape:
        both = (mel_a > 0) & (mel_b > 0)
        out["melody_frames"] = int(mel_a.size)
        out["melody_voicing_changed"] = int(np.count_nonzero((mel_a > 0) != (mel_b > 0)))
        out["melody_pitch_changed"] = int(np.count_nonzero(both & (mel_a != mel_b)))
        out["melody_max_diff_semitones"] = float(np.max(np.abs(mel_a - mel_b)[both], initial=0.0))
    rows_a, rows_b = pa[f"{name}/shortlist_rows"], pb[f"{name}/shortlist_rows"]
    out["shortlist_same_order"] = bool(rows_a.size == rows_b.size and np.all(rows_a == rows_b))
    out["shortlist_common"] = [len(set(rows_a.tolist()) & set(rows_b.tolist())), int(rows_a.size)]
    out["kernels_default"] = _steps(pa, pb, f"kernels/default/{name}")
    out["kernels_reference"] = _steps(pa, pb, f"kernels/reference/{name}")
    # on one machine, its default kernels against the reference ones: the size of an int8 rounding difference
    out["a_default_vs_reference"] = _steps(pa, pa, f"kernels/default/{name}") and _within(pa, name)
    out["b_default_vs_reference"] = _steps(pb, pb, f"kernels/default/{name}") and _within(pb, name)
    return out


def _within(p, name: str) -> dict | None:
    default, reference = f"kernels/default/{name}", f"kernels/reference/{name}"
    if reference not in p.files:
        return None
    diff = np.abs(p[default].astype(np.int32) - p[reference].astype(np.int32))
    return {"differing": int(np.count_nonzero(diff)), "values": int(diff.size), "max_steps": int(diff.max()),
            "histogram": np.bincount(diff.ravel()).tolist()}


def compare(dir_a: Path, dir_b: Path, out: Path, score_tol: float, offset_tol: float) -> bool:
    """Passes when `hum-search demo --json` answers alike on both (decision, ranking of the
    songs it shows but for near-ties, scores and offsets within tolerance), TFLite's
    reference kernels give bit-identical salience from identical inputs, and with those
    kernels each demo's answer is alike on both machines. The score tolerance is the
    larger of `score_tol` and the int8 rounding's reach: each machine's default kernels move
    a score at most its kernel_spread away from the reference kernels' answer, which both
    machines share, so the two machines' scores may differ by the two spreads added. The
    in-process top 10 and the stage figures are reported, not judged."""
    demo_a, demo_b = _read_demo(dir_a / "demo.jsonl"), _read_demo(dir_b / "demo.jsonl")
    pa, pb = np.load(dir_a / "probe.npz"), np.load(dir_b / "probe.npz")
    meta_a, meta_b = json.loads(str(pa["meta"])), json.loads(str(pb["meta"]))
    spreads = [kernel_spread(meta_a), kernel_spread(meta_b)]
    floor = score_tol
    if None not in spreads:
        score_tol = max(floor, spreads[0] + spreads[1])
    report = {"a": {"dir": str(dir_a), "versions": meta_a["versions"], "backend": meta_a["model_backend"]},
              "b": {"dir": str(dir_b), "versions": meta_b["versions"], "backend": meta_b["model_backend"],
                    "kernel_check_input": meta_b.get("kernel_check_input")},
              "score_tol": score_tol, "score_tol_floor": floor, "kernel_spreads": spreads,
              "offset_tol_s": offset_tol, "cli": {}, "in_process": {}, "reference_kernels": {}, "stages": {}}
    ok = set(demo_a) == set(demo_b) and len(demo_a) > 0
    for file in sorted(set(demo_a) & set(demo_b)):
        row = _compare_answers(demo_a[file], demo_b[file], score_tol, offset_tol)
        report["cli"][file] = row
        ok &= row["ok"]
    ref_a, ref_b = meta_a.get("reference_kernel_answers") or {}, meta_b.get("reference_kernel_answers") or {}
    reference_alike = None
    for name in sorted(set(ref_a) & set(ref_b)):
        row = _compare_answers(ref_a[name], ref_b[name], floor, offset_tol)
        report["reference_kernels"][name] = row
        reference_alike = row["ok"] if reference_alike is None else reference_alike and row["ok"]
    reference_identical = None
    for name in sorted(set(meta_a["answers"]) & set(meta_b["answers"])):
        report["in_process"][name] = _compare_answers(meta_a["answers"][name], meta_b["answers"][name],
                                                      score_tol, offset_tol)
        stages = _stages(pa, pb, name)
        report["stages"][name] = stages
        if stages["kernels_reference"] is not None:
            same = stages["kernels_reference"]["differing"] == 0
            reference_identical = same if reference_identical is None else reference_identical and same
    report["cli_answers_equal"] = bool(ok)
    report["reference_kernels_identical"] = reference_identical
    report["reference_answers_alike"] = reference_alike
    report["ok"] = bool(ok) and reference_identical is not False and reference_alike is not False
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "comparison.md").write_text(_markdown(report), encoding="utf-8")
    print(_markdown(report))
    return report["ok"]


def _order_text(row: dict) -> str:
    return "yes" if row["same_ranking"] else "near-ties swapped" if row["ranking_within_ties"] else "NO"


def _steps_text(st: dict | None) -> str:
    if st is None:
        return "-"
    return f"{st['differing']} of {st['values']} differ, max {st['max_steps']}"


def _markdown(r: dict) -> str:
    va, vb = r["a"]["versions"], r["b"]["versions"]
    ma, mb = va["machine"], vb["machine"]
    verdict = "PASS" if r["ok"] else "FAIL"
    lines = [f"# {mb} against {ma}: {verdict}", "",
             f"- `hum-search demo --json` answers alike (decision, the songs shown in the same order but "
             f"for near-ties, scores within {r['score_tol']:.4f}, offsets within {r['offset_tol_s']} s): "
             f"**{'yes' if r['cli_answers_equal'] else 'NO'}**",
             f"- TFLite's reference kernels give bit-identical salience from identical inputs: "
             f"**{ {True: 'yes', False: 'NO', None: 'not checked'}[r['reference_kernels_identical']] }**",
             f"- with those kernels, each demo's answer alike on both (scores within {r['score_tol_floor']}): "
             f"**{ {True: 'yes', False: 'NO', None: 'not checked'}[r['reference_answers_alike']] }**",
             f"- the score tolerance: the larger of {r['score_tol_floor']} and the int8 rounding's reach, "
             f"each machine's largest score change between its default and reference kernels, added "
             f"({' + '.join('-' if x is None else f'{x:.4f}' for x in r['kernel_spreads'])})",
             "", f"| | {ma} | {mb} |", "|---|---|---|"]
    for key in sorted(set(va) | set(vb)):
        lines.append(f"| {key} | {va.get(key, '-')} | {vb.get(key, '-')} |")
    lines.append(f"| TFLite runtime used | {r['a']['backend']} | {r['b']['backend']} |")
    lines += ["", f"## `hum-search demo --json` ({ma} / {mb})", "",
              "| demo | decision | top 1 | top-1 score | songs shown, same order | max score diff | "
              "max offset diff (s) | alike |", "|---|---|---|---|---|---|---|---|"]
    for file, row in r["cli"].items():
        d, t, s = row["decision"], row["top1"], row["top1_score"]
        lines.append(f"| {file} | {d[0]} / {d[1]} | {'/'.join(t[0]) or '-'}{'' if t[0] == t[1] else ' / ' + '/'.join(t[1])} | "
                     f"{s[0]} / {s[1]} | {row['shown'][0]}, {_order_text(row)} | "
                     f"{row['max_score_diff']:.4f} | {row['max_offset_diff_s']} | {'yes' if row['ok'] else 'NO'} |")
    lines += ["", "## In process, each stage (reported, not judged)", "",
              "Top 10 (unrounded scores; the CLI shows 5), the melody model's salience in int8 steps, "
              "the melody line (MIDI per 80 ms frame), the shortlist of 30:", "",
              "| demo | top 10: ranks equal to | songs in one top 10 only | max score diff (same song) | "
              "spectrogram max diff (dB) | salience | melody: voicing changed, pitch changed, max diff (semitones) | "
              "shortlist |", "|---|---|---|---|---|---|---|---|"]
    for name, st in r["stages"].items():
        row = r["in_process"][name]
        only = ", ".join([f"{ma}: {i}" for i in row["only_a"]] + [f"{mb}: {i}" for i in row["only_b"]]) or "-"
        lines.append(f"| {name} | {row['ranks_equal_to']} of {row['shown'][0]} | {only} | "
                     f"{row['max_score_diff']:.4f} | {st.get('spectrogram_max_abs_diff_db', 'shapes differ'):.2g} | "
                     f"{_steps_text(st['salience'])} | {st.get('melody_voicing_changed', '-')}, "
                     f"{st.get('melody_pitch_changed', '-')} of {st.get('melody_frames', '-')}, "
                     f"{st.get('melody_max_diff_semitones', 0.0):.2f} | "
                     f"{'same order' if st['shortlist_same_order'] else 'order differs'}, "
                     f"{st['shortlist_common'][0]} of {st['shortlist_common'][1]} songs in both |")
    lines += ["", f"## The melody model alone, from identical inputs ({r['b'].get('kernel_check_input')})", "",
              f"| demo | {ma} against {mb}: default kernels (what the runtime uses) | {ma} against {mb}: "
              f"TFLite reference kernels | on {ma}: default against reference | on {mb}: default against reference |",
              "|---|---|---|---|---|"]
    for name, st in r["stages"].items():
        lines.append(f"| {name} | {_steps_text(st['kernels_default'])} | {_steps_text(st['kernels_reference'])} | "
                     f"{_steps_text(st['a_default_vs_reference'])} | {_steps_text(st['b_default_vs_reference'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="each stage's output for the shipped demo hums (runtime only)")
    d.add_argument("out", type=Path)
    d.add_argument("--top", type=int, default=10)
    d.add_argument("--spectrograms", type=Path, default=None,
                   help="another dump whose spectrograms feed the kernel check (the reference machine's)")
    c = sub.add_parser("compare", help="two dumps and demo answers: same ranking, scores within tolerance")
    c.add_argument("a", type=Path, help="folder with demo.jsonl and probe.npz (the reference: x86)")
    c.add_argument("b", type=Path, help="the same from the other machine")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--score-tol", type=float, default=0.01,
                   help="the least score tolerance; the two machines' kernel spreads added, if larger, apply")
    c.add_argument("--offset-tol", type=float, default=0.08)
    args = p.parse_args(argv)
    if args.command == "dump":
        dump(args.out, args.top, args.spectrograms)
        return 0
    return 0 if compare(args.a, args.b, args.out, args.score_tol, args.offset_tol) else 1


if __name__ == "__main__":
    sys.exit(main())
