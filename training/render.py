"""Studio recordings: a Song arranged in one of four styles and rendered with FluidSynth.

An `Arrangement` is drawn from (song, seed) by `arrange`: a style ("band": comping on
guitar, piano or organ, electric bass, a rock kit with backbeat; "piano": both hands on
one piano; "strings": ensemble, pizzicato or harp under a violin or woodwind, cello or
contrabass, sometimes timpani; "electronic": synth lead, pad and bass, an electronic kit
with four-on-the-floor kick), the instrument of each part, the melody on a voice-like
patch or an instrument, sometimes doubled an octave away or in unison, sometimes joined
by a harmony line (a diatonic third or sixth below) or a backing line (a countermelody
or held notes of chord tones), and the mix levels. The song's own accompaniment is voiced
on the style's instrument; without one, chords (the song's, or derived from the melody)
are voiced as block chords, arpeggios, strums, Alberti figures or a held pad.

Each part is rendered on its own (events scheduled by hand on one `fluidsynth.Synth`
whose soundfont is loaded once) and brought to a common loudness. The backing
(accompaniment, bass and drums at levels relative to the accompaniment, plus the harmony
or backing line) is summed; the lead (melody and its doubling) is added at
`Arrangement.lead_db` relative to the backing's loudness, from clearly on top to buried.
`mix_lead` does that last step, so a caller can render the backing alone
(`Renderer.render(..., lead=False)`) and put a sung melody in the lead's place.

FluidSynth's reverb and chorus are off: their modulation state survives a system reset,
so two renders of the same song and seed would differ. Room effects belong to the
augmentation that follows rendering.
"""
from __future__ import annotations

import bisect
import collections
import dataclasses
from ctypes import c_int, c_void_p
from pathlib import Path

import fluidsynth
import numpy as np
import pretty_midi

from training.melody import Chord, Note, Song

PEAK = 0.9
STYLES = ("band", "piano", "strings", "electronic")

_MIDI_CHANNELS = 16
_DRUM_CHANNEL = 9
_CHANNELS = {"lead": 0, "doubling": 1, "line": 2, "accompaniment": 3, "bass": 4, "timpani": 5}
_DRUM_BANK = 128
_KITS = {"Standard": 0, "Room": 8, "Power": 16, "Electronic": 24, "TR-808": 25}  # bank 128
_TIMPANI = "Timpani"  # in place of a kit: a melodic part on chord roots
_KICK, _SNARE, _CLAP, _CLOSED_HAT, _OPEN_HAT, _CRASH = 36, 38, 39, 42, 46, 49
_FILL = (_SNARE, _SNARE, 45, 41)  # sixteenths into a phrase: snare, snare, mid tom, low tom
_PHRASE_BARS = 4
_HATS = {"quarter": 1, "eighth": 2, "sixteenth": 4}  # hi-hat strokes per beat
_BASS_OCTAVE_MIDI = 36  # C2: bass notes lie in C2..B2
_TIMPANI_LOW_MIDI = 41  # F2: timpani roots lie in F2..E3
_CHORD_ROOT_MIDI = 48  # C3: roots of chords derived from the melody
_LINE_RANGE_MIDI = (52, 67)  # E3..G4: where countermelodies and held lines move
# Every pool instrument sounds in every soundfont of find_soundfonts up to these pitches
# (some stop not far above: FluidR3's violin at A6): higher notes move down octaves.
_LEAD_TOP_MIDI = 91
_TOP_MIDI = 96
_DOUBLING_LOW_MIDI = 48  # an octave-down doubling stays at or above C3
_STRUM_STEP_S = 0.012  # delay between strings of a strum
_LEGATO = 0.95  # generated notes end this fraction of the way to the next one
_BLOCK_SAMPLES = 64  # FluidSynth renders in blocks of 64 and keeps the rest of a block
_LOUDNESS_FRAME_SAMPLES = 2048
_LOUDNESS_PERCENTILE = 95  # loudness = this percentile of frame RMS: ignores rests
_MAJOR, _MINOR = (0, 4, 7), (0, 3, 7)
_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)

_STYLE_WEIGHTS = (0.4, 0.2, 0.2, 0.2)  # of STYLES
_VOICE_PROBABILITY = 0.3  # the melody on a voice-like patch
_DOUBLING_PROBABILITY = 0.3
_LINES = ("none", "third", "sixth", "countermelody", "held")
_LINE_WEIGHTS = (0.5, 0.15, 0.1, 0.13, 0.12)
_HAT_WEIGHTS = {"band": (0.2, 0.55, 0.25), "electronic": (0.0, 0.6, 0.4)}  # of _HATS
_FILL_PROBABILITY = 0.5
_PIANO_BASS_PROBABILITY = 0.5
# Levels in dB, (low, high) of a uniform draw per render. The lead is relative to the
# backing's loudness; doubling and line relative to the lead; bass and drums relative
# to the accompaniment.
_LEAD_DB = (-5.0, 8.0)
_DOUBLING_DB = (-12.0, -4.0)
_LINE_DB = (-5.0, 0.0)
_BASS_DB = (-6.0, 1.0)
_DRUM_DB = (-9.0, -2.0)
_TIMPANI_DB = (-14.0, -8.0)

_write_float = fluidsynth.cfunc(
    "fluid_synth_write_float", c_int,
    ("synth", c_void_p, 1), ("len", c_int, 1),
    ("lout", c_void_p, 1), ("loff", c_int, 1), ("lincr", c_int, 1),
    ("rout", c_void_p, 1), ("roff", c_int, 1), ("rincr", c_int, 1))


@dataclasses.dataclass(frozen=True)
class _Style:
    """Instrument pools (General MIDI names, pretty_midi spelling) and habits of a style.

    Every instrument was checked to sound over its part's range in each soundfont
    of `find_soundfonts` (tests/test_render.py keeps checking).
    """

    leads: tuple[str, ...]  # melody instruments; empty: the accompaniment's piano
    voices: tuple[str, ...]  # voice-like melody patches
    accompaniments: tuple[str, ...]
    voicings: tuple[str, ...]  # for chords, when the song has no accompaniment of its own
    lines: tuple[str, ...]  # harmony and backing lines; empty: the accompaniment's piano
    basses: tuple[str, ...]  # empty: a piano bass or none
    bass_steps: tuple[str, ...]  # how often the bass strikes: "bar", "half", "beat", "eighth"
    kits: tuple[str, ...]  # of _KITS, or _TIMPANI
    drum_probability: float


_STYLES = {
    "band": _Style(
        leads=("Electric Piano 1", "Trumpet", "Soprano Sax", "Tenor Sax", "Harmonica",
               "Electric Guitar (clean)", "Overdriven Guitar", "Flute", "Clarinet",
               "Vibraphone", "Rock Organ"),
        voices=("Choir Aahs", "Voice Oohs", "Synth Choir"),
        accompaniments=("Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Piano 1",
                        "Electric Piano 2", "Drawbar Organ", "Rock Organ",
                        "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)",
                        "Electric Guitar (clean)", "Electric Guitar (jazz)"),
        voicings=("block", "arpeggio", "strum", "alberti", "pad"),
        lines=("Voice Oohs", "Choir Aahs", "Electric Guitar (clean)", "Drawbar Organ",
               "String Ensemble 1", "Tenor Sax", "Trumpet"),
        basses=("Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)",
                "Fretless Bass"),
        bass_steps=("half", "beat", "eighth"),
        kits=("Standard", "Room", "Power"),
        drum_probability=0.9),
    "piano": _Style(
        leads=(),
        voices=("Choir Aahs", "Voice Oohs"),
        accompaniments=("Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano",
                        "Honky-tonk Piano", "Electric Piano 1", "Electric Piano 2"),
        voicings=("block", "arpeggio", "alberti"),
        lines=(),
        basses=(),
        bass_steps=("bar", "half"),
        kits=(),
        drum_probability=0.0),
    "strings": _Style(
        leads=("Violin", "Flute", "Oboe", "Clarinet", "Recorder"),
        voices=("Choir Aahs", "Voice Oohs"),
        accompaniments=("String Ensemble 1", "String Ensemble 2", "Tremolo Strings",
                        "Pizzicato Strings", "Orchestral Harp"),
        voicings=("block", "arpeggio", "alberti", "pad"),
        lines=("Viola", "Cello", "French Horn", "Clarinet", "String Ensemble 1", "Choir Aahs"),
        basses=("Cello", "Contrabass"),
        bass_steps=("bar", "half", "beat"),
        kits=(_TIMPANI,),
        drum_probability=0.4),
    "electronic": _Style(
        leads=("Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 5 (charang)",
               "Synth Brass 1"),
        voices=("Synth Choir", "Voice Oohs", "Lead 6 (voice)"),
        accompaniments=("Pad 1 (new age)", "Pad 3 (polysynth)", "Synth Strings 1",
                        "Electric Piano 2"),
        voicings=("block", "arpeggio", "alberti", "pad"),
        lines=("Synth Strings 1", "Lead 3 (calliope)", "Synth Choir", "Synth Brass 1",
               "Pad 1 (new age)"),
        basses=("Synth Bass 1", "Synth Bass 2"),
        bass_steps=("beat", "eighth"),
        kits=("Electronic", "TR-808"),
        drum_probability=1.0),
}


def find_soundfonts() -> list[Path]:
    """The General MIDI soundfonts on this machine: FluidR3_GM, MuseScore_General_Lite
    (.sf3), TimGM6mb.

    pretty_midi bundles its own TimGM6mb, used only when the system has none: the two
    copies are versions of one font (the bundled one is silent on the alto sax's E4).

    Returns:
        Existing soundfont files, best first, one per file name; may be empty.
    """
    candidates = (Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
                  Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"),
                  Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
                  Path(pretty_midi.__file__).resolve().parent / "TimGM6mb.sf2")
    found = []
    for path in candidates:
        if path.is_file() and path.name not in {p.name for p in found}:
            found.append(path)
    return found


@dataclasses.dataclass(frozen=True)
class Arrangement:
    """How a song is played in one render; instruments are General MIDI names.

    Attributes:
        style: one of STYLES.
        lead: the instrument carrying the melody.
        voice_lead: whether `lead` is a voice-like patch.
        lead_db: loudness of the lead (melody and doubling) over the backing's, dB;
            negative: the melody is buried.
        doubling: the instrument doubling the melody, or None.
        doubling_semitones: the doubling's offset from the melody: -12, 0 or 12.
        doubling_db: the doubling's loudness relative to the melody's, dB.
        line: "none", "third" or "sixth" (a harmony line below the melody),
            "countermelody" (chord tones moving every half bar) or "held" (a chord tone
            held through each chord).
        line_instrument: the line's instrument, or None.
        line_db: the line's loudness relative to lead_db, dB; measured, unlike the
            lead's, over the accompaniment, bass and drums alone.
        accompaniment: the accompaniment's instrument.
        voicing: "own" (the song's accompaniment), "block", "arpeggio", "strum",
            "alberti" or "pad".
        bass: the bass instrument, or None.
        bass_step: how often the bass strikes: "bar", "half", "beat" or "eighth".
        bass_db: the bass's loudness relative to the accompaniment's, dB.
        drums: a drum kit ("Standard", "Room", "Power", "Electronic", "TR-808"),
            "Timpani", or None.
        hats: hi-hat strokes: "quarter", "eighth" or "sixteenth".
        fills: whether phrases (4 bars) start with a crash after a fill.
        drums_db: the drums' loudness relative to the accompaniment's, dB.
    """

    style: str
    lead: str
    voice_lead: bool
    lead_db: float
    doubling: str | None
    doubling_semitones: int
    doubling_db: float
    line: str
    line_instrument: str | None
    line_db: float
    accompaniment: str
    voicing: str
    bass: str | None
    bass_step: str
    bass_db: float
    drums: str | None
    hats: str
    fills: bool
    drums_db: float

    def describe(self) -> str:
        """One line for logs and figure captions; levels in dB as in the attributes."""
        text = [f"{self.style}: {self.lead} lead {self.lead_db:+.1f} dB"]
        if self.doubling:
            where = {-12: "an octave below", 0: "in unison", 12: "an octave above"}
            text.append(f"doubled {where[self.doubling_semitones]} by {self.doubling} "
                        f"{self.doubling_db:+.1f} dB")
        if self.line_instrument:
            kind = f"{self.line} below" if self.line in ("third", "sixth") else f"{self.line} line"
            text.append(f"{kind} on {self.line_instrument} {self.line_db:+.1f} dB")
        text.append(f"{self.accompaniment} ({self.voicing})")
        if self.bass:
            text.append(f"bass {self.bass} per {self.bass_step} {self.bass_db:+.1f} dB")
        if self.drums == _TIMPANI:
            text.append(f"timpani {self.drums_db:+.1f} dB")
        elif self.drums:
            fills = ", fills" if self.fills else ""
            text.append(f"drums {self.drums} ({self.hats} hats{fills}) {self.drums_db:+.1f} dB")
        return "; ".join(text)


def arrange(song: Song, seed: int, style: str | None = None) -> Arrangement:
    """Draws how the song is played from the seed (the notes are drawn at rendering).

    Args:
        song: the song.
        seed: same seed, same arrangement.
        style: one of STYLES to force it; the other draws stay those of the seed.
    """
    rng = np.random.default_rng([seed, 0])
    drawn = str(rng.choice(STYLES, p=_STYLE_WEIGHTS))
    style = style or drawn
    pools = _STYLES[style]
    accompaniment = str(rng.choice(pools.accompaniments))
    voicing = "own" if song.accompaniment else str(rng.choice(pools.voicings))

    voice_lead = bool(rng.random() < _VOICE_PROBABILITY)
    instruments = pools.leads or (accompaniment,)
    lead = str(rng.choice(pools.voices if voice_lead else instruments))
    lead_db = float(rng.uniform(*_LEAD_DB))

    doubling = str(rng.choice([name for name in instruments if name != lead] or instruments))
    pitches = [n.pitch for n in lead_notes(song)]
    offsets = [s for s in (-12, 0, 12)  # the same patch doubles in octaves only
               if pitches and (s or doubling != lead) and min(pitches) + s >= _DOUBLING_LOW_MIDI
               and max(pitches) + s <= _LEAD_TOP_MIDI]
    doubled = bool(rng.random() < _DOUBLING_PROBABILITY) and bool(offsets)
    doubling_semitones = int(rng.choice(offsets)) if doubled else 0
    doubling = doubling if doubled else None
    doubling_db = float(rng.uniform(*_DOUBLING_DB))

    line = str(rng.choice(_LINES, p=_LINE_WEIGHTS))
    line_instrument = str(rng.choice(pools.lines or (accompaniment,))) if line != "none" else None
    line_db = float(rng.uniform(*_LINE_DB))

    if pools.basses:
        bass = str(rng.choice(pools.basses))
    else:
        bass = accompaniment if rng.random() < _PIANO_BASS_PROBABILITY else None
    bass_step = str(rng.choice(pools.bass_steps))
    bass_db = float(rng.uniform(*_BASS_DB))

    has_drums = bool(rng.random() < pools.drum_probability)
    drums = str(rng.choice(pools.kits)) if has_drums else None
    hat_weights = _HAT_WEIGHTS.get(style, _HAT_WEIGHTS["band"])
    hats = str(rng.choice(list(_HATS), p=hat_weights))
    fills = bool(rng.random() < _FILL_PROBABILITY)
    drums_db = float(rng.uniform(*(_TIMPANI_DB if drums == _TIMPANI else _DRUM_DB)))
    return Arrangement(style, lead, voice_lead, lead_db, doubling, doubling_semitones,
                       doubling_db, line, line_instrument, line_db, accompaniment, voicing,
                       bass, bass_step, bass_db, drums, hats, fills, drums_db)


def is_hard(arrangement: Arrangement) -> bool:
    """Whether the melody model hears such renders worst (`benchmarks.line_quality`): the
    lead at or under the backing's loudness (raw chroma 0.76-0.82 against 0.87-0.93), or
    solo piano, the lead on the accompaniment's instrument (0.80)."""
    return arrangement.lead_db <= 0.0 or (arrangement.style == "piano" and not arrangement.voice_lead)


def mix_lead(backing: np.ndarray, lead: np.ndarray, lead_db: float) -> np.ndarray:
    """Adds a lead to its backing at lead_db over the backing's loudness, peak-normalised.

    `Renderer.render` mixes its lead this way, so `mix_lead(render(..., lead=False),
    sung_melody, arrangement.lead_db)` puts a sung melody where the lead would be.

    Args:
        backing: float32 array (n_samples,), any scale.
        lead: float32 array (n_samples,), any scale.
        lead_db: e.g. `Arrangement.lead_db`.

    Returns:
        float32 array (n_samples,), peak-normalised to PEAK (zeros when all is silent).
    """
    reference = _loudness(backing) or 1.0
    mix = backing.astype(np.float32)
    lead_loudness = _loudness(lead)
    if lead_loudness > 0.0:
        mix = mix + lead.astype(np.float32) * np.float32(
            10.0 ** (lead_db / 20.0) * reference / lead_loudness)
    return _peak_normalised(mix)


@dataclasses.dataclass(frozen=True)
class _Part:
    """One instrument of the arrangement: MIDI channel, preset, level and notes.

    level_db is relative to the accompaniment (role "backing"), to the core backing's
    loudness (role "line"), or to the melody (role "lead").
    """

    role: str
    channel: int
    bank: int
    program: int
    level_db: float
    notes: tuple[Note, ...]


class Renderer:
    """Renders Songs to mono audio with one FluidSynth instance and one soundfont.

    Use as a context manager, or call `close()`.
    """

    def __init__(self, soundfont: Path, sample_rate_hz: int):
        """
        Args:
            soundfont: a General MIDI .sf2 or .sf3 file.
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
               duration_s: float | None = None, lead: bool = True,
               arrangement: Arrangement | None = None) -> np.ndarray:
        """Arranges the song from the seed and renders the span [start_s, start_s + duration_s).

        Notes overlapping the span sound from its start; the arrangement does not depend
        on the span, so a span is (up to notes cut at its start) a slice of the whole.

        Args:
            song: the song.
            seed: drives every choice; same seed, same audio.
            start_s: span start in song seconds.
            duration_s: span length in seconds; None renders to the end of the song.
            lead: False leaves out the melody and its doubling (the same draws otherwise),
                for `mix_lead`.
            arrangement: None draws `arrange(song, seed)`; pass one to force choices.

        Returns:
            float32 array (n_samples,), n_samples = round(duration_s * sample_rate_hz),
            mono, peak-normalised to PEAK (all zeros when the span is silent).
        """
        if duration_s is None:
            duration_s = max(song.duration_s - start_s, 0.0)
        n_samples = round(duration_s * self.sample_rate_hz)
        arrangement = arrangement or arrange(song, seed)
        parts = _drawn_parts(song, seed, arrangement)
        backing = self._mix([p for p in parts if p.role == "backing"], start_s, n_samples)
        reference = _loudness(backing) or 1.0
        for part in parts:
            if part.role == "line":
                backing += self._stem(part, start_s, n_samples, reference)
        if not lead:
            return _peak_normalised(backing)
        lead_audio = self._mix([p for p in parts if p.role == "lead"], start_s, n_samples)
        return mix_lead(backing, lead_audio, arrangement.lead_db)

    def _mix(self, parts: list[_Part], start_s: float, n_samples: int) -> np.ndarray:
        """float32 array (n_samples,): the parts summed at their levels (unit reference)."""
        audio = np.zeros(n_samples, dtype=np.float32)
        for part in parts:
            audio += self._stem(part, start_s, n_samples, 1.0)
        return audio

    def _stem(self, part: _Part, start_s: float, n_samples: int,
              reference: float) -> np.ndarray:
        """float32 array (n_samples,): the part at level_db over a loudness of reference."""
        stem = self._render_part(part, start_s, n_samples)
        loudness = _loudness(stem)
        if loudness > 0.0:
            stem *= np.float32(10.0 ** (part.level_db / 20.0) * reference / loudness)
        return stem

    def _render_part(self, part: _Part, start_s: float, n_samples: int) -> np.ndarray:
        """Renders one part alone from start_s.

        Returns:
            float32 array (n_samples,), mono, unnormalised.
        """
        events = _events(part, start_s, n_samples, self.sample_rate_hz)
        if not events:
            return np.zeros(n_samples, dtype=np.float32)
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


def _peak_normalised(audio: np.ndarray) -> np.ndarray:
    """audio (float32 (n,)) scaled to peak PEAK, in place; zeros stay zeros."""
    peak = float(np.max(np.abs(audio), initial=0.0))
    if peak > 0.0:
        audio *= np.float32(PEAK / peak)
    return audio


def _parts(song: Song, arrangement: Arrangement, rng: np.random.Generator) -> tuple[_Part, ...]:
    """The notes of every part of the arrangement.

    The random draws happen in a fixed order, so the same seed gives the same notes
    whatever the arrangement's levels.
    """
    chords = song.chords or _chords_from_melody(song)
    lead = lead_notes(song)
    parts = [_Part("lead", _CHANNELS["lead"], 0, _program(arrangement.lead), 0.0, lead)]
    if arrangement.doubling:
        doubled = tuple(dataclasses.replace(n, pitch=n.pitch + arrangement.doubling_semitones)
                        for n in lead)
        parts.append(_Part("lead", _CHANNELS["doubling"], 0, _program(arrangement.doubling),
                           arrangement.doubling_db, doubled))
    if arrangement.line_instrument:
        if arrangement.line in ("third", "sixth"):
            below = (3, 4) if arrangement.line == "third" else (8, 9)
            line = _harmony(song, lead, chords, below)
        elif arrangement.line == "countermelody":
            line = _countermelody(song, chords, rng)
        else:
            line = _held_line(chords, rng)
        parts.append(_Part("line", _CHANNELS["line"], 0, _program(arrangement.line_instrument),
                           arrangement.lead_db + arrangement.line_db, line))

    voicings = {"block": _block_chords, "arpeggio": _arpeggios, "strum": _strums,
                "alberti": _alberti, "pad": _pad}
    if arrangement.voicing == "own":
        accompaniment = _fold(song.accompaniment, _TOP_MIDI)
    else:
        accompaniment = voicings[arrangement.voicing](song, chords, rng)
    parts.append(_Part("backing", _CHANNELS["accompaniment"], 0, _program(arrangement.accompaniment), 0.0,
                       accompaniment))

    if arrangement.bass:
        step = _bass_step_beats(song, arrangement.bass_step)
        if song.chords or not song.accompaniment:
            bass = _bass_from_chords(song, chords, step, rng)
        else:
            bass = _bass_from_accompaniment(song, step, rng)
        parts.append(_Part("backing", _CHANNELS["bass"], 0, _program(arrangement.bass), arrangement.bass_db, bass))

    if arrangement.drums == _TIMPANI:
        parts.append(_Part("backing", _CHANNELS["timpani"], 0, _program(_TIMPANI), arrangement.drums_db,
                           _timpani(song, chords, rng)))
    elif arrangement.drums:
        drums = _drums(song, four_on_the_floor=arrangement.style == "electronic",
                       hats_per_beat=_HATS[arrangement.hats], fills=arrangement.fills, rng=rng)
        parts.append(_Part("backing", _DRUM_CHANNEL, _DRUM_BANK, _KITS[arrangement.drums],
                           arrangement.drums_db, drums))
    return tuple(parts)


def _drawn_parts(song: Song, seed: int, arrangement: Arrangement) -> tuple[_Part, ...]:
    """The parts a render of `seed` plays (the notes' draws seeded apart from the arrangement's)."""
    return _parts(song, arrangement, np.random.default_rng([seed, 1]))


def part_notes(song: Song, seed: int, arrangement: Arrangement | None = None
               ) -> dict[str, tuple[Note, ...]]:
    """The notes each part of `Renderer.render(song, seed, arrangement=arrangement)` plays,
    by the part's name in _CHANNELS ("lead", "doubling", "line", "accompaniment", "bass",
    "timpani"); parts the arrangement lacks, and the drums, are absent."""
    names = {channel: name for name, channel in _CHANNELS.items()}
    parts = _drawn_parts(song, seed, arrangement or arrange(song, seed))
    return {names[p.channel]: p.notes for p in parts if p.channel in names}


def _program(name: str) -> int:
    return pretty_midi.instrument_name_to_program(name)


def _velocity(rng: np.random.Generator, base: int, spread: int = 6) -> int:
    return int(np.clip(base + rng.integers(-spread, spread + 1), 1, 127))


def _fold(notes: tuple[Note, ...], top_midi: int) -> tuple[Note, ...]:
    """The notes, those above top_midi moved down whole octaves to at most top_midi."""
    return tuple(dataclasses.replace(n, pitch=n.pitch - 12 * -(-(n.pitch - top_midi) // 12))
                 if n.pitch > top_midi else n for n in notes)


def lead_notes(song: Song) -> tuple[Note, ...]:
    """The melody as the lead plays it: at least moderately loud, within the leads' range."""
    return _fold(tuple(dataclasses.replace(n, velocity=int(np.clip(n.velocity, 60, 127)))
                       for n in song.melody), _LEAD_TOP_MIDI)


def _grid(start_s: float, end_s: float, step_s: float) -> np.ndarray:
    """float64 array (n,): multiples of step_s in [start_s, end_s)."""
    first = np.ceil(start_s / step_s - 1e-6)
    last = np.ceil(end_s / step_s - 1e-6)
    return np.arange(first, last) * step_s


def _strike_times(song: Song, chord: Chord, step_beats: float) -> list[float]:
    """When a chord is (re)struck: its start, then each multiple of step_beats beats
    (from the song's start) inside it (1: every beat; beats_per_bar: bar lines)."""
    grid = _grid(chord.start_s, chord.end_s, step_beats * song.beat_s)
    return [chord.start_s, *(t for t in grid if t > chord.start_s + 1e-6)]


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


def _pad(song: Song, chords: tuple[Chord, ...], rng: np.random.Generator) -> tuple[Note, ...]:
    """Each chord held for its whole length."""
    notes = []
    for chord in chords:
        velocity = _velocity(rng, 70)
        notes.extend(Note(p, chord.start_s, chord.end_s, velocity) for p in chord.pitches)
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


def _alberti(song: Song, chords: tuple[Chord, ...],
             rng: np.random.Generator) -> tuple[Note, ...]:
    """Broken chords in eighths: lowest, highest, middle, highest tone of the triad."""
    notes = []
    for chord in chords:
        low_to_high = sorted(chord.pitches[:3])
        high = low_to_high[-1]
        tones = (low_to_high[0], high, low_to_high[len(low_to_high) // 2], high)
        times = _strike_times(song, chord, 0.5)
        for i, (start, end) in enumerate(_held(times, chord.end_s)):
            notes.append(Note(tones[i % 4], start, end, _velocity(rng, 66 if i % 2 else 72)))
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


def _major_scale(song: Song) -> frozenset[int]:
    """Pitch classes of the major scale (or its relative minor) holding the most
    melody time; ties go to the lowest tonic."""
    weights = np.zeros(12)
    for n in song.melody:
        weights[n.pitch % 12] += n.end_s - n.start_s
    tonic = max(range(12), key=lambda t: (sum(weights[(t + s) % 12] for s in _MAJOR_SCALE), -t))
    return frozenset((tonic + s) % 12 for s in _MAJOR_SCALE)


def _harmony(song: Song, lead: tuple[Note, ...], chords: tuple[Chord, ...],
             below: tuple[int, int]) -> tuple[Note, ...]:
    """The lead shadowed a third (below=(3, 4) semitones) or a sixth ((8, 9)) lower: the
    interval that lands on a tone of the sounding chord, else in the song's scale."""
    scale = _major_scale(song)
    starts = [c.start_s for c in chords]
    notes = []
    for note in lead:
        index = bisect.bisect_right(starts, note.start_s + 1e-6) - 1
        chord = chords[index] if index >= 0 and chords[index].end_s > note.start_s else None
        tones = {p % 12 for p in chord.pitches} if chord else set()
        fits = ([d for d in below if (note.pitch - d) % 12 in tones]
                or [d for d in below if (note.pitch - d) % 12 in scale] or [below[0]])
        notes.append(dataclasses.replace(note, pitch=note.pitch - fits[0]))
    return tuple(notes)


def _line_tones(chord: Chord) -> list[int]:
    """The chord's tones in every octave of the line range, ascending."""
    classes = {p % 12 for p in chord.pitches}
    low, high = _LINE_RANGE_MIDI
    return [p for p in range(low, high + 1) if p % 12 in classes]


def _countermelody(song: Song, chords: tuple[Chord, ...],
                   rng: np.random.Generator) -> tuple[Note, ...]:
    """Chord tones in the line range, one per half bar (per bar in odd metres), stepping
    to the next tone in one direction and turning at the range's ends."""
    step = song.beats_per_bar / 2 if song.beats_per_bar % 2 == 0 else song.beats_per_bar
    previous, direction = sum(_LINE_RANGE_MIDI) // 2, 1
    notes = []
    for chord in chords:
        tones = _line_tones(chord)
        for start, end in _held(_strike_times(song, chord, step), chord.end_s):
            ahead = [p for p in tones if (p - previous) * direction > 0]
            if not ahead:
                direction = -direction
                ahead = [p for p in tones if (p - previous) * direction > 0] or tones
            previous = min(ahead, key=lambda p: abs(p - previous))
            notes.append(Note(previous, start, end, _velocity(rng, 74)))
    return tuple(notes)


def _held_line(chords: tuple[Chord, ...], rng: np.random.Generator) -> tuple[Note, ...]:
    """One chord tone in the line range held through each chord, the nearest to the last."""
    previous = sum(_LINE_RANGE_MIDI) // 2
    notes = []
    for chord in chords:
        previous = min(_line_tones(chord), key=lambda p: (abs(p - previous), p))
        notes.append(Note(previous, chord.start_s, chord.end_s, _velocity(rng, 72)))
    return tuple(notes)


def _bass_step_beats(song: Song, bass_step: str) -> float:
    """Beats between bass strikes; "half" is beats 1 and 3 of a 4-beat bar, the first
    beat of 2- and 3-beat bars."""
    half = 2 if song.beats_per_bar % 2 == 0 else song.beats_per_bar
    return {"bar": song.beats_per_bar, "half": half, "beat": 1, "eighth": 0.5}[bass_step]


def _bass_from_chords(song: Song, chords: tuple[Chord, ...], step_beats: float,
                      rng: np.random.Generator) -> tuple[Note, ...]:
    """Chord roots in octave 2, at each chord change and every step_beats beats."""
    notes = []
    for chord in chords:
        pitch = _BASS_OCTAVE_MIDI + chord.pitches[0] % 12
        notes.extend(Note(pitch, start, end, _velocity(rng, 95)) for start, end
                     in _held(_strike_times(song, chord, step_beats), chord.end_s))
    return tuple(notes)


def _bass_from_accompaniment(song: Song, step_beats: float,
                             rng: np.random.Generator) -> tuple[Note, ...]:
    """Every step_beats beats, the lowest accompaniment pitch sounding then, in octave 2."""
    starts = np.array([n.start_s for n in song.accompaniment])
    ends = np.array([n.end_s for n in song.accompaniment])
    pitches = np.array([n.pitch for n in song.accompaniment])
    step_s = step_beats * song.beat_s
    notes = []
    for time in _grid(0.0, song.duration_s, step_s):
        sounding = pitches[(starts < time + step_s) & (ends > time)]
        if sounding.size:
            pitch = _BASS_OCTAVE_MIDI + int(sounding.min()) % 12
            notes.append(Note(pitch, time, time + _LEGATO * step_s, _velocity(rng, 95)))
    return tuple(notes)


def _timpani(song: Song, chords: tuple[Chord, ...],
             rng: np.random.Generator) -> tuple[Note, ...]:
    """Soft strokes on chord roots (F2..E3) at each chord change and bar line."""
    notes = []
    for chord in chords:
        pitch = _TIMPANI_LOW_MIDI + (chord.pitches[0] - _TIMPANI_LOW_MIDI) % 12
        notes.extend(Note(pitch, start, end, _velocity(rng, 64)) for start, end
                     in _held(_strike_times(song, chord, song.beats_per_bar), chord.end_s))
    return tuple(notes)


def _drums(song: Song, four_on_the_floor: bool, hats_per_beat: int, fills: bool,
           rng: np.random.Generator) -> tuple[Note, ...]:
    """A kit from the first bar with notes: kick on the bar's first beat (and its middle
    in even metres) or on every beat; snare (clap with four_on_the_floor) on the other
    even-metre backbeats; hi-hats hats_per_beat times a beat, the off-beat eighth open
    with four_on_the_floor. With fills, the last beat of each 4-bar phrase is a fill and
    the next phrase starts with a crash."""
    content = song.melody + song.accompaniment
    first_s = min((n.start_s for n in content), default=0.0)
    bar_s = song.beat_s * song.beats_per_bar
    start_s = np.floor(first_s / bar_s + 1e-6) * bar_s
    hit_s = min(0.1, 0.5 * song.beat_s)
    even_metre = song.beats_per_bar % 2 == 0
    backbeat = _CLAP if four_on_the_floor else _SNARE
    notes = []
    for beat in _grid(start_s, song.duration_s, song.beat_s):
        bar, index = divmod(round((beat - start_s) / song.beat_s), song.beats_per_bar)
        if (fills and index == song.beats_per_bar - 1 and bar % _PHRASE_BARS == _PHRASE_BARS - 1
                and beat + song.beat_s < song.duration_s):
            for k, pitch in enumerate(_FILL):
                t = beat + k * song.beat_s / len(_FILL)
                notes.append(Note(pitch, t, t + hit_s / 2, _velocity(rng, 84 + 4 * k)))
            continue
        if fills and index == 0 and bar % _PHRASE_BARS == 0:
            notes.append(Note(_CRASH, beat, beat + hit_s, _velocity(rng, 96)))
        if four_on_the_floor or index == 0 or (
                even_metre and index == song.beats_per_bar // 2 and index % 2 == 0):
            notes.append(Note(_KICK, beat, beat + hit_s, _velocity(rng, 100)))
        if even_metre and index % 2 == 1:
            notes.append(Note(backbeat, beat, beat + hit_s, _velocity(rng, 90)))
        for k in range(hats_per_beat):
            t = beat + k * song.beat_s / hats_per_beat
            pitch = _OPEN_HAT if four_on_the_floor and 2 * k == hats_per_beat else _CLOSED_HAT
            if t < song.duration_s:
                notes.append(Note(pitch, t, t + hit_s / 2, _velocity(rng, 62 if k else 70, 10)))
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
