"""The default catalogue: render the shippable songs, hear them, and write the demo hums.

    python -m converter.package --shared-data ../shared/data --audio data/catalogue_audio \
        --model assets/model --out assets/catalogue --demo assets/demo

Only sources whose licence allows shipping derived audio (Song.shippable) are rendered:
POP909 and OpenEWLD (MIT) and the tunes written out in training.corpora. Rendering is
resumable (existing files are kept); the index is built with the device's own code.
"""
from __future__ import annotations

import argparse
import csv
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np
import soundfile

from device import frontend as fe
from device import indexing
from training import corpora
from training.hum import HumStyle, synthesize_hum
from training.melody import Song
from training.pairs import song_seed
from training.render import Renderer, find_soundfonts

DEMO_SONGS = ("written-twinkle-twinkle", "written-ode-to-joy", "openewld-Happy_Birthday_to_You",
              "openewld-Jingle_Bells")
DEMO_SECONDS = 12.0


def catalogue_songs(shared_data: Path) -> list[Song]:
    """Every shippable song, in a stable order."""
    songs = (corpora.written_tunes() + corpora.load_openewld(shared_data / "openewld")
             + corpora.load_pop909(shared_data / "pop909"))
    return [s for s in songs if s.shippable]


def _render_batch(job: tuple[list[Song], Path, str]) -> int:
    songs, audio_dir, soundfont = job
    rate = fe.FrontendConfig().sample_rate_hz
    with Renderer(Path(soundfont), rate) as renderer:
        for song in songs:
            path = audio_dir / f"{song.song_id}.flac"
            audio = renderer.render(song, seed=song_seed(song.song_id, 0))
            tmp = path.with_name(path.name + ".part")  # not an audio suffix: never indexed half-written
            soundfile.write(tmp, audio, rate, format="FLAC", subtype="PCM_16")
            tmp.replace(path)
    return len(songs)


def render_catalogue(songs: list[Song], audio_dir: Path, workers: int) -> None:
    """Renders each song once to audio_dir/<song_id>.flac (16-bit, frontend rate)."""
    audio_dir.mkdir(parents=True, exist_ok=True)
    todo = [s for s in songs if not (audio_dir / f"{s.song_id}.flac").exists()]
    soundfont = str(find_soundfonts()[0])
    jobs = [(todo[i:i + 20], audio_dir, soundfont) for i in range(0, len(todo), 20)]
    started, done = time.time(), 0
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for n in pool.imap_unordered(_render_batch, jobs):
            done += n
            print(f"render: {done}/{len(todo)} songs, {time.time() - started:.0f} s",
                  file=sys.stderr, flush=True)


def write_metadata(songs: list[Song], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("song_id", "title", "artist"))
        for s in songs:
            writer.writerow((s.song_id, s.title, s.artist))


def write_demo_hums(songs: list[Song], demo_dir: Path) -> list[Path]:
    """Synthetic hums (one per voice) of a few famous catalogue tunes, for the README demo."""
    by_id = {s.song_id: s for s in songs}
    rate = fe.FrontendConfig().sample_rate_hz
    demo_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for number, song_id in enumerate(DEMO_SONGS):
        song = by_id[song_id]
        rng = np.random.default_rng(song_seed(song_id, 2024))
        notes = [n for n in song.melody if n.start_s < song.melody[0].start_s + DEMO_SECONDS]
        style = HumStyle.sample(rng)
        hum = synthesize_hum(notes, style, rate, rng)
        path = demo_dir / f"{song_id.split('-', 1)[1].lower().replace('_', '-')}-{style.voice}.wav"
        soundfile.write(path, hum.audio, rate, subtype="PCM_16")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, required=True)
    parser.add_argument("--audio", type=Path, required=True, help="where rendered catalogue audio goes")
    parser.add_argument("--model", type=Path, required=True, help="model directory")
    parser.add_argument("--out", type=Path, required=True, help="catalogue directory to write")
    parser.add_argument("--demo", type=Path, help="write demo hums here")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--render-only", action="store_true", help="stop after rendering (no model yet)")
    args = parser.parse_args(argv)
    songs = catalogue_songs(args.shared_data)
    render_catalogue(songs, args.audio, args.workers)
    write_metadata(songs, args.audio / "metadata.csv")
    if args.render_only:
        return 0
    added, skipped = indexing.build(args.audio, args.out, args.model, args.audio / "metadata.csv",
                                    log=lambda line: print(line, file=sys.stderr, flush=True),
                                    workers=args.workers)
    print(f"catalogue: {added} songs, {skipped} skipped -> {args.out}")
    if args.demo:
        for path in write_demo_hums(songs, args.demo):
            print(f"demo: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
