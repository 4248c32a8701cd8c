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


def test_held_notes_are_scored_on_their_later_frames_only():
    reference = np.zeros(1000, np.float32)
    reference[100:400] = 60  # a note of 6 s: frames 1 s or more into it are 150..399
    reference[500:540] = 64  # a short one, never held
    salience = salience_of(reference, 2)
    salience[75:, :] = 0  # the line stops after 150 frames: the held part goes unheard
    salience[250:270, int(round((64 - FRONTEND.fmin_midi) * FRONTEND.bins_per_semitone))] = 1.0
    config = mel.MelodyConfig(voicing_threshold=0.5, pool=mel.MelodyConfig.pool_for(2))
    result = scores(reference, salience, FRONTEND, config, 2)
    assert result["Raw Pitch Accuracy, held notes"] < 0.05 < result["Raw Pitch Accuracy"]
    assert np.isnan(scores(np.where(reference == 60, 0, reference), salience, FRONTEND, config, 2)[
        "Raw Pitch Accuracy, held notes"])  # no held note: not scored
