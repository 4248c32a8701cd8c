"""Corpus readers: every source of melodies becomes a list of `Song` objects.

Each loader takes the corpus root as an argument and skips pieces it cannot read (with
one log line, no traceback) or whose melody has fewer than `MIN_MELODY_NOTES` notes.
Melodies are made monophonic (same onset: the highest pitch wins; an overlapping note
is cut at the next onset). Times are seconds at the source tempo.

Scores (OpenEWLD, Nottingham, Essen, the written tunes) share one conversion,
`_score_to_song`: a pickup bar is padded to a full bar, so bar lines fall on multiples
of `beats_per_bar * beat_s`; chord symbols become `Chord`s (root in octave 3, the other
chord tones stacked above it within an octave) that last until the next symbol. In ABC
tunes a written accidental holds to the end of its bar, which music21 leaves undone.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path

import music21
import pretty_midi
from music21 import harmony

from training.melody import Chord, Note, Song

logger = logging.getLogger(__name__)

MIN_MELODY_NOTES = 8
DEFAULT_QUARTER_BPM = 100.0
_CHORD_ROOT_MIDI = 48  # C3: chord roots lie in C3..B3
_SAME_ONSET_S = 1e-6


def load_pop909(root: Path) -> list[Song]:
    """Reads POP909: the MELODY track is the melody, PIANO + BRIDGE the accompaniment.

    MIDI time signatures in POP909 are mostly placeholders (1/4), so the bar comes from
    `songs.csv` (`num_beats_per_measure`; `num_quavers_per_beat` = 3 means a
    dotted-quarter beat). The quarter-note tempo is the duration-weighted median of
    the MIDI tempo map.

    Args:
        root: the POP909 folder, holding `NNN.mid` and `songs.csv`.

    Returns:
        Songs in songs.csv order, source "pop909", licence "MIT", shippable.
    """
    songs = []
    with open(root / "songs.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        path = root / f"{row['song_id']}.mid"
        try:
            midi = pretty_midi.PrettyMIDI(str(path))
        except Exception as error:  # mido raises many types for damaged files
            logger.warning("skipping %s: %s", path, error)
            continue
        tracks = {instrument.name.strip().upper(): instrument.notes
                  for instrument in midi.instruments}
        melody = _monophonic(_midi_notes(tracks.get("MELODY", [])))
        if len(melody) < MIN_MELODY_NOTES:
            continue
        accompaniment = sorted(
            _midi_notes(tracks.get("PIANO", []) + tracks.get("BRIDGE", [])),
            key=lambda n: (n.start_s, n.pitch))
        quarter_s = 60.0 / _median_quarter_bpm(midi)
        beats_per_bar = int(row.get("num_beats_per_measure") or 0)
        quavers_per_beat = int(row.get("num_quavers_per_beat") or 2)
        if beats_per_bar < 2:
            beats_per_bar = next((ts.numerator for ts in midi.time_signature_changes
                                  if ts.numerator >= 2), 4)
        songs.append(Song(
            song_id=f"pop909-{row['song_id']}",
            title=row.get("name", ""),
            artist=row.get("artist", ""),
            source="pop909",
            licence="MIT",
            shippable=True,
            melody=melody,
            accompaniment=tuple(accompaniment),
            beat_s=quarter_s * quavers_per_beat / 2.0,
            beats_per_bar=beats_per_bar,
        ))
    return songs


def load_openewld(root: Path) -> list[Song]:
    """Reads the OpenEWLD lead sheets, `dataset/<composers>/<title>/<title>.mxl`.

    Repeats are expanded where music21 can expand them; otherwise the score is read
    as written.

    Args:
        root: the OpenEWLD folder, holding `dataset/`.

    Returns:
        Songs in path order, source "openewld", licence "public-domain", shippable.
    """
    songs = []
    used_ids: set[str] = set()
    for path in sorted((root / "dataset").glob("*/*/*.mxl")):
        try:
            score = music21.converter.parse(path, forceSource=True, storePickle=False)
            song = _score_to_song(
                score,
                song_id=_unique_id("openewld-" + _safe_stem(path.stem), used_ids),
                title=path.stem.replace("_", " "),
                artist=_composers(path.parent.parent.name),
                source="openewld",
                licence="public-domain",
                shippable=True,
                expand_repeats=True,
            )
        except Exception as error:  # music21 raises many types for malformed scores
            logger.warning("skipping %s: %s", path, error)
            continue
        if song is not None:
            songs.append(song)
    return songs


def load_nottingham(root: Path) -> list[Song]:
    """Reads the Nottingham folk tunes, `ABC_cleaned/*.abc` with many tunes per file.

    Args:
        root: the Nottingham folder, holding `ABC_cleaned/`.

    Returns:
        Songs in file and tune order, source "nottingham", licence "GPL-3", not
        shippable.
    """
    songs = []
    used_ids: set[str] = set()
    for path in sorted((root / "ABC_cleaned").glob("*.abc")):
        songs.extend(abc_songs(
            path, f"nottingham-{_safe_stem(path.stem)}", used_ids, artist="",
            source="nottingham", licence="GPL-3", shippable=False))
    return songs


def load_music21_essen(limit: int | None = None) -> list[Song]:
    """Reads the Essen folk songs bundled with music21 (melody only).

    Args:
        limit: stop after this many songs; None reads all (about 8,500, minutes).

    Returns:
        Songs in file and tune order, song_id "essen-<file>-<X number>", source
        "music21-essen", licence "public-domain", not shippable (kept for training).
    """
    songs: list[Song] = []
    used_ids: set[str] = set()
    if limit is not None and limit <= 0:
        return songs
    for path in sorted(Path(p) for p in music21.corpus.getComposer("essenFolksong")):
        for song in abc_songs(
                path, f"essen-{_safe_stem(path.stem)}", used_ids, artist="",
                source="music21-essen", licence="public-domain", shippable=False,
                with_chords=False):
            songs.append(song)
            if limit is not None and len(songs) >= limit:
                return songs
    return songs


@dataclasses.dataclass(frozen=True)
class _WrittenTune:
    """A tune written out by hand.

    Attributes:
        notes: (note name, duration in units) pairs, e.g. ("C4", 1).
        chords: (chord figure, duration in units) pairs covering the tune.
        units_per_beat: duration units in one beat (3 eighths per beat in 6/8).
    """

    slug: str
    title: str
    artist: str
    notes: tuple[tuple[str, float], ...]
    chords: tuple[tuple[str, float], ...]
    beats_per_bar: int = 4
    units_per_beat: int = 1
    beat_s: float = 0.5


def _tune(text: str) -> tuple[tuple[str, float], ...]:
    """Parses "C4:1 D4:0.5 ..." into ((name, units), ...)."""
    return tuple((name, float(units)) for name, units in
                 (item.split(":") for item in text.split()))


def _written_tune_specs() -> tuple[_WrittenTune, ...]:
    """The hand-written tunes, first verse, in C major, durations in beats (6/8: eighths)."""
    return (
        _WrittenTune(
            "twinkle-twinkle", "Twinkle Twinkle Little Star", "Traditional",
            _tune("C4:1 C4:1 G4:1 G4:1  A4:1 A4:1 G4:2  F4:1 F4:1 E4:1 E4:1  D4:1 D4:1 C4:2 "
                  "G4:1 G4:1 F4:1 F4:1  E4:1 E4:1 D4:2  G4:1 G4:1 F4:1 F4:1  E4:1 E4:1 D4:2 "
                  "C4:1 C4:1 G4:1 G4:1  A4:1 A4:1 G4:2  F4:1 F4:1 E4:1 E4:1  D4:1 D4:1 C4:2"),
            _tune("C:4 F:2 C:2 F:2 C:2 G:2 C:2 C:2 F:2 C:2 G:2 C:2 F:2 C:2 G:2 "
                  "C:4 F:2 C:2 F:2 C:2 G:2 C:2")),
        _WrittenTune(
            "ode-to-joy", "Ode to Joy", "Ludwig van Beethoven",
            _tune("E4:1 E4:1 F4:1 G4:1  G4:1 F4:1 E4:1 D4:1  C4:1 C4:1 D4:1 E4:1 "
                  "E4:1.5 D4:0.5 D4:2 "
                  "E4:1 E4:1 F4:1 G4:1  G4:1 F4:1 E4:1 D4:1  C4:1 C4:1 D4:1 E4:1 "
                  "D4:1.5 C4:0.5 C4:2 "
                  "D4:1 D4:1 E4:1 C4:1  D4:1 E4:0.5 F4:0.5 E4:1 C4:1 "
                  "D4:1 E4:0.5 F4:0.5 E4:1 D4:1  C4:1 D4:1 G3:2 "
                  "E4:1 E4:1 F4:1 G4:1  G4:1 F4:1 E4:1 D4:1  C4:1 C4:1 D4:1 E4:1 "
                  "D4:1.5 C4:0.5 C4:2"),
            _tune("C:4 G:4 C:4 G:4 C:4 G:4 C:4 G:2 C:2 "
                  "G:2 C:2 G:2 C:2 G:2 C:2 C:2 G:2 C:4 G:4 C:4 G:2 C:2")),
        _WrittenTune(
            "mary-had-a-little-lamb", "Mary Had a Little Lamb", "Traditional",
            _tune("E4:1 D4:1 C4:1 D4:1  E4:1 E4:1 E4:2  D4:1 D4:1 D4:2  E4:1 G4:1 G4:2 "
                  "E4:1 D4:1 C4:1 D4:1  E4:1 E4:1 E4:1 E4:1  D4:1 D4:1 E4:1 D4:1  C4:4"),
            _tune("C:4 C:4 G:4 C:4 C:4 C:4 G:4 C:4")),
        _WrittenTune(
            "frere-jacques", "Frère Jacques", "Traditional",
            _tune("C4:1 D4:1 E4:1 C4:1  C4:1 D4:1 E4:1 C4:1  E4:1 F4:1 G4:2  E4:1 F4:1 G4:2 "
                  "G4:0.5 A4:0.5 G4:0.5 F4:0.5 E4:1 C4:1  G4:0.5 A4:0.5 G4:0.5 F4:0.5 E4:1 C4:1 "
                  "C4:1 G3:1 C4:2  C4:1 G3:1 C4:2"),
            _tune("C:24 C:1 G:1 C:2 C:1 G:1 C:2")),
        _WrittenTune(
            "london-bridge", "London Bridge Is Falling Down", "Traditional",
            _tune("G4:1.5 A4:0.5 G4:1 F4:1  E4:1 F4:1 G4:2  D4:1 E4:1 F4:2  E4:1 F4:1 G4:2 "
                  "G4:1.5 A4:0.5 G4:1 F4:1  E4:1 F4:1 G4:2  D4:2 G4:2  E4:1 C4:3"),
            _tune("C:4 C:4 G:4 C:4 C:4 C:4 G:4 C:4")),
        _WrittenTune(
            "row-row-row-your-boat", "Row, Row, Row Your Boat", "Traditional",
            _tune("C4:3 C4:3  C4:2 D4:1 E4:3  E4:2 D4:1 E4:2 F4:1  G4:6 "
                  "C5:1 C5:1 C5:1 G4:1 G4:1 G4:1  E4:1 E4:1 E4:1 C4:1 C4:1 C4:1 "
                  "G4:2 F4:1 E4:2 D4:1  C4:6"),
            _tune("C:6 C:6 C:6 C:6 C:6 C:6 G:6 C:6"),
            beats_per_bar=2, units_per_beat=3, beat_s=0.6),
    )


def written_tunes() -> list[Song]:
    """Well-known public-domain tunes written out in the code, with chord symbols.

    Returns:
        Songs with song_id "written-<slug>", source "written", licence
        "public-domain", shippable.
    """
    songs = []
    for spec in _written_tune_specs():
        unit_s = spec.beat_s / spec.units_per_beat
        melody, t = [], 0.0
        for name, units in spec.notes:
            melody.append(Note(pretty_midi.note_name_to_number(name), t * unit_s,
                               (t + units) * unit_s))
            t += units
        chords, t = [], 0.0
        for figure, units in spec.chords:
            chords.append(Chord(t * unit_s, (t + units) * unit_s,
                                _chord_pitches(harmony.ChordSymbol(figure))))
            t += units
        songs.append(Song(
            song_id=f"written-{spec.slug}",
            title=spec.title,
            artist=spec.artist,
            source="written",
            licence="public-domain",
            shippable=True,
            melody=tuple(melody),
            chords=tuple(chords),
            beat_s=spec.beat_s,
            beats_per_bar=spec.beats_per_bar,
        ))
    return songs


def _score_to_song(score: music21.stream.Stream, *, song_id: str, title: str,
                   artist: str, source: str, licence: str, shippable: bool,
                   expand_repeats: bool, with_chords: bool = True,
                   carry_accidentals: bool = False) -> Song | None:
    """Converts one music21 score (melody in its first part) into a Song.

    Args:
        score: a parsed score; its first part (or itself, without parts) is the melody.
        expand_repeats: expand repeat signs when music21 manages to.
        with_chords: read the chord symbols.
        carry_accidentals: apply written accidentals to the rest of their bar (ABC).

    Returns:
        The Song, or None when the melody has fewer than MIN_MELODY_NOTES notes.
    """
    part = score.parts[0] if score.hasPartLikeStreams() else score
    if expand_repeats and any(True for _ in part.recurse().getElementsByClass(
            (music21.bar.Repeat, music21.repeat.RepeatExpression))):
        try:
            part = part.expandRepeats()
        except Exception:  # music21's repeat expander fails in many ways on odd scores
            pass  # read the score as written
    if carry_accidentals:
        _carry_accidentals(part)
    quarter_s = 60.0 / _quarter_bpm(score)
    time_signature = next(iter(part.recurse().getElementsByClass(music21.meter.TimeSignature)),
                          None)
    if time_signature is None:
        beats_per_bar, beat_ql, bar_ql = 4, 1.0, 4.0
    else:
        beats_per_bar = time_signature.beatCount
        beat_ql = float(time_signature.beatDuration.quarterLength)
        bar_ql = float(time_signature.barDuration.quarterLength)
    shift_ql = _pickup_padding_ql(part, bar_ql) if time_signature is not None else 0.0

    flat = part.flatten()
    flat.stripTies(inPlace=True)  # the copying default costs half the conversion time
    notes = []
    symbols = []
    for element in flat.notes:
        if isinstance(element, harmony.ChordSymbol):
            symbols.append(element)
            continue
        length = float(element.quarterLength)
        if length <= 0:  # grace notes
            continue
        pitch = max(element.pitches).midi if element.isChord else element.pitch.midi
        start = float(element.offset) + shift_ql
        notes.append(Note(pitch, start * quarter_s, (start + length) * quarter_s))
    melody = _monophonic(notes)
    if len(melody) < MIN_MELODY_NOTES:
        return None
    end_s = max(melody[-1].end_s, (float(flat.highestTime) + shift_ql) * quarter_s)
    chords = _chords(symbols, shift_ql, quarter_s, end_s) if with_chords else ()
    return Song(song_id=song_id, title=title, artist=artist, source=source,
                licence=licence, shippable=shippable, melody=melody, chords=chords,
                beat_s=beat_ql * quarter_s, beats_per_bar=beats_per_bar)


def _chords(symbols: list[harmony.ChordSymbol], shift_ql: float, quarter_s: float,
            end_s: float) -> tuple[Chord, ...]:
    """Chord symbols → Chords lasting until the next symbol (or end_s); N.C. is silent."""
    timed = sorted((((float(s.offset) + shift_ql) * quarter_s, s) for s in symbols),
                   key=lambda item: item[0])
    chords = []
    for i, (start_s, symbol) in enumerate(timed):
        stop_s = timed[i + 1][0] if i + 1 < len(timed) else end_s
        if stop_s <= start_s or isinstance(symbol, harmony.NoChord):
            continue
        try:
            pitches = _chord_pitches(symbol)
        except music21.Music21Exception:
            continue  # a figure music21 cannot spell: leave the span without a chord
        if pitches:
            chords.append(Chord(start_s, stop_s, pitches))
    return tuple(chords)


def _chord_pitches(symbol: harmony.ChordSymbol) -> tuple[int, ...]:
    """MIDI pitches of a chord symbol: root in octave 3, the other tones above it.

    Returns:
        (root, tones...) ascending, within an octave of the root; () without pitches.
    """
    if not symbol.pitches or symbol.root() is None:
        return ()
    root_pc = symbol.root().pitchClass
    root = _CHORD_ROOT_MIDI + root_pc
    above = sorted({root + (p.pitchClass - root_pc) % 12 for p in symbol.pitches} - {root})
    return (root, *above)


def _carry_accidentals(part: music21.stream.Stream) -> None:
    """Extends each written accidental to later notes of the same step and octave in its
    bar, in place: ABC says so, but music21's ABC reader applies it to one note only."""
    for measure in part.getElementsByClass(music21.stream.Measure):
        carried: dict[tuple[str, int], float] = {}
        for note in measure.recurse().getElementsByClass(music21.note.Note):
            key = (note.pitch.step, note.pitch.octave)
            accidental = note.pitch.accidental
            if accidental is not None and accidental.displayStatus:
                carried[key] = accidental.alter
            elif key in carried:
                note.pitch.accidental = music21.pitch.Accidental(carried[key])


def _pickup_padding_ql(part: music21.stream.Stream, bar_ql: float) -> float:
    """Quarter lengths missing from a short first bar (a pickup), else 0."""
    first = next(iter(part.getElementsByClass(music21.stream.Measure)), None)
    if first is None:
        return 0.0
    if first.paddingLeft > 0:
        return float(first.paddingLeft)
    length = float(first.duration.quarterLength)
    return bar_ql - length if 0 < length < bar_ql else 0.0


def _quarter_bpm(score: music21.stream.Stream) -> float:
    """The first explicit metronome mark in quarter notes per minute, else the default."""
    for mark in score.recurse().getElementsByClass(music21.tempo.MetronomeMark):
        if mark.number is not None and not mark.numberImplicit:
            return float(mark.getQuarterBPM())
    return DEFAULT_QUARTER_BPM


def abc_songs(path: Path, id_prefix: str, used_ids: set[str], **fields) -> Iterator[Song]:
    """Reads an ABC file tune by tune (lazily), skipping tunes music21 cannot read.

    Repeats are not expanded: music21's ABC repeat expansion replays whole tunes
    wrongly (e.g. AABB AABB for a tune with two repeated parts).

    Args:
        path: an ABC file; text before the first X: field is a header for every tune.
        id_prefix: song ids are "<id_prefix>-<X number>", made unique against used_ids.
        used_ids: ids taken so far; the new ones are added.
        fields: `_score_to_song` arguments besides song_id, title and the ABC ones.

    Yields:
        One Song per readable tune with enough notes, titled from its T: field.
    """
    text = path.read_text(encoding="utf-8", errors="replace")
    header, *tunes = re.split(r"(?m)^(?=X:)", text)
    for tune in tunes:
        number = re.match(r"X:\s*(\S*)", tune).group(1)
        try:
            score = music21.converter.parse(header + tune, format="abc")
            song = _score_to_song(
                score, song_id=_unique_id(f"{id_prefix}-{number}", used_ids),
                title=score.metadata.title or "", expand_repeats=False,
                carry_accidentals=True, **fields)
        except Exception as error:  # music21 raises many types for malformed tunes
            logger.warning("skipping %s X:%s: %s", path, number, error)
            continue
        if song is not None:
            yield song


def _monophonic(notes: Iterable[Note]) -> tuple[Note, ...]:
    """Sorted, non-overlapping notes: same onset keeps the highest pitch, an
    overlapping note ends at the next onset, empty notes are dropped."""
    onsets: list[Note] = []
    for note in sorted(notes, key=lambda n: (n.start_s, -n.pitch)):
        if not onsets or note.start_s - onsets[-1].start_s > _SAME_ONSET_S:
            onsets.append(note)
    result = []
    for i, note in enumerate(onsets):
        end_s = note.end_s if i + 1 == len(onsets) else min(note.end_s, onsets[i + 1].start_s)
        if end_s > note.start_s:
            result.append(dataclasses.replace(note, end_s=end_s))
    return tuple(result)


def _midi_notes(notes: Iterable[pretty_midi.Note]) -> list[Note]:
    return [Note(int(n.pitch), float(n.start), float(n.end), int(n.velocity))
            for n in notes if n.end > n.start]


def _median_quarter_bpm(midi: pretty_midi.PrettyMIDI) -> float:
    """Duration-weighted median of the tempo map, in quarter notes per minute."""
    times, tempi = midi.get_tempo_changes()
    ends = list(times[1:]) + [max(midi.get_end_time(), float(times[-1]))]
    spans = sorted(zip(tempi, (end - start for start, end in zip(times, ends))))
    total = sum(span for _, span in spans)
    elapsed = 0.0
    for tempo, span in spans:
        elapsed += span
        if elapsed >= total / 2:
            return float(tempo)
    return float(tempi[0])


def _safe_stem(text: str) -> str:
    """ASCII letters, digits, '-' and '_' only (accents dropped, spaces → '_')."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9_-]", "", ascii_text.replace(" ", "_")) or "untitled"


def _unique_id(candidate: str, used: set[str]) -> str:
    """candidate, or candidate-2, -3, ... if taken; records the result in `used`."""
    song_id, n = candidate, 1
    while song_id in used:
        n += 1
        song_id = f"{candidate}-{n}"
    used.add(song_id)
    return song_id


def _composers(folder: str) -> str:
    """'Robert_Burns-[Traditional]' → 'Robert Burns, Traditional'."""
    names = (name.replace("_", " ").strip("[]") for name in folder.split("-"))
    return ", ".join(name for name in names if name)
