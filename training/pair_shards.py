"""The pair cache on disk: one song's features (SongPairs) and the shards that hold them.

Kept apart from the pair building (training.pairs, which needs FluidSynth, music21 and
the acoustics) so that training reads shards with numpy and Keras alone, as on a lent
GPU machine.

Run as a program, it writes a subset: the songs with the smallest features, in one shard,
small enough to travel to a lent GPU machine (whose working tree is limited to 64 MiB):

    python -m training.pair_shards --pairs data/pairs/v3 --songs 56 --out .gpu/pairs
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import pickle
import sys
from pathlib import Path

import numpy as np


@dataclasses.dataclass
class SongPairs:
    """Cached features of one song.

    Attributes:
        recording_db: float16 (T_r, n_bins) spectrogram of the rendered excerpt.
        hums_db: per query, float16 (T_h, n_bins).
        hum_to_recording: per query, float32 (T_h,): the recording frame (fractional)
            that sounds the same melody moment as each query frame.
        kinds: per query, what made it: a voice ("hum", "la", "da", "oo", "whistle"),
            "track-<voice>" or "track-tone" (the pitch-track path), or "version" (a
            mined version); empty for shards of the vertical slice.
        recording_midi: float32 (T_r,): the lead's pitch per recording frame as played
            (MIDI, octave included), 0 where it is silent; None in shards made before
            melody targets.
        hums_midi: per query, float32 (T_h,): the query's own f0 per frame (MIDI), 0
            where unvoiced; empty in shards made before melody targets.
        recording_lead_db: the recording's lead over its backing, dB
            (`training.render.Arrangement.lead_db`); None in older shards.
        recording_hard: whether the recording is a render the model hears worst
            (`training.render.is_hard`); None in older shards.
        recording_backing: uint8 (T_r, 16): per recording frame, the MIDI pitches 0..127
            that the backing plays (`training.pairs.BACKING_PARTS`), packed 8 to a byte
            (np.packbits along the pitch axis); None in older shards.
    """

    song_id: str
    recording_db: np.ndarray
    hums_db: list[np.ndarray]
    hum_to_recording: list[np.ndarray]
    kinds: list[str] = dataclasses.field(default_factory=list)
    recording_midi: np.ndarray | None = None
    hums_midi: list[np.ndarray] = dataclasses.field(default_factory=list)
    recording_lead_db: float | None = None
    recording_hard: bool | None = None
    recording_backing: np.ndarray | None = None


def song_seed(song_id: str, seed: int) -> int:
    """A stable per-song seed (independent of corpus order and Python's hash salt)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{song_id}".encode()).digest()[:4], "little")


def save(songs: list[SongPairs], path: Path) -> None:
    """Writes one shard atomically, as plain dicts (loading must not depend on where the
    class lives)."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        pickle.dump([dataclasses.asdict(p) for p in songs], handle, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)


def load(paths: list[Path]) -> list[SongPairs]:
    pairs = []
    for path in paths:
        with open(path, "rb") as handle:
            pairs.extend(SongPairs(**fields) for fields in pickle.load(handle))
    return pairs


def smallest(paths: list[Path], n_songs: int) -> list[SongPairs]:
    """The n_songs songs with the fewest feature bytes, read one shard at a time."""
    chosen: list[tuple[int, SongPairs]] = []
    for path in paths:
        chosen += [(_bytes(s), s) for s in load([path])]
        chosen = sorted(chosen, key=lambda item: item[0])[:n_songs]
    return [s for _, s in chosen]


def _bytes(song: SongPairs) -> int:
    return song.recording_db.nbytes + sum(h.nbytes + m.nbytes for h, m in zip(song.hums_db, song.hum_to_recording))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=Path, required=True, help="directory of pair shards")
    parser.add_argument("--songs", type=int, required=True, help="songs to keep")
    parser.add_argument("--out", type=Path, required=True, help="directory for the one shard written")
    args = parser.parse_args(argv)
    paths = sorted(args.pairs.glob("shard_*.pkl"))
    if not paths or args.songs < 1:
        parser.error(f"{args.pairs}: no shard_*.pkl files" if not paths else "--songs must be at least 1")
    songs = smallest(paths, args.songs)
    args.out.mkdir(parents=True, exist_ok=True)
    save(songs, args.out / "shard_00000.pkl")
    print(f"{len(songs)} songs, {sum(map(_bytes, songs)) / 2**20:.1f} MiB -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
