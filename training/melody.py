"""One melody representation for every corpus: notes in seconds, with chords or accompaniment."""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Note:
    """A note: MIDI pitch, onset and offset in seconds, MIDI velocity."""

    pitch: int
    start_s: float
    end_s: float
    velocity: int = 90


@dataclasses.dataclass(frozen=True)
class Chord:
    """A chord symbol realised as MIDI pitches (root first), sounding from start_s to end_s."""

    start_s: float
    end_s: float
    pitches: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Song:
    """A melody with what accompanies it in its source.

    Attributes:
        song_id: unique across corpora, safe as a file stem, e.g. "pop909-001".
        title, artist: for display; artist may be "" when unknown.
        source: corpus name ("pop909", "openewld", "nottingham", "music21-essen", "written").
        licence: the source's licence ("MIT", "public-domain", "GPL-3", ...).
        shippable: whether audio and embeddings derived from it may go into assets/.
        melody: the tune a person would hum, monophonic, sorted by onset.
        accompaniment: the source's own accompaniment notes (POP909 piano track); may be empty.
        chords: chord symbols from the source; may be empty.
        beat_s: seconds per beat at the source tempo.
        beats_per_bar: beats in a bar.
    """

    song_id: str
    title: str
    artist: str
    source: str
    licence: str
    shippable: bool
    melody: tuple[Note, ...]
    accompaniment: tuple[Note, ...] = ()
    chords: tuple[Chord, ...] = ()
    beat_s: float = 0.5
    beats_per_bar: int = 4

    @property
    def duration_s(self) -> float:
        ends = [n.end_s for n in self.melody + self.accompaniment] + [c.end_s for c in self.chords]
        return max(ends, default=0.0)


def sounding_pitch(notes: Sequence[Note], times_s: np.ndarray, offset_semitones: float = 0.0
                   ) -> np.ndarray:
    """The pitch of a monophonic line at given instants.

    Args:
        notes: monophonic notes sorted by onset (song seconds).
        times_s: float array (n,) of song seconds.
        offset_semitones: added to every sounding pitch.

    Returns:
        float32 array (n,): MIDI pitch of the note sounding at each instant (start <= t <
        end), 0 where none sounds.
    """
    times_s = np.asarray(times_s, dtype=np.float64)
    if not notes:
        return np.zeros(times_s.shape, dtype=np.float32)
    starts = np.array([n.start_s for n in notes])
    ends = np.array([n.end_s for n in notes])
    pitches = np.array([n.pitch for n in notes], dtype=np.float64) + offset_semitones
    index = np.clip(np.searchsorted(starts, times_s, side="right") - 1, 0, len(notes) - 1)
    sounding = (times_s >= starts[index]) & (times_s < ends[index])
    return np.where(sounding, pitches[index], 0.0).astype(np.float32)


def sounding_roll(notes: Sequence[Note], times_s: np.ndarray) -> np.ndarray:
    """Which MIDI pitches any of `notes` (polyphonic, any order) sound at given instants.

    Args:
        notes: notes in song seconds; pitches outside 0..127 are left out.
        times_s: float array (n,) of song seconds, ascending.

    Returns:
        bool array (n, 128): [i, p] when a note of pitch p sounds at times_s[i] (start <= t < end).
    """
    times_s = np.asarray(times_s, dtype=np.float64)
    roll = np.zeros((times_s.size, 128), dtype=bool)
    for note in notes:
        if 0 <= note.pitch < 128:
            lo, hi = np.searchsorted(times_s, [note.start_s, note.end_s], side="left")
            roll[lo:hi, note.pitch] = True
    return roll
