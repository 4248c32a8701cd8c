"""Why a song matched: the melody heard in the query drawn over the song's stored melody,
aligned (key and tempo undone), under the query's spectrogram.

Needs matplotlib (the "plot" extra); everything else is the recognizer's own result.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from device import alignment as al
from device import frontend as fe
from device.recognizer import Recognizer, Result


class PlotError(Exception):
    """The figure cannot be drawn (no matplotlib, nothing matched)."""


def aligned_song(recognizer: Recognizer, result: Result, rank: int) -> tuple[np.ndarray, np.ndarray, int, float]:
    """The song at `rank` (1 = best) re-aligned with the query's melody.

    Returns:
        (path int64 (n_query,) song melody frame per query frame, the song's melody around
        it float32 (m,), the first song frame of that stretch, the key shift in semitones).
    """
    if rank > len(result.matches):
        raise PlotError(f"no candidate of rank {rank} to draw")
    catalogue, line = recognizer.catalogue, result.melody
    match = result.matches[rank - 1]
    row = next(r for r, s in enumerate(catalogue.songs) if s.song_id == match.song_id)
    song = catalogue.melody(row)
    offset = int(round(match.offset_s * catalogue.melody_rate_hz))
    first = max(0, offset - line.size // 2)
    stretch = song[first:min(song.size, offset + 2 * line.size + 1)]
    key = result.keys[rank - 1]
    best = al.align(line, [stretch], np.array([[key]]), with_path=True)[0]
    return best.path + first, song, first, key


def plot(recognizer: Recognizer, audio: np.ndarray, result: Result, out: Path, rank: int = 1) -> Path:
    """Draws the explanation of the match at `rank` into `out` (PNG)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotError("--plot needs matplotlib: pip install 'hum-search[plot]'") from exc
    if not result.matches:
        raise PlotError("nothing matched: no figure to draw")
    path, song, _, key = aligned_song(recognizer, result, rank)
    frontend, rate = recognizer.frontend, recognizer.catalogue.melody_rate_hz
    match = result.matches[rank - 1]
    spectrogram = fe.log_spectrogram(audio, frontend)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6))
    lo = frontend.fmin_midi
    hi = lo + frontend.n_bins / frontend.bins_per_semitone
    top.imshow(spectrogram.T, origin="lower", aspect="auto", cmap="magma",
               extent=(0, spectrogram.shape[0] / frontend.frame_rate_hz, lo, hi),
               vmin=spectrogram.max() - 80, vmax=spectrogram.max())
    query_t = (np.arange(result.melody.size) + 0.5) / rate
    voiced = result.melody > 0
    top.plot(query_t[voiced], result.melody[voiced], ".", color="cyan", markersize=3, label="melody heard")
    top.set(title="the query and the melody heard in it", ylabel="MIDI", xlabel="query seconds")
    top.legend(loc="upper right", fontsize=7)
    span = slice(max(0, int(path.min()) - 10), min(song.size, int(path.max()) + 10))
    song_t = np.arange(song.size) / rate
    song_voiced = song > 0
    shown = np.zeros(song.size, bool)
    shown[span] = True
    bottom.plot(song_t[song_voiced & shown], song[song_voiced & shown], "s", color="0.6", markersize=3,
                label="the song's melody (from its recording)")
    # The query's pitch, moved to the song's key (the octave nearest the song's) and time.
    moved = result.melody + key
    target = song[np.clip(path, 0, song.size - 1)]
    moved = np.where(target > 0, moved + 12.0 * np.round((target - moved) / 12.0), moved)
    bottom.plot(path[voiced] / rate, moved[voiced], ".", color="crimson", markersize=3,
                label=f"the query, aligned ({key:+.1f} semitones)")
    bottom.set(title=f"#{rank} {match.title} — score {match.score:.2f}, from {match.offset_s:.1f} s",
               ylabel="MIDI", xlabel="song seconds")
    bottom.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
