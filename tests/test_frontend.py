import numpy as np
import pytest

from device import frontend as fe

CONFIG = fe.FrontendConfig()


def tone(freq_hz: float, seconds: float, rate: int = CONFIG.sample_rate_hz) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def test_a440_lands_in_the_a4_bin():
    spec = fe.log_spectrogram(tone(440.0, 1.0), CONFIG)
    a4_bin = int((69 - CONFIG.fmin_midi) * CONFIG.bins_per_semitone)
    assert np.all(spec.argmax(axis=1) == a4_bin)


@pytest.mark.parametrize("midi", [40, 55, 72, 90])
def test_every_semitone_peaks_at_its_bin(midi):
    spec = fe.log_spectrogram(tone(440.0 * 2 ** ((midi - 69) / 12), 0.5), CONFIG)
    expected = int((midi - CONFIG.fmin_midi) * CONFIG.bins_per_semitone)
    assert abs(int(np.median(spec.argmax(axis=1))) - expected) <= 1


def test_frame_count_has_no_padding():
    n = CONFIG.frame_length_samples + 10 * CONFIG.hop_length_samples + 5
    assert fe.log_spectrogram(np.zeros(n, np.float32), CONFIG).shape == (11, CONFIG.n_bins)
    assert fe.log_spectrogram(np.zeros(100, np.float32), CONFIG).shape == (0, CONFIG.n_bins)


def test_filters_are_never_empty_and_sum_to_one():
    bank = fe._filterbank(CONFIG)
    assert np.all(bank.max(axis=0) > 0)
    np.testing.assert_allclose(bank.sum(axis=0), 1.0, rtol=1e-5)


@pytest.mark.parametrize("block", [1, 160, 1024, 65536])
def test_streaming_frames_equal_one_shot(block):
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(3 * CONFIG.sample_rate_hz).astype(np.float32) * 0.1
    if block == 1:
        audio = audio[:CONFIG.frame_length_samples + 20 * CONFIG.hop_length_samples]  # keep it quick
    stream = fe.FrameStream(CONFIG)
    parts = [stream.push(audio[i:i + block]) for i in range(0, audio.size, block)]
    # equal up to float rounding: BLAS sums a batch of frames in another order than one frame
    np.testing.assert_allclose(np.concatenate(parts), fe.log_spectrogram(audio, CONFIG), atol=1e-3)


def test_windows_are_normalised_each_on_its_own():
    rng = np.random.default_rng(1)
    spec = rng.uniform(-60, 20, size=(CONFIG.window_frames * 2, CONFIG.n_bins)).astype(np.float32)
    louder = spec.copy()
    louder[CONFIG.window_frames:] += 30.0  # the second window is louder
    a = fe.windows(spec, CONFIG.window_frames, CONFIG)
    b = fe.windows(louder, CONFIG.window_frames, CONFIG)
    assert a.shape == (2, CONFIG.window_frames, CONFIG.n_bins)
    assert a.min() >= 0.0 and a.max() == 1.0
    np.testing.assert_allclose(a, b, atol=1e-5)  # level does not matter, per window


def test_too_short_for_a_window_gives_none():
    spec = np.zeros((CONFIG.window_frames - 1, CONFIG.n_bins), np.float32)
    assert fe.windows(spec, 10, CONFIG).shape == (0, CONFIG.window_frames, CONFIG.n_bins)
