"""Catalogue building as an Apache Beam pipeline, for catalogues larger than one machine
(`hum-search-beam`, the `distributed` extra; the device install never imports Beam).

One stage per file:
    sources.py   the audio files of the given folders or URIs (any filesystem Beam reads)
    shards.py    per-song results kept between runs, keyed by file content and recipe
    hear.py      the DoFn: decode, frontend, melody model and shortlist windows per song
                 (device.indexing.hear, device.catalogue.song_windows), or a dead letter
    pipeline.py  the Beam pipeline: files -> hear -> song records and dead letters
    assemble.py  the catalogue from the records, on one machine (device.catalogue.write_catalogue)
    build.py     the launcher: checks and lists, runs the pipeline, assembles, reports
    cli.py       hum-search-beam

The package is `beam_index`, not `distributed`: that name belongs to Dask's scheduler.
"""
