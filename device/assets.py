"""The one place that resolves the default asset paths; everything else takes paths.

The assets are the package data of `hum_search_assets` (the repository's assets/ folder,
mapped by setup.cfg), found with importlib.resources in an installed wheel and in an
editable checkout alike.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

PACKAGE = "hum_search_assets"


def assets_dir() -> Path:
    """The installed assets folder: a real directory, as LiteRT opens files by path."""
    try:
        return Path(resources.files(PACKAGE))
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(f"no module {PACKAGE!r}: install hum-search (in a checkout: "
                                  f"pip install -e . or ./run demo)") from exc


def default_model_dir() -> Path:
    """The shipped melody model: model.tflite + manifest.json."""
    return assets_dir() / "model"


def default_catalogue_dir() -> Path:
    """The shipped default catalogue (self-contained, with its own copy of the model)."""
    return assets_dir() / "catalogue"


def demo_dir() -> Path:
    """Demo hum recordings identified by `hum-search demo` and `./run demo`."""
    return assets_dir() / "demo"


def models_run_dir() -> Path:
    """Where the checksums of models that have run once in a child process are noted
    (device.catalogue.open_model): $XDG_CACHE_HOME/hum-search/models-run."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "hum-search" / "models-run"
