import numpy as np
import pytest
import soundfile

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


@pytest.mark.parametrize("content,message", [(None, "no such file"), (b"", "cannot decode"),
                                             (b"not audio at all" * 100, "cannot decode")])
def test_bad_inputs_raise_one_line_errors(tmp_path, content, message):
    path = tmp_path / "query.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioError, match=message) as info:
        load_audio(path, 16000)
    assert "\n" not in str(info.value)
