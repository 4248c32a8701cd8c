"""FluidSynth rendering of written tunes (no shared data needed) and of one POP909 span."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from training import render
from training.corpora import load_pop909, written_tunes
from training.melody import Note
from training.render import PEAK, STYLES, Renderer, arrange, find_soundfonts, mix_lead

SR = 16000
TWINKLE_MELODY = (60, 62, 64, 65, 67, 69)  # C4..A4


def midi_hz(pitch: int) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12)


def band_db(audio: np.ndarray, hz: float) -> float:
    """Mean power within a quarter tone of hz, in dB above the median power of 40-2000 Hz."""
    power = np.abs(np.fft.rfft(audio.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(audio.size, 1.0 / SR)
    band = power[(freqs >= hz * 2 ** (-1 / 24)) & (freqs < hz * 2 ** (1 / 24))]
    reference = np.median(power[(freqs >= 40) & (freqs < 2000)])
    return float(10 * np.log10(band.mean() / reference))


def melody_db(audio: np.ndarray) -> float:
    """band_db averaged over the pitches of Twinkle's melody."""
    return float(np.mean([band_db(audio, midi_hz(p)) for p in TWINKLE_MELODY]))


@pytest.fixture(scope="module")
def renderer():
    soundfonts = find_soundfonts()
    if not soundfonts:
        pytest.skip("no General MIDI soundfont found")
    with Renderer(soundfonts[0], SR) as r:
        yield r


@pytest.fixture(scope="module")
def twinkle():
    return next(s for s in written_tunes() if s.song_id == "written-twinkle-twinkle")


def plain_band(song, seed: int, lead_db: float) -> render.Arrangement:
    """A band arrangement whose melody alone sits on Twinkle's pitches: Voice Oohs (a
    strong fundamental in every soundfont), no doubling, no harmony or backing line."""
    return dataclasses.replace(arrange(song, seed, "band"), lead="Voice Oohs", lead_db=lead_db,
                               doubling=None, line="none", line_instrument=None)


def test_find_soundfonts_lists_existing_soundfonts_once():
    soundfonts = find_soundfonts()
    assert soundfonts, "pretty_midi's TimGM6mb.sf2 should always be there"
    assert all(path.is_file() and path.suffix in (".sf2", ".sf3") for path in soundfonts)
    assert len({path.name for path in soundfonts}) == len(soundfonts)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_band_rendering_has_melody_and_bass(renderer, twinkle, seed):
    drawn = arrange(twinkle, seed, "band")  # Choir Aahs would hide its fundamentals
    arrangement = dataclasses.replace(drawn, lead="Voice Oohs", lead_db=max(drawn.lead_db, 0.0))
    audio = renderer.render(twinkle, seed, arrangement=arrangement)
    assert arrangement.bass is not None
    assert audio.dtype == np.float32 and audio.shape == (round(twinkle.duration_s * SR),)
    assert np.max(np.abs(audio)) == pytest.approx(PEAK, rel=1e-5)
    for pitch in (60, 67):  # melody C4, G4
        assert band_db(audio, midi_hz(pitch)) > 20
    assert band_db(audio, midi_hz(36)) > 20  # bass root C2 of the C major chords


def test_melody_without_chords_still_gets_a_bass_line(renderer, twinkle):
    bare = dataclasses.replace(twinkle, chords=())
    audio = renderer.render(bare, 3, arrangement=arrange(bare, 3, "band"))
    assert band_db(audio, midi_hz(36)) > 20  # C2 from chords derived from the melody


def test_arrangements_vary_over_seeds(twinkle):
    drawn = [arrange(twinkle, seed) for seed in range(300)]
    assert {a.style for a in drawn} == set(STYLES)
    assert 0.2 < np.mean([a.voice_lead for a in drawn]) < 0.4
    assert 0.15 < np.mean([a.doubling is not None for a in drawn]) < 0.45
    assert {a.line for a in drawn} == {"none", "third", "sixth", "countermelody", "held"}
    assert {a.doubling_semitones for a in drawn if a.doubling} == {-12, 0, 12}
    levels = [a.lead_db for a in drawn]
    assert min(levels) < -4 and max(levels) > 6
    assert all(a.drums is None for a in drawn if a.style == "piano")
    assert all(a.drums in ("Electronic", "TR-808") for a in drawn if a.style == "electronic")
    assert arrange(twinkle, 5) == arrange(twinkle, 5) and arrange(twinkle, 5).describe()


def test_part_notes_name_the_parts_each_arrangement_plays(twinkle):
    for seed in range(40):
        played, parts = arrange(twinkle, seed), render.part_notes(twinkle, seed)
        assert parts["lead"] == render.lead_notes(twinkle)
        assert ("doubling" in parts) == (played.doubling is not None)
        assert ("line" in parts) == (played.line_instrument is not None)
        assert ("bass" in parts) == (played.bass is not None)
        assert ("timpani" in parts) == (played.drums == "Timpani") and parts["accompaniment"]
        if played.line in ("third", "sixth"):  # under the melody, a third or a sixth below
            assert {n.pitch for n in parts["line"]} != {n.pitch for n in parts["lead"]}
    assert render.part_notes(twinkle, 3) == render.part_notes(twinkle, 3)


@pytest.mark.parametrize("style", STYLES)
def test_each_style_renders(renderer, twinkle, style):
    arrangement = arrange(twinkle, 4, style)
    audio = renderer.render(twinkle, 4, duration_s=6.0, arrangement=arrangement)
    assert arrangement.style == style
    assert audio.shape == (6 * SR,) and np.max(np.abs(audio)) == pytest.approx(PEAK, rel=1e-5)


def test_without_lead_the_melody_loses_energy(renderer, twinkle):
    arrangement = plain_band(twinkle, 0, lead_db=3.0)
    full = renderer.render(twinkle, 0, arrangement=arrangement)
    backing = renderer.render(twinkle, 0, lead=False, arrangement=arrangement)
    assert np.max(np.abs(backing)) == pytest.approx(PEAK, rel=1e-5)
    assert melody_db(full) > melody_db(backing) + 3
    np.testing.assert_array_equal(backing, renderer.render(twinkle, 0, lead=False,
                                                           arrangement=arrangement))


def test_buried_melody_is_quieter_than_melody_on_top(renderer, twinkle):
    on_top = renderer.render(twinkle, 1, arrangement=plain_band(twinkle, 1, lead_db=8.0))
    buried = renderer.render(twinkle, 1, arrangement=plain_band(twinkle, 1, lead_db=-6.0))
    assert melody_db(on_top) > melody_db(buried) + 4


def test_mix_lead_sets_the_loudness_ratio():
    t = np.arange(SR, dtype=np.float64) / SR
    backing = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    lead = (0.01 * np.sin(2 * np.pi * 500 * t)).astype(np.float32)
    mix = mix_lead(backing, lead, 6.0)
    spectrum = np.abs(np.fft.rfft(mix.astype(np.float64)))  # 1 Hz bins
    assert spectrum[500] / spectrum[200] == pytest.approx(10 ** (6 / 20), rel=0.01)
    assert np.max(np.abs(mix)) == pytest.approx(PEAK, rel=1e-5)


def test_same_seed_same_audio_other_seed_other_audio(renderer, twinkle):
    other = next(s for s in written_tunes() if s.song_id == "written-ode-to-joy")
    first = renderer.render(twinkle, 7)
    renderer.render(other, 8)
    again = renderer.render(twinkle, 7)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, renderer.render(twinkle, 9), atol=1e-3)


def test_span_has_requested_length(renderer, twinkle):
    audio = renderer.render(twinkle, 1, start_s=3.0, duration_s=5.0)
    assert audio.shape == (5 * SR,) and audio.dtype == np.float32
    assert np.max(np.abs(audio)) == pytest.approx(PEAK, rel=1e-5)
    silent = renderer.render(twinkle, 1, start_s=twinkle.duration_s + 1.0, duration_s=0.5)
    assert silent.shape == (SR // 2,) and not np.any(silent)


@pytest.mark.parametrize("soundfont", find_soundfonts(), ids=lambda path: path.name)
def test_every_soundfont_sounds_every_pool_instrument(soundfont, twinkle):
    """Each instrument at the ends of its part's range, each kit's drums, and a render
    per style: a program a soundfont lacks, or a key range it leaves out, is silent."""
    pools = render._STYLES.values()
    ranges = (
        ({n for s in pools for n in s.leads + s.voices}, (48, render._LEAD_TOP_MIDI)),
        ({n for s in pools for n in s.accompaniments}, (36, render._TOP_MIDI)),
        ({n for s in pools for n in s.lines}, (43, 88)),
        ({n for s in pools for n in s.basses}, (36, 47)),
        ({render._TIMPANI}, (41, 52)),
    )
    probes = [(0, render._program(name), pitch)
              for names, pitches in ranges for name in sorted(names) for pitch in pitches]
    probes += [(render._DRUM_BANK, program, pitch) for program in render._KITS.values()
               for pitch in (36, 38, 39, 41, 42, 45, 46, 49)]
    with Renderer(soundfont, SR) as r:
        silent = []
        for bank, program, pitch in probes:
            channel = render._DRUM_CHANNEL if bank else 0
            part = render._Part("lead", channel, bank, program, 0.0, (Note(pitch, 0.0, 0.2, 100),))
            audio = r._render_part(part, 0.0, SR // 4)
            if np.sqrt(np.mean(audio.astype(np.float64) ** 2)) < 1e-4:
                silent.append((bank, program, pitch))
        assert not silent
        for style in STYLES:
            audio = r.render(twinkle, 2, duration_s=4.0, arrangement=arrange(twinkle, 2, style))
            assert np.max(np.abs(audio)) == pytest.approx(PEAK, rel=1e-5)


def test_pop909_span_uses_its_accompaniment(renderer, pop909_song_001_root: Path):
    (song,) = load_pop909(pop909_song_001_root)
    assert arrange(song, 0).voicing == "own"
    intro = renderer.render(song, 0, start_s=3.0, duration_s=8.0)  # piano only, before the tune
    assert intro.shape == (8 * SR,) and np.max(np.abs(intro)) == pytest.approx(PEAK, rel=1e-5)
