"""Invariance of the match to transposition, tempo and voice, one axis at a time.

    python -m benchmarks.invariance --shared-data ../shared/data --out benchmarks/results/invariance

A query is varied along one axis while the others stay neutral (0 semitones, tempo 1.0,
voice "hum"); a model that is invariant gives the same accuracy at every value.

synthetic: N held-out catalogue songs (`is_test_song`), one seeded excerpt each, hummed
    by one seeded amateur singer (`neutral_style`) and synthesized again for every value:
    transposed by -6..+6 semitones, at tempo factors 0.75..1.33, or in every voice of
    `training.hum.VOICES`. The changes are the synthesizer's own (HumStyle fields, the
    same per-note randomness each time), so no vocoder artefact is measured. Against the
    catalogue given by --index (default: the shipped one).
mir1k: the real voices of mir1k-dev (right channel) transposed by -6..+6 semitones or
    time-stretched by the same tempo factors with `training.augment.transpose_and_stretch`
    (no voice axis: the voice is the singer's), against that catalogue extended with the
    mixed clips (`benchmarks.evaluate.extend_with_mir1k`); the right answer is the clip.

Writes invariance.csv (one row per query and axis value), invariance_summary.csv (top-1,
top-10, MRR, ... per set, axis and value) and invariance.png (one panel per axis), and
prints the summary. Everything but the timings is determined by --seed.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from benchmarks.evaluate import (
    extend_with_mir1k,
    held_out_clips,
    read_voice,
    row,
    summarise,
)
from converter.package import catalogue_songs
from device import assets
from device.catalogue import Catalogue
from device.recognizer import Recognizer
from training.augment import transpose_and_stretch
from training.config import DataConfig
from training.hum import VOICES, HumStyle, melody_excerpt, synthesize_hum
from training.melody import Note, Song
from training.pairs import is_test_song, song_seed

TRANSPOSITIONS = tuple(float(k) for k in range(-6, 7))  # semitones
TEMPOS = (0.75, 0.8, 0.9, 1.0, 1.1, 1.25, 1.33)  # song seconds per query second (> 1: faster)
AXES = {"transposition": TRANSPOSITIONS, "tempo": TEMPOS, "voice": VOICES}
NEUTRAL = {"transposition": 0.0, "tempo": 1.0, "voice": "hum"}
SET_AXES = {"synthetic": ("transposition", "tempo", "voice"), "mir1k": ("transposition", "tempo")}
WHISTLE_CENTRE_MIDI = 86.0  # middle of HumStyle.sample's whistle register (83-89)

QUERY_FIELDS = ("set", "axis", "value", "query", "truth", "rank", "top1", "score", "confidence", "decision",
                "seconds", "time_ms")
SUMMARY_FIELDS = ("set", "axis", "value", "queries", "top1", "top10", "mrr", "match_decisions",
                  "correct_matches", "median_query_s", "median_time_ms", "p90_time_ms")


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one run measures.

    Attributes:
        songs: held-out songs hummed (synthetic set).
        mir1k_clips: clips sung by the held-out mir1k-dev singers (a seeded subset of
            their 78; 0 = no mir1k set). The catalogue is extended with all 198 mixed clips
            whatever this is.
        excerpt_s: song seconds hummed per synthetic query (at tempo 1: about as many
            query seconds plus a lead-in and a release).
        seed: everything but the timings follows from it.
    """

    songs: int = 100
    mir1k_clips: int = 78
    excerpt_s: float = 10.0
    seed: int = 2026


def format_value(axis: str, value) -> str:
    """The CSV spelling of an axis value: "-6", "0.75", "whistle"."""
    return value if axis == "voice" else f"{float(value):g}"


def neutral_style(rng: np.random.Generator) -> HumStyle:
    """One amateur singer humming in the song's key at its tempo.

    A `HumStyle.sample` (imperfect pitch and timing, occasional mistakes, a male or
    female register), drawn again while it is a whistler (whose register and breath
    belong to whistling), then set to voice "hum", 0 semitones and tempo 1.0.
    """
    style = HumStyle.sample(rng)
    while style.voice == "whistle":
        style = HumStyle.sample(rng)
    return dataclasses.replace(style, voice="hum", transpose_semitones=0.0, tempo_factor=1.0)


def styled(style: HumStyle, axis: str, value) -> HumStyle:
    """`style` changed along one axis.

    transposition: `transpose_semitones` = value and the register (`f0_centre_midi`)
        moved with it, so the octave placement stays that of the neutral style and the
        sung pitches move by exactly `value` semitones (else +6 could come out as -6).
    tempo: `tempo_factor` = value (the query lasts about 1 / value as long).
    voice: `voice` = value; a whistle sounds the same pitch classes whole octaves up,
        in the whistling register (nearest WHISTLE_CENTRE_MIDI), with a whistle's breath.
    """
    if axis == "transposition":
        return dataclasses.replace(style, transpose_semitones=float(value),
                                   f0_centre_midi=style.f0_centre_midi + float(value))
    if axis == "tempo":
        return dataclasses.replace(style, tempo_factor=float(value))
    if axis == "voice":
        if value != "whistle":
            return dataclasses.replace(style, voice=value)
        octaves = round((WHISTLE_CENTRE_MIDI - style.f0_centre_midi) / 12.0)
        return dataclasses.replace(style, voice=value, f0_centre_midi=style.f0_centre_midi + 12.0 * octaves,
                                   formant_scale=1.0, breath_level=float(np.clip(style.breath_level, 0.05, 0.2)))
    raise ValueError(f"axis {axis!r} is not one of {tuple(AXES)}")


def synthetic_variant(notes: Sequence[Note], style: HumStyle, axis: str, value, sample_rate_hz: int,
                      seed: int) -> np.ndarray:
    """The neutral hum of `notes` in `style`, changed along one axis.

    Every call with the same seed draws the same per-note randomness (timing jitter,
    intonation errors, mistakes), so values of an axis differ only in that axis.

    Returns:
        float32 array (n_samples,) at sample_rate_hz.
    """
    return synthesize_hum(notes, styled(style, axis, value), sample_rate_hz,
                          np.random.default_rng(seed)).audio


def voice_variant(voice: np.ndarray, sample_rate_hz: int, axis: str, value) -> np.ndarray:
    """A recorded voice transposed by `value` semitones or sped up by the tempo factor
    `value` (`transpose_and_stretch`; the other change stays neutral).

    Returns:
        float32 array (round(voice.size / tempo),).
    """
    if axis == "transposition":
        return transpose_and_stretch(voice, sample_rate_hz, float(value), 1.0)
    if axis == "tempo":
        return transpose_and_stretch(voice, sample_rate_hz, 0.0, float(value))
    raise ValueError(f"a recorded voice varies along transposition or tempo, not {axis!r}")


def held_out_songs(songs: Sequence[Song], n: int, seed: int) -> list[Song]:
    """n of the songs held out of training (`is_test_song`), a seeded choice."""
    data = DataConfig.default()
    held_out = [s for s in songs if is_test_song(s, data)]
    return [held_out[i] for i in np.random.default_rng(seed).permutation(len(held_out))[:n]]


def _axis_rows(set_name: str, query: str, truth: str, recognizer: Recognizer, axes: Sequence[str],
               make) -> list[dict]:
    """Identifies make(axis, value) for every value of every axis; the neutral query is
    made and identified once and reported under each axis."""
    rate = recognizer.frontend.sample_rate_hz
    neutral = None
    rows = []
    for axis in axes:
        for value in AXES[axis]:
            is_neutral = value == NEUTRAL[axis]
            if is_neutral and neutral is not None:
                result, seconds, elapsed = neutral
            else:
                audio = make(axis, value)
                started = time.perf_counter()
                result = recognizer.identify(audio)
                seconds, elapsed = audio.size / rate, time.perf_counter() - started
                if is_neutral:
                    neutral = result, seconds, elapsed
            rows.append({"axis": axis, "value": format_value(axis, value),
                         **row(set_name, query, truth, result, seconds, elapsed)})
    return rows


def synthetic_axis_queries(songs: Sequence[Song], recognizer: Recognizer, settings: Settings) -> list[dict]:
    """Rows of the synthetic set: every axis value for every song (in the order given)."""
    rate = recognizer.frontend.sample_rate_hz
    rows = []
    for song in songs:
        rng = np.random.default_rng([settings.seed, song_seed(song.song_id, 0)])
        notes, start_s = melody_excerpt(song.melody, rng, settings.excerpt_s)
        style = neutral_style(rng)
        render_seed = int(rng.integers(2 ** 32))
        rows += _axis_rows("synthetic", f"{song.song_id}@{start_s:.1f}", song.song_id, recognizer,
                           SET_AXES["synthetic"],
                           functools.partial(synthetic_variant, notes, style, sample_rate_hz=rate,
                                             seed=render_seed))
    return rows


def mir1k_axis_queries(clips: Sequence[Path], recognizer: Recognizer) -> list[dict]:
    """Rows of the mir1k set: every axis value for every clip; `recognizer` must search a
    catalogue that holds the mixed clips (song id = clip stem)."""
    rate = recognizer.frontend.sample_rate_hz
    rows = []
    for clip in clips:
        voice = read_voice(clip, rate)
        rows += _axis_rows("mir1k", clip.stem, clip.stem, recognizer, SET_AXES["mir1k"],
                           functools.partial(voice_variant, voice, rate))
    return rows


def summary_rows(rows: Sequence[dict]) -> list[dict]:
    """One row per (set, axis, value), in the order of SET_AXES and AXES."""
    out = []
    for set_name, axes in SET_AXES.items():
        for axis in axes:
            for value in AXES[axis]:
                value = format_value(axis, value)
                group = [r for r in rows if (r["set"], r["axis"], r["value"]) == (set_name, axis, value)]
                if group:
                    out.append({"set": set_name, "axis": axis, "value": value, **summarise(group)})
    return out


def plot(summary: Sequence[dict], path: Path) -> None:
    """One panel per axis; top-1 (solid) and top-10 (dashed) per set."""
    figure, panels = plt.subplots(1, len(AXES), figsize=(15, 4.5), sharey=True)
    colours = {"synthetic": "tab:blue", "mir1k": "tab:orange"}
    for panel, axis in zip(panels, AXES):
        for set_name, colour in colours.items():
            points = [s for s in summary if s["set"] == set_name and s["axis"] == axis]
            if not points:
                continue
            x = (np.arange(len(points)) if axis == "voice" else [float(s["value"]) for s in points])
            n = points[0]["queries"]
            panel.plot(x, [s["top1"] for s in points], "o-", color=colour, label=f"{set_name} top-1 (n={n})")
            panel.plot(x, [s["top10"] for s in points], "s--", color=colour, label=f"{set_name} top-10")
        if axis == "voice":
            panel.set_xticks(np.arange(len(VOICES)), VOICES)
        elif axis == "transposition":
            panel.set_xticks(TRANSPOSITIONS)
            panel.set_xlabel("semitones")
        else:  # on a log scale, x0.8 and x1.25 lie equally far from 1
            panel.set_xscale("log")
            panel.set_xticks(TEMPOS, [f"{t:g}" for t in TEMPOS])
            panel.minorticks_off()
            panel.set_xlabel("tempo factor (> 1: faster)")
        neutral_x = VOICES.index(NEUTRAL[axis]) if axis == "voice" else NEUTRAL[axis]
        panel.axvline(neutral_x, color="grey", linewidth=0.8, linestyle=":")
        panel.set_title(axis)
        panel.set_ylim(0.0, 1.0)
        panel.grid(alpha=0.3)
    panels[0].set_ylabel("fraction of queries")
    handles, labels = panels[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=max(len(labels), 1), fontsize=9)
    figure.tight_layout(rect=(0.0, 0.07, 1.0, 1.0))
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_csv(path: Path, fields: Sequence[str], rows: Sequence[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def run(songs: Sequence[Song], shared_data: Path | None, index: Path, out: Path,
        settings: Settings = Settings()) -> list[dict]:
    """Measures both sets and writes the CSVs and the plot.

    Args:
        songs: candidate songs; the held-out ones among them are chosen from (the CLI
            gives `converter.package.catalogue_songs`).
        shared_data: for the mir1k set; None (or settings.mir1k_clips 0) skips it.
        index: the catalogue directory searched.

    Returns:
        The summary rows (as written to invariance_summary.csv).
    """
    out.mkdir(parents=True, exist_ok=True)
    base = Catalogue(index)
    chosen = held_out_songs(songs, settings.songs, settings.seed)
    rows = synthetic_axis_queries(chosen, Recognizer(base), settings)
    if shared_data is not None and settings.mir1k_clips > 0:
        clips = held_out_clips(shared_data)
        order = np.random.default_rng([settings.seed, 1]).permutation(len(clips))[:settings.mir1k_clips]
        with tempfile.TemporaryDirectory() as tmp:
            extended = extend_with_mir1k(shared_data, base, Path(tmp))
            rows += mir1k_axis_queries([clips[i] for i in sorted(order)], Recognizer(extended))
    summary = summary_rows(rows)
    write_csv(out / "invariance.csv", QUERY_FIELDS, rows)
    write_csv(out / "invariance_summary.csv", SUMMARY_FIELDS, summary)
    plot(summary, out / "invariance.png")
    return summary


def format_summary(summary: Sequence[dict]) -> str:
    """Two lines (top-1, top-10) per set and axis, one column per value."""
    lines = []
    for set_name, axes in SET_AXES.items():
        for axis in axes:
            points = [s for s in summary if s["set"] == set_name and s["axis"] == axis]
            if not points:
                continue
            lines.append(f"{set_name} {axis} (n={points[0]['queries']}):")
            lines.append("  value  " + " ".join(f"{s['value']:>7}" for s in points))
            for key in ("top1", "top10", "mrr"):
                lines.append(f"  {key:<6} " + " ".join(f"{s[key]:7.2f}" for s in points))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    defaults = Settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, required=True)
    parser.add_argument("--index", type=Path, default=assets.default_catalogue_dir())
    parser.add_argument("--out", type=Path, required=True, help="directory for the CSVs and the plot")
    parser.add_argument("--songs", type=int, default=defaults.songs, help="held-out songs hummed")
    parser.add_argument("--mir1k-clips", type=int, default=defaults.mir1k_clips,
                        help="mir1k-dev clips sung (0: no real voices)")
    parser.add_argument("--excerpt-s", type=float, default=defaults.excerpt_s,
                        help="song seconds per synthetic query")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    settings = Settings(songs=args.songs, mir1k_clips=args.mir1k_clips, excerpt_s=args.excerpt_s,
                        seed=args.seed)
    summary = run(catalogue_songs(args.shared_data), args.shared_data, args.index, args.out, settings)
    print(format_summary(summary))
    print(f"catalogue {args.index}; {time.perf_counter() - started:.0f} s; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
