"""Acoustic degradations of training audio: the query's room, noise and microphone, and
the recording's studio production.

Both chains keep the length of their input and never move its direct sound, because the
caller keeps a map from audio time to song time. Every linear filter is either zero-phase
(the microphone response, applied in the frequency domain) or aligned on its direct path
(room impulse responses); the production plugins have no latency.

`MicChain` is the query side: somebody hums into a phone or a Raspberry Pi microphone.
Its stages run in this order, each present with its own probability:

- room (70%): convolution with one of `ROOM_BANK_SIZE` simulated impulse responses, the
  reflections scaled by a wet gain of 0.4-1 (the direct sound keeps gain 1);
- noise (80%) at an SNR drawn uniformly in 0-30 dB: babble 30%, street 25%, hiss 30%,
  mains hum 15%;
- microphone (85%): a phone's 300-3400 Hz band 35%, a cheap microphone 45% (low cut
  100-200 Hz, roll-off 4-7 kHz), a flat one 20% (low cut 40-100 Hz); always with an
  EQ tilt of -2..+2 dB per octave about 1 kHz;
- automatic gain control (50%);
- clipping (20%), hard or soft, driven 3-15 dB past full scale.

`MicChain.sample` returns the clean chain (peak normalisation only) with probability
0.12. The output is always normalised to peak 0.9.

Room impulse responses come from pyroomacoustics' image source method in shoebox rooms
3-12 m long and wide and 2.4-4 m high, with the absorption that Sabine's formula gives
for an RT60 drawn uniformly in 0.15-0.8 s. Images go up to order `_ISM_ORDER` only (a
full-order simulation of a small live room takes seconds); past the time those images
cover, a Gaussian tail decaying at the drawn RT60 takes over, crossfaded on equal
energy (Schroeder T30s of the bank lie within 25% of the draws). Mouth and microphone
are 0.15-2 m apart. The bank is built once per process and sample rate (about 0.05 s of CPU).

Noise clips are built once per process and sample rate too (about 0.35 s of CPU, most of
it the babble voices): eight speech-like voices (`training.hum.pitch_track_hum` on syllabic
pitch contours, 4-6 syllables per second, phrases of 3-10 syllables between pauses),
street rumble (brown noise with slow level changes and passing vehicles), white and
pink hiss. Clips loop seamlessly (their ends are crossfaded into their starts), so a
query of any length cuts a segment at a random offset. Mains hum is made per call.

`ProductionChain` is the recording side: pedalboard's reverb (65%), EQ with a low shelf,
a peak and a high shelf (80%), a compressor (75%) and tanh saturation (30%), in that
order, on the input scaled to peak 1; the output has peak 0.9.
"""
from __future__ import annotations

import dataclasses
import functools
import types

import numpy as np
import pedalboard
import pyroomacoustics as pra
import scipy.fft
from scipy import signal

from training.hum import HumStyle, pitch_track_hum

BANK_SEED = 0
ROOM_BANK_SIZE = 32
RT60_RANGE_S = (0.15, 0.8)
_PEAK = 0.9
_ISM_ORDER = 10
_SPEED_OF_SOUND_M_S = 343.0
_FRAC_DELAY_TAPS = pra.constants.get("frac_delay_length")  # each image is centred on one
_DIRECT_INDEX = _FRAC_DELAY_TAPS // 2  # where each bank impulse response has its direct path
_FILTER_PAD_S = 0.1  # zeros behind the audio so the zero-phase filter does not wrap around
_AGC_HOP_S = 0.01
_LOOP_FADE_S = 0.25
_VOICE_COUNT, _VOICE_S = 8, 12.0
_STREET_COUNT, _STREET_S = 2, 30.0
_HISS_S = 10.0

NOISE_KINDS = ("babble", "street", "hiss", "hum")
_NOISE_PROBABILITIES = (0.3, 0.25, 0.3, 0.15)
MICROPHONES = ("phone", "cheap", "flat")
_MICROPHONE_PROBABILITIES = (0.35, 0.45, 0.2)


@dataclasses.dataclass(frozen=True)
class RoomDesign:
    """One simulated room of the bank.

    Attributes:
        size_m: (length, width, height) in metres.
        rt60_s: the reverberation time drawn for it (Sabine absorption; tail decay rate).
        absorption: energy absorption coefficient of every wall.
        source_m: position of the mouth, metres.
        mic_m: position of the microphone, metres.
    """

    size_m: tuple[float, float, float]
    rt60_s: float
    absorption: float
    source_m: tuple[float, float, float]
    mic_m: tuple[float, float, float]

    @classmethod
    def sample(cls, rng: np.random.Generator) -> RoomDesign:
        """Draws a room, then an RT60 its walls can give, then a mouth 0.15-2 m from a mic."""
        while True:
            size = (rng.uniform(3.0, 12.0), rng.uniform(3.0, 12.0), rng.uniform(2.4, 4.0))
            rt60 = rng.uniform(*RT60_RANGE_S)
            volume = size[0] * size[1] * size[2]
            surface = 2.0 * (size[0] * size[1] + size[0] * size[2] + size[1] * size[2])
            absorption = 24.0 * np.log(10.0) * volume / (_SPEED_OF_SOUND_M_S * surface * rt60)
            if absorption > 0.95:  # a big room cannot be this dry
                continue
            margin = 0.3
            source = np.array([rng.uniform(margin, size[0] - margin),
                               rng.uniform(margin, size[1] - margin),
                               rng.uniform(1.1, 1.8)])
            distance = float(np.exp(rng.uniform(np.log(0.15), np.log(2.0))))
            azimuth, elevation = rng.uniform(0.0, 2.0 * np.pi), rng.uniform(-0.5, 0.3)
            mic = source + distance * np.array([np.cos(elevation) * np.cos(azimuth),
                                                np.cos(elevation) * np.sin(azimuth),
                                                np.sin(elevation)])
            if np.all(mic > margin) and np.all(mic < np.array(size) - margin):
                return cls(size_m=tuple(float(s) for s in size), rt60_s=float(rt60),
                           absorption=float(absorption), source_m=tuple(source.tolist()),
                           mic_m=tuple(mic.tolist()))


@functools.cache
def room_designs(seed: int = BANK_SEED) -> tuple[RoomDesign, ...]:
    """The `ROOM_BANK_SIZE` rooms of the bank with this seed (independent of sample rate)."""
    rng = np.random.default_rng([seed, 1])
    return tuple(RoomDesign.sample(rng) for _ in range(ROOM_BANK_SIZE))


@functools.cache
def room_bank(sample_rate_hz: int, seed: int = BANK_SEED) -> tuple[np.ndarray, ...]:
    """Impulse responses of `room_designs(seed)`, one per room.

    Returns:
        float32 arrays (n_taps,), read-only: the direct path is centred on index
        `_DIRECT_INDEX` (the taps before it are the left half of its fractional-delay
        filter) with unit DC gain; the response lasts the room's RT60 after it.
    """
    return tuple(_impulse_response(design, sample_rate_hz, np.random.default_rng([seed, 2, i]))
                 for i, design in enumerate(room_designs(seed)))


def _impulse_response(design: RoomDesign, sample_rate_hz: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Image sources up to `_ISM_ORDER`, then a Gaussian tail at the room's RT60."""
    room = pra.ShoeBox(list(design.size_m), fs=sample_rate_hz,
                       materials=pra.Material(design.absorption), max_order=_ISM_ORDER,
                       air_absorption=False)
    room.set_sound_speed(_SPEED_OF_SOUND_M_S)
    room.add_source(list(design.source_m))
    room.add_microphone(list(design.mic_m))
    room.compute_rir()
    early = np.asarray(room.rir[0][0], dtype=np.float64)

    distance = float(np.linalg.norm(np.subtract(design.mic_m, design.source_m)))
    direct = int(round(distance / _SPEED_OF_SOUND_M_S * sample_rate_hz)) + _DIRECT_INDEX
    length = direct + int(design.rt60_s * sample_rate_hz)
    # Images of order <= _ISM_ORDER are complete until sound has crossed the smallest
    # dimension that many times; the tail fades in over the 40% before that.
    complete = int(_ISM_ORDER * min(design.size_m) / _SPEED_OF_SOUND_M_S * sample_rate_hz)
    fade_end = min(complete + _DIRECT_INDEX, length)
    fade_start = int(0.6 * fade_end)
    early = np.pad(early, (0, max(length - early.size, 0)))[:length]

    t = (np.arange(length) - direct) / sample_rate_hz
    tail = rng.standard_normal(length) * 10.0 ** (-3.0 * t / design.rt60_s)
    window = slice(fade_start, fade_end)
    tail *= np.sqrt(np.sum(early[window] ** 2) / max(np.sum(tail[window] ** 2), 1e-30))
    ramp = np.clip((np.arange(length) - fade_start) / max(fade_end - fade_start, 1), 0.0, 1.0)
    response = early * np.cos(0.5 * np.pi * ramp) + tail * np.sin(0.5 * np.pi * ramp)
    response = response[direct - _DIRECT_INDEX:]
    response /= np.sum(response[:_FRAC_DELAY_TAPS])
    response = response.astype(np.float32)
    response.setflags(write=False)
    return response


@functools.cache
def noise_bank(sample_rate_hz: int, seed: int = BANK_SEED) -> types.MappingProxyType:
    """Loopable noise clips, unit RMS, keyed "voices", "street", "white", "pink".

    Returns:
        mapping from kind to a tuple of read-only float32 arrays (n_samples,) whose last
        sample runs on smoothly into the first.
    """
    rng = np.random.default_rng([seed, 3])
    clips = {
        "voices": [_speech_voice(_VOICE_S, sample_rate_hz, rng) for _ in range(_VOICE_COUNT)],
        "street": [_street(_STREET_S, sample_rate_hz, rng) for _ in range(_STREET_COUNT)],
        "white": [rng.standard_normal(int(_HISS_S * sample_rate_hz))],
        "pink": [_pink(int(_HISS_S * sample_rate_hz), sample_rate_hz, rng)],
    }
    fade = int(_LOOP_FADE_S * sample_rate_hz)
    bank = {}
    for kind, members in clips.items():
        loops = []
        for clip in members:
            loop = _loopable(np.asarray(clip, dtype=np.float64), fade)
            loop = (loop / np.sqrt(np.mean(loop ** 2))).astype(np.float32)
            loop.setflags(write=False)
            loops.append(loop)
        bank[kind] = tuple(loops)
    return types.MappingProxyType(bank)


def _loopable(clip: np.ndarray, fade: int) -> np.ndarray:
    """float64 array (clip.size - fade,): the last `fade` samples crossfaded (equal power,
    for uncorrelated noise) into the first ones, so that the clip repeats without a seam."""
    out = clip[:-fade].copy()
    angle = 0.5 * np.pi * (np.arange(fade) + 0.5) / fade
    out[:fade] = clip[:fade] * np.sin(angle) + clip[-fade:] * np.cos(angle)
    return out


def _slow_noise(n_samples: int, sample_rate_hz: int, rate_hz: float,
                rng: np.random.Generator) -> np.ndarray:
    """float64 array (n_samples,): standard Gaussian values `rate_hz` apart, interpolated."""
    step = sample_rate_hz / rate_hz
    knots = rng.standard_normal(int(n_samples / step) + 2)
    return np.interp(np.arange(n_samples) / step, np.arange(knots.size), knots)


def _speech_track(seconds: float, frame_rate_hz: float, centre_midi: float,
                  rng: np.random.Generator) -> np.ndarray:
    """A talker's pitch: phrases of 3-10 syllables at 4-6 per second, pauses of 0.2-0.9 s.

    Each syllable is voiced for 55-85% of its period, starts near the phrase's pitch (sd
    1.5 semitones) and glides by up to +-3 semitones; phrases fall by 0-3 semitones.

    Returns:
        float64 array (round(seconds * frame_rate_hz),): MIDI pitch, 0 where unvoiced.
    """
    n = int(round(seconds * frame_rate_hz))
    track = np.zeros(n)
    rate = rng.uniform(4.0, 6.0)
    t = rng.uniform(0.0, 0.5)
    while t < seconds:
        count = int(rng.integers(3, 11))
        base = centre_midi + rng.normal(0.0, 1.5)
        fall = rng.uniform(0.0, 3.0)
        for k in range(count):
            period = rng.uniform(0.8, 1.2) / rate
            a = int(t * frame_rate_hz)
            b = min(int((t + rng.uniform(0.55, 0.85) * period) * frame_rate_hz), n)
            if b > a:
                start = base - fall * k / count + rng.normal(0.0, 1.5)
                track[a:b] = start + rng.uniform(-3.0, 3.0) * np.linspace(0.0, 1.0, b - a)
            t += period
        t += rng.uniform(0.2, 0.9)
    if not np.any(track > 0):
        track[: max(n // 4, 1)] = centre_midi
    return track


def _speech_voice(seconds: float, sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """float32 array (~seconds * sample_rate_hz,): one babbling talker, male or female."""
    if rng.random() < 0.5:
        centre, formant_scale = rng.uniform(43.0, 50.0), rng.uniform(0.95, 1.05)
    else:
        centre, formant_scale = rng.uniform(53.0, 59.0), rng.uniform(1.1, 1.2)
    style = dataclasses.replace(
        HumStyle.sample(rng), voice=str(rng.choice(("la", "da", "oo", "hum"))),
        f0_centre_midi=centre, formant_scale=formant_scale, transpose_semitones=0.0,
        vibrato_depth_semitones=0.0, drift_semitones_per_10s=0.0)
    frame_rate_hz = 100.0
    track = _speech_track(seconds, frame_rate_hz, centre, rng)
    return pitch_track_hum(track, frame_rate_hz, style, sample_rate_hz, rng)


def _street(seconds: float, sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """float64 array: brown-noise rumble above 20 Hz whose level wanders by about +-5 dB
    every few seconds, plus 3-6 passing vehicles (1.5-4 s swells of 40-2000 Hz noise,
    peaking 2-5 times the rumble's RMS)."""
    n = int(seconds * sample_rate_hz)
    rumble = signal.lfilter([1.0], [1.0, -0.999], rng.standard_normal(n))
    rumble = signal.sosfilt(signal.butter(2, 20.0, "highpass", output="sos", fs=sample_rate_hz),
                            rumble)
    rumble /= np.sqrt(np.mean(rumble ** 2))
    rumble *= 10.0 ** (5.0 * _slow_noise(n, sample_rate_hz, 0.3, rng) / 20.0)
    band = signal.butter(2, (40.0, 2000.0), "bandpass", output="sos", fs=sample_rate_hz)
    engine = signal.sosfilt(band, signal.lfilter([1.0], [1.0, -0.98], rng.standard_normal(n)))
    engine /= np.sqrt(np.mean(engine ** 2))
    t = np.arange(n) / sample_rate_hz
    swells = np.zeros(n)
    for _ in range(int(rng.integers(3, 7))):
        centre, width = rng.uniform(0.0, seconds), rng.uniform(1.5, 4.0)
        swells += rng.uniform(2.0, 5.0) * np.exp(-0.5 * ((t - centre) / (0.5 * width)) ** 2)
    return rumble + swells * engine


def _pink(n_samples: int, sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """float64 array (n_samples,): noise with a 1/f power spectrum above 20 Hz."""
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    freqs = np.fft.rfftfreq(n_samples, 1.0 / sample_rate_hz)
    return np.fft.irfft(spectrum / np.sqrt(np.maximum(freqs, 20.0)), n_samples)


def _segment(loop: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """float32 array (n_samples,): the loop read from a random offset, repeating as needed."""
    offset = int(rng.integers(loop.size))
    return np.resize(np.concatenate([loop[offset:], loop[:offset]]), n_samples)


def _mains_hum(n_samples: int, sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """float32 array (n_samples,): 50 or 60 Hz and 9 harmonics, odd ones stronger, random
    phases. One second holds whole periods of both, so it is computed once and tiled."""
    mains_hz = 50.0 if rng.random() < 0.5 else 60.0
    t = np.arange(sample_rate_hz) / sample_rate_hz
    second = np.zeros(sample_rate_hz)
    for k in range(1, 11):
        if k * mains_hz >= 0.45 * sample_rate_hz:
            break
        level = np.exp(-0.3 * (k - 1)) * rng.uniform(0.2, 1.0) * (1.5 if k % 2 else 1.0)
        second += level * np.sin(2.0 * np.pi * k * mains_hz * t + rng.uniform(0.0, 2.0 * np.pi))
    return _segment(second.astype(np.float32), n_samples, rng)


def _peak_normalised(audio: np.ndarray, peak: float = _PEAK) -> np.ndarray:
    """float32 audio scaled to the given peak (silence stays silent)."""
    top = float(np.max(np.abs(audio), initial=0.0))
    return (audio * (peak / top) if top > 0 else audio).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Reverberation:
    """Convolution with a bank room's impulse response, aligned on its direct path.

    Attributes:
        index: which response of `room_bank(sample_rate_hz, bank_seed)`.
        wet: gain of everything after the direct path's filter (1 = the room as simulated).
        bank_seed: seed of the bank.
    """

    index: int
    wet: float
    bank_seed: int = BANK_SEED

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Reverberation:
        return cls(index=int(rng.integers(ROOM_BANK_SIZE)), wet=float(rng.uniform(0.4, 1.0)))

    def apply(self, audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        """float32 array like `audio` (n_samples,): the reverberant audio, same level of
        direct sound, no delay."""
        response = np.array(room_bank(sample_rate_hz, self.bank_seed)[self.index])
        response[_FRAC_DELAY_TAPS:] *= self.wet
        wet = signal.oaconvolve(audio, response)
        return wet[_DIRECT_INDEX:_DIRECT_INDEX + audio.size].astype(np.float32)

    def describe(self) -> str:
        return f"room rt60={room_designs(self.bank_seed)[self.index].rt60_s:.2f}"


@dataclasses.dataclass(frozen=True)
class Noise:
    """Additive background noise at a given SNR.

    The SNR compares mean powers over the whole query (pauses included).

    Attributes:
        kind: one of NOISE_KINDS: "babble" (3-6 talkers of the bank, levels +-4 dB),
            "street", "hiss" (white or pink, even odds) or "hum" (mains).
        snr_db: signal power over noise power, dB.
        bank_seed: seed of the noise bank.
    """

    kind: str
    snr_db: float
    bank_seed: int = BANK_SEED

    def __post_init__(self):
        if self.kind not in NOISE_KINDS:
            raise ValueError(f"noise kind {self.kind!r} is not one of {NOISE_KINDS}")

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Noise:
        return cls(kind=str(rng.choice(NOISE_KINDS, p=_NOISE_PROBABILITIES)),
                   snr_db=float(rng.uniform(0.0, 30.0)))

    def apply(self, audio: np.ndarray, sample_rate_hz: int,
              rng: np.random.Generator) -> np.ndarray:
        """float32 array (n_samples,): `audio` plus noise (cut at random from the bank)."""
        n = audio.size
        bank = noise_bank(sample_rate_hz, self.bank_seed)
        if self.kind == "babble":
            voices = bank["voices"]
            chosen = rng.choice(len(voices), size=int(rng.integers(3, 7)), replace=False)
            noise = np.zeros(n, dtype=np.float32)
            for i in chosen:
                noise += np.float32(10.0 ** (rng.uniform(-4.0, 4.0) / 20.0)) * _segment(
                    voices[i], n, rng)
        elif self.kind == "street":
            noise = _segment(bank["street"][int(rng.integers(len(bank["street"])))], n, rng)
        elif self.kind == "hiss":
            noise = _segment(bank["white" if rng.random() < 0.5 else "pink"][0], n, rng)
        else:
            noise = _mains_hum(n, sample_rate_hz, rng)
        signal_power = float(np.mean(np.square(audio, dtype=np.float64)))
        noise_power = max(float(np.mean(np.square(noise, dtype=np.float64))), 1e-30)
        gain = np.sqrt(signal_power / noise_power * 10.0 ** (-self.snr_db / 10.0))
        return (audio + np.float32(gain) * noise).astype(np.float32)

    def describe(self) -> str:
        return f"{self.kind} snr={self.snr_db:.0f}"


@dataclasses.dataclass(frozen=True)
class Microphone:
    """A microphone's (or a phone line's) magnitude response, applied with zero phase.

    Butterworth magnitudes: |H| = 1 / sqrt(1 + (low_cut / f) ** (2 low_order)) for the low
    cut, likewise for the high cut, times a tilt about 1 kHz (held beyond 50 Hz-8 kHz).

    Attributes:
        kind: one of MICROPHONES (a label for logs).
        low_cut_hz, low_order: high-pass corner and order.
        high_cut_hz, high_order: low-pass corner and order; None for none.
        tilt_db_per_octave: gain slope, positive = brighter.
    """

    kind: str
    low_cut_hz: float
    low_order: int
    high_cut_hz: float | None
    high_order: int
    tilt_db_per_octave: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Microphone:
        kind = str(rng.choice(MICROPHONES, p=_MICROPHONE_PROBABILITIES))
        tilt = float(rng.uniform(-2.0, 2.0))
        if kind == "phone":
            return cls(kind, 300.0, 4, 3400.0, 8, tilt)
        if kind == "cheap":
            return cls(kind, float(rng.uniform(100.0, 200.0)), 2,
                       float(rng.uniform(4000.0, 7000.0)), int(rng.integers(2, 5)), tilt)
        return cls(kind, float(rng.uniform(40.0, 100.0)), 2, None, 0, tilt)

    def gain(self, freqs_hz: np.ndarray) -> np.ndarray:
        """float64 array like `freqs_hz`: the linear magnitude response."""
        f = np.maximum(freqs_hz, 1e-3)
        response = 1.0 / np.sqrt(1.0 + (self.low_cut_hz / f) ** (2 * self.low_order))
        if self.high_cut_hz is not None:
            response /= np.sqrt(1.0 + (f / self.high_cut_hz) ** (2 * self.high_order))
        octaves = np.log2(np.clip(f, 50.0, 8000.0) / 1000.0)
        return response * 10.0 ** (self.tilt_db_per_octave * octaves / 20.0)

    def apply(self, audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        """float32 array like `audio` (n_samples,), filtered in one FFT (zeros padded
        behind against wrap-around)."""
        n = audio.size
        n_fft = scipy.fft.next_fast_len(n + int(_FILTER_PAD_S * sample_rate_hz), real=True)
        spectrum = scipy.fft.rfft(audio, n_fft)
        freqs_hz = np.arange(spectrum.size) * (sample_rate_hz / n_fft)
        spectrum *= self.gain(freqs_hz).astype(np.float32)
        return scipy.fft.irfft(spectrum, n_fft)[:n].astype(np.float32)

    def describe(self) -> str:
        return self.kind


@dataclasses.dataclass(frozen=True)
class Agc:
    """Automatic gain control: an envelope follower on 10 ms frame levels.

    The envelope (dB) rises with time constant `attack_s` and falls with `release_s`;
    the gain brings it to the 95th percentile of the frame levels, boosting by at most
    `max_gain_db`, so loud notes are squashed and the noise floor rises in pauses.

    Attributes:
        attack_s: time constant while the level rises.
        release_s: time constant while it falls.
        max_gain_db: largest boost.
    """

    attack_s: float
    release_s: float
    max_gain_db: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Agc:
        return cls(attack_s=float(rng.uniform(0.005, 0.05)),
                   release_s=float(rng.uniform(0.2, 1.5)),
                   max_gain_db=float(rng.uniform(10.0, 30.0)))

    def apply(self, audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        """float32 array like `audio` (n_samples,); gains are interpolated between frame
        centres."""
        n = audio.size
        hop = max(int(_AGC_HOP_S * sample_rate_hz), 1)
        n_frames = -(-n // hop)
        power = np.pad(np.square(audio, dtype=np.float64), (0, n_frames * hop - n))
        level_db = 10.0 * np.log10(power.reshape(n_frames, hop).mean(axis=1) + 1e-10)
        rise = np.exp(-hop / (self.attack_s * sample_rate_hz))
        fall = np.exp(-hop / (self.release_s * sample_rate_hz))
        envelope = np.empty(n_frames)
        current = level_db[0]
        for i, level in enumerate(level_db.tolist()):
            a = rise if level > current else fall
            current = a * current + (1.0 - a) * level
            envelope[i] = current
        gain_db = np.minimum(np.percentile(level_db, 95.0) - envelope, self.max_gain_db)
        centres = (np.arange(n_frames) + 0.5) * hop
        gain = np.interp(np.arange(n), centres, 10.0 ** (gain_db / 20.0))
        return (audio * gain).astype(np.float32)

    def describe(self) -> str:
        return "agc"


@dataclasses.dataclass(frozen=True)
class Clipping:
    """Overdrive: the audio, scaled to peak 1, is amplified by `drive_db` and then
    clipped at +-1 ("hard") or passed through tanh ("soft").

    Attributes:
        kind: "hard" or "soft".
        drive_db: gain before the clipper.
    """

    kind: str
    drive_db: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Clipping:
        return cls(kind="hard" if rng.random() < 0.5 else "soft",
                   drive_db=float(rng.uniform(3.0, 15.0)))

    def apply(self, audio: np.ndarray) -> np.ndarray:
        """float32 array like `audio`, within [-1, 1]."""
        driven = _peak_normalised(audio, 10.0 ** (self.drive_db / 20.0))
        return np.clip(driven, -1.0, 1.0) if self.kind == "hard" else np.tanh(driven)

    def describe(self) -> str:
        return f"clip {self.kind} +{self.drive_db:.0f}dB"


@dataclasses.dataclass(frozen=True)
class MicChain:
    """The query's degradations, in order: room, noise, microphone, AGC, clipping.

    Attributes:
        room, noise, microphone, agc, clipping: the stages; None where skipped.
    """

    room: Reverberation | None = None
    noise: Noise | None = None
    microphone: Microphone | None = None
    agc: Agc | None = None
    clipping: Clipping | None = None

    @classmethod
    def sample(cls, rng: np.random.Generator) -> MicChain:
        """Clean with probability 0.12, else each stage with its probability (module doc)."""
        if rng.random() < 0.12:
            return cls()
        return cls(
            room=Reverberation.sample(rng) if rng.random() < 0.7 else None,
            noise=Noise.sample(rng) if rng.random() < 0.8 else None,
            microphone=Microphone.sample(rng) if rng.random() < 0.85 else None,
            agc=Agc.sample(rng) if rng.random() < 0.5 else None,
            clipping=Clipping.sample(rng) if rng.random() < 0.2 else None)

    def apply(self, audio: np.ndarray, sample_rate_hz: int,
              rng: np.random.Generator) -> np.ndarray:
        """Degrades a query.

        Args:
            audio: float array (n_samples,), mono.
            sample_rate_hz: its sample rate.
            rng: source of the per-call randomness (noise segments, talkers, hum).

        Returns:
            float32 array (n_samples,), peak 0.9, direct sound where it was.
        """
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected mono audio (n_samples,), got shape {x.shape}")
        if self.room is not None:
            x = self.room.apply(x, sample_rate_hz)
        if self.noise is not None:
            x = self.noise.apply(x, sample_rate_hz, rng)
        if self.microphone is not None:
            x = self.microphone.apply(x, sample_rate_hz)
        if self.agc is not None:
            x = self.agc.apply(x, sample_rate_hz)
        if self.clipping is not None:
            x = self.clipping.apply(x)
        return _peak_normalised(x)

    def describe(self) -> str:
        """The stages' choices, e.g. "room rt60=0.42 babble snr=12 phone agc"."""
        stages = (self.room, self.noise, self.microphone, self.agc, self.clipping)
        return " ".join(s.describe() for s in stages if s is not None) or "clean"


@dataclasses.dataclass(frozen=True)
class StudioReverb:
    """pedalboard's Reverb (Freeverb; no pre-delay, deterministic), dry level 0.4.

    Attributes:
        room_size: 0-1.
        damping: 0-1, high-frequency damping of the tail.
        wet_level: 0-1.
    """

    room_size: float
    damping: float
    wet_level: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> StudioReverb:
        return cls(room_size=float(rng.uniform(0.2, 0.85)), damping=float(rng.uniform(0.2, 0.7)),
                   wet_level=float(rng.uniform(0.05, 0.35)))

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.Reverb(room_size=self.room_size, damping=self.damping,
                                 wet_level=self.wet_level, dry_level=0.4, width=1.0)

    def describe(self) -> str:
        return f"reverb size={self.room_size:.2f} wet={self.wet_level:.2f}"


@dataclasses.dataclass(frozen=True)
class Equalizer:
    """A low shelf, a peak and a high shelf (pedalboard's biquads, minimum phase).

    Attributes:
        low_shelf_hz, low_gain_db: 80-250 Hz, +-6 dB.
        peak_hz, peak_gain_db, peak_q: 300-3000 Hz, +-6 dB, Q 0.5-2.
        high_shelf_hz, high_gain_db: 2.5-6 kHz (held below 0.45 times the sample rate),
            +-6 dB.
    """

    low_shelf_hz: float
    low_gain_db: float
    peak_hz: float
    peak_gain_db: float
    peak_q: float
    high_shelf_hz: float
    high_gain_db: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Equalizer:
        return cls(low_shelf_hz=float(rng.uniform(80.0, 250.0)),
                   low_gain_db=float(rng.uniform(-6.0, 6.0)),
                   peak_hz=float(np.exp(rng.uniform(np.log(300.0), np.log(3000.0)))),
                   peak_gain_db=float(rng.uniform(-6.0, 6.0)),
                   peak_q=float(rng.uniform(0.5, 2.0)),
                   high_shelf_hz=float(rng.uniform(2500.0, 6000.0)),
                   high_gain_db=float(rng.uniform(-6.0, 6.0)))

    def plugins(self, sample_rate_hz: int) -> list[pedalboard.Plugin]:
        return [
            pedalboard.LowShelfFilter(cutoff_frequency_hz=self.low_shelf_hz,
                                      gain_db=self.low_gain_db, q=0.707),
            pedalboard.PeakFilter(cutoff_frequency_hz=self.peak_hz, gain_db=self.peak_gain_db,
                                  q=self.peak_q),
            pedalboard.HighShelfFilter(
                cutoff_frequency_hz=min(self.high_shelf_hz, 0.45 * sample_rate_hz),
                gain_db=self.high_gain_db, q=0.707),
        ]

    def describe(self) -> str:
        return (f"eq {self.low_gain_db:+.0f}/{self.peak_gain_db:+.0f}@{self.peak_hz:.0f}"
                f"/{self.high_gain_db:+.0f}")


@dataclasses.dataclass(frozen=True)
class Compression:
    """pedalboard's Compressor (no look-ahead, so no latency).

    Attributes:
        threshold_db: -30..-8 dB relative to the input's peak.
        ratio: 2-8.
        attack_ms: 1-30 ms.
        release_ms: 50-400 ms.
    """

    threshold_db: float
    ratio: float
    attack_ms: float
    release_ms: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Compression:
        return cls(threshold_db=float(rng.uniform(-30.0, -8.0)), ratio=float(rng.uniform(2.0, 8.0)),
                   attack_ms=float(rng.uniform(1.0, 30.0)),
                   release_ms=float(rng.uniform(50.0, 400.0)))

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.Compressor(threshold_db=self.threshold_db, ratio=self.ratio,
                                     attack_ms=self.attack_ms, release_ms=self.release_ms)

    def describe(self) -> str:
        return f"comp {self.threshold_db:.0f}dB {self.ratio:.1f}:1"


@dataclasses.dataclass(frozen=True)
class ProductionChain:
    """The recording's studio production, in order: reverb, EQ, compression, saturation.

    Attributes:
        reverb, equalizer, compression: the stages; None where skipped.
        saturation_drive_db: tanh drive (1-8 dB) applied last; None for none.
    """

    reverb: StudioReverb | None = None
    equalizer: Equalizer | None = None
    compression: Compression | None = None
    saturation_drive_db: float | None = None

    @classmethod
    def sample(cls, rng: np.random.Generator) -> ProductionChain:
        """Each stage with its probability: reverb 0.65, EQ 0.8, compression 0.75,
        saturation 0.3."""
        return cls(
            reverb=StudioReverb.sample(rng) if rng.random() < 0.65 else None,
            equalizer=Equalizer.sample(rng) if rng.random() < 0.8 else None,
            compression=Compression.sample(rng) if rng.random() < 0.75 else None,
            saturation_drive_db=float(rng.uniform(1.0, 8.0)) if rng.random() < 0.3 else None)

    def apply(self, audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        """Produces a rendered mix. A fresh board per call, so no state carries over.

        Args:
            audio: float array (n_samples,), mono.

        Returns:
            float32 array (n_samples,), peak 0.9, no delay.
        """
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected mono audio (n_samples,), got shape {x.shape}")
        plugins = []
        if self.reverb is not None:
            plugins.append(self.reverb.plugin())
        if self.equalizer is not None:
            plugins.extend(self.equalizer.plugins(sample_rate_hz))
        if self.compression is not None:
            plugins.append(self.compression.plugin())
        if self.saturation_drive_db is not None:
            plugins.append(pedalboard.Distortion(drive_db=self.saturation_drive_db))
        produced = pedalboard.Pedalboard(plugins)(_peak_normalised(x, 1.0), sample_rate_hz,
                                                 reset=True)
        return _peak_normalised(np.asarray(produced).reshape(-1)[:x.size])

    def describe(self) -> str:
        """The stages' choices, e.g. "reverb size=0.50 wet=0.20 comp -18dB 4.0:1"."""
        parts = [s.describe() for s in (self.reverb, self.equalizer, self.compression)
                 if s is not None]
        if self.saturation_drive_db is not None:
            parts.append(f"sat +{self.saturation_drive_db:.0f}dB")
        return " ".join(parts) or "clean"
