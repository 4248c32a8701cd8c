"""The melody benchmark scores the line as the device reads it, at the right times, for
models of either time stride."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mir_eval", reason="the training extra is not installed")

from benchmarks.melody_accuracy import scores  # noqa: E402
from device import frontend as fe  # noqa: E402
from device import melody as mel  # noqa: E402

FRONTEND = fe.FrontendConfig()


def salience_of(reference: np.ndarray, stride: int) -> np.ndarray:
    """float32 (n // stride, n_bins): a salience peaked on the reference's pitch at each
    salience frame's centre (input frame j * stride)."""
    sal = np.zeros((reference.size // stride, FRONTEND.n_bins), np.float32)
    for j in range(sal.shape[0]):
        midi = reference[j * stride]
        if midi > 0:
            sal[j, int(round((midi - FRONTEND.fmin_midi) * FRONTEND.bins_per_semitone))] = 1.0
    return sal


@pytest.mark.parametrize("stride", [2, 4])
def test_a_salience_on_the_melody_scores_nearly_perfectly_at_either_stride(stride):
    reference = np.zeros(1000, np.float32)
    for k, start in enumerate(range(0, 1000, 50)):  # a note a second, a rest between
        reference[start:start + 40] = 60 + (k % 7)
    config = mel.MelodyConfig(voicing_threshold=0.5, pool=mel.MelodyConfig.pool_for(stride))
    right = scores(reference, salience_of(reference, stride), FRONTEND, config, stride)
    assert right["Raw Pitch Accuracy"] > 0.9 and right["Voicing False Alarm"] < 0.3  # pooling spills into rests
    late = np.roll(salience_of(reference, stride), 12 // stride, axis=0)  # 240 ms late
    assert scores(reference, late, FRONTEND, config, stride)["Raw Pitch Accuracy"] < right["Raw Pitch Accuracy"] - 0.1
