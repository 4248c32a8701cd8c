"""The Beam pipeline: the list of files to hear -> HearSong (spread over the workers) ->
song records and dead letters, written as JSON lines under the run's folder.

    files.jsonl --ReadFromText--> Reshuffle --HearSong--> songs-*.jsonl
                                                     \\--> dead-*.jsonl (dead letters)

The shards HearSong writes outlive the run; the run's folder is the launcher's to read and
delete once the catalogue is assembled (assemble.py).
"""
from __future__ import annotations

import json

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

from beam_index.hear import DEAD, METRICS, HearSong, Recipe
from device import manifest as mf

RUNNERS = {"direct": "DirectRunner", "flink": "FlinkRunner", "spark": "SparkRunner", "dataflow": "DataflowRunner"}


class PipelineError(Exception):
    """The pipeline could not run or did not finish (one line)."""


def options(runner: str, beam_args: list[str]) -> PipelineOptions:
    """Pipeline options from the command line's Beam flags; an unknown flag is refused
    (Beam itself would only log that it discards it)."""
    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)  # the parser Beam builds in get_all_options
    _, unknown = parser.parse_known_args(beam_args)
    if unknown:
        raise PipelineError(f"unknown pipeline option {unknown[0]!r} (Beam's options are --name=value)")
    if any(arg.split("=")[0] == "--runner" for arg in beam_args):
        raise PipelineError("give the runner as --runner direct|flink|spark|dataflow")
    quiet = [] if any(a.startswith("--default_sdk_harness_log_level") for a in beam_args) else [
        "--default_sdk_harness_log_level=ERROR"]  # workers log every channel they open at INFO
    return PipelineOptions(beam_args + quiet + [f"--runner={RUNNERS[runner]}"])


def write_lines(uri: str, records: list[dict]) -> None:
    with FileSystems.create(uri) as handle:
        handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode())


def read_lines(pattern: str) -> list[dict]:
    """Every JSON line of the files matching `pattern` (a run's output shards)."""
    records = []
    for found in FileSystems.match([pattern])[0].metadata_list:
        with FileSystems.open(found.path) as handle:
            records.extend(json.loads(line) for line in handle.read().decode().splitlines() if line)
    return records


def run(recipe: Recipe, uris: list[str], run_dir: str, pipeline_options: PipelineOptions
        ) -> tuple[list[dict], list[dict], dict[str, int]]:
    """Hears `uris` on the runner.

    Returns:
        (song records sorted by n, the position in `uris`; dead letters sorted by path;
        the counters heard / reused / dead as the runner reports them, where it does).

    Raises:
        PipelineError: the job failed or was cancelled (its finished shards are kept).
    """
    files = FileSystems.join(run_dir, "files.jsonl")
    write_lines(files, [{"n": n, "uri": uri} for n, uri in enumerate(uris)])
    pipeline = beam.Pipeline(options=pipeline_options)
    heard = (pipeline
             | "files" >> beam.io.ReadFromText(files)
             | "spread" >> beam.Reshuffle()
             | "hear" >> beam.ParDo(HearSong(recipe)).with_outputs(DEAD, main="songs"))
    for name in ("songs", DEAD):
        (heard[name] | f"{name} as json" >> beam.Map(json.dumps, ensure_ascii=False)
         | f"write {name}" >> beam.io.WriteToText(FileSystems.join(run_dir, name), file_name_suffix=".jsonl"))
    try:
        result = pipeline.run()
        state = result.wait_until_finish()
    except Exception as exc:  # runners raise their own kinds
        raise PipelineError(f"the pipeline failed ({mf.one_line(exc)[:300]})") from exc
    if state not in (None, beam.runners.runner.PipelineState.DONE):
        raise PipelineError(f"the pipeline ended {state}")
    counters = {}
    try:
        for counter in result.metrics().query(beam.metrics.MetricsFilter().with_namespace(METRICS))["counters"]:
            counters[counter.key.metric.name] = counters.get(counter.key.metric.name, 0) + counter.committed
    except Exception:  # some runners report no metrics; the records still count
        pass
    songs = sorted(read_lines(FileSystems.join(run_dir, "songs*.jsonl")), key=lambda r: r["n"])
    dead = sorted(read_lines(FileSystems.join(run_dir, f"{DEAD}*.jsonl")), key=lambda r: r["path"])
    return songs, dead, counters
