"""The whole evaluation in one run: the model at 1,000 and 10,000 songs, its false
accepts, and the classic baseline on the same queries, against the targets.

    python -m benchmarks.scorecard --shared-data ../shared/data --distractors data/distractors \
        --catalogues data/eval/catalogues --out benchmarks/results/scorecard \
        [--index assets/catalogue] [--sizes 1000,10000] [--pool-cache data/distractors/pool.pkl]

For every size, the catalogue is made from --index (its model is the one measured) by
`benchmarks.distractors.build_catalogue` (a subset that keeps every held-out song, or the
index extended with rendered distractors) and kept in --catalogues under the model's
checksum and the size, so a second run reuses it. Against it:
- the model: `benchmarks.evaluate`'s queries, (a) synthetic hums of held-out songs, clean
  and through a microphone, and (b) mir1k real voices (the mixed clips added to the
  catalogue), through the shipped recognizer with its default threshold;
- false accepts: `benchmarks.false_accepts`' noise, speech and out-of-catalogue hums;
- the classic baseline (`benchmarks.classic`, pYIN + key-normalised subsequence DTW) on
  the same (a) and (b) queries, against the source melodies of that catalogue's songs
  (distractors: their tune once, not the loop that was rendered) and the mir1k labels.
Writes scorecard.csv (one row per query: method, catalogue size, set, ...),
false_accepts.csv, scorecard_summary.json (per size and method; the model cost; each
target, measured, and whether it is met) and scorecard.png; prints the summary.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from benchmarks import classic, false_accepts
from benchmarks.distractors import build_catalogue, load_pool
from benchmarks.evaluate import FIELDS, mir1k_queries, summarise, synthetic_queries
from converter.package import catalogue_songs
from device import assets
from device import manifest as mf
from device import indexing
from device.catalogue import Catalogue
from device.recognizer import Recognizer

SETS = ("synthetic", "synthetic-mic", "mir1k")
QUERY_FIELDS = ("method", "catalogue_songs") + FIELDS
FA_FIELDS = ("catalogue_songs",) + false_accepts.FIELDS
# (name, method, set or None, statistic, at most or at least, target); at the largest size
TARGETS = (
    ("real voices (b) top-1", "model", "mir1k", "top1", ">=", 0.90),
    ("real voices (b) top-10", "model", "mir1k", "top10", ">=", 0.97),
    ("synthetic held-out (a) top-1", "model", "synthetic", "top1", ">=", 0.95),
    ("false accepts", "model", None, "false_accepts", "<=", 0.01),
)
MODEL_TARGET_BYTES = 1_000_000


def sized_catalogue(index: Path, size: int, catalogues: Path, distractors: Path | None) -> Catalogue:
    """The evaluation catalogue of `size` songs made from `index`, built once and kept
    (re-embedded from its stored melodies when `index` has another shortlist embedder); it
    decides with the thresholds calibrated for the model now (MatcherConfig.for_model)."""
    base = Catalogue(index)
    folder = catalogues / f"{base.manifest['model']['sha256'][:12]}-{size}"
    log = (lambda line: print(line, file=sys.stderr, flush=True))
    if not (folder / "manifest.json").exists():
        print(f"scorecard: building the {size}-song catalogue in {folder}", file=sys.stderr, flush=True)
        build_catalogue(index, folder, size, distractors, log=log)
    kept = mf.parse(folder / mf.MANIFEST)
    if (kept.get("format") != mf.CATALOGUE_FORMAT or kept.get("embedder") != base.manifest["embedder"]
            or kept.get("index", {}).get("shortlist") != base.manifest["index"]["shortlist"]):
        print(f"scorecard: re-embedding {folder} with the embedder and shortlist of {index}", file=sys.stderr, flush=True)
        indexing.reembed(folder, folder, index, base.config, log=log)
    kept = mf.read(folder, mf.CATALOGUE_FORMAT)
    if kept["model"] != base.manifest["model"]:  # same model, calibrated since it was kept
        mf.write(folder, kept | {"model": base.manifest["model"]})
    return Catalogue(folder)


def model_cost(catalogue: Catalogue) -> dict:
    """Multiply-accumulates of the melody model per window and per second of audio: it
    hears queries and recordings alike, one window every tiling hop."""
    macs = int(catalogue.manifest["model"]["macs_per_window"])
    frame_s = catalogue.frontend.hop_length_samples / catalogue.frontend.sample_rate_hz
    hop_s = catalogue.melody_config.tile_hop_frames * frame_s
    return {"macs_per_window": macs, "window_s": round(catalogue.frontend.window_frames * frame_s, 2),
            "hop_s": round(hop_s, 2), "macs_per_audio_s": round(macs / hop_s)}


def model_rows(shared_data: Path, catalogue: Catalogue, n_synthetic: int, seed: int) -> list[dict]:
    rows = synthetic_queries(shared_data, Recognizer(catalogue), n_synthetic, seed)
    with tempfile.TemporaryDirectory() as tmp:
        rows += mir1k_queries(shared_data, catalogue, Path(tmp), seed)[0]
    return [dict(r, method="model", catalogue_songs=len(catalogue.songs)) for r in rows]


def classic_rows(shared_data: Path, catalogue: Catalogue, melodies: dict, n_synthetic: int,
                 seed: int) -> list[dict]:
    """The baseline's rows against this catalogue's songs' melodies (+ the mir1k labels)."""
    missing = [s.song_id for s in catalogue.songs if s.song_id not in melodies]
    if missing:
        raise SystemExit(f"scorecard: no source melody for {len(missing)} catalogue songs (e.g. {missing[0]})")
    songs = [melodies[s.song_id] for s in catalogue.songs]
    matcher = classic.ClassicMatcher(classic.references(songs, shared_data / "mir1k-dev" / "pitch"))
    rate = catalogue.frontend.sample_rate_hz
    classic.warm_up(matcher, rate)
    rows = classic.query_rows(shared_data, matcher, n_synthetic, seed, rate)
    return [dict(r, method="classic", catalogue_songs=len(catalogue.songs)) for r in rows]


def summary_of(rows: list[dict], fa_rows: list[dict]) -> dict:
    """Per catalogue size and method: top-1 / top-10 / MRR / time per set; false accepts."""
    out = {}
    for size in sorted({r["catalogue_songs"] for r in rows}):
        entry = {}
        for method in ("model", "classic"):
            mine = [r for r in rows if r["catalogue_songs"] == size and r["method"] == method]
            if not mine:
                continue
            entry[method] = {s: summarise([r for r in mine if r["set"] == s])
                             for s in SETS if any(r["set"] == s for r in mine)}
        judged = [r for r in fa_rows if r["catalogue_songs"] == size]
        if judged:
            entry["model"]["false_accepts"] = false_accepts.summarise(judged)
        out[str(size)] = entry
    return out


def targets(summary: dict, model_bytes: int) -> list[dict]:
    largest = summary[max(summary, key=int)]
    checks = []
    for name, method, set_name, statistic, sense, goal in TARGETS:
        figures = largest.get(method, {})
        if set_name is None:
            measured = figures.get("false_accepts", {}).get("overall", {}).get("rate")
        else:
            measured = figures.get(set_name, {}).get(statistic)
        met = None if measured is None else (measured >= goal if sense == ">=" else measured <= goal)
        checks.append({"target": f"{name} {sense} {goal}", "catalogue_songs": int(max(summary, key=int)),
                       "measured": measured, "met": met})
    checks.append({"target": f"model file <= {MODEL_TARGET_BYTES} bytes", "measured": model_bytes,
                   "met": model_bytes <= MODEL_TARGET_BYTES})
    return checks


def plot(summary: dict, path: Path) -> None:
    """One panel per catalogue size: top-1 (filled) and top-10 (outline) per query set,
    the model beside the classic baseline; the false-accept rate in the title."""
    sizes = sorted(summary, key=int)
    figure, panels = plt.subplots(1, len(sizes), figsize=(6 * len(sizes), 4.5), sharey=True, squeeze=False)
    for panel, size in zip(panels[0], sizes):
        entry = summary[size]
        for k, (method, colour) in enumerate((("model", "tab:blue"), ("classic", "tab:grey"))):
            figures = entry.get(method, {})
            x = np.arange(len(SETS)) + (k - 0.5) * 0.38
            panel.bar(x, [figures.get(s, {}).get("top10", 0) for s in SETS], 0.38, fill=False, edgecolor=colour)
            panel.bar(x, [figures.get(s, {}).get("top1", 0) for s in SETS], 0.38, color=colour, label=method)
        rate = entry.get("model", {}).get("false_accepts", {}).get("overall", {}).get("rate")
        title = f"{int(size):,} songs" + (f" - false accepts {rate:.1%}" if rate is not None else "")
        panel.set_title(title)
        panel.set_xticks(range(len(SETS)), SETS)
        panel.set_ylim(0, 1)
        panel.grid(axis="y", alpha=0.3)
    panels[0][0].set_ylabel("top-1 (filled), top-10 (outline)")
    panels[0][0].legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_csv(path: Path, fields: tuple[str, ...], rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore", restval="")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, required=True)
    parser.add_argument("--index", type=Path, default=assets.default_catalogue_dir(),
                        help="the catalogue the sizes are made from; its model is measured")
    parser.add_argument("--distractors", type=Path, help="rendered distractors (sizes above the index's)")
    parser.add_argument("--catalogues", type=Path, required=True, help="where sized catalogues are kept")
    parser.add_argument("--out", type=Path, required=True, help="folder for the CSVs, summary and plot")
    parser.add_argument("--sizes", default="1000,10000", help="catalogue sizes, comma-separated")
    parser.add_argument("--synthetic", type=int, default=100, help="synthetic queries")
    parser.add_argument("--per-kind", type=int, default=100, help="false-accept queries of each kind")
    parser.add_argument("--pool-cache", type=Path, help="benchmarks.distractors' pool pickle")
    parser.add_argument("--no-classic", action="store_true", help="leave the classic baseline out")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes: expected comma-separated integers, got {args.sizes!r}")
    args.out.mkdir(parents=True, exist_ok=True)
    pool = load_pool(args.shared_data, args.pool_cache, log=lambda line: None)
    melodies = {s.song_id: s for s in [*catalogue_songs(args.shared_data), *pool.distractors]}
    rows, fa_rows = [], []
    for size in sizes:
        catalogue = sized_catalogue(args.index, size, args.catalogues, args.distractors)
        print(f"scorecard: {size} songs, {catalogue.n_items} windows", file=sys.stderr, flush=True)
        rows += model_rows(args.shared_data, catalogue, args.synthetic, args.seed)
        queries, _ = false_accepts.build_queries(args.shared_data, catalogue, list(false_accepts.KINDS),
                                                 args.per_kind, args.seed, args.pool_cache)
        recognizer = Recognizer(catalogue)
        fa_rows += [dict(false_accepts.judge(recognizer, q), catalogue_songs=size) for q in queries]
        if not args.no_classic:
            rows += classic_rows(args.shared_data, catalogue, melodies, args.synthetic, args.seed)
    write_csv(args.out / "scorecard.csv", QUERY_FIELDS, rows)
    write_csv(args.out / "false_accepts.csv", FA_FIELDS, fa_rows)
    base = Catalogue(args.index)
    model_bytes = base.model_path.stat().st_size
    summary = {"sizes": summary_of(rows, fa_rows), "model_bytes": model_bytes,
               "model_cost": model_cost(base), "model": base.manifest["model"]["sha256"][:12]}
    summary["targets"] = targets(summary["sizes"], model_bytes)
    (args.out / "scorecard_summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    plot(summary["sizes"], args.out / "scorecard.png")
    print(json.dumps({k: v for k, v in summary.items() if k != "sizes"}, indent=2))
    for size, entry in summary["sizes"].items():
        for method, figures in entry.items():
            print(size, method, {s: (f.get("top1"), f.get("top10"), f.get("mrr")) for s, f in figures.items()
                                 if s in SETS})
    return 0


if __name__ == "__main__":
    sys.exit(main())
