import os
import struct

import numpy as np
import pytest
import soundfile

from device import audio as audio_module
from device.audio import AudioError, load_audio, resample


@pytest.mark.parametrize("fmt,suffix", [("WAV", ".wav"), ("FLAC", ".flac"), ("OGG", ".ogg"), ("MP3", ".mp3")])
def test_decodes_resamples_and_downmixes(tmp_path, fmt, suffix):
    rate = 44100
    t = np.arange(rate) / rate
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1) * 0.5
    path = tmp_path / f"tone{suffix}"
    soundfile.write(path, stereo.astype(np.float32), rate, format=fmt)
    audio = load_audio(path, 16000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - 16000) < 1200  # mp3 adds encoder padding
    spectrum = np.abs(np.fft.rfft(audio[2000:10000] * np.hanning(8000)))
    assert abs(spectrum.argmax() * 16000 / 8000 - 440) < 4


def test_resample_keeps_a_tone_and_the_duration():
    t = np.arange(48000) / 48000
    out = resample(np.sin(2 * np.pi * 1000 * t).astype(np.float32), 48000, 16000)
    assert out.size == 16000
    spectrum = np.abs(np.fft.rfft(out * np.hanning(out.size)))
    assert abs(spectrum.argmax() - 1000) <= 1


@pytest.mark.parametrize("content,message", [(None, "no such file"), (b"", "the file is empty"),
                                             (b"not audio at all" * 100, "cannot decode")])
def test_bad_inputs_raise_one_line_errors(tmp_path, content, message):
    path = tmp_path / "query.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioError, match=message) as info:
        load_audio(path, 16000)
    assert "\n" not in str(info.value)


def tone_wav(path, seconds=1.0, rate=16000):
    t = np.arange(int(rate * seconds)) / rate
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, subtype="PCM_16")
    return path


def patched(path, offset: int, value: bytes):
    data = bytearray(path.read_bytes())
    data[offset:offset + len(value)] = value
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("rate", [2 ** 31 - 1, 5_000_000, 1, 999])
def test_absurd_sample_rates_are_refused_in_one_line(tmp_path, rate):
    path = patched(tone_wav(tmp_path / "odd.wav"), 24, struct.pack("<II", rate, (2 * rate) & 0xFFFFFFFF))
    assert soundfile.info(str(path)).samplerate == rate  # the header really says so
    with pytest.raises(AudioError, match="sample rate") as info:
        load_audio(path, 16000)
    assert "\n" not in str(info.value)


def test_a_header_claiming_2_to_32_frames_is_read_to_the_end_of_the_file(tmp_path):
    path = tone_wav(tmp_path / "liar.wav")
    data = path.read_bytes().index(b"data")
    patched(path, data + 4, struct.pack("<I", 0xFFFFFFF0))
    assert load_audio(path, 16000).size == 16000


def test_a_file_longer_than_the_limit_is_refused_whatever_its_header(tmp_path):
    path = tone_wav(tmp_path / "long.wav", seconds=3.0)
    assert load_audio(path, 16000, max_seconds=3.0).size == 48000
    with pytest.raises(AudioError, match="longer than the 0:02"):
        load_audio(path, 16000, max_seconds=2.0)


@pytest.mark.parametrize("rate", [44_101, 383_999])
def test_an_unusual_rate_ratio_is_resampled_in_bounded_memory(tmp_path, rate):
    path = tone_wav(tmp_path / "prime.wav", rate=rate)
    audio = load_audio(path, 16000)
    assert audio.size == 16000
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    assert abs(spectrum.argmax() - 220) <= 1


@pytest.mark.parametrize("ffmpeg", [True, False])
def test_a_truncated_flac_is_reported_as_damaged_not_as_unsupported(tmp_path, monkeypatch, ffmpeg):
    path = tmp_path / "cut.flac"
    soundfile.write(path, (0.3 * np.sin(np.arange(160000) / 10)).astype(np.float32), 16000)
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    if not ffmpeg:
        monkeypatch.setattr(audio_module.shutil, "which", lambda name: None)
    with pytest.raises(AudioError, match="damaged or truncated FLAC") as info:
        load_audio(path, 16000)
    assert "ffmpeg" not in str(info.value)


def test_without_ffmpeg_an_unknown_format_says_both_what_failed_and_what_is_missing(tmp_path, monkeypatch):
    path = tmp_path / "noise.m4a"
    path.write_bytes(np.random.default_rng(1).bytes(4000))
    monkeypatch.setattr(audio_module.shutil, "which", lambda name: None)
    with pytest.raises(AudioError, match="libsndfile does not read it .* ffmpeg, for other formats, is not installed"):
        load_audio(path, 16000)


def test_fifos_and_directories_are_named_for_what_they_are(tmp_path):
    os.mkfifo(tmp_path / "pipe.wav")  # opening it for reading must not block
    (tmp_path / "folder.wav").mkdir()
    with pytest.raises(AudioError, match="not a regular file"):
        load_audio(tmp_path / "pipe.wav", 16000)
    with pytest.raises(AudioError, match="is a directory"):
        load_audio(tmp_path / "folder.wav", 16000)


def test_many_channels_are_read_in_bounded_blocks(tmp_path):
    path = tmp_path / "wide.wav"
    soundfile.write(path, np.full((4000, 300), 0.1, np.float32), 16000, subtype="PCM_16")
    audio = load_audio(path, 16000)
    assert audio.size == 4000 and abs(float(audio.mean()) - 0.1) < 1e-3
