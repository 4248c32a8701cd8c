"""Chooses the matcher's decision rule on queries that are neither test songs nor mir1k.

    python -m benchmarks.calibrate --shared-data ../shared/data --out benchmarks/results
    python -m benchmarks.calibrate --rows benchmarks/results/calibration.csv --out ... --max-false-accepts 0.005
    python -m benchmarks.calibrate --rows RUN1/calibration.csv --rows RUN2/calibration.csv --out ... --write

In-catalogue queries: hums of catalogue songs that were used in training (the held-out
test songs stay untouched). Out-of-catalogue queries: hums of Nottingham tunes (never in
the catalogue), noise, and speech (espeak-ng readings, other seeds than
benchmarks.false_accepts'; skipped with a note when espeak-ng is missing). Each query's
row holds its best and runner-up scores and the decision's features (device.decision).

Two rules are chosen, each to match the most in-catalogue queries right (minus wrong)
while accepting at most --max-false-accepts of the out-of-catalogue queries, overall and
from every source alone (so that a source with few queries cannot hide behind the
others): thresholds on (min_score, min_margin), from a grid; and the evidence, a logistic
regression of "the best song is the right one" on the features, cut where the budget
allows. --rule says which one is written (default: the evidence, when every row has the
features). Given several runs (--rows of other --seed values), the summary also says how
each rule, fitted and cut on the other runs, does on each run in turn ("held_out"): at 1%
of a few hundred queries a false accept or two decides, and out of sample a rule accepts
more than in it (the thresholds chosen at 1% on two seeds accepted 0.58% on average and
1.11% at worst on two others).

Speech gets as many queries as the hums by default (--speech): 50 readings once let
through thresholds that accepted 4 of the scorecard's 100. --rows chooses again from an
earlier run's calibration.csv (the same model's queries), e.g. for another
--max-false-accepts, in seconds instead of twenty minutes; given several times, it chooses
from the runs together.

A catalogue that holds tunes of benchmarks.distractors' pool (a large evaluation catalogue)
may hold some of the Nottingham tunes too: the folk collections share reels and jigs. Such a
hum answered with its own tune is no false accept, so the outsiders whose tune the catalogue
holds are left out (outsiders_held; listed in the summary), which needs --shared-data (and
--pool-cache, to skip ten minutes of parsing) even with --rows.

Among more songs a wrong one fits an outsider's hum better, so a rule cut on the default
catalogue accepts more outsiders in a larger one (3% at 10,000 songs for one cut at 0.5%
among 1,417). Given rows identified against catalogues of several sizes (the decision's
log_songs feature tells them apart), the evidence is cut at each size on its own rows and
the cut grows along the line through them in log songs (choose_evidence); give the
largest catalogue as --index, so that the outsiders whose tune it holds are left out at
every size, and the default one as --catalogue-dir to --write it there too:

    python -m benchmarks.calibrate --shared-data ../shared/data --pool-cache data/distractors/pool.pkl \
        --index data/eval/catalogues/<model>-10000 --rows SMALL1.csv ... --rows LARGE1.csv ... \
        --out ... --write --model-dir assets/model --catalogue-dir assets/catalogue

With --write, the chosen rule becomes the model's: it is stored in the "decision" section
of the model section of the catalogue's manifest, and of each --model-dir manifest
(`--write --model-dir assets/model`), where the runtime reads it (device.matcher.MatcherConfig.for_model).
The rule belongs to the model: a catalogue built later from that model directory inherits
it.
"""
from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from scipy import optimize

from benchmarks import distractors, false_accepts
from converter.package import catalogue_songs
from device import assets
from device import manifest as mf
from device.catalogue import Catalogue
from device.decision import FEATURES, Evidence
from device.matcher import MatcherConfig
from device.recognizer import Recognizer, RecognizerConfig
from training import corpora
from training.config import DataConfig
from training.hum import hum_excerpt
from training.melody import Song
from training.pairs import is_test_song


def store_decision(manifests: list[tuple[Path, dict]], decision: dict) -> None:
    """Stores `decision` as the "decision" section of each (directory, parsed manifest)'s
    model section and rewrites that manifest."""
    for directory, manifest in manifests:
        manifest["model"]["decision"] = decision
        mf.write(directory, manifest)


def labels(rows: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(in the catalogue bool, best song right bool, source str), each (len(rows),)."""
    return (np.array([r["kind"] == "in" for r in rows]), np.array([r["correct_top1"] for r in rows], bool),
            np.array([r["source"] for r in rows]))


def outcome(accept: np.ndarray, rows_labels: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict:
    """What accepting the rows where `accept` (bool (n,)) is true gives, for rows of those
    `labels`: the shares of in-catalogue queries matched right and wrong, the precision of
    the matches, and the share of out-of-catalogue queries accepted, all together and by
    source."""
    is_in, correct, source = rows_labels
    return {"correct_matches": float(np.mean(accept[is_in] & correct[is_in])),
            "wrong_matches": float(np.mean(accept[is_in] & ~correct[is_in])),
            "false_accepts": float(np.mean(accept[~is_in])),
            "false_accepts_by_source": {s: float(np.mean(accept[~is_in & (source == s)]))
                                        for s in sorted(set(source[~is_in]))},
            "precision": float(np.sum(accept[is_in] & correct[is_in]) / max(np.sum(accept[is_in]), 1))}


def threshold_grid(rows: list[dict]) -> list[dict]:
    """For each (min_score, min_margin) of a grid, what the rows' queries would get.

    rows: dicts with "kind" ("in" or "out" of the catalogue), "source" ("hum", "noise",
    "speech"), "correct_top1", "best" and "runner_up" (scores). Each grid point holds its
    thresholds, its outcome() and "strictness" (the thresholds: see choose).
    """
    best = np.array([r["best"] for r in rows])
    margin = best - np.array([r["runner_up"] for r in rows])  # as device.decision measures it
    known = labels(rows)
    grid = []
    for min_score in np.arange(0.3, 1.0, 0.01):
        for min_margin in np.arange(0.0, 0.3, 0.005):
            rule = {"min_score": round(float(min_score), 3), "min_margin": round(float(min_margin), 3)}
            grid.append(rule | outcome((best >= min_score) & (margin >= min_margin), known)
                        | {"strictness": (rule["min_score"], rule["min_margin"])})
    return grid


def feature_matrix(rows: list[dict]) -> np.ndarray:
    """float64 (len(rows), len(FEATURES)): the decision's features of each row."""
    return np.array([[r[f"feature_{f}"] for f in FEATURES] for r in rows], dtype=np.float64)


def fit_evidence(rows: list[dict], l2: float = 1.0) -> Evidence:
    """Logistic regression of "this query's best song is the right one" (in-catalogue and
    correct) on the features of the rows that have candidates, with an L2 penalty `l2` on
    the standardised weights; the bias is the regression's own (a probability of 0.5)."""
    rows = [r for r in rows if r["feature_candidates"] > 0]
    x = feature_matrix(rows)
    y = np.array([r["kind"] == "in" and r["correct_top1"] for r in rows], dtype=np.float64)
    mean, std = x.mean(axis=0), np.where(x.std(axis=0) > 1e-6, x.std(axis=0), 1.0)  # constant: weight 0
    z = np.column_stack([(x - mean) / std, np.ones(len(rows))])

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        logits = z @ w
        p = 1.0 / (1.0 + np.exp(-logits))
        value = np.sum(np.logaddexp(0.0, logits) - y * logits) + 0.5 * l2 * np.sum(w[:-1] ** 2)
        return value, z.T @ (p - y) + l2 * np.append(w[:-1], 0.0)

    w = optimize.minimize(loss, np.zeros(z.shape[1]), jac=True, method="L-BFGS-B").x
    weights = w[:-1] / std
    return Evidence(tuple(float(v) for v in weights), float(w[-1] - np.dot(weights, mean)))


def evidence_values(rows: list[dict], evidence: Evidence) -> np.ndarray:
    """float64 (len(rows),): each row's evidence as Evidence.of reads it, -inf for a row
    without candidates (which device.decision never matches)."""
    x = feature_matrix(rows)
    return np.where(x[:, FEATURES.index("candidates")] > 0, evidence.of(x), -np.inf)


def evidence_grid(rows: list[dict], evidence: Evidence) -> list[dict]:
    """For each cut of `evidence` between the rows' values (accept a row with candidates
    when its evidence exceeds the cut), the outcome() and the Evidence with the cut folded
    into its bias; strictness: the cut."""
    values = evidence_values(rows, evidence)
    has = np.isfinite(values)
    levels = np.unique(values[has])
    cuts = np.concatenate([[levels[0] - 1.0], (levels[:-1] + levels[1:]) / 2, [levels[-1] + 1.0]])
    known = labels(rows)
    return [{"evidence": Evidence(evidence.weights, evidence.bias - cut, evidence.min_songs).to_dict()}
            | outcome(values >= cut, known) | {"strictness": (float(cut),)} for cut in cuts]


def catalogue_sizes(rows: list[dict]) -> np.ndarray:
    """int (len(rows),): the songs of the catalogue each row was identified against (its
    log_songs feature)."""
    return np.round(np.exp(feature_matrix(rows)[:, FEATURES.index("log_songs")])).astype(int)


def choose_evidence(rows: list[dict], max_false_accepts: float) -> dict:
    """The evidence rule, fitted on all rows (fit_evidence) and cut to the budget.

    Rows from one catalogue: the cut that choose() picks. Rows from catalogues of several
    sizes: a cut chosen at each size on its own rows, then the line through those cuts in
    log songs folded into the rule's log_songs weight and its bias, so that each size
    keeps to the budget on its own outsiders (a wrong song fits a hum more often among
    more songs; beyond two sizes the line is a least-squares fit, which need not pass
    through every cut: by_catalogue_size says how each fares) and larger sizes read it; smaller ones
    read the smallest size's cut (Evidence.min_songs). Returns a grid
    point as choose() does, the outcome over all rows; with several sizes, "cuts" by size.
    """
    evidence = fit_evidence(rows)
    sizes = catalogue_sizes(rows)
    if len(set(sizes)) < 2:
        return choose(evidence_grid(rows, evidence), max_false_accepts)
    levels = sorted(set(sizes))
    cuts = []
    for size in levels:
        part = [r for r, n in zip(rows, sizes) if n == size]
        chosen = Evidence.from_dict(choose(evidence_grid(part, evidence), max_false_accepts)["evidence"])
        cuts.append(evidence.bias - chosen.bias)
    slope, intercept = np.polyfit(np.log(levels), cuts, 1)
    weights = list(evidence.weights)
    weights[FEATURES.index("log_songs")] -= slope
    rule = Evidence(tuple(weights), evidence.bias - intercept, min_songs=int(levels[0]))
    return ({"evidence": rule.to_dict()} | outcome(evidence_values(rows, rule) >= 0, labels(rows))
            | {"cuts": {str(n): round(float(c), 4) for n, c in zip(levels, cuts)}})


def by_catalogue_size(rule: dict, rows: list[dict]) -> dict:
    """outcome() of a chosen rule on the rows of each catalogue size, by its songs."""
    sizes = catalogue_sizes(rows)
    accept = accepted(rule, rows)
    return {str(n): outcome(accept[sizes == n], labels([r for r, m in zip(rows, sizes) if m == n]))
            for n in sorted(set(sizes))}


def choose(grid: list[dict], max_false_accepts: float) -> dict:
    """The grid point with the most right minus wrong matches among those accepting at most
    max_false_accepts of the out-of-catalogue queries, both all together and from each
    source alone; among equals, the fewest false accepts, then the strictest rule (highest
    "strictness": for thresholds min_score, then min_margin): it costs none of the
    measured matches and leaves the most room for out-of-catalogue input the calibration
    did not see."""
    allowed = [g for g in grid if g["false_accepts"] <= max_false_accepts
               and max(g["false_accepts_by_source"].values(), default=0.0) <= max_false_accepts]
    return max(allowed, key=lambda g: (g["correct_matches"] - g["wrong_matches"], -g["false_accepts"],
                                       g["strictness"]))


def accepted(rule: dict, rows: list[dict]) -> np.ndarray:
    """bool (len(rows),): which rows a chosen rule (a grid point of threshold_grid or
    evidence_grid) matches, as device.decision decides."""
    if "evidence" in rule:
        return evidence_values(rows, Evidence.from_dict(rule["evidence"])) >= 0
    best = np.array([r["best"] for r in rows])
    return (best >= rule["min_score"]) & (best - np.array([r["runner_up"] for r in rows]) >= rule["min_margin"])


def held_out(rows: list[dict], rule: str, max_false_accepts: float) -> list[dict]:
    """Each run (rows' "run") in turn: the rule ("thresholds" or "evidence") fitted and
    chosen on the other runs' rows, and its outcome() on that run's: how the calibration
    holds on queries it never saw. A run whose catalogue sizes no other run covers is
    skipped ({"run", "skipped"}): without them the size term could not be fitted."""
    report = []
    has_sizes = all("feature_log_songs" in r for r in rows)
    for run in sorted({r["run"] for r in rows}):
        train = [r for r in rows if r["run"] != run]
        test = [r for r in rows if r["run"] == run]
        if has_sizes and set(catalogue_sizes(test)) - set(catalogue_sizes(train)):
            report.append({"run": run, "skipped": "no other run holds its catalogue size"})
            continue
        chosen = (choose(threshold_grid(train), max_false_accepts) if rule == "thresholds"
                  else choose_evidence(train, max_false_accepts))
        report.append({"run": run} | outcome(accepted(chosen, test), labels(test)))
    return report


def outsiders_held(catalogue: Catalogue, songs: list[Song], outside: list[Song], shared_data: Path,
                   pool_cache: Path | None) -> set[str]:
    """Ids of the out-of-catalogue tunes (`outside`: the Nottingham collection) that the
    catalogue holds after all, by benchmarks.distractors.same_tunes against its songs among
    `songs` (the default catalogue's) and its distractors: a large catalogue's distractors
    come from collections that share reels and jigs with Nottingham's, and a hum answered
    with its own tune is no false accept. The pool (to know the distractors' melodies) is
    loaded only when the catalogue holds pool tunes."""
    ids = {song.song_id for song in catalogue.songs}
    known = [s for s in songs if s.song_id in ids]
    if any(distractors.is_pool_id(i) for i in ids):
        pool = distractors.load_pool(shared_data, pool_cache)
        known += [s for s in pool.distractors + pool.reserved if s.song_id in ids]
    return distractors.same_tunes(known, outside)


def measure(recognizer: Recognizer, songs: list[Song], outside: list[Song], n_hums: int, n_noise: int,
            n_speech: int, seed: int) -> list[dict]:
    """Identifies the calibration queries; one row per query (kind, source, query,
    correct_top1, best, runner_up: see threshold_grid; feature_NAME for each of the
    decision's FEATURES).

    Args:
        songs: the default catalogue's songs (converter.package.catalogue_songs); hums of
            those not held out for testing are the in-catalogue queries.
        outside: the tunes hummed as out-of-catalogue queries (the Nottingham collection).
    """
    rng = np.random.default_rng(seed)
    rate = recognizer.frontend.sample_rate_hz
    data = DataConfig.default()
    inside = [s for s in songs if not is_test_song(s, data)]
    rows = []

    def add(kind: str, source: str, name: str, audio: np.ndarray, song_id: str | None = None) -> None:
        result = recognizer.identify(audio, top=2)
        scores = [m.score for m in result.matches] + [0.0, 0.0]
        correct = bool(result.matches) and result.matches[0].song_id == song_id
        rows.append({"kind": kind, "source": source, "query": name, "correct_top1": correct,
                     "best": scores[0], "runner_up": scores[1]}
                    | {f"feature_{f}": round(float(v), 6) for f, v in zip(FEATURES, result.features)})

    for kind, pool in (("in", inside), ("out", outside)):
        for index in rng.permutation(len(pool))[:n_hums]:
            song = pool[index]
            add(kind, "hum", song.song_id, hum_excerpt(song.melody, rng, rate)[0].audio, song.song_id)
    for i in range(n_noise):
        add("out", "noise", f"noise-{i}",
            rng.standard_normal(int(rate * rng.uniform(5, 15))).astype(np.float32) * 0.1)
    try:
        speech = false_accepts.speech_queries(n_speech, seed, rate)
    except false_accepts.SpeechUnavailable as exc:
        speech = []
        print(f"calibrate: speech skipped: {exc}", file=sys.stderr)
    for query in speech:
        add("out", "speech", f"speech {query.name}", query.audio)
    return rows


def read_rows(path: Path) -> list[dict]:
    """The rows of an earlier run's calibration.csv, typed as measure() returns them."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"kind", "source", "query", "correct_top1", "best", "runner_up"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"no {', '.join(sorted(missing))} column")
        features = [f"feature_{f}" for f in FEATURES if f"feature_{f}" in (reader.fieldnames or ())]
        rows = [dict(r, correct_top1=r["correct_top1"] == "True", best=float(r["best"]),
                     runner_up=float(r["runner_up"])) | {f: float(r[f]) for f in features} for r in reader]
    if not any(r["kind"] == "in" for r in rows) or not any(r["kind"] == "out" for r in rows):
        raise ValueError("it needs queries both in and out of the catalogue")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path,
                        help="the ../shared/data folder: the queries; with --rows, only to know which "
                             "outsiders' tunes the catalogue holds")
    parser.add_argument("--pool-cache", type=Path, help="benchmarks.distractors' pool pickle (a catalogue "
                        "with distractors: which of their tunes the outsiders share)")
    parser.add_argument("--index", type=Path, default=assets.default_catalogue_dir())
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=150, help="hums in and out of the catalogue, each")
    parser.add_argument("--speech", type=int, help="speech queries (default: --n)")
    parser.add_argument("--noise", type=int, help="noise queries (default: --n / 5)")
    parser.add_argument("--max-false-accepts", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=77)
    parser.add_argument("--rows", type=Path, action="append",
                        help="choose from this earlier calibration.csv (of the same catalogue's model) "
                             "instead of identifying the queries again; repeatable: the runs together")
    parser.add_argument("--rule", choices=("evidence", "thresholds"),
                        help="the decision rule to choose (default: evidence when every row has the "
                             "decision's features, else thresholds)")
    parser.add_argument("--write", action="store_true",
                        help="store the chosen rule in the catalogue's manifest")
    parser.add_argument("--model-dir", type=Path, action="append", default=[],
                        help="with --write, also store them in this model directory's manifest "
                             "(repeatable; it must hold the same model)")
    parser.add_argument("--catalogue-dir", type=Path, action="append", default=[],
                        help="with --write, also store them in this catalogue's manifest (repeatable; "
                             "it must hold the same model), e.g. the default catalogue when --index "
                             "is a larger one")
    args = parser.parse_args(argv)
    if args.shared_data is None and args.rows is None:
        parser.error("give --shared-data (identify the queries) or --rows (reuse them)")
    catalogue = Catalogue(args.index)
    if args.shared_data is None and any(distractors.is_pool_id(song.song_id) for song in catalogue.songs):
        parser.error(f"{args.index} holds distractor tunes: give --shared-data (and --pool-cache) to leave "
                     "out the outsiders whose tune it holds")
    model_manifests = ([(d, mf.read(d, mf.MODEL_FORMAT)) for d in args.model_dir]
                       + [(d, mf.read(d, mf.CATALOGUE_FORMAT)) for d in args.catalogue_dir])
    for directory, manifest in model_manifests:
        if manifest["model"].get("sha256") != catalogue.manifest["model"]["sha256"]:
            parser.error(f"{directory} holds another model than the catalogue {args.index}")
    if args.shared_data is not None:  # minutes of parsing each: read once
        songs = catalogue_songs(args.shared_data)
        outside = corpora.load_nottingham(args.shared_data / "nottingham")
    if args.rows is not None:
        if len(set(args.rows)) < len(args.rows):
            parser.error("--rows: a run given twice would count its queries twice")
        rows = []
        for run, path in enumerate(args.rows):
            try:
                rows += [r | {"run": run} for r in read_rows(path)]
            except (OSError, ValueError) as exc:
                parser.error(f"--rows {path}: unreadable ({exc})")
    else:
        # no decision thresholds here: record raw best and runner-up scores
        recognizer = Recognizer(catalogue, RecognizerConfig(matcher=MatcherConfig(min_score=0.0, min_margin=0.0)))
        n_noise = args.n // 5 if args.noise is None else args.noise
        n_speech = args.n if args.speech is None else args.speech
        rows = [r | {"run": 0} for r in measure(recognizer, songs, outside, args.n, n_noise, n_speech,
                                                 args.seed)]
    has_features = all(f"feature_{f}" in r for r in rows for f in FEATURES)
    rule = args.rule or ("evidence" if has_features else "thresholds")
    if rule == "evidence" and not has_features:
        parser.error("--rule evidence: some rows lack the decision's features (rows of an older calibrate)")
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "calibration.csv", "w", newline="") as handle:
        columns = list(dict.fromkeys(k for r in rows for k in r if k != "run"))
        writer = csv.DictWriter(handle, fieldnames=columns, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    held = (outsiders_held(catalogue, songs, outside, args.shared_data, args.pool_cache)
            if args.shared_data is not None else set())
    same_tune = [r["query"] for r in rows if r["kind"] == "out" and r["source"] == "hum" and r["query"] in held]
    left_out = set(same_tune)  # Nottingham ids: no other row has one
    rows = [r for r in rows if r["query"] not in left_out]
    choices = {"thresholds": choose(threshold_grid(rows), args.max_false_accepts)}
    if has_features:
        choices["evidence"] = choose_evidence(rows, args.max_false_accepts)
    choice = choices[rule]
    inside_rows = [r for r in rows if r["kind"] == "in"]
    by_source = collections.Counter(r["source"] for r in rows if r["kind"] == "out")
    summary = {"in_catalogue_queries": len(inside_rows), "out_of_catalogue_queries": sum(by_source.values()),
               "out_of_catalogue_by_source": dict(sorted(by_source.items())),
               "left_out_tune_in_catalogue": sorted(same_tune),
               "top1_in_catalogue": float(np.mean([r["correct_top1"] for r in inside_rows])),
               "rule": rule, "chosen": choice, "by_rule": choices,
               "chosen_by_catalogue_songs": by_catalogue_size(choice, rows) if has_features else None,
               "in_use": dataclasses.asdict(catalogue.matcher)}
    if len(args.rows or ()) > 1:
        summary["held_out"] = {name: held_out(rows, name, args.max_false_accepts) for name in choices}
    (args.out / "calibration_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if args.write:
        store_decision([(args.index, catalogue.manifest)] + model_manifests, {
            key: choice[key] for key in (("evidence",) if rule == "evidence" else ("min_score", "min_margin"))} | {
            "calibration": {k: summary[k] for k in ("in_catalogue_queries", "out_of_catalogue_queries",
                                                    "out_of_catalogue_by_source")}
            | {"false_accepts": choice["false_accepts"], "max_false_accepts": args.max_false_accepts}
            | ({"rows": [str(p) for p in args.rows]}
               if args.rows else {"seed": args.seed})})
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
