"""benchmarks.calibrate --write: the chosen decision rule becomes the model's, in its manifests."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile

from benchmarks import calibrate
from device import assets
from device import indexing
from device import manifest as mf
from device.catalogue import Catalogue
from device.decision import FEATURES, Evidence
from device.frontend import FrontendConfig
from device.matcher import MatcherConfig
from device.recognizer import Recognizer, RecognizerConfig

RATE = FrontendConfig().sample_rate_hz


def test_stored_thresholds_are_the_ones_the_runtime_uses(tmp_path):
    catalogue, model = tmp_path / "catalogue", tmp_path / "model"
    shutil.copytree(assets.default_catalogue_dir(), catalogue)
    shutil.copytree(assets.default_model_dir(), model)
    calibrate.store_decision([(catalogue, mf.read(catalogue, mf.CATALOGUE_FORMAT)),
                              (model, mf.read(model, mf.MODEL_FORMAT))],
                             {"min_score": 0.125, "min_margin": 0.45, "calibration": {"seed": 1}})
    matcher = Recognizer(Catalogue(catalogue)).config.matcher
    assert (matcher.min_score, matcher.min_margin) == (0.125, 0.45)
    assert mf.read(model, mf.MODEL_FORMAT)["model"]["decision"]["min_margin"] == 0.45
    explicit = Recognizer(Catalogue(catalogue), RecognizerConfig(matcher=MatcherConfig()))
    assert explicit.config.matcher == MatcherConfig()  # an explicit matcher config wins
    audio = tmp_path / "audio"  # a catalogue built later from the model directory inherits them
    audio.mkdir()
    t = np.arange(RATE * 6) / RATE
    soundfile.write(audio / "a-tone.wav", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), RATE)
    indexing.build(audio, tmp_path / "built", model)
    assert Catalogue(tmp_path / "built").matcher == matcher


def test_a_model_directory_of_another_model_is_refused_before_any_work(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(assets.default_model_dir(), model)
    data = json.loads((model / "manifest.json").read_text())
    data["model"]["sha256"] = "0" * 64
    (model / "manifest.json").write_text(json.dumps(data))
    before = (model / "manifest.json").read_text()
    with pytest.raises(SystemExit):  # --shared-data is not even looked at
        calibrate.main(["--shared-data", str(tmp_path / "absent"), "--out", str(tmp_path / "out"),
                        "--write", "--model-dir", str(model)])
    assert (model / "manifest.json").read_text() == before
    assert not (tmp_path / "out").exists()


def _rows(kind: str, source: str, best: list[float], correct: bool = False) -> list[dict]:
    return [{"kind": kind, "source": source, "correct_top1": correct, "best": b, "runner_up": 0.0}
            for b in best]


def test_no_source_of_false_accepts_may_exceed_the_limit_alone():
    # 200 hums and noise never pass 0.5; 10 speech readings score 0.6 or 0.92 with no runner-up.
    # Overall, accepting the 0.6 readings would be 3 of 210 (1.4%) and the 0.92 one 1 of 210
    # (0.5%); speech alone, 1 of 10 is 10%: only a min_score above 0.92 keeps every source at 1%.
    rows = (_rows("in", "hum", [0.95] * 50 + [0.7] * 50, correct=True)
            + _rows("out", "hum", [0.4] * 100) + _rows("out", "noise", [0.3] * 100)
            + _rows("out", "speech", [0.6, 0.6, 0.92] + [0.2] * 7))
    grid = calibrate.threshold_grid(rows)
    chosen = calibrate.choose(grid, 0.01)
    assert chosen["correct_matches"] == 0.5  # only the 0.95 hums clear a bar the speech does not
    assert chosen["false_accepts_by_source"] == {"hum": 0.0, "noise": 0.0, "speech": 0.0}
    pooled = max((g for g in grid if g["false_accepts"] <= 0.01),
                 key=lambda g: (g["correct_matches"] - g["wrong_matches"], -g["min_score"]))
    assert pooled["correct_matches"] == 1.0  # what the pooled rule alone would have let through


def test_among_equal_choices_the_strictest_thresholds_win():
    # in-catalogue hums score 0.8 with margin 0.2; outsiders 0.5 with margin 0.05: any
    # min_score in (0.5, 0.8] with margin in (0.05, 0.2] matches them all
    rows = ([{"kind": "in", "source": "hum", "correct_top1": True, "best": 0.8, "runner_up": 0.6}] * 10
            + [{"kind": "out", "source": "speech", "correct_top1": False, "best": 0.5, "runner_up": 0.45}] * 10)
    chosen = calibrate.choose(calibrate.threshold_grid(rows), 0.01)
    assert chosen["correct_matches"] == 1.0 and chosen["false_accepts"] == 0.0
    assert 0.79 <= chosen["min_score"] <= 0.8 and 0.195 <= chosen["min_margin"] <= 0.2


def test_thresholds_are_chosen_again_from_an_earlier_runs_rows(tmp_path):
    catalogue, model = tmp_path / "catalogue", tmp_path / "model"
    shutil.copytree(assets.default_catalogue_dir(), catalogue)
    shutil.copytree(assets.default_model_dir(), model)
    rows = tmp_path / "calibration.csv"
    rows.write_text("kind,source,query,correct_top1,best,runner_up\n"
                    + "in,hum,a,True,0.9,0.6\n" * 20 + "in,hum,b,False,0.7,0.65\n" * 5
                    + "out,speech,s,False,0.85,0.7\n" + "out,noise,n,False,0.4,0.38\n" * 99)
    assert calibrate.main(["--rows", str(rows), "--index", str(catalogue), "--out", str(tmp_path / "out"),
                           "--write", "--model-dir", str(model)]) == 0
    decision = mf.read(model, mf.MODEL_FORMAT)["model"]["decision"]
    assert decision["calibration"]["out_of_catalogue_by_source"] == {"noise": 99, "speech": 1}
    # the speech reading (margin 0.15) is 1 of 1: the margin must exceed it, the right hums' 0.3 clears it
    assert 0.15 < decision["min_margin"] <= 0.3
    assert Recognizer(Catalogue(catalogue)).config.matcher.min_margin == decision["min_margin"]
    summary = json.loads((tmp_path / "out" / "calibration_summary.json").read_text())
    assert summary["chosen"]["correct_matches"] == 0.8 and summary["chosen"]["wrong_matches"] == 0.0


def test_unreadable_rows_are_one_line_errors_and_nothing_is_written(tmp_path, capsys):
    catalogue = tmp_path / "catalogue"
    shutil.copytree(assets.default_catalogue_dir(), catalogue)
    before = (catalogue / "manifest.json").read_text()
    rows = tmp_path / "calibration.csv"
    rows.write_text("kind,query,best\nin,a,0.9\n")  # an older or foreign file: no source column
    with pytest.raises(SystemExit):
        calibrate.main(["--rows", str(rows), "--index", str(catalogue), "--out", str(tmp_path / "out"), "--write"])
    assert "unreadable" in capsys.readouterr().err
    assert (catalogue / "manifest.json").read_text() == before and not (tmp_path / "out").exists()


def test_several_runs_are_chosen_from_together(tmp_path, capsys):
    catalogue = tmp_path / "catalogue"
    shutil.copytree(assets.default_catalogue_dir(), catalogue)
    header = "kind,source,query,correct_top1,best,runner_up\n"
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    hums = "in,hum,a,True,0.9,0.6\n" * 10 + "in,hum,a,True,0.84,0.72\n" * 10  # margins 0.3 and 0.12
    first.write_text(header + hums + "out,noise,n,False,0.4,0.38\n" * 100)
    # a second seed finds a speech reading with margin 0.15 that the first never saw
    second.write_text(header + hums + "out,speech,s,False,0.85,0.7\n"
                      + "out,noise,m,False,0.4,0.38\n" * 99)
    alone, together = tmp_path / "alone", tmp_path / "together"
    assert calibrate.main(["--rows", str(first), "--index", str(catalogue), "--out", str(alone)]) == 0
    assert calibrate.main(["--rows", str(first), "--rows", str(second), "--index", str(catalogue),
                           "--out", str(together), "--write"]) == 0
    accepts_speech = (lambda d: d["min_score"] <= 0.85 and d["min_margin"] <= 0.15)
    assert accepts_speech(json.loads((alone / "calibration_summary.json").read_text())["chosen"])
    decision = mf.read(catalogue, mf.CATALOGUE_FORMAT)["model"]["decision"]
    assert not accepts_speech(decision) and decision["calibration"]["rows"] == [str(first), str(second)]
    assert decision["calibration"]["out_of_catalogue_queries"] == 200
    assert len((together / "calibration.csv").read_text().splitlines()) == 1 + 240
    with pytest.raises(SystemExit):
        calibrate.main(["--rows", str(first), "--rows", str(first), "--index", str(catalogue),
                        "--out", str(tmp_path / "twice")])
    assert "twice" in capsys.readouterr().err


def test_a_catalogue_with_distractor_tunes_needs_the_data_to_know_which_outsiders_it_holds(tmp_path, capsys):
    """Its out-of-catalogue hums may be tunes it holds (folk collections share them): rows
    alone cannot tell, so calibrating it without --shared-data is refused, nothing written."""
    catalogue = tmp_path / "catalogue"
    shutil.copytree(assets.default_catalogue_dir(), catalogue)
    songs = (catalogue / "songs.csv").read_text().splitlines()
    first = songs[1].split(",", 1)
    songs[1] = "oneills-0001-0050-42," + first[1]  # a song of the distractor pool
    (catalogue / "songs.csv").write_text("\n".join(songs) + "\n")
    manifest = mf.read(catalogue, mf.CATALOGUE_FORMAT)
    manifest["songs"]["sha256"] = mf.sha256_of(catalogue / "songs.csv")
    mf.write(catalogue, manifest)
    before = (catalogue / "manifest.json").read_text()
    rows = tmp_path / "calibration.csv"
    rows.write_text("kind,source,query,correct_top1,best,runner_up\nin,hum,a,True,0.9,0.6\n"
                    "out,hum,nottingham-jigs-25,False,0.85,0.5\n")
    with pytest.raises(SystemExit):
        calibrate.main(["--rows", str(rows), "--index", str(catalogue), "--out", str(tmp_path / "out"), "--write"])
    assert "distractor tunes" in capsys.readouterr().err
    assert (catalogue / "manifest.json").read_text() == before and not (tmp_path / "out").exists()


def _featured(kind: str, source: str, correct: bool, best: float, runner_up: float, gap_field: float,
              n: int, seed: int, songs: int = 1417) -> str:
    """n calibration.csv lines with the decision's features (a little noise on each), from
    a catalogue of `songs` songs."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        jitter = rng.normal(0.0, 0.005, 3)
        values = dict(zip(FEATURES, [best + jitter[0], best - runner_up + jitter[1], best - runner_up + 0.05,
                                     gap_field + jitter[2], 0.05, 1.0, 1.0, 5.0, 30.0, np.log(songs)]))
        lines.append(f"{kind},{source},{source}-{i},{correct},{values['best']:.4f},{runner_up},"
                     + ",".join(f"{values[f]:.6f}" for f in FEATURES))
    return "\n".join(lines) + "\n"


def _featured_runs(folder, lines_of_seed) -> list:
    """Two calibration.csv runs (seeds 1 and 2) in folder, each the lines lines_of_seed(seed)
    under the header of the decision's features."""
    header = "kind,source,query,correct_top1,best,runner_up," + ",".join(f"feature_{f}" for f in FEATURES) + "\n"
    runs = []
    for seed in (1, 2):
        path = folder / f"run{seed}.csv"
        path.write_text(header + lines_of_seed(seed))
        runs.append(path)
    return runs


def test_the_evidence_rule_answers_what_the_thresholds_cannot_and_holds_out_of_sample(tmp_path):
    """Right hums and outsiders with the same best score and margin, told apart only by how
    far the best song stands out from the whole field (gap_field): no thresholds can match
    a right hum without the outsiders, the evidence can; fitted on one run it holds on the
    other (held_out), and --write makes it the runtime's rule."""
    catalogue = tmp_path / "catalogue"
    shutil.copytree(assets.default_catalogue_dir(), catalogue)
    runs = _featured_runs(tmp_path, lambda seed: (
        _featured("in", "hum", True, 0.85, 0.75, 0.4, 60, seed)
        + _featured("in", "hum", False, 0.85, 0.75, 0.1, 10, seed + 10)
        + _featured("out", "speech", False, 0.85, 0.75, 0.1, 100, seed + 20)
        + _featured("out", "noise", False, 0.5, 0.45, 0.05, 100, seed + 30)))
    out = tmp_path / "out"
    assert calibrate.main(["--rows", str(runs[0]), "--rows", str(runs[1]), "--index", str(catalogue),
                           "--out", str(out), "--write"]) == 0
    summary = json.loads((out / "calibration_summary.json").read_text())
    assert summary["rule"] == "evidence"
    assert summary["by_rule"]["thresholds"]["correct_matches"] == 0.0
    assert summary["chosen"]["correct_matches"] == pytest.approx(60 / 70)
    assert summary["chosen"]["false_accepts"] == 0.0 and summary["chosen"]["wrong_matches"] == 0.0
    for run in summary["held_out"]["evidence"]:
        assert run["correct_matches"] >= 0.8 and run["false_accepts"] <= 0.01
    stored = mf.read(catalogue, mf.CATALOGUE_FORMAT)["model"]["decision"]
    assert set(stored) == {"evidence", "calibration"}
    assert Catalogue(catalogue).matcher.evidence == Evidence.from_dict(stored["evidence"])
    assert calibrate.main(["--rows", str(runs[0]), "--index", str(catalogue), "--out", str(tmp_path / "t"),
                           "--rule", "thresholds"]) == 0
    assert "min_score" in json.loads((tmp_path / "t" / "calibration_summary.json").read_text())["chosen"]


def test_rows_from_a_small_and_a_large_catalogue_give_a_rule_that_asks_more_of_the_large(tmp_path):
    """Among 100,000 songs an outsider's best song stands out as far (gap_field 0.3) as a
    right hum's does among 1,000 (0.25 there, 0.45 in the large one): one cut cannot
    serve both, a cut that grows with log songs does, and sizes between read the line."""
    catalogue = tmp_path / "catalogue"
    shutil.copytree(assets.default_catalogue_dir(), catalogue)
    runs = _featured_runs(tmp_path, lambda seed: "".join(
        _featured("in", "hum", True, 0.85, 0.75, right, 60, seed, songs)
        + _featured("out", "hum", False, 0.85, 0.75, outsider, 100, seed + 20, songs)
        + _featured("out", "noise", False, 0.5, 0.45, 0.05, 40, seed + 30, songs)
        for songs, right, outsider in ((1000, 0.25, 0.1), (100_000, 0.45, 0.3))))
    out = tmp_path / "out"
    assert calibrate.main(["--rows", str(runs[0]), "--rows", str(runs[1]), "--index", str(catalogue),
                           "--out", str(out)]) == 0
    summary = json.loads((out / "calibration_summary.json").read_text())
    by_size = summary["chosen_by_catalogue_songs"]
    assert set(by_size) == {"1000", "100000"} and set(summary["chosen"]["cuts"]) == {"1000", "100000"}
    for size in by_size.values():
        assert size["correct_matches"] == 1.0 and size["false_accepts"] == 0.0
    for run in summary["held_out"]["evidence"]:
        assert run["correct_matches"] >= 0.95 and run["false_accepts"] <= 0.01
    rule = Evidence.from_dict(summary["chosen"]["evidence"])
    assert rule.min_songs == 1000  # a smaller catalogue is read as the smallest calibrated
    weights = dict(zip(FEATURES, rule.weights))
    at = {n: -(rule.bias + weights["log_songs"] * np.log(n)) / weights["gap_field"] for n in (1000, 10_000, 100_000)}
    assert 0.1 < at[1000] < 0.25 and 0.3 < at[100_000] < 0.45  # the gap_field a hum needs, by size
    assert at[10_000] == pytest.approx((at[1000] + at[100_000]) / 2, rel=0.05)
    # at each size the folded rule accepts what that size's own cut accepts, and its
    # log_songs weight is the fitted one less the cuts' slope in log songs
    rows = [r | {"run": 0} for path in runs for r in calibrate.read_rows(path)]
    fitted = calibrate.fit_evidence(rows)
    sizes = calibrate.catalogue_sizes(rows)
    for n in (1000, 100_000):
        part = [r for r, m in zip(rows, sizes) if m == n]
        own = calibrate.choose(calibrate.evidence_grid(part, fitted), 0.01)
        np.testing.assert_array_equal(calibrate.accepted({"evidence": rule.to_dict()}, part),
                                      calibrate.accepted(own, part))
    cuts = summary["chosen"]["cuts"]
    slope = (cuts["100000"] - cuts["1000"]) / np.log(100)
    assert weights["log_songs"] == pytest.approx(fitted.weights[FEATURES.index("log_songs")] - slope, abs=1e-4)
    tiny = dict(rows[0], feature_log_songs=float(np.log(10)))  # a 10-song catalogue reads as 1,000
    assert calibrate.evidence_values([tiny], rule)[0] == pytest.approx(
        calibrate.evidence_values([dict(tiny, feature_log_songs=float(np.log(1000)))], rule)[0])
    assert calibrate.evidence_values([tiny], rule)[0] == pytest.approx(rule.of(calibrate.feature_matrix([tiny])[0]))


def test_a_run_whose_catalogue_size_no_other_run_holds_is_not_held_out_against_the_others():
    small = [{"kind": "in", "source": "hum", "correct_top1": True, "best": 0.9, "runner_up": 0.5, "run": 0}
             | {f"feature_{f}": 1.0 for f in FEATURES} | {"feature_log_songs": float(np.log(1000))}]
    large = [dict(small[0], run=1, feature_log_songs=float(np.log(10_000)))]
    out = [dict(r, kind="out", correct_top1=False, best=0.3) for r in small + large]
    report = calibrate.held_out(small + large + out, "evidence", 0.01)
    assert [r.get("skipped") for r in report] == ["no other run holds its catalogue size"] * 2
