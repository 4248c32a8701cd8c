"""hum-search-beam: build or extend a catalogue as an Apache Beam pipeline (the DirectRunner
here; Flink, Spark or Dataflow on a cluster, chosen by --runner and Beam's own options).

    hum-search-beam build AUDIO_URI... --out DIR [--runner direct|flink|spark|dataflow] [beam options]
    hum-search-beam add AUDIO_URI... --index DIR [--out DIR] [beam options]
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

MISSING_BEAM = ("hum-search-beam: needs Apache Beam, which the device install leaves out; "
                "install it with: pip install 'hum-search[distributed]'")


def parser() -> argparse.ArgumentParser:
    from device import assets
    from device.catalogue import IndexConfig
    from device.cli import _count
    from beam_index.pipeline import RUNNERS
    defaults = IndexConfig()
    top = argparse.ArgumentParser(prog="hum-search-beam", description=__doc__.split("\n")[0],
                                  epilog="Other options (--name=value) go to Beam, e.g. --direct_num_workers=2, "
                                         "--flink_master=HOST:8081, --environment_type=DOCKER.")
    sub = top.add_subparsers(dest="command", required=True)
    for name in ("build", "add"):
        p = sub.add_parser(name, help="a new catalogue from the audio" if name == "build"
                           else "add the audio's songs to an existing catalogue")
        p.add_argument("sources", nargs="+", metavar="AUDIO_URI",
                       help="folders of audio: local paths or URIs of any filesystem Beam reads")
        if name == "build":
            p.add_argument("--out", required=True, help="catalogue directory to write (local)")
            p.add_argument("--model", default=str(assets.default_model_dir()),
                           help="model directory (default: the shipped model)")
            p.add_argument("--window-hop", type=_count, default=defaults.shortlist.catalogue_hop_frames,
                           help="melody frames between the shortlist's catalogue windows (default: %(default)s)")
            p.add_argument("--code-bytes", type=_count, default=defaults.code_bytes,
                           help="bytes of each window's code in the index (default: %(default)s)")
            p.set_defaults(index=None)
        else:
            p.add_argument("--index", required=True, help="catalogue to extend")
            p.add_argument("--out", help="write the extended catalogue here (default: replace --index)")
            p.set_defaults(model=None, window_hop=defaults.shortlist.catalogue_hop_frames,
                            code_bytes=defaults.code_bytes)
        p.add_argument("--metadata", help="CSV with columns song_id,title,artist (song_id = file stem)")
        p.add_argument("--shards", help="where per-song results are kept between runs (default: OUT.shards "
                                        "beside the catalogue; on a cluster, e.g. gs://bucket/shards)")
        p.add_argument("--runner", choices=sorted(RUNNERS), default="direct", help="default: %(default)s")
    return top


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.ERROR)  # Beam's warnings about absent cloud libraries
    try:
        import apache_beam  # noqa: F401
    except ImportError:
        print(MISSING_BEAM, file=sys.stderr)
        return 2
    from beam_index import build as bb
    from beam_index.pipeline import PipelineError, options
    from device import safe_write
    from device.audio import AudioError, printable
    from device.catalogue import Catalogue, IndexConfig
    from device.manifest import ManifestError
    from device.model import ModelError
    args, beam_args = parser().parse_known_args(argv)
    try:
        pipeline_options = options(args.runner, beam_args)
        defaults = IndexConfig()
        config = IndexConfig(dataclasses.replace(defaults.shortlist, catalogue_hop_frames=args.window_hop),
                             code_bytes=args.code_bytes)
        out = Path(args.out if args.out is not None else args.index)
        safe_write.recover(out)
        base = Catalogue(args.index) if args.command == "add" else None
        report = bb.build(args.sources, out, Path(args.model) if args.model else None,
                          Path(args.metadata) if args.metadata else None, config, base, args.shards,
                          args.runner, pipeline_options, log=lambda line: print(line, file=sys.stderr))
        print(report.line())
        return 0
    except (ManifestError, ModelError, AudioError, safe_write.OutputError, PipelineError) as exc:
        print(f"hum-search-beam: {printable(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"hum-search-beam: {printable(where + (exc.strerror or str(exc)))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
