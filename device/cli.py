"""hum-search: identify hummed tunes offline (files or the microphone), inspect assets,
build catalogues."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from device import assets, manifest, safe_write
from device.audio import AudioError, load_audio, printable
from device.bench import BenchConfig
from device.catalogue import Catalogue, IndexConfig
from device.model import ModelError
from device.manifest import ManifestError
from device import microphone
from device.listening import Listener
from device.microphone import MicrophoneConfig, MicrophoneError
from device.recognizer import Event, Match, Recognizer, RecognizerConfig, Result

DEFAULTS = RecognizerConfig()
INDEX_DEFAULTS = IndexConfig()
MIC_DEFAULTS = MicrophoneConfig()
BENCH_DEFAULTS = BenchConfig()
LISTEN_WALL_SLACK_S = 3.0  # a stalled device still ends the query this long after max_seconds


def _song(m: Match) -> str:
    """'Title — Artist' for a human line: the catalogue's text cannot move the cursor,
    colour the terminal or start a new (forged) line."""
    return printable(m.title) + (f" — {printable(m.artist)}" if m.artist else "")


def _ranked_line(rank: int, m: Match) -> str:
    minutes, seconds = divmod(int(m.offset_s), 60)
    return f"  {rank:2d}. {m.score:.3f}  {_song(m)}  [{printable(m.song_id)} at {minutes}:{seconds:02d}]"


def _print_result(path: str, result: Result, top: int, as_json: bool, extra_ms: dict) -> None:
    timing = dict(extra_ms, **result.timing_ms)
    timing["total"] = round(sum(timing.values()), 2)
    if as_json:
        print(json.dumps({"file": printable(path), "decision": result.decision,
                          "matches": [m.to_dict() for m in result.matches[:top]],
                          "timing_ms": timing}, ensure_ascii=False), flush=True)
        return
    if not result.matches or result.decision == "no_match":
        print(f"{printable(path)}: no match" + (f" (closest: {printable(result.matches[0].title)}, score "
                                                f"{result.matches[0].score:.2f})" if result.matches else ""))
    else:
        print(f"{printable(path)}: {_song(result.matches[0])}")
    for rank, m in enumerate(result.matches[:top], 1):
        print(_ranked_line(rank, m))
    print(f"  ({result.windows} windows, {timing['total']:.0f} ms)")


def _plot(recognizer: Recognizer, audio, result: Result, args: argparse.Namespace, path: str,
          several: bool) -> None:
    """Writes the explanation figure(s) of one identified file (--plot, --plot-runner-up)."""
    from device import explain
    out = Path(args.plot)
    if several:  # one figure per file: OUT.png -> OUT-<file stem>.png
        out = out.with_name(f"{out.stem}-{Path(path).stem}{out.suffix}")
    ranks = (1, 2) if args.plot_runner_up else (1,)
    for rank in ranks:
        target = out if rank == 1 else out.with_name(f"{out.stem}-runner-up{out.suffix}")
        try:
            explain.plot(recognizer, audio, result, target, rank)
            print(f"  figure: {printable(str(target))}", file=sys.stderr)
        except explain.PlotError as exc:
            print(f"hum-search: {printable(path)}: {printable(str(exc))}", file=sys.stderr)


def cmd_identify(args: argparse.Namespace) -> int:
    catalogue = Catalogue(args.index)
    recognizer = Recognizer(catalogue, DEFAULTS, num_threads=args.threads)
    failed = 0
    for path in args.files:
        t0 = time.perf_counter()
        try:
            audio = load_audio(path, catalogue.frontend.sample_rate_hz, DEFAULTS.max_query_seconds)
        except AudioError as exc:
            failed += 1
            print(f"hum-search: {exc}", file=sys.stderr)
            if args.json:
                print(json.dumps({"file": printable(path), "decision": "no_match", "matches": [],
                                  "timing_ms": {}, "error": str(exc)}, ensure_ascii=False), flush=True)
            continue
        decode_ms = round((time.perf_counter() - t0) * 1000.0, 2)
        result = recognizer.identify(audio, top=args.top)
        _print_result(path, result, args.top, args.json, {"decode": decode_ms})
        if args.plot:
            _plot(recognizer, audio, result, args, path, len(args.files) > 1)
    return 1 if failed else 0


def _event_json(event: Event, top: int, overflows: int) -> str:
    return json.dumps({"event": event.kind, "elapsed_s": round(event.result.audio_s, 2),
                       "matches": [m.to_dict() for m in event.result.matches[:top]],
                       "overflows": overflows}, ensure_ascii=False)


def _ranking_line(result: Result, top: int) -> str:
    """e.g. '  3.5 s: 1. Twinkle Twinkle Little Star (0.41)  2. Ode to Joy (0.20)  ...'."""
    ranked = "  ".join(f"{rank}. {printable(m.title)} ({m.score:.2f})"
                       for rank, m in enumerate(result.matches[:top], 1))
    return f"{result.audio_s:5.1f} s: {ranked or '(no candidates yet)'}"


class _ListenPrinter:
    """Prints listen events: JSON lines, or human lines when the shown ranking changes."""

    def __init__(self, top: int, as_json: bool, source: microphone.Microphone):
        self.top, self.as_json, self.source = top, as_json, source
        self._shown: tuple | None = None

    def show(self, event: Event) -> None:
        result = event.result
        if self.as_json:
            print(_event_json(event, self.top, self.source.overflows), flush=True)
            return
        if not event.final:
            shown = tuple((m.song_id, round(m.score, 2)) for m in result.matches[:self.top])
            if shown != self._shown:
                self._shown = shown
                print("  " + _ranking_line(result, self.top), flush=True)
            return
        if event.kind == "match":
            best = result.matches[0]
            print(f"match after {result.audio_s:.1f} s: {_song(best)} (score {best.score:.2f})")
        else:
            print(f"no match after {result.audio_s:.1f} s" + (
                f" (closest: {printable(result.matches[0].title)}, score {result.matches[0].score:.2f})"
                if result.matches else ""))
        for rank, m in enumerate(result.matches[:self.top], 1):
            print(_ranked_line(rank, m))
        sys.stdout.flush()


def cmd_listen(args: argparse.Namespace) -> int:
    if args.list_devices:
        devices = microphone.input_devices()
        if not devices:
            raise MicrophoneError("no audio input device found")
        for d in devices:
            print(f"{'*' if d.is_default else ' '} {d.index:3d}  {d.name}  "
                  f"({d.host_api}, {d.channels} ch, {d.default_rate_hz:.0f} Hz)")
        return 0
    if args.max_seconds < 0:
        print("hum-search: --max-seconds must be positive (0: listen until Ctrl-C)", file=sys.stderr)
        return 2
    max_seconds = args.max_seconds or None
    device = microphone.find_device(args.device)
    catalogue = Catalogue(args.index)
    recognizer = Recognizer(catalogue, dataclasses.replace(DEFAULTS, max_seconds=max_seconds),
                            num_threads=args.threads)
    with microphone.Microphone(device, MIC_DEFAULTS) as source:
        printer = _ListenPrinter(args.top, args.json, source)
        report = (lambda n: print(f"hum-search: input overflow: audio lost ({n} so far)",
                                  file=sys.stderr, flush=True))
        listener = Listener(source, recognizer, top=args.top, on_overflow=report)
        print(f"listening on {device.name} ({source.rate_hz} Hz, device {device.index}); "
              "hum now, Ctrl-C stops", file=sys.stderr, flush=True)
        try:
            for event in listener.events(None if max_seconds is None else max_seconds + LISTEN_WALL_SLACK_S):
                printer.show(event)
                if event.final:
                    return 0
        except KeyboardInterrupt:
            result = recognizer.result(top=args.top)
            if args.json:
                print(_event_json(Event("candidates", result, 0.0), args.top, source.overflows), flush=True)
            else:
                print("stopped at " + _ranking_line(result, args.top), flush=True)
            return 130
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    catalogue = Catalogue(args.index)
    catalogue.open_model()  # refuses a model the interpreter cannot run, as identify would
    from device import bench
    info = dict(catalogue.manifest, directory=str(catalogue.directory),
                size=bench.catalogue_size(catalogue.directory))
    print(json.dumps(info, indent=2, ensure_ascii=False))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    args.files = [str(path) for path in sorted(assets.demo_dir().glob("*.wav"))]
    return cmd_identify(args)


def cmd_bench(args: argparse.Namespace) -> int:
    from device import bench
    files = args.queries or sorted(assets.demo_dir().glob("*.wav"))
    config = dataclasses.replace(BENCH_DEFAULTS, repeats=args.repeats)
    report = bench.run(Path(args.index), [Path(f) for f in files], config)
    print(json.dumps(report, ensure_ascii=False) if args.json else bench.table(report))
    return 0


def cmd_index_build(args: argparse.Namespace) -> int:
    from device import indexing
    config = IndexConfig(dataclasses.replace(INDEX_DEFAULTS.shortlist, catalogue_hop_frames=args.window_hop),
                         code_bytes=args.code_bytes)
    out = args.out if args.out is not None else args.index
    safe_write.recover(Path(out))  # a write killed earlier may have left the catalogue aside
    base = Catalogue(args.index) if args.command_index == "add" else None
    log = (lambda line: print(line, file=sys.stderr))
    added, skipped = indexing.build(Path(args.audio_dir), Path(out),
                                    Path(args.model) if args.model else None,
                                    Path(args.metadata) if args.metadata else None, config,
                                    base=base, log=log, workers=args.workers)
    print(f"wrote {printable(str(out))}: {added} songs added, {skipped} files skipped")
    return 0


def cmd_index_reembed(args: argparse.Namespace) -> int:
    from device import indexing
    out = args.out if args.out is not None else args.index
    safe_write.recover(Path(out))
    n = indexing.reembed(Path(args.index), Path(out), Path(args.model), INDEX_DEFAULTS,
                         log=lambda line: print(line, file=sys.stderr))
    print(f"wrote {printable(str(out))}: {n} songs re-embedded")
    return 0


def _count(text: str) -> int:
    """An argparse type: a whole number from 1 to 1000 (code bytes, hops, workers, threads, top, repeats)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{value} is outside 1..1000")
    return value


def _query_options(p: argparse.ArgumentParser, json_help: str) -> None:
    """The options identify and listen share."""
    p.add_argument("--index", default=str(assets.default_catalogue_dir()),
                   help="catalogue directory (default: the shipped catalogue)")
    p.add_argument("--top", type=_count, default=5, help="candidates to show (default: %(default)s)")
    p.add_argument("--json", action="store_true", help=json_help)
    p.add_argument("--threads", type=_count, default=None, help="interpreter threads")


class _Version(argparse.Action):
    """--version: the package version and the shipped model's id (the start of its sha256)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print the version and the shipped model's id")

    def __call__(self, parser, namespace, values, option_string=None):
        import importlib.metadata  # here, not at start-up: it costs more than the rest of --help
        model = manifest.read(assets.default_model_dir(), manifest.MODEL_FORMAT)["model"]
        print(f"hum-search {importlib.metadata.version('hum-search')} (model {model['sha256'][:8]})")
        parser.exit()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="hum-search", description=__doc__)
    top.add_argument("--version", action=_Version)
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("identify", help="identify hummed, sung or whistled recordings")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--plot", metavar="OUT.png",
                   help="draw the melody heard over the matched song's, aligned (needs matplotlib)")
    p.add_argument("--plot-runner-up", action="store_true", help="with --plot, also draw the runner-up")
    _query_options(p, json_help="one JSON object per file and line")
    p.set_defaults(run=cmd_identify)

    p = sub.add_parser("demo", help="identify the shipped demo hums (their paths head each answer)")
    _query_options(p, json_help="one JSON object per file and line")
    p.set_defaults(run=cmd_demo, plot=None, plot_runner_up=False)

    p = sub.add_parser("listen", help="identify a tune hummed into the microphone, live")
    p.add_argument("--device", default=None, metavar="ID_OR_NAME",
                   help="input device: index or part of the name (default: the system's default input)")
    p.add_argument("--list-devices", action="store_true", help="print the input devices and exit")
    p.add_argument("--max-seconds", type=float, default=DEFAULTS.max_seconds,
                   help="give up with no_match after this many seconds (0: until Ctrl-C; "
                        "default: %(default)s)")
    _query_options(p, json_help="one JSON object per event and line")
    p.set_defaults(run=cmd_listen)

    p = sub.add_parser("info", help="print the manifest of the assets in use")
    p.add_argument("--index", default=str(assets.default_catalogue_dir()))
    p.set_defaults(run=cmd_info)

    p = sub.add_parser("bench", help="time and memory of each stage on this machine (a table, or --json)")
    p.add_argument("--index", default=str(assets.default_catalogue_dir()),
                   help="catalogue directory (default: the shipped catalogue)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--queries", nargs="+", metavar="FILE",
                   help=f"query recordings, each cut to {BENCH_DEFAULTS.query_seconds:g} s "
                        "(default: the shipped demo hums)")
    p.add_argument("--repeats", type=_count, default=BENCH_DEFAULTS.repeats,
                   help="identifications per query and start-up runs (default: %(default)s)")
    p.set_defaults(run=cmd_bench)

    p = sub.add_parser("index", help="build or extend a catalogue from a folder of audio")
    isub = p.add_subparsers(dest="command_index", required=True)
    b = isub.add_parser("build", help="a new catalogue from AUDIO_DIR")
    b.add_argument("audio_dir", metavar="AUDIO_DIR")
    b.add_argument("--out", required=True, help="catalogue directory to write")
    b.add_argument("--metadata", help="CSV with columns song_id,title,artist (song_id = file stem)")
    b.add_argument("--model", default=str(assets.default_model_dir()),
                   help="model directory (default: the shipped model)")
    b.add_argument("--window-hop", type=_count, default=INDEX_DEFAULTS.shortlist.catalogue_hop_frames,
                   help="melody frames between the shortlist's catalogue windows (default: %(default)s)")
    b.add_argument("--code-bytes", type=_count, default=INDEX_DEFAULTS.code_bytes,
                   help="bytes of each window's code in the index; divides the embedder's dimension "
                        "(default: %(default)s)")
    b.add_argument("--workers", type=_count, default=1, help="processes hearing files at once (default: 1)")
    b.set_defaults(run=cmd_index_build, index=None)
    a = isub.add_parser("add", help="add the recordings in AUDIO_DIR to an existing catalogue")
    a.add_argument("audio_dir", metavar="AUDIO_DIR")
    a.add_argument("--index", required=True, help="catalogue to extend")
    a.add_argument("--out", help="write the extended catalogue here (default: replace --index)")
    a.add_argument("--metadata", help="CSV with columns song_id,title,artist")
    a.add_argument("--workers", type=_count, default=1, help="processes hearing files at once (default: 1)")
    a.set_defaults(run=cmd_index_build, model=None, window_hop=INDEX_DEFAULTS.shortlist.catalogue_hop_frames,
                   code_bytes=INDEX_DEFAULTS.code_bytes)
    r = isub.add_parser("reembed", help="give a catalogue a model's new shortlist embedder, from its stored "
                                        "melodies (no audio needed)")
    r.add_argument("--index", required=True, help="catalogue whose melodies are kept")
    r.add_argument("--out", help="write the new catalogue here (default: replace --index)")
    r.add_argument("--model", default=str(assets.default_model_dir()),
                   help="model directory with the embedder (default: the shipped model)")
    r.set_defaults(run=cmd_index_reembed)
    return top


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)  # inside: --version reads the model's manifest
        status = args.run(args)
        sys.stdout.flush()  # here, so that a failing write is reported like any other
        return status
    except (ManifestError, ModelError, AudioError, MicrophoneError, safe_write.OutputError) as exc:
        print(f"hum-search: {printable(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into head: the reader has gone, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # e.g. standard output on a full disk
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"hum-search: {printable(where + (exc.strerror or str(exc)))}", file=sys.stderr)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush would fail again
        return 1


if __name__ == "__main__":
    sys.exit(main())
