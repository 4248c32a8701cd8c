"""Batches of spectrogram windows and their melody targets (pitch x time maps).

Windows come from rendered recordings (target: the lead as played), from synthetic
queries (target: the query's own f0) and from the training singers of mir1k-dev (target:
the hand labels; the voice is remixed over its accompaniment at a random level). Each
window is time-scaled and transposed, and its target with it.
"""
from __future__ import annotations

import keras
import numpy as np

from device import frontend as fe
from device.melody import FLOOR_DB  # fills bins shifted in from outside, and short clips
from training import mir1k
from training.config import TrainConfig
from training.pair_shards import SongPairs



def stretch_frames(spec: np.ndarray, n_out: int) -> np.ndarray:
    """Linear interpolation along time: float32 (n_in, bins) -> (n_out, bins)."""
    n_in = spec.shape[0]
    pos = np.linspace(0.0, n_in - 1.0, n_out)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    w = (pos - lo)[:, None].astype(np.float32)
    return spec[lo] * (1.0 - w) + spec[hi] * w


def shift_bins(spec: np.ndarray, shift: int) -> np.ndarray:
    """Transposes a log-frequency window by `shift` bins (positive = up), filling with the floor."""
    if shift == 0:
        return spec
    out = np.full_like(spec, FLOOR_DB)
    if shift > 0:
        out[:, shift:] = spec[:, :-shift]
    else:
        out[:, :shift] = spec[:, -shift:]
    return out


MIR1K_FRACTION = 0.15  # share of windows from mir1k-dev, when its clips are given
MIR1K_VOICE_DB = (-6.0, 6.0)  # the voice's level over the accompaniment when remixed


def target_map(midi: np.ndarray, config: fe.FrontendConfig, sigma_bins: float) -> np.ndarray:
    """The salience target of a pitch track.

    Args:
        midi: float (n_frames,): MIDI pitch per frame, 0 (or below the lowest bin) where silent.
        sigma_bins: Gaussian width around the true pitch, in frequency bins.

    Returns:
        float32 (n_frames, n_bins): exp(-d^2 / 2 sigma^2) for d the distance in bins from the
        pitch, all zeros where unvoiced or outside the frontend's range.
    """
    midi = np.asarray(midi, dtype=np.float32)
    position = (midi - config.fmin_midi) * config.bins_per_semitone
    voiced = (midi > 0) & (position >= -0.5) & (position <= config.n_bins - 0.5)
    d = np.arange(config.n_bins, dtype=np.float32)[None, :] - position[:, None]
    return np.where(voiced[:, None], np.exp(-0.5 * (d / sigma_bins) ** 2), 0.0).astype(np.float32)


def roll_map(roll: np.ndarray, shift_bins: int, config: fe.FrontendConfig, sigma_bins: float) -> np.ndarray:
    """The salience target of several pitches at once (a pitch roll), as target_map is of one.

    Args:
        roll: bool (n_frames, 128): [t, p] when MIDI pitch p sounds in frame t.
        shift_bins: every pitch moved up by this many frequency bins (a transposed window).
        sigma_bins: Gaussian width around each pitch, in frequency bins.

    Returns:
        float32 (n_frames, n_bins): per cell, the sum of the sounding pitches' Gaussians
        capped at 1; pitches outside the frontend's range add nothing.
    """
    position = (np.arange(128, dtype=np.float32) - config.fmin_midi) * config.bins_per_semitone + shift_bins
    inside = (position >= -0.5) & (position <= config.n_bins - 0.5)
    d = np.arange(config.n_bins, dtype=np.float32)[None, :] - position[:, None]
    kernel = np.where(inside[:, None], np.exp(-0.5 * (d / sigma_bins) ** 2), 0.0).astype(np.float32)
    return np.minimum(roll.astype(np.float32) @ kernel, 1.0)


HELD_START_S = 0.25  # a note's frames weigh more from this far into it ...
HELD_RAMP_S = 0.75  # ... reaching 1 + held_weight this much later


def seconds_into_note(midi: np.ndarray, frame_s: float) -> np.ndarray:
    """float32 (n_frames,): how long each voiced frame's note has sounded, in seconds (0 where
    silent). A note begins on a voiced frame after silence, or on one more than half a
    semitone from the pitch its note began on.

    Args:
        midi: float (n_frames,): MIDI pitch per frame, 0 where silent.
        frame_s: seconds per frame.
    """
    since = np.zeros(len(midi), np.float32)
    start_pitch, start = 0.0, 0
    for i, pitch in enumerate(np.asarray(midi, dtype=np.float32)):
        if pitch <= 0:
            start_pitch = 0.0
            continue
        if start_pitch <= 0 or abs(pitch - start_pitch) > 0.5:
            start_pitch, start = float(pitch), i
        since[i] = (i - start) * frame_s
    return since


def held_note_weights(midi: np.ndarray, frame_s: float, held_weight: float) -> np.ndarray:
    """Loss weights that stress held notes, where the lead decays under the backing's attacks.

    Args:
        midi: float (n_frames,): MIDI pitch per target frame, 0 where silent.
        frame_s: seconds per target frame.
        held_weight: the extra weight a frame reaches once well into its note.

    Returns:
        float32 (n_frames,): 1 + held_weight * clip((t - 0.25 s) / 0.75 s, 0, 1) on voiced
        frames t seconds into their note (seconds_into_note), 1 where silent.
    """
    ramp = np.clip((seconds_into_note(midi, frame_s) - HELD_START_S) / HELD_RAMP_S, 0.0, 1.0)
    return np.where(np.asarray(midi) > 0, 1.0 + held_weight * ramp, 1.0).astype(np.float32)


def stretch_track(midi: np.ndarray, n_out: int) -> np.ndarray:
    """Nearest-frame resampling along the first axis of a pitch track (n,) or a pitch roll
    (n, pitches) (no interpolation across voicing edges)."""
    index = np.round(np.linspace(0.0, len(midi) - 1.0, n_out)).astype(np.int64)
    return midi[index]


def _window(spec: np.ndarray, midi: np.ndarray, backing: np.ndarray | None, rng: np.random.Generator,
            config: TrainConfig, frontend: fe.FrontendConfig, min_voiced: float):
    """A random augmented window; None when none qualifies.

    Args:
        spec, midi: a dB spectrogram (n, bins) and its pitch track (n,).
        backing: uint8 (n, 16) packed backing pitches (SongPairs.recording_backing), or None.

    Returns:
        (float32 (w, bins) window, float32 (w,) pitch track, bool (w, 128) backing pitches
        or None, the transposition in bins), w = frontend.window_frames.
    """
    w = frontend.window_frames
    factor = float(np.exp(rng.uniform(*np.log(config.tempo_range))))
    span = int(round(w * factor))
    if spec.shape[0] < span:
        pad = span - spec.shape[0]
        spec = np.concatenate([spec, np.full((pad, spec.shape[1]), FLOOR_DB, spec.dtype)])
        midi = np.concatenate([midi, np.zeros(pad, midi.dtype)])
        if backing is not None:
            backing = np.concatenate([backing, np.zeros((pad, backing.shape[1]), backing.dtype)])
    for _ in range(4):
        s0 = int(rng.integers(spec.shape[0] - span + 1))
        track = midi[s0:s0 + span]
        if np.mean(track > 0) >= min_voiced:
            break
    else:
        return None
    window = stretch_frames(spec[s0:s0 + span].astype(np.float32), w)
    track = stretch_track(track.astype(np.float32), w)
    if backing is not None:
        backing = stretch_track(np.unpackbits(backing[s0:s0 + span], axis=1).astype(bool), w)
    shift = int(rng.integers(-config.pitch_shift_bins, config.pitch_shift_bins + 1))
    window = shift_bins(window, shift)
    track = np.where(track > 0, track + shift / frontend.bins_per_semitone, 0.0)
    return window, track, backing, shift


def _mir1k_track(clip: mir1k.Clip, rng: np.random.Generator, frontend: fe.FrontendConfig
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The clip remixed (voice at a random level over the accompaniment): (dB spectrogram, labels)."""
    gain = 10.0 ** (rng.uniform(*MIR1K_VOICE_DB) / 20.0)
    voice_rms = np.sqrt(np.mean(clip.voice ** 2)) + 1e-9
    backing_rms = np.sqrt(np.mean(clip.accompaniment ** 2)) + 1e-9
    mix = clip.accompaniment + clip.voice * np.float32(gain * backing_rms / voice_rms)
    spec = fe.log_spectrogram(mix / max(float(np.abs(mix).max()), 1e-9), frontend)
    return spec, mir1k.frame_labels(clip, spec.shape[0], frontend)


def sample_window(songs: list[SongPairs], clips: list[mir1k.Clip], rng: np.random.Generator,
                  config: TrainConfig, frontend: fe.FrontendConfig) -> tuple[np.ndarray, ...]:
    """One training example: float32 (window_frames, n_bins) normalised window, its target
    float32 (f, n_bins) and the target frames' loss weights float32 (f,)
    (held_note_weights), f = window_frames // config.time_stride; then, when
    config.backing_weight > 0, the backing's target float32 (f, n_bins) (roll_map: what
    the backing plays; nothing in a query) and its frame weights float32 (f,) (0 where the
    backing is not known: mir1k-dev, shards made before backing targets)."""
    while True:
        backing = None
        known = True
        if clips and rng.random() < MIR1K_FRACTION:
            spec, midi = _mir1k_track(clips[int(rng.integers(len(clips)))], rng, frontend)
            min_voiced, known = 0.3, False
        else:
            song = songs[int(rng.integers(len(songs)))]
            if rng.random() < config.recording_fraction or not song.hums_db:
                spec, midi, min_voiced = song.recording_db, song.recording_midi, 0.2
                known = song.recording_backing is not None
                backing = song.recording_backing if config.backing_weight > 0 else None
            else:
                q = int(rng.integers(len(song.hums_db)))
                spec, midi, min_voiced = song.hums_db[q], song.hums_midi[q], 0.4
        made = _window(spec, midi, backing, rng, config, frontend, min_voiced)
        if made is not None:
            window, track, roll, shift = made
            s = config.time_stride
            track = track[::s]
            example = (fe.normalize_windows(window, frontend),
                       target_map(track, frontend, config.sigma_bins),
                       held_note_weights(track, s / frontend.frame_rate_hz, config.held_weight))
            if config.backing_weight <= 0:
                return example
            roll = np.zeros((len(track), 128), bool) if roll is None else roll[::s]
            return example + (roll_map(roll, shift, frontend, config.sigma_bins),
                              np.full(len(track), float(known), np.float32))


class SalienceBatches(keras.utils.PyDataset):
    """(windows (B, frames, bins), targets (B, frames // time_stride, bins), frame weights
    (B, frames // time_stride)) batches; with config.backing_weight > 0, targets and
    weights are dicts by output name, "salience" and "backing" (sample_window).

    Args:
        songs: cached pairs with melody targets.
        clips: mir1k-dev training clips (may be empty).
        n_batches: batches per epoch.
        seed: a fixed seed: `fixed=True` gives the same batches every epoch (validation).
    """

    def __init__(self, songs: list[SongPairs], clips: list[mir1k.Clip], config: TrainConfig,
                 frontend: fe.FrontendConfig, n_batches: int, seed: int, fixed: bool = False):
        super().__init__()
        if not songs or any(s.recording_midi is None for s in songs):
            raise ValueError("salience batches need pairs with melody targets (preset 'melody')")
        self.songs, self.clips, self.config, self.frontend = songs, clips, config, frontend
        self.n_batches, self.seed, self.fixed, self.epoch = n_batches, seed, fixed, 0

    def __len__(self) -> int:
        return self.n_batches

    def on_epoch_end(self) -> None:
        if not self.fixed:
            self.epoch += 1

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        examples = [sample_window(self.songs, self.clips, rng, self.config, self.frontend)
                    for _ in range(self.config.batch_windows)]
        stacked = [np.stack(column) for column in zip(*examples)]
        if self.config.backing_weight <= 0:
            return tuple(stacked)
        windows, target, weights, backing, backing_weights = stacked
        return windows, {"salience": target, "backing": backing}, {"salience": weights, "backing": backing_weights}
