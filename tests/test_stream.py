"""Streaming equals one-shot: the resampler, the recognizer's feed and push, the gate."""
from __future__ import annotations

import numpy as np
import pytest

from device import assets
from device.audio import StreamResampler, resample
from device.catalogue import Catalogue
from device.frontend import FrontendConfig, log_spectrogram, n_frames
from device.listening import FileSource, Listener
from device.recognizer import Recognizer, RecognizerConfig, tonal_frames

FRONTEND = FrontendConfig()
RATE = FRONTEND.sample_rate_hz
BLOCKS = (1, 160, 1024, 65536)


def in_blocks(audio: np.ndarray, size: int):
    for start in range(0, audio.size, size):
        yield audio[start:start + size]


def hum_of(song_id: str, seed: int) -> np.ndarray:
    """float32 (n,) at RATE: a synthetic hum of one of the written-out tunes."""
    from training import corpora
    from training.hum import HumStyle, synthesize_hum
    song = next(s for s in corpora.written_tunes() if s.song_id == song_id)
    rng = np.random.default_rng(seed)
    return synthesize_hum(song.melody, HumStyle.sample(rng), RATE, rng).audio


@pytest.mark.parametrize("from_hz,to_hz", [(48000, 16000), (44100, 16000), (8000, 16000), (16000, 16000)])
@pytest.mark.parametrize("block", BLOCKS)
def test_stream_resampler_equals_one_shot(from_hz, to_hz, block):
    rng = np.random.default_rng(from_hz + block)
    seconds = 0.5 if block == 1 else 1.7  # block 1 costs a call per sample
    audio = (0.3 * rng.standard_normal(int(from_hz * seconds) + 13)).astype(np.float32)
    resampler = StreamResampler(from_hz, to_hz)
    streamed = np.concatenate([resampler.push(b) for b in in_blocks(audio, block)] + [resampler.flush()])
    expected = resample(audio, from_hz, to_hz)
    assert streamed.dtype == np.float32 and streamed.shape == expected.shape
    np.testing.assert_allclose(streamed, expected, rtol=0, atol=1e-6)


def test_stream_resampler_handles_uneven_and_empty_blocks():
    rng = np.random.default_rng(3)
    audio = rng.standard_normal(48000).astype(np.float32)
    resampler = StreamResampler(48000, 16000)
    cuts = np.sort(rng.choice(audio.size, 40, replace=False))
    pieces = [resampler.push(b) for b in np.split(audio, cuts)] + [resampler.push(np.zeros(0, np.float32))]
    streamed = np.concatenate(pieces + [resampler.flush()])
    np.testing.assert_allclose(streamed, resample(audio, 48000, 16000), rtol=0, atol=1e-6)


def test_tonality_gate_skips_noise_and_keeps_a_hum():
    config = RecognizerConfig()
    rng = np.random.default_rng(0)

    def tonal_fraction(audio: np.ndarray) -> float:
        frames = log_spectrogram(audio, FRONTEND)
        return float(tonal_frames(frames, config.min_prominence_db, config.prominence_half_width_bins).mean())

    white = (0.3 * rng.standard_normal(RATE * 6)).astype(np.float32)
    spectrum = np.fft.rfft(white)
    pink = np.fft.irfft(spectrum / np.sqrt(np.maximum(np.fft.rfftfreq(white.size, 1 / RATE), 20.0)))
    pink = (0.3 * pink / pink.std()).astype(np.float32)
    for noise in (white, pink):
        assert tonal_fraction(noise) < 0.1
    for seed in (1, 2, 3):
        assert tonal_fraction(hum_of("written-twinkle-twinkle", seed)) > 0.4
    assert tonal_frames(np.zeros((0, FRONTEND.n_bins), np.float32), 15.0, 6).shape == (0,)


# Below: the recognizer on the shipped catalogue (any model gives the same answer both ways).

@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer(Catalogue(assets.default_catalogue_dir()))


@pytest.fixture(scope="module")
def known_hum() -> np.ndarray:
    # a hum the shipped model ranks first (why this one: test_cli's synthesized-hum test)
    return hum_of("written-frere-jacques", 1)


def assert_same_result(result, expected):
    assert result.decision == expected.decision
    assert (result.windows, result.skipped) == (expected.windows, expected.skipped)
    assert [m.song_id for m in result.matches] == [m.song_id for m in expected.matches]
    np.testing.assert_allclose([m.score for m in result.matches], [m.score for m in expected.matches], atol=1e-3)
    assert abs(result.confidence - expected.confidence) < 1e-3


@pytest.mark.parametrize("block", BLOCKS)
def test_feeding_blocks_equals_identify(recognizer, known_hum, block):
    audio = known_hum[:RATE * 10] if block == 1 else known_hum  # 10 s: 160,000 calls
    expected = recognizer.identify(audio)
    recognizer.reset()
    for b in in_blocks(audio, block):
        recognizer.feed(b)
    assert_same_result(recognizer.result(), expected)


@pytest.mark.parametrize("block", (160, 1024, 65536))
def test_push_without_early_answer_ends_with_the_identify_result(recognizer, known_hum, block):
    stream = Recognizer(recognizer.catalogue, RecognizerConfig(max_seconds=None, early_min_seconds=1e9))
    events = []
    for b in in_blocks(known_hum, block):
        events += stream.push(b)
    assert events and all(e.kind == "candidates" for e in events)
    step_s = stream.config.step_frames * FRONTEND.hop_length_samples / RATE
    assert len(events) == len(log_spectrogram(known_hum, FRONTEND)) // stream.config.step_frames
    assert np.allclose(np.diff([e.window_end_s for e in events]), step_s)  # a look every step
    final = stream.finish()
    assert final.final and stream.done and stream.finish() is final
    assert stream.push(known_hum[:RATE]) == []
    assert_same_result(final.result, recognizer.identify(known_hum))


def test_push_events_do_not_depend_on_block_size(recognizer, known_hum):
    def run(block: int) -> list[tuple]:
        stream = Recognizer(recognizer.catalogue)
        events = []
        for b in in_blocks(known_hum, block):
            events += stream.push(b)
            if stream.done:
                break
        if not stream.done:
            events.append(stream.finish())
        return [(e.kind, round(e.window_end_s, 3), e.result.windows,
                 e.result.matches[0].song_id if e.result.matches else "") for e in events]

    small, large = run(160), run(65536)
    assert small == large
    kinds = [kind for kind, *_ in small]
    assert kinds[-1] in ("match", "no_match") and set(kinds[:-1]) == {"candidates"}


def test_a_hum_streams_to_the_right_match(recognizer, known_hum):
    # no early answer: the whole hum is identified, as a file would be
    stream = Recognizer(recognizer.catalogue, RecognizerConfig(max_seconds=None, early_min_seconds=1e9))
    events = []
    for b in in_blocks(known_hum, 320):
        events += stream.push(b)
        if stream.done:
            break
    final = events[-1] if stream.done else stream.finish()
    assert events[0].kind == "candidates"
    # the right song leads the final answer; whether the matcher is confident enough to say
    # "match" depends on the calibrated thresholds (benchmarks/calibrate.py), not on plumbing
    assert final.final and final.result.matches[0].song_id == "written-frere-jacques"
    assert final.window_end_s <= final.result.audio_s <= known_hum.size / RATE


@pytest.mark.parametrize("consecutive", [1, 2])
def test_the_early_answer_comes_at_the_first_look_that_meets_the_policy(recognizer, known_hum, consecutive):
    patient = Recognizer(recognizer.catalogue, RecognizerConfig(max_seconds=None, early_consecutive=10 ** 9))
    looks = [e for b in in_blocks(known_hum, 3200) for e in patient.push(b)]
    config = RecognizerConfig(max_seconds=None, early_consecutive=consecutive)
    streak, song, expected = 0, "", None
    for look in looks:  # the policy, spelled out on each look's result
        result = look.result
        confident = (result.decision == "match" and result.confidence >= config.early_min_confidence
                     and look.window_end_s >= config.early_min_seconds)
        best = result.matches[0].song_id if confident else ""
        streak, song = (streak + 1 if best == song else 1, best) if confident else (0, "")
        if streak >= consecutive:
            expected = look
            break
    assert expected is not None, "the known hum never met the policy"
    eager = Recognizer(recognizer.catalogue, config)
    events = []
    for b in in_blocks(known_hum, 3200):
        events += eager.push(b)
        if eager.done:
            break
    assert eager.done and events[-1].kind == "match"
    assert events[-1].window_end_s == expected.window_end_s
    assert events[-1].result.matches[0].song_id == expected.result.matches[0].song_id == "written-frere-jacques"


def test_silence_and_noise_give_no_melody_and_time_out_as_no_match(recognizer):
    stream = Recognizer(recognizer.catalogue, RecognizerConfig(max_seconds=6.0))
    rng = np.random.default_rng(9)
    audio = np.concatenate([np.zeros(RATE * 3, np.float32),
                            (0.3 * rng.standard_normal(RATE * 5)).astype(np.float32)])
    events = []
    for b in in_blocks(audio, 1024):
        events += stream.push(b)
    assert [e.kind for e in events][-1] == "no_match" and {e.kind for e in events[:-1]} <= {"candidates"}
    result = events[-1].result
    assert not result.matches and np.count_nonzero(result.melody) < 10 and result.audio_s == pytest.approx(6.0)


def test_the_listener_resamples_and_reports_lost_audio(recognizer, known_hum):
    class LossySource(FileSource):
        """Loses a block now and then, as an overloaded microphone would."""

        reads = 0

        def read(self, timeout_s=None):
            self.reads += 1
            return super().read(timeout_s)

        @property
        def overflows(self) -> int:
            return self.reads // 100

    source = LossySource(resample(known_hum, RATE, 44100), 44100, block_samples=882)
    stream = Recognizer(recognizer.catalogue, RecognizerConfig(max_seconds=12.0, early_min_seconds=1e9))
    reported = []
    events = list(Listener(source, stream, on_overflow=reported.append).events())
    assert events[-1].final and all(not e.final for e in events[:-1])
    assert events[-1].result.audio_s == pytest.approx(12.0)
    assert len(events) - 1 == n_frames(12 * RATE, FRONTEND) // stream.config.step_frames  # one per look
    assert reported and reported == sorted(set(reported)) and reported[-1] == source.overflows
