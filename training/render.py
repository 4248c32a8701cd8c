"""Studio recordings: a Song arranged for a small General MIDI band, rendered with FluidSynth.

The arrangement is drawn from the seed: the melody on a lead instrument; the song's own
accompaniment, or chord voicings (block chords per bar, arpeggios per beat or strums
per beat) from its chord symbols, or from chords derived from the melody when it has
neither; a bass line; drums for most songs. Each part is rendered on its own (events
scheduled by hand on one `fluidsynth.Synth` whose soundfont is loaded once), brought to
a common loudness, and mixed at seeded levels relative to the lead, so the melody stays
clearly audible whichever instruments were drawn.

FluidSynth's reverb and chorus are off: their modulation state survives a system reset,
so two renders of the same song and seed would differ. Room effects belong to the
augmentation that follows rendering.
"""
from __future__ import annotations

import collections
import dataclasses
from ctypes import c_int, c_void_p
from pathlib import Path

import fluidsynth
import numpy as np
import pretty_midi

from training.melody import Chord, Note, Song

PEAK = 0.9

_MIDI_CHANNELS = 16
_DRUM_CHANNEL = 9
_DRUM_BANK = 128
_KICK, _SNARE, _CLOSED_HAT = 36, 38, 42
_BASS_OCTAVE_MIDI = 36  # C2: bass notes lie in C2..B2
_CHORD_ROOT_MIDI = 48  # C3: roots of chords derived from the melody
_DRUM_PROBABILITY = 0.8
_STRUM_STEP_S = 0.012  # delay between strings of a strum
_LEGATO = 0.95  # generated notes end this fraction of the way to the next one
_BLOCK_SAMPLES = 64  # FluidSynth renders in blocks of 64 and keeps the rest of a block
_LOUDNESS_FRAME_SAMPLES = 2048
_LOUDNESS_PERCENTILE = 95  # loudness = this percentile of frame RMS: ignores rests
# Mix levels relative to the lead, in dB: (low, high) of a uniform draw per render.
_ACCOMPANIMENT_DB = (-9.0, -4.0)
_BASS_DB = (-10.0, -5.0)
_DRUM_DB = (-14.0, -8.0)
_MAJOR, _MINOR = (0, 4, 7), (0, 3, 7)

# General MIDI names (pretty_midi spelling) of instruments that carry a tune.
_LEAD_INSTRUMENTS = (
    "Voice Oohs", "Synth Choir", "Flute", "Violin", "Trumpet", "Alto Sax", "Clarinet",
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Electric Piano 1", "Oboe", "Recorder",
    "Soprano Sax", "Vibraphone",
)
_OWN_ACCOMPANIMENT_INSTRUMENTS = (
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano",
    "Electric Piano 2", "Acoustic Guitar (nylon)", "String Ensemble 1",
)
_PATTERN_INSTRUMENTS = {
    "block": ("Acoustic Grand Piano", "Electric Piano 2", "String Ensemble 1",
              "Drawbar Organ", "Pad 2 (warm)"),
    "arpeggio": ("Acoustic Grand Piano", "Orchestral Harp", "Acoustic Guitar (nylon)",
                 "Electric Piano 1"),
    "strum": ("Acoustic Guitar (nylon)", "Acoustic Guitar (steel)",
              "Electric Guitar (clean)"),
}
_BASS_INSTRUMENTS = ("Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)",
                     "Fretless Bass", "Synth Bass 1")

_write_float = fluidsynth.cfunc(
    "fluid_synth_write_float", c_int,
    ("synth", c_void_p, 1), ("len", c_int, 1),
    ("lout", c_void_p, 1), ("loff", c_int, 1), ("lincr", c_int, 1),
    ("rout", c_void_p, 1), ("roff", c_int, 1), ("rincr", c_int, 1))


def find_soundfonts() -> list[Path]:
    """The General MIDI soundfonts on this machine: FluidR3_GM, then pretty_midi's TimGM6mb.

    Returns:
        Existing soundfont files, best first; may be empty.
    """
    candidates = (Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
                  Path(pretty_midi.__file__).resolve().parent / "TimGM6mb.sf2")
    return [path for path in candidates if path.is_file()]


@dataclasses.dataclass(frozen=True)
class _Part:
    """One instrument of the arrangement: MIDI channel, preset, level and notes."""

    channel: int
    bank: int
    program: int
    level_db: float  # loudness in the mix relative to the lead
    notes: tuple[Note, ...]


class Renderer:
    """Renders Songs to mono audio with one FluidSynth instance and one soundfont.

    Use as a context manager, or call `close()`.
    """

    def __init__(self, soundfont: Path, sample_rate_hz: int):
        """
        Args:
            soundfont: a General MIDI .sf2 file.
            sample_rate_hz: output sample rate.

        Raises:
            ValueError: when FluidSynth cannot load the soundfont.
        """
        self.sample_rate_hz = sample_rate_hz
        self._synth = fluidsynth.Synth(
            samplerate=float(sample_rate_hz),
            **{"synth.reverb.active": 0, "synth.chorus.active": 0})
        self._soundfont_id = self._synth.sfload(str(soundfont))
        if self._soundfont_id < 0:
            self._synth.delete()
            raise ValueError(f"FluidSynth cannot load the soundfont {soundfont}")

    def close(self) -> None:
        """Frees the synthesizer; the Renderer is unusable afterwards."""
        if self._synth is not None:
            self._synth.delete()
            self._synth = None

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def render(self, song: Song, seed: int, start_s: float = 0.0,
               duration_s: float | None = None) -> np.ndarray:
        """Arranges the song from the seed and renders the span [start_s, start_s + duration_s).

        Notes overlapping the span sound from its start; the arrangement does not depend
        on the span, so a span is (up to notes cut at its start) a slice of the whole.

        Args:
            song: the song.
            seed: drives every arrangement choice; same seed, same audio.
            start_s: span start in song seconds.
            duration_s: span length in seconds; None renders to the end of the song.

        Returns:
            float32 array (n_samples,), n_samples = round(duration_s * sample_rate_hz),
            mono, peak-normalised to PEAK (all zeros when the span is silent).
        """
        if duration_s is None:
            duration_s = max(song.duration_s - start_s, 0.0)
        n_samples = round(duration_s * self.sample_rate_hz)
        audio = np.zeros(n_samples, dtype=np.float32)
        for part in _arrange(song, np.random.default_rng(seed)):
            stem = self._render_part(part, start_s, n_samples)
            loudness = _loudness(stem)
            if loudness > 0.0:
                audio += stem * np.float32(10.0 ** (part.level_db / 20.0) / loudness)
        peak = float(np.max(np.abs(audio), initial=0.0))
        if peak > 0.0:
            audio *= np.float32(PEAK / peak)
        return audio

    def _render_part(self, part: _Part, start_s: float, n_samples: int) -> np.ndarray:
        """Renders one part alone from start_s.

        Returns:
            float32 array (n_samples,), mono, unnormalised.
        """
        events = _events(part, start_s, n_samples, self.sample_rate_hz)
        self._reset()
        n_rendered = -(-n_samples // _BLOCK_SAMPLES) * _BLOCK_SAMPLES
        left = np.zeros(n_rendered, dtype=np.float32)
        right = np.zeros_like(left)
        self._synth.program_select(part.channel, self._soundfont_id, part.bank, part.program)
        cursor = 0
        for sample, is_on, pitch, velocity in events:
            if sample > cursor:
                self._write(left, right, cursor, sample - cursor)
                cursor = sample
            if is_on:
                self._synth.noteon(part.channel, pitch, velocity)
            else:
                self._synth.noteoff(part.channel, pitch)
        self._write(left, right, cursor, n_rendered - cursor)
        return 0.5 * (left[:n_samples] + right[:n_samples])

    def _reset(self) -> None:
        """Puts the synthesizer in the same state before every render.

        A system reset leaves the previous voices releasing; sounds-off stops them at
        the next block. FluidSynth also keeps per-voice amplitude ramps across voice
        reuse, so a note's first block would depend on what its voice played last:
        starting the same notes on every voice once, then silencing them, sets that
        state alike for all renders. Every step renders whole blocks, so each render
        starts at a block boundary.
        """
        scratch = np.zeros(_BLOCK_SAMPLES, dtype=np.float32)
        self._silence(scratch)
        polyphony = self._synth.get_setting("synth.polyphony")
        for channel in range(_MIDI_CHANNELS):
            if channel == _DRUM_CHANNEL:
                continue
            self._synth.program_select(channel, self._soundfont_id, 0, 0)
            for pitch in range(128):
                if self._synth.get_active_voice_count() >= polyphony:
                    break
                self._synth.noteon(channel, pitch, 100)
        self._write(scratch, scratch.copy(), 0, _BLOCK_SAMPLES)
        self._silence(scratch)

    def _silence(self, scratch: np.ndarray) -> None:
        """Stops every voice and renders one block (into scratch) so they are freed."""
        self._synth.system_reset()
        for channel in range(_MIDI_CHANNELS):
            self._synth.all_sounds_off(channel)
        self._write(scratch, scratch.copy(), 0, _BLOCK_SAMPLES)

    def _write(self, left: np.ndarray, right: np.ndarray, offset: int, n: int) -> None:
        """Renders n samples into left/right (float32 (m,)) from index offset."""
        if n > 0:
            _write_float(self._synth.synth, n, left.ctypes.data, offset, 1,
                         right.ctypes.data, offset, 1)


def _events(part: _Part, start_s: float, n_samples: int,
            sample_rate_hz: int) -> list[tuple[int, bool, int, int]]:
    """Note-on/off events of the part's notes overlapping [start_s, start_s + n_samples).

    Returns:
        (sample index from start_s, is note-on, pitch, velocity) tuples in time order;
        at equal times note-offs come first, so a repeated pitch is re-struck. Notes
        begun before start_s sound from its start.
    """
    events = []
    for note in part.notes:
        on = max(round((note.start_s - start_s) * sample_rate_hz), 0)
        off = round((note.end_s - start_s) * sample_rate_hz)
        if off <= 0 or on >= n_samples:
            continue
        events.append((on, True, note.pitch, note.velocity))
        if off < n_samples:
            events.append((max(off, on + 1), False, note.pitch, 0))
    events.sort(key=lambda event: (event[0], event[1]))
    return events


def _loudness(audio: np.ndarray) -> float:
    """A part's playing level: a high percentile of frame RMS, so rests do not count.

    Args:
        audio: float32 array (n_samples,).
    """
    n_frames = audio.size // _LOUDNESS_FRAME_SAMPLES
    if n_frames == 0:  # shorter than a frame: the RMS of all of it
        return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) if audio.size else 0.0
    frames = audio[:n_frames * _LOUDNESS_FRAME_SAMPLES].reshape(n_frames, -1)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    return float(np.percentile(rms, _LOUDNESS_PERCENTILE))


def _arrange(song: Song, rng: np.random.Generator) -> tuple[_Part, ...]:
    """Draws the arrangement of a song: lead, accompaniment, bass and maybe drums.

    The random draws happen in a fixed order, so the same seed gives the same parts.
    """
    lead = tuple(dataclasses.replace(n, velocity=int(np.clip(n.velocity, 60, 127)))
                 for n in song.melody)
    parts = [_Part(0, 0, _program(rng, _LEAD_INSTRUMENTS), 0.0, lead)]
    chords = song.chords or (() if song.accompaniment else _chords_from_melody(song))

    accompaniment_db = float(rng.uniform(*_ACCOMPANIMENT_DB))
    if song.accompaniment:
        parts.append(_Part(1, 0, _program(rng, _OWN_ACCOMPANIMENT_INSTRUMENTS),
                           accompaniment_db, song.accompaniment))
    else:
        pattern = str(rng.choice(sorted(_PATTERN_INSTRUMENTS)))
        program = _program(rng, _PATTERN_INSTRUMENTS[pattern])
        voicing = {"block": _block_chords, "arpeggio": _arpeggios, "strum": _strums}[pattern]
        parts.append(_Part(1, 0, program, accompaniment_db, voicing(song, chords, rng)))

    bass_program = _program(rng, _BASS_INSTRUMENTS)
    bass_db = float(rng.uniform(*_BASS_DB))
    if chords:
        bass = _bass_from_chords(song, chords, per_beat=bool(rng.random() < 0.5), rng=rng)
    else:
        bass = _bass_from_accompaniment(song, rng)
    parts.append(_Part(2, 0, bass_program, bass_db, bass))

    if rng.random() < _DRUM_PROBABILITY:
        drums_db = float(rng.uniform(*_DRUM_DB))
        parts.append(_Part(_DRUM_CHANNEL, _DRUM_BANK, 0, drums_db,
                           _drums(song, eighth_hats=bool(rng.random() < 0.5), rng=rng)))
    return tuple(parts)


def _program(rng: np.random.Generator, names: tuple[str, ...]) -> int:
    return pretty_midi.instrument_name_to_program(str(rng.choice(names)))


def _velocity(rng: np.random.Generator, base: int, spread: int = 6) -> int:
    return int(np.clip(base + rng.integers(-spread, spread + 1), 1, 127))


def _beat_times(song: Song, start_s: float, end_s: float) -> np.ndarray:
    """float64 array (n,): beat times (multiples of beat_s) in [start_s, end_s)."""
    first = np.ceil(start_s / song.beat_s - 1e-6)
    last = np.ceil(end_s / song.beat_s - 1e-6)
    return np.arange(first, last) * song.beat_s


def _strike_times(song: Song, chord: Chord, every_beats: int) -> list[float]:
    """When a chord is (re)struck: its start, then each beat inside it whose index (from
    the song's start) is a multiple of every_beats (1: every beat; beats_per_bar: bar lines)."""
    grid = [t for t in _beat_times(song, chord.start_s, chord.end_s)
            if round(t / song.beat_s) % every_beats == 0 and t > chord.start_s + 1e-6]
    return [chord.start_s, *grid]


def _held(times: list[float], end_s: float) -> list[tuple[float, float]]:
    """(start, end) of notes struck at `times`, each held towards the next, up to end_s."""
    ends = [*times[1:], end_s]
    return [(t, t + _LEGATO * (e - t)) for t, e in zip(times, ends)]


def _block_chords(song: Song, chords: tuple[Chord, ...],
                  rng: np.random.Generator) -> tuple[Note, ...]:
    notes = []
    for chord in chords:
        for start, end in _held(_strike_times(song, chord, song.beats_per_bar), chord.end_s):
            velocity = _velocity(rng, 70)
            notes.extend(Note(p, start, end, velocity) for p in chord.pitches)
    return tuple(notes)


def _arpeggios(song: Song, chords: tuple[Chord, ...],
               rng: np.random.Generator) -> tuple[Note, ...]:
    notes = []
    for chord in chords:
        tones = (*chord.pitches, chord.pitches[0] + 12)
        times = _strike_times(song, chord, 1)
        for i, (start, end) in enumerate(_held(times, chord.end_s)):
            notes.append(Note(tones[i % len(tones)], start, end, _velocity(rng, 72)))
    return tuple(notes)


def _strums(song: Song, chords: tuple[Chord, ...],
            rng: np.random.Generator) -> tuple[Note, ...]:
    notes = []
    for chord in chords:
        for start, end in _held(_strike_times(song, chord, 1), chord.end_s):
            velocity = _velocity(rng, 68)
            for k, pitch in enumerate(chord.pitches):
                onset = min(start + k * _STRUM_STEP_S, end - 1e-3)
                notes.append(Note(pitch, onset, end, velocity))
    return tuple(notes)


def _bass_from_chords(song: Song, chords: tuple[Chord, ...], per_beat: bool,
                      rng: np.random.Generator) -> tuple[Note, ...]:
    """Chord roots in octave 2, at each chord change and on every beat or on beats 1 and 3."""
    if per_beat:
        step = 1
    else:  # beats 1 and 3 of a 4-beat bar; the first beat of 2- and 3-beat bars
        step = 2 if song.beats_per_bar % 2 == 0 else song.beats_per_bar
    notes = []
    for chord in chords:
        pitch = _BASS_OCTAVE_MIDI + chord.pitches[0] % 12
        notes.extend(Note(pitch, start, end, _velocity(rng, 95)) for start, end
                     in _held(_strike_times(song, chord, step), chord.end_s))
    return tuple(notes)


def _bass_from_accompaniment(song: Song, rng: np.random.Generator) -> tuple[Note, ...]:
    """Per beat, the lowest accompaniment pitch sounding in it, moved to octave 2."""
    starts = np.array([n.start_s for n in song.accompaniment])
    ends = np.array([n.end_s for n in song.accompaniment])
    pitches = np.array([n.pitch for n in song.accompaniment])
    notes = []
    for beat in _beat_times(song, 0.0, song.duration_s):
        sounding = pitches[(starts < beat + song.beat_s) & (ends > beat)]
        if sounding.size:
            pitch = _BASS_OCTAVE_MIDI + int(sounding.min()) % 12
            notes.append(Note(pitch, beat, beat + _LEGATO * song.beat_s, _velocity(rng, 95)))
    return tuple(notes)


def _drums(song: Song, eighth_hats: bool, rng: np.random.Generator) -> tuple[Note, ...]:
    """Kick on the bar's first beat (and its middle in even metres), snare on the
    other even-metre backbeats, closed hi-hat on every beat or eighth."""
    content = song.melody + song.accompaniment
    first_s = min((n.start_s for n in content), default=0.0)
    bar_s = song.beat_s * song.beats_per_bar
    start_s = np.floor(first_s / bar_s + 1e-6) * bar_s
    hit_s = min(0.1, 0.5 * song.beat_s)
    notes = []
    for beat in _beat_times(song, start_s, song.duration_s):
        index = round(beat / song.beat_s) % song.beats_per_bar
        even_metre = song.beats_per_bar % 2 == 0
        if index == 0 or (even_metre and index == song.beats_per_bar // 2 and index % 2 == 0):
            notes.append(Note(_KICK, beat, beat + hit_s, _velocity(rng, 100)))
        elif even_metre and index % 2 == 1:
            notes.append(Note(_SNARE, beat, beat + hit_s, _velocity(rng, 90)))
        hats = (beat, beat + song.beat_s / 2) if eighth_hats else (beat,)
        notes.extend(Note(_CLOSED_HAT, t, t + hit_s / 2, _velocity(rng, 62, 10))
                     for t in hats if t < song.duration_s)
    return tuple(notes)


def _chords_from_melody(song: Song) -> tuple[Chord, ...]:
    """One triad per bar: the major or minor triad holding the most melody notes of the
    bar; ties go to the triad whose root is the bar's most frequent pitch class."""
    bar_s = song.beat_s * song.beats_per_bar
    n_bars = int(np.ceil(song.duration_s / bar_s - 1e-6))
    chords = []
    for bar in range(n_bars):
        start, end = bar * bar_s, (bar + 1) * bar_s
        classes = collections.Counter(n.pitch % 12 for n in song.melody
                                      if n.start_s < end and n.end_s > start)
        if not classes:
            continue
        best = max(
            ((root, shape) for root in range(12) for shape in (_MAJOR, _MINOR)),
            key=lambda triad: (
                sum(count for pc, count in classes.items()
                    if (pc - triad[0]) % 12 in triad[1]),
                classes[triad[0]],
                triad[1] == _MAJOR,
                -triad[0]))
        root, shape = best
        chords.append(Chord(start, min(end, song.duration_s),
                            tuple(_CHORD_ROOT_MIDI + root + step for step in shape)))
    return tuple(chords)
