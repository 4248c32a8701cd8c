"""Training configuration: frozen dataclasses with named presets, written beside each run."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """How training pairs are made.

    Attributes:
        excerpt_s: song seconds rendered and hummed per song (starting at a seeded
            melody onset), bounding memory.
        hums_per_song: synthetic queries per excerpt, each with its own voice, key and
            tempo, made from the notes or along the pitch-track path.
        track_fraction: share of queries made along the pitch-track path (sung rendition,
            pitch tracker, re-rendered), the rest are synthesized from the notes.
        tone_fraction: share of the pitch-track queries played by the tone generator
            rather than the hum synthesizer.
        sung_lead_fraction: share of recordings whose melody is sung by the synthetic
            singer instead of a General MIDI instrument.
        version_fraction: share of songs that also get another version (other
            arrangement, soundfont, tempo and key), aligned to the recording with the
            preliminary model; accepted alignments become extra queries.
        mic_chain_fraction: share of queries passed through a simulated room, noise and
            microphone; the rest stay as sung (people also hum in quiet rooms).
        production_fraction: share of recordings given reverb, compression, EQ and
            saturation; the rest stay as rendered.
        essen_limit: music21 Essen folk songs to include (0 = none).
        validation_fraction: fraction of training songs held out for validation (by song).
        test_fraction: fraction of shippable catalogue songs held out of training for
            the evaluation (never seen in training or validation).
    """

    excerpt_s: float = 45.0
    hums_per_song: int = 3
    track_fraction: float = 0.3
    tone_fraction: float = 0.3
    sung_lead_fraction: float = 0.4
    version_fraction: float = 0.5
    mic_chain_fraction: float = 0.5
    production_fraction: float = 0.5
    essen_limit: int = 1500
    validation_fraction: float = 0.05
    test_fraction: float = 0.1
    seed: int = 1234

    @staticmethod
    def default() -> "DataConfig":
        return DataConfig()

    @staticmethod
    def melody() -> "DataConfig":
        """The melody recipe: every pair carries frame-wise melody targets; no mined
        versions (they need a preliminary model), shorter excerpts so more songs fit."""
        return DataConfig(excerpt_s=24.0, version_fraction=0.0)

    @staticmethod
    def smoke() -> "DataConfig":
        return DataConfig(excerpt_s=12.0, hums_per_song=2, essen_limit=0, version_fraction=0.0)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Model, loss and optimisation.

    Attributes:
        embedding_dim: size of the L2-normalised output.
        channels: convolution channels per block.
        dense_units: hidden units before the embedding layer.
        batch_pairs: (hum, recording) pairs per batch, each from a different song.
        triplet_mining: "semi-hard" or "hard" negatives within the batch.
        margin: triplet margin in cosine similarity.
        triplet_weight: weight of the triplet loss (0: none).
        confidence_weight: weight of the in-batch softmax ("confidence") loss (0: none).
        temperature: softmax temperature of the confidence loss.
        tempo_range: hum windows are time-scaled by a factor drawn from this range.
        pitch_shift_bins: hum windows are shifted by up to this many frequency bins.
        jitter_frames: recording windows are offset by up to this many frames from the
            aligned position (half the catalogue hop: a query never aligns exactly).
    """

    name: str = "default"
    seed: int = 7
    embedding_dim: int = 32
    channels: tuple[int, ...] = (16, 32, 64, 96)
    dense_units: int = 256
    batch_pairs: int = 48
    steps_per_epoch: int = 150
    epochs: int = 30
    validation_batches: int = 20
    learning_rate: float = 2e-3
    triplet_mining: str = "semi-hard"
    margin: float = 0.2
    triplet_weight: float = 0.0  # the confidence loss alone did best (benchmarks/results/losses)
    confidence_weight: float = 1.0
    temperature: float = 0.1
    tempo_range: tuple[float, float] = (0.8, 1.25)
    pitch_shift_bins: int = 6
    jitter_frames: int = 50

    @staticmethod
    def default() -> "TrainConfig":
        return TrainConfig()

    @staticmethod
    def smoke() -> "TrainConfig":
        """Seconds on a CPU: for tests."""
        return TrainConfig(name="smoke", embedding_dim=16, channels=(4, 8, 8, 8), dense_units=16,
                           batch_pairs=2, steps_per_epoch=3, epochs=2, validation_batches=1)


def override(train: TrainConfig, settings: list[str]) -> TrainConfig:
    """`train` with fields replaced from "name=value" strings (tuples: comma-separated)."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    changes = {}
    for setting in settings:
        name, sep, value = setting.partition("=")
        if not sep or name not in fields:
            raise ValueError(f"{setting!r}: expected NAME=VALUE with NAME one of {', '.join(fields)}")
        current = getattr(train, name)
        if isinstance(current, tuple):
            changes[name] = tuple(type(current[0])(v) for v in value.split(","))
        else:
            changes[name] = type(current)(value)
    return dataclasses.replace(train, **changes)


def save(path: Path, data: DataConfig, train: TrainConfig, init: Path | None = None,
         backend: str | None = None) -> None:
    """Writes the resolved configuration; `init` names the weights the run started from,
    `backend` the Keras backend that trains it."""
    path.write_text(json.dumps({"data": dataclasses.asdict(data), "train": dataclasses.asdict(train),
                                "init": str(init) if init else None, "backend": backend},
                               indent=2) + "\n")


def load(path: Path) -> tuple[DataConfig, TrainConfig, str | None]:
    raw = json.loads(Path(path).read_text())
    train = dict(raw["train"], channels=tuple(raw["train"]["channels"]),
                 tempo_range=tuple(raw["train"]["tempo_range"]))
    return DataConfig(**raw["data"]), TrainConfig(**train), raw.get("init")
