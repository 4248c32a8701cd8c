"""The one place that resolves the default asset paths; everything else takes paths."""
from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"


def default_model_dir() -> Path:
    """The shipped embedding model: model.tflite + manifest.json."""
    return ASSETS_DIR / "model"


def default_catalogue_dir() -> Path:
    """The shipped default catalogue (self-contained, with its own copy of the model)."""
    return ASSETS_DIR / "catalogue"


def demo_dir() -> Path:
    """Demo hum recordings identified by the README's first command."""
    return ASSETS_DIR / "demo"
