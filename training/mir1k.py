"""MIR-1K (mir1k-dev): real singers over real karaoke accompaniment, with hand-labelled pitch.

Three singers train the melody model; the other two are held out, and every evaluation on
real voices reports on them alone.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from device import frontend as fe

TRAINING_SINGERS = ("Ani", "annar", "ariel")
LABEL_RATE_HZ = 50.0  # one label per 20 ms ...
LABEL_FIRST_S = 0.02  # ... the first centred at 20 ms


@dataclasses.dataclass(frozen=True)
class Clip:
    """One clip: its two channels at the frontend rate and its labels.

    Attributes:
        name: the file stem, "singer_song_clip".
        accompaniment, voice: float32 (n_samples,) each.
        labels_midi: float32 (n_labels,): the voice's pitch per 20 ms, 0 where unvoiced.
    """

    name: str
    accompaniment: np.ndarray
    voice: np.ndarray
    labels_midi: np.ndarray

    @property
    def singer(self) -> str:
        return self.name.split("_")[0]


def clip_paths(shared_data: Path) -> list[Path]:
    """Every mir1k-dev clip (stereo FLAC: left accompaniment, right voice), sorted."""
    return sorted((Path(shared_data) / "mir1k-dev" / "audio").glob("*.flac"))


def is_training_clip(path: Path) -> bool:
    return Path(path).stem.split("_")[0] in TRAINING_SINGERS


def load_clip(path: Path, sample_rate_hz: int) -> Clip:
    """Reads a clip and its labels (pitch/<stem>.pv); the audio must be at sample_rate_hz."""
    import soundfile  # only here: training imports this module where soundfile may be absent
    path = Path(path)
    stereo, rate = soundfile.read(path, dtype="float32", always_2d=True)
    if rate != sample_rate_hz:
        raise ValueError(f"{path}: {rate} Hz, expected {sample_rate_hz}")
    labels = np.loadtxt(path.parent.parent / "pitch" / f"{path.stem}.pv", dtype=np.float32, ndmin=1)
    return Clip(path.stem, stereo[:, 0].copy(), stereo[:, 1].copy(), labels)


def labels_at(labels_midi: np.ndarray, times_s: np.ndarray) -> np.ndarray:
    """float32 (n,): the label nearest each time (0 beyond the labelled span)."""
    index = np.round((np.asarray(times_s) - LABEL_FIRST_S) * LABEL_RATE_HZ).astype(np.int64)
    inside = (index >= 0) & (index < labels_midi.size)
    return np.where(inside, labels_midi[np.clip(index, 0, labels_midi.size - 1)], 0.0).astype(np.float32)


def frame_labels(clip: Clip, n_frames: int, config: fe.FrontendConfig) -> np.ndarray:
    """float32 (n_frames,): the voice's labelled pitch at each frontend frame centre."""
    centres = (np.arange(n_frames) * config.hop_length_samples
               + config.frame_length_samples / 2) / config.sample_rate_hz
    return labels_at(clip.labels_midi, centres)
