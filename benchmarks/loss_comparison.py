"""Which losses to train with: each combination trained alike, then measured alike.

    python -m benchmarks.loss_comparison --shared-data ../shared/data --pairs data/pairs/v3 \
        --audio data/catalogue_audio --runs runs/losses --out benchmarks/results/losses \
        --epochs 4 [--also shipped=assets/model ...]

Every variant of `VARIANTS` trains the default model on the same pairs, seed and schedule
(`--epochs` short epochs, the cosine schedule compressed to them), differing only in its
loss: triplet loss with semi-hard or hard in-batch negatives, the confidence loss (a
softmax over every pair of the batch), or a triplet loss plus the confidence loss. Each
run is converted to int8 and measured with `benchmarks.evaluate`'s queries (its
generators and seed: synthetic hums of the held-out songs, the same through a
microphone, mir1k real voices) against one small catalogue made with that model: the
held-out test songs of the default catalogue (`is_test_song`, rendered in --audio) plus
the mixed mir1k clips. The catalogue is small so that a variant costs minutes, not hours;
`benchmarks.scorecard` measures the shipped model at 1,000 and 10,000 songs.

`--also NAME=MODEL_DIR` measures models that are already converted (the shipped one, a
float32 model directory from `converter.convert --float-out`) on the same catalogue and
queries, without training.

Runs resume (training.train's backups) and a variant already measured (its summary in
--out) is not measured again. Writes losses.csv (one row per variant: validation in-batch
top-1 and top-1 / top-10 / MRR per query set), losses_queries.csv (one row per query) and
losses.png, and prints the table.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.evaluate import FIELDS, mir1k_queries, summarise, synthetic_queries
from converter.package import catalogue_songs
from device import indexing
from device.catalogue import Catalogue
from device.recognizer import Recognizer
from training.config import DataConfig, TrainConfig, override
from training.pairs import is_test_song

VARIANTS = {  # the loss fields of TrainConfig, spelled out whatever the default is
    "semi-hard + confidence": ["triplet_weight=1", "triplet_mining=semi-hard", "confidence_weight=1"],
    "hard + confidence": ["triplet_weight=1", "triplet_mining=hard", "confidence_weight=1"],
    "semi-hard": ["triplet_weight=1", "triplet_mining=semi-hard", "confidence_weight=0"],
    "hard": ["triplet_weight=1", "triplet_mining=hard", "confidence_weight=0"],
    "confidence": ["triplet_weight=0", "triplet_mining=semi-hard", "confidence_weight=1"],
}
SETS = ("synthetic", "synthetic-mic", "mir1k")
TABLE_FIELDS = ("variant", "epochs", "val_top1") + tuple(
    f"{s}_{m}" for s in SETS for m in ("top1", "top10", "mrr"))


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-").replace("---", "-")


def held_out_audio(shared_data: Path, audio_dir: Path, work: Path) -> Path:
    """work/held_out: links to the held-out test songs' renders in audio_dir, plus their
    metadata.csv; the folder a small catalogue is built from."""
    folder = work / "held_out"
    folder.mkdir(parents=True, exist_ok=True)
    data = DataConfig.default()
    songs = [s for s in catalogue_songs(shared_data) if is_test_song(s, data)]
    files = {p.stem: p for p in indexing.audio_files(audio_dir)}
    missing = [s.song_id for s in songs if s.song_id not in files]
    if missing:
        raise SystemExit(f"{audio_dir}: {len(missing)} held-out songs are not rendered (e.g. {missing[0]})")
    for song in songs:
        link = folder / files[song.song_id].name
        if not link.exists():
            link.symlink_to(files[song.song_id].resolve())
    with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("song_id", "title", "artist"))
        writer.writerows((s.song_id, s.title, s.artist) for s in songs)
    return folder


def measure(model_dir: Path, shared_data: Path, held_out: Path, n_synthetic: int, seed: int) -> list[dict]:
    """Query rows of one model: its small catalogue is built in a scratch folder."""
    with tempfile.TemporaryDirectory() as tmp:
        indexing.build(held_out, Path(tmp) / "base", model_dir, held_out / "metadata.csv",
                       log=lambda line: None)
        base = Catalogue(Path(tmp) / "base")
        rows = synthetic_queries(shared_data, Recognizer(base), n_synthetic, seed)
        rows += mir1k_queries(shared_data, base, Path(tmp) / "mir1k", seed)[0]
    return rows


def train_command(pairs_dir: Path, run_dir: Path, settings: list[str], epochs: int) -> list[str]:
    """`training.train` for one variant. Each variant trains in a process of its own: the
    pairs it loads (7 GB for the default data) are freed when it ends, where in one process
    the second variant's copy came on top of the first's and the third was killed for memory."""
    settings = settings + [f"epochs={epochs}"]
    override(TrainConfig.default(), settings)  # a bad setting fails here, not in the child
    command = [sys.executable, "-m", "training.train", "--pairs", str(pairs_dir), "--run", str(run_dir)]
    for setting in settings:
        command += ["--set", setting]
    return command


def train_variant(pairs_dir: Path, run_dir: Path, settings: list[str], epochs: int) -> Path:
    """The int8 model directory of one variant, trained and converted if needed."""
    from converter.convert import convert
    if not (run_dir / "last.keras").exists():
        subprocess.run(train_command(pairs_dir, run_dir, settings, epochs), check=True)
    model_dir = run_dir / "model"
    if not (model_dir / "manifest.json").exists():
        convert(run_dir, pairs_dir, model_dir)
    return model_dir


def last_val_top1(run_dir: Path) -> float | None:
    history = run_dir / "history.csv"
    if not history.exists():
        return None
    with open(history, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return round(float(rows[-1]["val_top1"]), 4) if rows else None


def table_row(variant: str, epochs: int | None, val_top1: float | None, rows: list[dict]) -> dict:
    """One line of losses.csv; epochs and val_top1 are None for a model not trained here."""
    out = {"variant": variant, "epochs": epochs or "", "val_top1": val_top1 if val_top1 is not None else ""}
    for set_name in SETS:
        summary = summarise([r for r in rows if r["set"] == set_name])
        out.update({f"{set_name}_{m}": summary[m] for m in ("top1", "top10", "mrr")})
    return out


def plot(table: list[dict], path: Path) -> None:
    """Top-1 (filled) and top-10 (outlined) per query set, one group of bars per variant."""
    figure, axes = plt.subplots(figsize=(max(6, 1.6 * len(table)), 4.5))
    width = 0.8 / len(SETS)
    for k, (set_name, colour) in enumerate(zip(SETS, ("tab:blue", "tab:cyan", "tab:orange"))):
        x = [i + (k - 1) * width for i in range(len(table))]
        axes.bar(x, [r[f"{set_name}_top10"] for r in table], width, fill=False, edgecolor=colour)
        axes.bar(x, [r[f"{set_name}_top1"] for r in table], width, color=colour, label=set_name)
    axes.set_xticks(range(len(table)), [r["variant"] for r in table], rotation=15, fontsize=9)
    axes.set_ylabel("top-1 (filled), top-10 (outline)")
    axes.set_ylim(0, 1)
    axes.grid(axis="y", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, required=True)
    parser.add_argument("--pairs", type=Path, required=True, help="pair shards every variant trains on")
    parser.add_argument("--audio", type=Path, required=True, help="rendered default catalogue (converter.package)")
    parser.add_argument("--runs", type=Path, required=True, help="folder for one run per variant")
    parser.add_argument("--out", type=Path, required=True, help="folder for the CSVs and the plot")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="a subset of the variants")
    parser.add_argument("--also", action="append", default=[], metavar="NAME=MODEL_DIR",
                        help="measure a converted model too (repeatable)")
    parser.add_argument("--synthetic", type=int, default=100, help="synthetic queries")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in VARIANTS]
    also = [a.partition("=") for a in args.also]
    if unknown or any(not sep for _, sep, _ in also):
        parser.error(f"unknown variant {unknown[0]!r}" if unknown else "--also takes NAME=MODEL_DIR")
    args.out.mkdir(parents=True, exist_ok=True)
    held_out = held_out_audio(args.shared_data, args.audio, args.out / "work")
    jobs = [(name, None) for name in chosen] + [(name, Path(d)) for name, _, d in also]
    table, queries = [], []
    for name, model_dir in jobs:
        cached = args.out / "work" / f"{slug(name)}.json"
        if cached.exists():
            entry = json.loads(cached.read_text())
        else:
            run_dir, trained = args.runs / slug(name), model_dir is None
            if trained:
                model_dir = train_variant(args.pairs, run_dir, VARIANTS[name], args.epochs)
            rows = [dict(r, variant=name) for r in
                    measure(model_dir, args.shared_data, held_out, args.synthetic, args.seed)]
            entry = {"row": table_row(name, args.epochs if trained else None,
                                      last_val_top1(run_dir) if trained else None, rows),
                     "queries": rows}
            cached.write_text(json.dumps(entry) + "\n")
        table.append(entry["row"])
        queries += entry["queries"]
        print(json.dumps(entry["row"]), flush=True)
    with open(args.out / "losses.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=TABLE_FIELDS)
        writer.writeheader()
        writer.writerows(table)
    with open(args.out / "losses_queries.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=("variant",) + FIELDS)
        writer.writeheader()
        writer.writerows(queries)
    plot(table, args.out / "losses.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
