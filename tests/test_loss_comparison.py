"""The loss comparison's pieces: every variant is a valid configuration with its own loss,
and the table and plot are written from query rows."""
from __future__ import annotations

import pytest

pytest.importorskip("tensorflow", reason="the training extra is not installed")

from benchmarks.loss_comparison import VARIANTS, plot, slug, table_row, train_command  # noqa: E402
from training.config import TrainConfig, override  # noqa: E402


def test_each_variant_trains_a_different_loss():
    losses = set()
    for settings in VARIANTS.values():
        config = override(TrainConfig.default(), settings)
        losses.add((config.triplet_weight > 0 and config.triplet_mining, config.confidence_weight > 0))
        assert config.triplet_weight > 0 or config.confidence_weight > 0
    assert len(losses) == len(VARIANTS) == 5
    assert len({slug(name) for name in VARIANTS}) == len(VARIANTS)


def test_table_rows_summarise_each_set_and_plot(tmp_path):
    def rows(ranks):
        return [{"set": s, "rank": r, "decision": "no_match", "seconds": 8.0, "time_ms": 20.0}
                for s in ("synthetic", "synthetic-mic", "mir1k") for r in ranks]
    table = [table_row("semi-hard", 4, 0.31, rows([1, 1, 3, 0])),
             table_row("shipped", None, None, rows([2, 0, 0, 0]))]
    assert table[0]["synthetic_top1"] == 0.5 and table[0]["mir1k_top10"] == 0.75
    assert table[1]["epochs"] == "" and table[1]["mir1k_mrr"] == 0.125
    plot(table, tmp_path / "losses.png")
    assert (tmp_path / "losses.png").stat().st_size > 10_000


@pytest.mark.parametrize("name", list(VARIANTS))
def test_the_training_process_gets_exactly_the_variant(name, tmp_path):
    command = train_command(tmp_path / "pairs", tmp_path / "run", VARIANTS[name], epochs=3)
    assert command[1:3] == ["-m", "training.train"]
    settings = [command[i + 1] for i, arg in enumerate(command) if arg == "--set"]
    assert override(TrainConfig.default(), settings) == override(TrainConfig.default(), VARIANTS[name] + ["epochs=3"])
