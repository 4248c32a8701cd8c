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
        mic_chain_fraction: share of queries passed through a simulated room, noise and
            microphone; the rest stay as sung (people also hum in quiet rooms).
        production_fraction: share of recordings given reverb, compression, EQ and
            saturation; the rest stay as rendered.
        hard_render_fraction: share of recordings whose arrangement is drawn again
            until it is one the model hears worst (`training.render.is_hard`: the lead at
            or under the backing's loudness, or solo piano); 0 keeps the natural mix.
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
    mic_chain_fraction: float = 0.5
    production_fraction: float = 0.5
    hard_render_fraction: float = 0.0
    essen_limit: int = 1500
    validation_fraction: float = 0.05
    test_fraction: float = 0.1
    seed: int = 1234

    @staticmethod
    def default() -> "DataConfig":
        return DataConfig()

    @staticmethod
    def melody() -> "DataConfig":
        """The melody recipe: shorter excerpts than the default, so more songs fit."""
        return DataConfig(excerpt_s=24.0)

    @staticmethod
    def hard() -> "DataConfig":
        """The melody recipe with half the recordings drawn from the hard renders (72% of
        them hard in all, against 45% naturally)."""
        return DataConfig(excerpt_s=24.0, hard_render_fraction=0.5)

    @staticmethod
    def smoke() -> "DataConfig":
        return DataConfig(excerpt_s=12.0, hums_per_song=2, essen_limit=0)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Model, targets and optimisation of the melody model.

    Attributes:
        channels: convolution channels of the trunk (three sizes, see training.model).
        batch_windows: windows per batch.
        recording_fraction: share of windows taken from recordings (the rest from queries).
        sigma_bins: the target is a Gaussian of this width (frequency bins) around the
            true pitch, 1 at its centre.
        positive_weight: weight of the target's mass in the binary cross-entropy (the
            melody fills about 1% of the map).
        tempo_range: windows are time-scaled by a factor drawn from this range.
        time_stride: input frames per salience frame (the first convolution's stride).
        pitch_shift_bins: windows are transposed by up to this many bins (the target moves
            with them).
        context_dilations: one residual context block after the trunk per entry, reading
            the salience frames this far either side (training.model); () for none.
        held_weight: extra loss weight of a held note's later frames: a voiced frame t
            seconds into its note weighs 1 + held_weight * clip((t - 0.25) / 0.75, 0, 1)
            (training.salience.held_note_weights), where a buried lead is lost; 0 for none.
        backing_weight: weight of a second output's loss, "backing", which learns the
            pitches the backing plays (training.salience.roll_map) from the same trunk, so
            that the trunk tells them from the lead's; the device never runs it
            (converter.convert keeps "salience" alone); 0 for no second output.
    """

    name: str = "default"
    seed: int = 7
    channels: tuple[int, ...] = (16, 16, 8)
    batch_windows: int = 16
    steps_per_epoch: int = 100
    epochs: int = 40
    validation_batches: int = 16
    learning_rate: float = 2e-3
    recording_fraction: float = 0.6
    sigma_bins: float = 1.0
    positive_weight: float = 4.0
    tempo_range: tuple[float, float] = (0.75, 1.33)
    pitch_shift_bins: int = 8
    time_stride: int = 2
    context_dilations: tuple[int, ...] = ()
    held_weight: float = 0.0
    backing_weight: float = 0.0

    @staticmethod
    def default() -> "TrainConfig":
        return TrainConfig()

    @staticmethod
    def smoke() -> "TrainConfig":
        """Seconds on a CPU: for tests."""
        return TrainConfig(name="smoke", channels=(4, 4, 4), batch_windows=2, steps_per_epoch=3,
                           epochs=2, validation_batches=1)


def override(train: TrainConfig, settings: list[str]) -> TrainConfig:
    """`train` with fields replaced from "name=value" strings (tuples: comma-separated)."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    changes = {}
    for setting in settings:
        name, sep, value = setting.partition("=")
        if not sep or name not in fields:
            raise ValueError(f"{setting!r}: expected NAME=VALUE with NAME one of {', '.join(fields)}")
        current = getattr(train, name)
        if isinstance(current, tuple):  # an empty default holds integers (context_dilations)
            kind = type(current[0]) if current else int
            changes[name] = tuple(kind(v) for v in value.split(",") if v)
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
    train = {name: tuple(value) if isinstance(value, list) else value  # JSON keeps tuples as lists
             for name, value in raw["train"].items()}
    return DataConfig(**raw["data"]), TrainConfig(**train), raw.get("init")
