import dataclasses

import numpy as np
import pytest
from scipy import signal

from device.frontend import FrontendConfig
from training.acoustics import (NOISE_KINDS, RT60_RANGE_S, Agc, Clipping, Compression,
                                Equalizer, MicChain, Microphone, Noise, ProductionChain,
                                Reverberation, StudioReverb, room_bank, room_designs)

SR = FrontendConfig().sample_rate_hz
PHONE = Microphone("phone", 300.0, 4, 3400.0, 8, 0.0)
EVERY_STAGE = MicChain(room=Reverberation(0, 1.0), noise=Noise("babble", 10.0),
                       microphone=PHONE, agc=Agc(0.01, 0.5, 20.0),
                       clipping=Clipping("soft", 6.0))
FULL_PRODUCTION = ProductionChain(StudioReverb(0.8, 0.5, 0.3),
                                  Equalizer(120.0, 4.0, 900.0, -3.0, 1.0, 4000.0, 3.0),
                                  Compression(-20.0, 4.0, 5.0, 100.0), 4.0)


def voice_like(seconds: float = 2.0) -> np.ndarray:
    """Two partials under a 5 Hz syllabic envelope, an odd number of samples."""
    t = np.arange(int(seconds * SR) + 1) / SR
    envelope = np.clip(np.sin(2.0 * np.pi * 2.5 * t), 0.0, None)
    tone = np.sin(2.0 * np.pi * 220.0 * t) + 0.5 * np.sin(2.0 * np.pi * 660.0 * t)
    return (0.5 * envelope * tone).astype(np.float32)


def click_train(seconds: float = 1.0) -> np.ndarray:
    """Unit clicks at irregular intervals, so the cross-correlation has one clear peak."""
    x = np.zeros(int(seconds * SR), dtype=np.float32)
    x[np.random.default_rng(5).choice(np.arange(400, x.size - 400), 12, replace=False)] = 1.0
    return x


def lag_samples(output: np.ndarray, reference: np.ndarray) -> int:
    """Delay of `output` relative to `reference` at the cross-correlation peak."""
    correlation = signal.correlate(output, reference, mode="full", method="fft")
    return int(np.argmax(np.abs(correlation))) - (reference.size - 1)


def band_power(audio: np.ndarray, low_hz: float, high_hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(audio.size, 1.0 / SR)
    return float(spectrum[(freqs >= low_hz) & (freqs < high_hz)].sum())


def rms_db(audio: np.ndarray) -> float:
    return 10.0 * np.log10(np.mean(np.square(audio, dtype=np.float64)))


@pytest.mark.parametrize("seed", range(12))
def test_sampled_chains_keep_length_and_dtype(seed):
    rng = np.random.default_rng(seed)
    x = voice_like()
    for y in (MicChain.sample(rng).apply(x, SR, rng), ProductionChain.sample(rng).apply(x, SR)):
        assert y.dtype == np.float32 and y.shape == x.shape
        assert np.all(np.isfinite(y))
        assert np.max(np.abs(y)) == pytest.approx(0.9, abs=1e-4)


def test_every_stage_keeps_length_on_long_and_short_audio():
    for seconds in (0.05, 20.0):
        x = voice_like(seconds)
        assert EVERY_STAGE.apply(x, SR, np.random.default_rng(0)).shape == x.shape
        assert FULL_PRODUCTION.apply(x, SR).shape == x.shape


def test_mic_chain_is_deterministic_for_a_seed_and_varies_with_it():
    x = voice_like()

    def run(seed):
        rng = np.random.default_rng(seed)
        return MicChain.sample(rng), EVERY_STAGE.apply(x, SR, rng)

    (chain_a, y_a), (chain_b, y_b), (chain_c, y_c) = run(1), run(1), run(2)
    assert chain_a == chain_b and np.array_equal(y_a, y_b)
    assert chain_a != chain_c and not np.allclose(y_a, y_c)


def test_production_chain_is_deterministic_and_varies_with_the_seed():
    x = voice_like()
    first = FULL_PRODUCTION.apply(x, SR)
    FULL_PRODUCTION.apply(voice_like(1.0)[::-1].copy(), SR)  # would leave a tail in a stale board
    assert np.array_equal(first, FULL_PRODUCTION.apply(x, SR))
    a = ProductionChain.sample(np.random.default_rng(3))
    assert a == ProductionChain.sample(np.random.default_rng(3))
    assert a != ProductionChain.sample(np.random.default_rng(4))
    other = dataclasses.replace(FULL_PRODUCTION, reverb=StudioReverb(0.3, 0.5, 0.1))
    assert not np.allclose(first, other.apply(x, SR))


@pytest.mark.parametrize("index", range(len(room_designs())))
def test_room_keeps_the_direct_sound_in_place(index):
    x = click_train()
    y = Reverberation(index, 1.0).apply(x, SR)
    assert abs(lag_samples(y, x)) <= 2


def test_whole_chains_do_not_delay_the_audio():
    x = click_train()
    quiet_noise = dataclasses.replace(EVERY_STAGE, noise=Noise("hiss", 30.0))
    assert abs(lag_samples(quiet_noise.apply(x, SR, np.random.default_rng(0)), x)) <= 2
    assert abs(lag_samples(FULL_PRODUCTION.apply(x, SR), x)) <= 2


@pytest.mark.parametrize("kind", NOISE_KINDS)
@pytest.mark.parametrize("snr_db", [0.0, 12.0, 25.0])
def test_noise_is_added_at_the_drawn_snr(kind, snr_db):
    x = voice_like(3.0)
    y = MicChain(noise=Noise(kind, snr_db)).apply(x, SR, np.random.default_rng(7))
    scale = float(np.dot(y, x) / np.dot(x, x))  # undoes the final peak normalisation
    noise = y / scale - x
    measured = 10.0 * np.log10(np.sum(np.square(x, dtype=np.float64))
                               / np.sum(np.square(noise, dtype=np.float64)))
    assert measured == pytest.approx(snr_db, abs=1.0)


def test_phone_band_removes_lows_and_highs():
    x = np.random.default_rng(0).standard_normal(2 * SR).astype(np.float32)
    y = MicChain(microphone=PHONE).apply(x, SR, np.random.default_rng(0))

    def change_db(low_hz, high_hz):
        return 10.0 * np.log10(band_power(y, low_hz, high_hz) / band_power(x, low_hz, high_hz))

    passband = change_db(500.0, 3000.0)
    assert change_db(0.0, 200.0) < passband - 15.0
    assert change_db(4000.0, SR / 2) < passband - 15.0


def test_agc_narrows_the_gap_between_loud_and_quiet():
    t = np.arange(3 * SR) / SR
    x = (np.sin(2.0 * np.pi * 440.0 * t) * np.where(t < 1.5, 0.8, 0.04)).astype(np.float32)
    y = MicChain(agc=Agc(0.01, 0.3, 30.0)).apply(x, SR, np.random.default_rng(0))
    loud, quiet = slice(int(0.5 * SR), int(1.5 * SR)), slice(int(2.0 * SR), 3 * SR)
    assert rms_db(x[loud]) - rms_db(x[quiet]) == pytest.approx(26.0, abs=0.1)
    assert rms_db(y[loud]) - rms_db(y[quiet]) < 6.0


def test_hard_clipping_flattens_the_peaks_and_soft_clipping_lowers_the_crest():
    t = np.arange(SR) / SR
    x = (0.9 * np.sin(2.0 * np.pi * 200.0 * t)).astype(np.float32)
    hard = MicChain(clipping=Clipping("hard", 12.0)).apply(x, SR, np.random.default_rng(0))
    assert np.max(np.abs(hard)) == pytest.approx(0.9, abs=1e-4)
    assert np.mean(np.abs(hard) > 0.899) > 0.7  # a 12 dB drive clips 84% of a sine
    soft = MicChain(clipping=Clipping("soft", 12.0)).apply(x, SR, np.random.default_rng(0))
    crest = np.max(np.abs(soft)) / np.sqrt(np.mean(soft ** 2))
    assert crest < 0.8 * np.sqrt(2.0)


def test_bank_rt60s_follow_their_draws():
    for design, response in zip(room_designs(), room_bank(SR)):
        assert RT60_RANGE_S[0] <= design.rt60_s <= RT60_RANGE_S[1]
        # Schroeder backward integration, T30: the line through -5 and -35 dB.
        decay = np.cumsum(response[::-1].astype(np.float64) ** 2)[::-1]
        decay_db = 10.0 * np.log10(decay / decay[0])
        fit = slice(int(np.argmax(decay_db < -5.0)), int(np.argmax(decay_db < -35.0)))
        slope_db_s = np.polyfit(np.arange(response.size)[fit] / SR, decay_db[fit], 1)[0]
        assert -60.0 / slope_db_s == pytest.approx(design.rt60_s, rel=0.25)


def test_sample_sometimes_returns_the_clean_chain():
    rng = np.random.default_rng(0)
    chains = [MicChain.sample(rng) for _ in range(300)]
    clean = sum(c == MicChain() for c in chains) / len(chains)
    assert 0.06 < clean < 0.2
    x = voice_like()
    assert np.allclose(MicChain().apply(x, SR, rng), 0.9 * x / np.max(np.abs(x)), atol=1e-6)
    assert MicChain().describe() == "clean" and ProductionChain().describe() == "clean"


def test_describe_names_the_choices():
    text = EVERY_STAGE.describe()
    rt60 = room_designs()[0].rt60_s
    assert text == f"room rt60={rt60:.2f} babble snr=10 phone agc clip soft +6dB"
    assert FULL_PRODUCTION.describe().startswith("reverb size=0.80 wet=0.30 eq +4/-3@900/+3")
