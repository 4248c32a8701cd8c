"""benchmarks.line_quality: a stored line scored against the notes it should hold, and the
queries grouped by how their songs were heard (the whole run: the README's command)."""
import numpy as np
import pytest

from benchmarks import line_quality as lq
from training.melody import Note

RATE_HZ = 12.5
CENTRE_S = 0.064


def stored(notes: list[Note], seconds: float, shift: float = 0.0) -> np.ndarray:
    """The line a perfect listener would store: the note sounding at each frame's centre."""
    times = np.arange(int(seconds * RATE_HZ)) / RATE_HZ + CENTRE_S
    line = np.zeros(times.size, np.float32)
    for note in notes:
        line[(times >= note.start_s) & (times < note.end_s)] = note.pitch + shift
    return line


# legato phrases of half-second notes with a two-second rest between them
NOTES = [Note(60 + (i * 5) % 12, 0.5 * i + 2.0 * (i >= 10), 0.5 * (i + 1) + 2.0 * (i >= 10)) for i in range(20)]


def test_a_right_line_scores_one_octaves_aside_and_a_wrong_one_zero():
    chroma, false_alarm = lq.line_scores(stored(NOTES, 12.0), RATE_HZ, CENTRE_S, tuple(NOTES))
    # at a note change the nearest 80 ms frame may hold the other note for a few 10 ms steps
    assert chroma > 0.95 and false_alarm < 0.05
    octave, _ = lq.line_scores(stored(NOTES, 12.0, 12.0), RATE_HZ, CENTRE_S, tuple(NOTES))
    assert octave == pytest.approx(chroma)
    wrong, _ = lq.line_scores(stored(NOTES, 12.0, 1.0), RATE_HZ, CENTRE_S, tuple(NOTES))
    assert wrong < 0.03
    half = stored(NOTES, 12.0)
    half[: half.size // 2] += 2.0
    assert lq.line_scores(half, RATE_HZ, CENTRE_S, tuple(NOTES))[0] == pytest.approx(chroma / 2, abs=0.06)


def test_each_frame_is_sorted_and_wrong_ones_traced_to_the_part_that_sounds_them():
    lead = (Note(60, 0.0, 4.0), Note(62, 4.0, 8.0))
    third = (Note(64, 0.0, 4.0), Note(65, 4.0, 8.0))  # a harmony line a third above
    chords = (Note(48, 0.0, 8.0), Note(55, 0.0, 8.0))  # C and G under both notes
    parts = {"line": third, "accompaniment": chords}
    times = np.arange(100) / RATE_HZ + CENTRE_S  # 8 s
    line = np.where(times < 4.0, 60.0, 62.0)
    line[10:20] = 64.0  # the line's note: wrong, on the line
    line[20:25] = 67.0  # G, a chord tone: wrong, on the accompaniment
    line[25:30] = 72.0  # the lead an octave up
    line[30:35] = 0.0  # nothing heard
    line[50:52] = 60.0  # the lead's previous note lingering past the change at 4 s: a timing slip
    line[60:62] = 64.5  # half way between E and F while the line plays F: wrong, traced to the line
    line[98:] = 60.0  # the song's first note (C) at its end: wrong, not a timing slip, on the chords
    counts = lq.frame_errors(line, RATE_HZ, CENTRE_S, lead, parts)
    assert counts["lead_frames"] == 100
    assert (counts["wrong"], counts["octave"], counts["unheard"], counts["timing"]) == (19, 5, 5, 2)
    assert counts["right"] == 100 - 19 - 5 - 5 - 2
    assert (counts["wrong_on_line"], counts["wrong_on_accompaniment"], counts["wrong_on_bass"]) == (12, 7, 0)
    assert counts["wrong_on_backing"] == 19
    shares = lq.frame_shares([counts, dict(counts)])
    assert shares["wrong"] == 0.19 and shares["wrong_sounded_by"]["line"] == pytest.approx(12 / 19, abs=1e-3)


def test_queries_are_counted_by_their_songs_groups():
    counts = {"lead_frames": 100, "right": 90, "timing": 0, "octave": 0, "wrong": 10, "unheard": 0,
              "wrong_on_line": 0, "wrong_on_accompaniment": 10, "wrong_on_bass": 0, "wrong_on_backing": 10}
    rows = [{"song_id": "a", "raw_chroma": 0.95, "lead_db": 4.0, "style": "band", "voice_lead": True,
             "line": "none", "source": "pop909", **counts},
            {"song_id": "b", "raw_chroma": 0.55, "lead_db": -4.0, "style": "piano", "voice_lead": False,
             "line": "third", "source": "openewld", **counts, "wrong": 30, "right": 70}]
    queries = [{"truth": "a", "rank": "1"}, {"truth": "a", "rank": "3"}, {"truth": "b", "rank": "0"},
               {"truth": "elsewhere", "rank": "1"}]
    summary = lq.summarise(rows, queries)
    assert summary["songs"] == 2 and summary["mean_raw_chroma"] == pytest.approx(0.75)
    assert summary["style"]["band"] == {"songs": 1, "mean_raw_chroma": 0.95, "wrong": 0.1, "queries": 2,
                                        "top1": 0.5, "top10": 1.0}
    assert summary["frames"]["wrong"] == 0.2 and summary["source"]["openewld"]["wrong"] == 0.3
    assert summary["style"]["piano"]["top10"] == 0.0
    assert summary["lead_db"]["+3..+6 dB"]["queries"] == 2 and "-6..-3 dB" in summary["lead_db"]
    assert summary["raw_chroma"][">= 0.5"]["top1"] == 0.0
