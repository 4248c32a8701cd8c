import numpy as np
import pytest

from device.frontend import FrontendConfig
from training.augment import pitch_shift, time_stretch, transpose_and_stretch

SR = FrontendConfig().sample_rate_hz


def tone(hz: float, seconds: float = 2.0, peak: float = 0.9) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (peak * np.sin(2.0 * np.pi * hz * t)).astype(np.float32)


def peak_hz(audio: np.ndarray) -> float:
    """Frequency of the strongest spectral peak of the middle half, parabolic interpolation."""
    middle = audio[audio.size // 4:3 * audio.size // 4]
    n_fft = 8 * middle.size
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(middle.size), n_fft))
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1:k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * SR / n_fft


def envelope(audio: np.ndarray, width: int = 320) -> np.ndarray:
    """RMS over `width`-sample windows, away from the edges."""
    power = np.convolve(np.asarray(audio, dtype=np.float64) ** 2, np.ones(width) / width, "valid")
    return np.sqrt(power)[2048:-2048]


@pytest.mark.parametrize("factor", [0.5, 0.8, 1.25, 2.0])
def test_time_stretch_keeps_the_pitch_and_scales_the_length(factor):
    x = tone(440.0)
    y = time_stretch(x, factor)
    assert y.dtype == np.float32
    assert y.size == round(x.size / factor)
    assert peak_hz(y) == pytest.approx(440.0, rel=0.002)


def test_time_stretch_keeps_a_chord_steady():
    # Phase propagation done wrong makes the partials beat against themselves.
    x = (tone(220.0, peak=0.3) + tone(330.0, peak=0.3) + tone(495.0, peak=0.3))
    y = time_stretch(x, 0.7)
    level = envelope(y, width=1600)
    reference = envelope(x, width=1600)
    assert level.min() > 0.85 * reference.mean() and level.max() < 1.15 * reference.mean()


def test_time_stretch_moves_events_by_the_factor():
    x = np.zeros(3 * SR, dtype=np.float32)
    x[SR:int(1.3 * SR)] = tone(600.0, 0.3)
    for factor in (0.8, 1.25):
        y = time_stretch(x, factor)
        onset = np.argmax(envelope(np.pad(y, 2048), 160) > 0.3) / SR
        assert onset == pytest.approx(1.0 / factor, abs=0.03)


@pytest.mark.parametrize("semitones", [3.0, -5.0, 0.4])
def test_pitch_shift_moves_the_pitch_and_keeps_the_length(semitones):
    x = tone(440.0)
    y = pitch_shift(x, SR, semitones)
    assert y.dtype == np.float32 and y.size == x.size
    assert peak_hz(y) == pytest.approx(440.0 * 2.0 ** (semitones / 12.0), rel=0.003)


def test_pitch_shift_up_three_semitones_gives_c5():
    assert peak_hz(pitch_shift(tone(440.0), SR, 3.0)) == pytest.approx(523.25, abs=1.0)


def test_transpose_and_stretch_does_both():
    x = tone(440.0, 3.0)
    y = transpose_and_stretch(x, SR, -2.3, 1.2)
    assert y.size == round(x.size / 1.2)
    assert peak_hz(y) == pytest.approx(440.0 * 2.0 ** (-2.3 / 12.0), rel=0.003)
    level = envelope(y)
    assert level.min() > 0.85 * level.mean()


def test_no_change_is_the_identity():
    x = tone(440.0)
    np.testing.assert_array_equal(time_stretch(x, 1.0), x)
    np.testing.assert_allclose(pitch_shift(x, SR, 0.0), x, atol=1e-6)


def test_full_scale_input_stays_within_unit_peak():
    t = np.arange(2 * SR) / SR
    square = np.sign(np.sin(2.0 * np.pi * 150.0 * t))  # the worst case for overshoot
    x = (square / np.max(np.abs(square))).astype(np.float32)
    outputs = (time_stretch(x, 0.9), pitch_shift(x, SR, 4.0), transpose_and_stretch(x, SR, -3.0, 1.1))
    for y in outputs:
        assert y.dtype == np.float32 and np.max(np.abs(y)) <= 1.0


def test_rejects_stereo_and_bad_factor():
    with pytest.raises(ValueError):
        time_stretch(np.zeros((100, 2), dtype=np.float32), 1.1)
    with pytest.raises(ValueError):
        time_stretch(tone(440.0), 0.0)
