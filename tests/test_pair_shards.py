"""The pair cache on disk: shards round-trip, and a small subset travels to a GPU machine."""
from __future__ import annotations

import numpy as np
import pytest

from training import pair_shards


def song(song_id: str, frames: int) -> pair_shards.SongPairs:
    rng = np.random.default_rng(frames)
    spec = lambda n: rng.normal(-40, 10, (n, 120)).astype(np.float16)  # noqa: E731
    return pair_shards.SongPairs(song_id, spec(frames), [spec(frames // 2)],
                                 [np.linspace(0, frames - 1, frames // 2, dtype=np.float32)], ["hum"])


def test_shards_round_trip_and_the_smallest_songs_are_chosen_across_shards(tmp_path):
    first, second = [song("a", 300), song("b", 100)], [song("c", 200), song("d", 50)]
    pair_shards.save(first, tmp_path / "shard_00000.pkl")
    pair_shards.save(second, tmp_path / "shard_00001.pkl")
    loaded = pair_shards.load([tmp_path / "shard_00000.pkl"])
    assert [s.song_id for s in loaded] == ["a", "b"] and loaded[0].kinds == ["hum"]
    np.testing.assert_array_equal(loaded[0].recording_db, first[0].recording_db)
    paths = sorted(tmp_path.glob("shard_*.pkl"))
    assert [s.song_id for s in pair_shards.smallest(paths, 2)] == ["d", "b"]
    assert pair_shards.main(["--pairs", str(tmp_path), "--songs", "3", "--out", str(tmp_path / "sub")]) == 0
    assert [s.song_id for s in pair_shards.load([tmp_path / "sub" / "shard_00000.pkl"])] == ["d", "b", "c"]


def test_a_folder_without_shards_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        pair_shards.main(["--pairs", str(tmp_path), "--songs", "3", "--out", str(tmp_path / "sub")])
    assert exit_info.value.code == 2 and "no shard_*.pkl" in capsys.readouterr().err
    assert not (tmp_path / "sub").exists()
