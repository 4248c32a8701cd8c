"""hum-search: identify hummed tunes offline, inspect assets, build catalogues."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from device import assets
from device.audio import AudioError, load_audio
from device.catalogue import Catalogue, IndexConfig
from device.embedder import EmbedderError
from device.manifest import ManifestError
from device.recognizer import Recognizer, RecognizerConfig, Result

DEFAULTS = RecognizerConfig()
INDEX_DEFAULTS = IndexConfig()


def _print_result(path: str, result: Result, top: int, as_json: bool, extra_ms: dict) -> None:
    timing = dict(extra_ms, **result.timing_ms)
    timing["total"] = round(sum(timing.values()), 2)
    if as_json:
        print(json.dumps({"file": path, "decision": result.decision,
                          "matches": [m.to_dict() for m in result.matches[:top]],
                          "timing_ms": timing}, ensure_ascii=False), flush=True)
        return
    if not result.matches or result.decision == "no_match":
        print(f"{path}: no match" + (f" (closest: {result.matches[0].title}, score "
                                     f"{result.matches[0].score:.2f})" if result.matches else ""))
    else:
        print(f"{path}: {result.matches[0].title}"
              + (f" — {result.matches[0].artist}" if result.matches[0].artist else ""))
    for rank, m in enumerate(result.matches[:top], 1):
        minutes, seconds = divmod(int(m.offset_s), 60)
        print(f"  {rank:2d}. {m.score:.3f}  {m.title}" + (f" — {m.artist}" if m.artist else "")
              + f"  [{m.song_id} at {minutes}:{seconds:02d}]")
    print(f"  ({result.windows} windows, {timing['total']:.0f} ms)")


def cmd_identify(args: argparse.Namespace) -> int:
    catalogue = Catalogue(args.index)
    recognizer = Recognizer(catalogue, DEFAULTS, num_threads=args.threads)
    failed = 0
    for path in args.files:
        t0 = time.perf_counter()
        try:
            audio = load_audio(path, catalogue.frontend.sample_rate_hz)
        except AudioError as exc:
            failed += 1
            print(f"hum-search: {exc}", file=sys.stderr)
            if args.json:
                print(json.dumps({"file": path, "decision": "no_match", "matches": [],
                                  "timing_ms": {}, "error": str(exc)}, ensure_ascii=False), flush=True)
            continue
        decode_ms = round((time.perf_counter() - t0) * 1000.0, 2)
        result = recognizer.identify(audio, top=args.top)
        _print_result(path, result, args.top, args.json, {"decode": decode_ms})
    return 1 if failed else 0


def cmd_info(args: argparse.Namespace) -> int:
    catalogue = Catalogue(args.index)
    info = dict(catalogue.manifest, directory=str(catalogue.directory))
    print(json.dumps(info, indent=2, ensure_ascii=False))
    return 0


def cmd_index_build(args: argparse.Namespace) -> int:
    from device import indexing
    config = IndexConfig(hop_frames=args.hop_frames, n_trees=args.trees)
    base = Catalogue(args.index) if args.command_index == "add" else None
    out = args.out if args.out is not None else args.index
    log = (lambda line: print(line, file=sys.stderr))
    added, skipped = indexing.build(Path(args.audio_dir), Path(out),
                                    Path(args.model) if args.model else None,
                                    Path(args.metadata) if args.metadata else None, config,
                                    base=base, log=log)
    print(f"wrote {out}: {added} songs added, {skipped} files skipped")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="hum-search", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("identify", help="identify hummed, sung or whistled recordings")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--index", default=str(assets.default_catalogue_dir()),
                   help="catalogue directory (default: the shipped catalogue)")
    p.add_argument("--top", type=int, default=5, help="candidates to show (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="one JSON object per file and line")
    p.add_argument("--threads", type=int, default=None, help="interpreter threads")
    p.set_defaults(run=cmd_identify)

    p = sub.add_parser("info", help="print the manifest of the assets in use")
    p.add_argument("--index", default=str(assets.default_catalogue_dir()))
    p.set_defaults(run=cmd_info)

    p = sub.add_parser("index", help="build or extend a catalogue from a folder of audio")
    isub = p.add_subparsers(dest="command_index", required=True)
    b = isub.add_parser("build", help="a new catalogue from AUDIO_DIR")
    b.add_argument("audio_dir", metavar="AUDIO_DIR")
    b.add_argument("--out", required=True, help="catalogue directory to write")
    b.add_argument("--metadata", help="CSV with columns song_id,title,artist (song_id = file stem)")
    b.add_argument("--model", default=str(assets.default_model_dir()),
                   help="model directory (default: the shipped model)")
    b.add_argument("--hop-frames", type=int, default=INDEX_DEFAULTS.hop_frames,
                   help="frames between catalogue windows (default: %(default)s)")
    b.add_argument("--trees", type=int, default=INDEX_DEFAULTS.n_trees,
                   help="Annoy trees (default: %(default)s)")
    b.set_defaults(run=cmd_index_build, index=None)
    a = isub.add_parser("add", help="add the recordings in AUDIO_DIR to an existing catalogue")
    a.add_argument("audio_dir", metavar="AUDIO_DIR")
    a.add_argument("--index", required=True, help="catalogue to extend")
    a.add_argument("--out", help="write the extended catalogue here (default: replace --index)")
    a.add_argument("--metadata", help="CSV with columns song_id,title,artist")
    a.set_defaults(run=cmd_index_build, model=None, hop_frames=INDEX_DEFAULTS.hop_frames,
                   trees=INDEX_DEFAULTS.n_trees)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (ManifestError, EmbedderError, AudioError) as exc:
        print(f"hum-search: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
