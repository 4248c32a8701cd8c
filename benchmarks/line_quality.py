"""Which recordings the model hears wrongly, and what that costs: the catalogue's stored
melody lines against the songs' own melodies, by how each song was arranged.

    python -m benchmarks.line_quality --shared-data ../shared/data --out benchmarks/results/line-quality \
        [--index assets/catalogue] [--scorecard benchmarks/results/scorecard-.../scorecard.csv ...]

For every catalogue song rendered from a melody of ../shared/data (the default catalogue's
songs: `converter.package.catalogue_songs`, rendered once with `song_seed(song_id, 0)`, so
the lead is played as written), mir_eval's raw chroma accuracy and voicing false alarm of
the line the catalogue stores (a pitch per melody frame, what every query is aligned
with) against the song's lead notes, and the arrangement drawn for its render
(`training.render.arrange`): the lead's level over the backing, the style, whether a voice
carries it, the harmony line. With --scorecard (benchmarks.scorecard's per-query CSVs), the
model's queries are joined by their true song: top-1 and top-10 for each group, so that the
share of songs lost to the recordings' lines is measured, not guessed.

Writes line_quality.csv (one row per song), line_quality_summary.json (per group: songs,
mean chroma accuracy, and with --scorecard the queries' top-1 / top-10), line_quality.png
(each song's raw chroma against its lead's level; and the stored line over the lead's notes
for the song with the median accuracy among the most buried leads), and prints the summary.

Beside mir_eval's figures, each stored frame is sorted by what it hears of the lead
(`frame_errors`): right, a timing slip, an octave off, a wrong pitch, or nothing; and the
wrong pitches by the part of the render that sounds them then (`training.render.part_notes`):
the harmony or counter-line, the accompaniment, the bass. So a better model can be judged
by the errors that cost songs (the wrong pitches: README, "Where `5f65e0f3` still loses
songs"), not by the mean.
"""
from __future__ import annotations

import argparse
import collections
import csv
import json
import sys
from pathlib import Path

import matplotlib
import mir_eval
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks.melody_accuracy import midi_to_hz
from converter.package import catalogue_songs
from device import assets
from device.catalogue import Catalogue
from training.melody import Note, Song, sounding_pitch
from training.pair_shards import song_seed
from training.render import arrange, lead_notes, part_notes

REFERENCE_HOP_S = 0.01
TIMING_FRAMES = 3  # a pitch the lead sounds this many melody frames (240 ms) away is a timing slip
HEARD = ("right", "timing", "octave", "wrong", "unheard")  # what a frame of the lead hears
BACKING_PARTS = ("line", "accompaniment", "bass")
FIELDS = ("song_id", "raw_chroma", "voicing_false_alarm", "lead_db", "style", "voice_lead", "line",
          "doubled", "source", "lead_frames", *HEARD, *(f"wrong_on_{p}" for p in BACKING_PARTS),
          "wrong_on_backing")


def line_scores(line: np.ndarray, rate_hz: float, centre_s: float, notes: tuple[Note, ...]
                ) -> tuple[float, float]:
    """(raw chroma accuracy, voicing false alarm) of a stored line (float (n,) MIDI per melody
    frame at rate_hz, 0: none; frame i centred at i / rate_hz + centre_s seconds) against the notes."""
    est_t = np.arange(line.size) / rate_hz + centre_s
    ref_t = np.arange(0.0, est_t[-1] + 1.0 / rate_hz if line.size else REFERENCE_HOP_S, REFERENCE_HOP_S)
    # float64 as the line: half-semitone bins sit exactly 50 cents from a note, mir_eval's bound
    ref_midi = sounding_pitch(notes, ref_t).astype(np.float64)
    # the line holds one pitch per frame: each reference time takes its nearest frame's
    # (mir_eval's default, linear interpolation, invents pitches between two notes)
    metrics = mir_eval.melody.evaluate(ref_t, midi_to_hz(ref_midi), est_t,
                                       midi_to_hz(np.asarray(line, np.float64)), kind="nearest")
    return float(metrics["Raw Chroma Accuracy"]), float(metrics["Voicing False Alarm"])


def _sounding_classes(notes: tuple[Note, ...], times_s: np.ndarray) -> np.ndarray:
    """bool (n, 12): the pitch classes the notes sound at each time."""
    classes = np.zeros((times_s.size, 12), bool)
    for note in notes:
        first, last = np.searchsorted(times_s, [note.start_s, note.end_s])
        classes[first:last, int(round(note.pitch)) % 12] = True
    return classes


def frame_errors(line: np.ndarray, rate_hz: float, centre_s: float, notes: tuple[Note, ...],
                 parts: dict[str, tuple[Note, ...]]) -> dict[str, int]:
    """What each frame of a stored line hears of the lead (the note sounding at the frame's
    centre), as counts of the lead's sounding frames: "right" (within half a semitone),
    else "octave" (its pitch class), else "timing" (the lead's pitch within TIMING_FRAMES
    frames), else "wrong"; or "unheard";
    and "wrong_on_<part>", the wrong frames whose pitch class that part of `parts`
    (training.render.part_notes) sounds then, "wrong_on_backing" any of them; "lead_frames".
    A wrong pitch is traced by the pitch class of its nearest semitone (either, half way)."""
    times_s = np.arange(line.size) / rate_hz + centre_s
    true = sounding_pitch(notes, times_s).astype(np.float64)
    heard = np.asarray(line, np.float64)
    lead, voiced = true > 0, heard > 0
    padded, near = np.pad(true, TIMING_FRAMES), np.zeros(line.size, bool)  # no pitch beyond the ends
    for shift in range(-TIMING_FRAMES, TIMING_FRAMES + 1):
        if shift:
            moved = padded[TIMING_FRAMES + shift:TIMING_FRAMES + shift + line.size]
            near |= (moved > 0) & (np.abs(moved - heard) <= 0.5)
    right = lead & voiced & (np.abs(heard - true) <= 0.5)
    octave = lead & voiced & ~right & (np.abs(np.mod(heard - true + 6, 12) - 6) <= 0.5)
    timing = lead & voiced & ~right & ~octave & near
    wrong = lead & voiced & ~right & ~octave & ~near
    counts = {"lead_frames": int(lead.sum()), "right": int(right.sum()), "timing": int(timing.sum()),
              "octave": int(octave.sum()), "wrong": int(wrong.sum()), "unheard": int((lead & ~voiced).sum())}
    rows = np.arange(line.size)
    below, above = np.ceil(heard - 0.5).astype(int) % 12, np.floor(heard + 0.5).astype(int) % 12
    on_backing = np.zeros(line.size, bool)
    for part in BACKING_PARTS:
        classes = _sounding_classes(parts.get(part, ()), times_s)
        sounds = (classes[rows, below] | classes[rows, above]) & wrong
        counts[f"wrong_on_{part}"] = int(sounds.sum())
        on_backing |= sounds
    counts["wrong_on_backing"] = int(on_backing.sum())
    return counts


def first_centre_s(catalogue: Catalogue) -> float:
    """Seconds from a song's start to the centre of its first melody frame (frontend frames
    are not centred: frame i covers [i * hop, i * hop + frame_length) samples)."""
    return catalogue.frontend.frame_length_samples / 2 / catalogue.frontend.sample_rate_hz


def song_rows(catalogue: Catalogue, songs: dict[str, Song]) -> list[dict]:
    """One row (FIELDS) per catalogue song among `songs` (by id: the default catalogue's,
    `converter.package.catalogue_songs`)."""
    centre_s = first_centre_s(catalogue)
    rows = []
    for row, info in enumerate(catalogue.songs):
        song = songs.get(info.song_id)
        if song is None:
            continue
        line = np.asarray(catalogue.melody(row))
        lead = lead_notes(song)
        chroma, false_alarm = line_scores(line, catalogue.melody_rate_hz, centre_s, lead)
        seed = song_seed(song.song_id, 0)
        played = arrange(song, seed)
        rows.append({"song_id": song.song_id, "raw_chroma": round(chroma, 4),
                     "voicing_false_alarm": round(false_alarm, 4), "lead_db": round(played.lead_db, 2),
                     "style": played.style, "voice_lead": played.voice_lead, "line": played.line,
                     "doubled": played.doubling is not None, "source": song.source,
                     **frame_errors(line, catalogue.melody_rate_hz, centre_s, lead,
                                    part_notes(song, seed, played))})
    return rows


def _total(rows: list[dict], key: str) -> int:
    """The rows' frame counts of one kind (frame_errors' keys) added up."""
    return sum(int(r[key]) for r in rows)


def frame_shares(rows: list[dict]) -> dict:
    """Over all rows' lead frames: the share each of HEARD; and of the wrong frames, the
    share each backing part sounds (and any of them)."""
    lead, wrong = max(_total(rows, "lead_frames"), 1), max(_total(rows, "wrong"), 1)
    shares = {key: round(_total(rows, key) / lead, 4) for key in HEARD}
    shares["wrong_sounded_by"] = {part: round(_total(rows, f"wrong_on_{part}") / wrong, 3)
                                  for part in (*BACKING_PARTS, "backing")}
    return shares


def _level_band(lead_db: float) -> str:
    """The 3 dB band a lead level falls in, e.g. "-3..+0 dB"."""
    low = 3 * int(np.floor(lead_db / 3))
    return f"{low:+d}..{low + 3:+d} dB"


GROUPS = {
    "lead_db": lambda r: _level_band(float(r["lead_db"])),
    "raw_chroma": lambda r: f">= {min(int(float(r['raw_chroma']) * 10), 9) / 10:.1f}",
    "style": lambda r: r["style"],
    "voice_lead": lambda r: str(r["voice_lead"]),
    "line": lambda r: r["line"],
    "source": lambda r: r["source"],
}


def summarise(rows: list[dict], queries: list[dict]) -> dict:
    """Per grouping and group: songs, mean raw chroma, the share of the lead's frames heard
    at a wrong pitch, and the queries of those songs (scorecard rows of method "model", rank
    1-based, 0 not found): count, top-1, top-10. "frames": frame_shares of all rows."""
    by_song = {r["song_id"]: r for r in rows}
    summary = {"songs": len(rows), "mean_raw_chroma": round(float(np.mean([r["raw_chroma"] for r in rows])), 4),
               "frames": frame_shares(rows)}
    for name, key in GROUPS.items():
        groups = collections.defaultdict(lambda: {"rows": [], "ranks": []})
        for r in rows:
            groups[key(r)]["rows"].append(r)
        for q in queries:
            if q["truth"] in by_song:
                groups[key(by_song[q["truth"]])]["ranks"].append(int(q["rank"]))
        summary[name] = {}
        for label in sorted(groups):
            g = groups[label]
            mine = g["rows"]
            entry = {"songs": len(mine), "mean_raw_chroma": round(float(np.mean([r["raw_chroma"] for r in mine])), 4),
                     "wrong": round(_total(mine, "wrong") / max(_total(mine, "lead_frames"), 1), 4)}
            if g["ranks"]:
                ranks = np.array(g["ranks"])
                entry.update(queries=int(ranks.size), top1=round(float(np.mean(ranks == 1)), 3),
                             top10=round(float(np.mean((ranks >= 1) & (ranks <= 10))), 3))
            summary[name][label] = entry
    return summary


def plot(rows: list[dict], catalogue: Catalogue, songs: dict[str, Song], path: Path, seconds: float = 30.0
         ) -> None:
    """line_quality.png: raw chroma against lead level per song (by style); below, the line
    stored for the median-accuracy song among the leads under -3 dB over its lead's notes
    (octave-folded onto the line), its first `seconds` seconds."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8))
    for style in sorted({r["style"] for r in rows}):
        mine = [r for r in rows if r["style"] == style]
        top.scatter([r["lead_db"] for r in mine], [r["raw_chroma"] for r in mine], s=6, label=style, alpha=0.6)
    top.set(xlabel="lead over the backing (dB)", ylabel="raw chroma of the stored line",
            title=f"{len(rows)} catalogue songs: the line the catalogue stores against the lead it was rendered with")
    top.legend(markerscale=3, fontsize=8)
    buried = sorted((r for r in rows if r["lead_db"] < -3), key=lambda r: r["raw_chroma"])
    if buried:
        pick = buried[len(buried) // 2]
        row = next(i for i, s in enumerate(catalogue.songs) if s.song_id == pick["song_id"])
        song = songs[pick["song_id"]]
        line = np.asarray(catalogue.melody(row), np.float64)
        t = np.arange(line.size) / catalogue.melody_rate_hz + first_centre_s(catalogue)
        keep = t < seconds
        for note in lead_notes(song):
            if note.start_s < seconds:
                heard = line[(t >= note.start_s) & (t < note.end_s) & (line > 0)]
                octave = 12 * np.round((np.median(heard) - note.pitch) / 12) if heard.size else 0
                bottom.plot([note.start_s, note.end_s], [note.pitch + octave] * 2, color="0.6", lw=5,
                            solid_capstyle="butt")
        bottom.plot(t[keep & (line > 0)], line[keep & (line > 0)], ".", color="crimson", ms=4)
        bottom.set(xlabel="song seconds", ylabel="MIDI",
                   title=f"{pick['song_id']} ({pick['style']}, lead {pick['lead_db']:+.1f} dB, raw chroma "
                         f"{pick['raw_chroma']:.2f}): grey the lead's notes, red the stored line")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def read_queries(paths: list[Path]) -> list[dict]:
    """The model's query rows of benchmarks.scorecard CSVs."""
    queries = []
    for path in paths:
        with open(path, newline="") as handle:
            queries += [r for r in csv.DictReader(handle) if r.get("method", "model") == "model"]
    return queries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared-data", type=Path, required=True)
    parser.add_argument("--index", type=Path, default=assets.default_catalogue_dir())
    parser.add_argument("--scorecard", type=Path, action="append", default=[],
                        help="benchmarks.scorecard's scorecard.csv (repeatable)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    for path in [args.shared_data, args.index, *args.scorecard]:
        if not path.exists():
            print(f"line_quality: {path} does not exist", file=sys.stderr)
            return 2
    catalogue = Catalogue(args.index)
    songs = {s.song_id: s for s in catalogue_songs(args.shared_data)}  # minutes of parsing: once
    rows = song_rows(catalogue, songs)
    if not rows:
        print("line_quality: no catalogue song has a melody in --shared-data", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "line_quality.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, catalogue, songs, args.out / "line_quality.png")
    summary = summarise(rows, read_queries(args.scorecard))
    summary["scorecards"] = [str(p) for p in args.scorecard]
    (args.out / "line_quality_summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
