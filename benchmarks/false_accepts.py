"""False accepts: how often the recognizer says "match" to queries that should find nothing.

    python -m benchmarks.false_accepts --shared-data ../shared/data --out benchmarks/results/false-accepts \
        [--index DIR] [--per-kind 100] [--seed 2026] [--pool-cache data/distractors/pool.pkl]

Seeded queries of 5-15 s, --per-kind of each kind:
- noise: white, pink, babble (3-6 talkers) and street noise, in equal shares, from
  `training.acoustics.noise_bank` built with its own seed (not the bank that trains the
  model), at peak levels of -20..-1 dBFS;
- speech: espeak-ng in 11 languages (Mandarin among them: POP909 is Chinese pop), male and
  female variants, 130-190 words per minute, pitch 25-75, reading everyday sentences;
  skipped with the reason in the summary when espeak-ng is not installed
  (Debian: apt-get install espeak-ng);
- hum: synthetic hums (`training.hum`, as `benchmarks.evaluate` makes them) of tunes
  that `benchmarks.distractors` reserves: never in the default catalogue, never
  distractors (so they stay out of the 1k and 10k evaluation catalogues too), never in
  training, and not Nottingham, on which the threshold was calibrated. A tune shorter
  than the query is hummed through twice or more, as people do.
Each query goes to the Recognizer with its default configuration (the shipped
threshold) twice: `identify` on the whole query, as `benchmarks.evaluate` and `hum-search
identify` do, and `push` (early answers allowed) then `finish`, as `hum-search listen`
does; the stream can only accept more. Writes false_accepts.csv (one row per query, with
a header) and false_accepts_summary.json (false-accept rates per kind, variant and
overall, with Wilson 95% intervals); prints the summary.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from device import assets
from device.audio import resample
from device.catalogue import Catalogue
from device.recognizer import Recognizer
from training.acoustics import noise_bank
from training.hum import HumStyle, synthesize_hum
from training.melody import Song

KINDS = ("noise", "speech", "hum")
NOISE_VARIANTS = ("white", "pink", "babble", "street")
NOISE_BANK_SEED = 4242  # training uses training.acoustics.BANK_SEED (0)
MIN_S, MAX_S = 5.0, 15.0
PEAK_DB = (-20.0, -1.0)
FIELDS = ("kind", "variant", "query", "seconds", "decision", "stream_decision", "top1", "score",
          "confidence", "windows", "skipped", "time_ms")

ESPEAK = "espeak-ng"
SPEECH_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m7", "f1", "f2", "f3", "f4", "f5")
SENTENCES = {
    "en-us": ("Could you tell me how to get to the train station from here?",
              "I think we should leave a little earlier tomorrow morning.",
              "The meeting has been moved to Thursday afternoon at three.",
              "Please remember to buy milk, bread and a few apples on the way home.",
              "It has been raining all week, but the weekend looks sunny."),
    "en": ("Right, let me just check whether the parcel has arrived yet.",
           "She said the restaurant on the corner closes at ten tonight.",
           "Turn left at the roundabout and the school is on your right.",
           "We were talking about the football match for almost an hour."),
    "de": ("Guten Morgen, wie geht es Ihnen heute?",
           "Der Zug nach Berlin hat leider zwanzig Minuten Verspätung.",
           "Kannst du mir bitte sagen, wo der nächste Supermarkt ist?",
           "Am Wochenende fahren wir mit den Kindern an den See."),
    "fr": ("Bonjour, je voudrais réserver une table pour deux personnes.",
           "Il fait très beau aujourd'hui, allons nous promener au parc.",
           "Est-ce que tu as vu mes clés quelque part dans la cuisine?",
           "Le musée est fermé le lundi mais ouvert tous les autres jours."),
    "es": ("¿Dónde está la parada del autobús más cercana?",
           "Mañana vamos a cenar en casa de mis abuelos.",
           "No me acuerdo del nombre de aquella película tan buena.",
           "El mercado abre muy temprano los sábados por la mañana."),
    "it": ("Scusi, sa dirmi che ore sono?",
           "Stasera andiamo al cinema con gli amici di Marco.",
           "Il treno per Roma parte dal binario numero sette.",
           "Ho dimenticato l'ombrello sull'autobus questa mattina."),
    "nl": ("Goedemorgen, heeft u goed geslapen?",
           "We gaan morgen met de fiets naar het strand.",
           "Weet jij waar ik mijn telefoon heb neergelegd?"),
    "pt": ("Bom dia, queria um café e um pastel de nata, por favor.",
           "O autocarro para o centro passa de quinze em quinze minutos.",
           "Amanhã vai chover durante a tarde inteira."),
    "sv": ("Hej, vet du när affären stänger i kväll?",
           "Vi ska åka till landet över midsommar.",
           "Jag glömde min jacka på jobbet i går."),
    "ru": ("Доброе утро, как у вас дела сегодня?",
           "Поезд в Москву отправляется через десять минут.",
           "Скажите, пожалуйста, где находится ближайшая аптека?"),
    "cmn": ("今天天气很好，我们去公园散步吧。",
            "请问去火车站怎么走？",
            "我明天早上八点要去上班。",
            "这家饭馆的菜又便宜又好吃。"),
}


@dataclasses.dataclass(frozen=True)
class Query:
    """A query that should find nothing.

    Attributes:
        kind: one of KINDS; variant: what made it within the kind (the noise, the
            speech's language, the hum's voice); name: a description that identifies it;
            audio: float32 (n,) at the catalogue's rate.
    """

    kind: str
    variant: str
    name: str
    audio: np.ndarray


class SpeechUnavailable(RuntimeError):
    """espeak-ng is not installed."""


def _durations(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(MIN_S, MAX_S, size=n)


def _at_level(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """float32 audio with its peak at a level drawn from PEAK_DB."""
    peak = float(np.max(np.abs(audio), initial=0.0))
    level = 10.0 ** (rng.uniform(*PEAK_DB) / 20.0)
    return (audio * (level / peak if peak > 0 else 0.0)).astype(np.float32)


def _loop_segment(loop: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """float32 (n,): a seamless loop read from a random offset, repeating as needed."""
    offset = int(rng.integers(loop.size))
    return np.resize(np.concatenate([loop[offset:], loop[:offset]]), n).astype(np.float32)


def noise_queries(n: int, seed: int, sample_rate_hz: int) -> list[Query]:
    """n noise queries, the variants in turn (white, pink, babble, street, white, ...)."""
    rng = np.random.default_rng([seed, 1])
    bank = noise_bank(sample_rate_hz, NOISE_BANK_SEED)
    queries = []
    for i, seconds in enumerate(_durations(rng, n)):
        variant = NOISE_VARIANTS[i % len(NOISE_VARIANTS)]
        size = int(round(seconds * sample_rate_hz))
        if variant == "babble":
            voices = bank["voices"]
            talkers = rng.choice(len(voices), size=int(rng.integers(3, 7)), replace=False)
            audio = sum(np.float32(10.0 ** (rng.uniform(-4.0, 4.0) / 20.0)) * _loop_segment(voices[t], size, rng)
                        for t in talkers)
            variant_name = f"babble x{talkers.size}"
        else:
            loops = bank[variant]
            audio = _loop_segment(loops[int(rng.integers(len(loops)))], size, rng)
            variant_name = variant
        queries.append(Query("noise", variant, f"{variant_name} {seconds:.1f}s", _at_level(audio, rng)))
    return queries


def espeak_available() -> bool:
    return shutil.which(ESPEAK) is not None


def speak(text: str, voice: str, words_per_minute: int, pitch: int, sample_rate_hz: int) -> np.ndarray:
    """espeak-ng's reading of text, float32 (n,) mono at sample_rate_hz.

    Raises:
        SpeechUnavailable: without espeak-ng.
    """
    if not espeak_available():
        raise SpeechUnavailable(f"{ESPEAK} is not installed (Debian: apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run([ESPEAK, "-b", "1", "-v", voice, "-s", str(words_per_minute), "-p", str(pitch),
                        "-w", str(path), text], check=True, capture_output=True, timeout=60)
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return resample(audio.mean(axis=1), rate, sample_rate_hz)


def speech_queries(n: int, seed: int, sample_rate_hz: int) -> list[Query]:
    """n readings by espeak-ng, each cut to its drawn duration.

    Raises:
        SpeechUnavailable: without espeak-ng.
    """
    rng = np.random.default_rng([seed, 2])
    languages = sorted(SENTENCES)
    queries = []
    for seconds in _durations(rng, n):
        language = languages[int(rng.integers(len(languages)))]
        voice = f"{language}+{SPEECH_VARIANTS[int(rng.integers(len(SPEECH_VARIANTS)))]}"
        speed, pitch = int(rng.integers(130, 191)), int(rng.integers(25, 76))
        sentences = [SENTENCES[language][i] for i in rng.permutation(len(SENTENCES[language]))]
        size = int(round(seconds * sample_rate_hz))
        audio, used = np.zeros(0, dtype=np.float32), 0
        while audio.size < size and used < 4 * len(sentences):  # read on until long enough
            used += 1
            text = " ".join(sentences[i % len(sentences)] for i in range(used))
            audio = speak(text, voice, speed, pitch, sample_rate_hz)
        audio = np.pad(audio[:size], (0, max(0, size - audio.size)))
        queries.append(Query("speech", language, f"{voice} {speed}wpm p{pitch} {seconds:.1f}s",
                             _at_level(audio, rng)))
    return queries


def hum_queries(songs: list[Song], n: int, seed: int, sample_rate_hz: int) -> list[Query]:
    """n hums (any voice, key and tempo) of songs drawn without replacement, each from a
    random note for its drawn duration; a tune too short for it is hummed again from the top.
    """
    from benchmarks.distractors import repeated
    rng = np.random.default_rng([seed, 3])
    queries = []
    order = rng.permutation(len(songs))[:n]
    for index, seconds in zip(order, _durations(rng, len(order))):
        song = songs[int(index)]
        style = HumStyle.sample(rng)
        span_s = seconds * style.tempo_factor + 1.0  # song seconds that fill the query
        melody = repeated(song, 2 * span_s).melody  # room to start anywhere in the first play
        onsets = np.array([note.start_s for note in melody])
        first = int(rng.integers(max(1, int(np.searchsorted(onsets, onsets[-1] - span_s)))))
        notes = [note for note in melody[first:] if note.start_s < onsets[first] + span_s]
        audio = synthesize_hum(notes, style, sample_rate_hz, rng).audio
        size = int(round(seconds * sample_rate_hz))
        audio = np.pad(audio[:size], (0, max(0, size - audio.size)))
        queries.append(Query("hum", style.voice, f"{song.song_id}@{onsets[first]:.1f} {style.voice} "
                             f"{seconds:.1f}s", audio.astype(np.float32)))
    return queries


def judge(recognizer: Recognizer, query: Query) -> dict:
    """One CSV row: the recognizer's decision on the whole query, and as a stream."""
    rate = recognizer.frontend.sample_rate_hz
    started = time.perf_counter()
    result = recognizer.identify(query.audio)
    elapsed = time.perf_counter() - started
    recognizer.reset()
    final = next((e for e in recognizer.push(query.audio) if e.final), None) or recognizer.finish()
    best = result.matches[0] if result.matches else None
    return {"kind": query.kind, "variant": query.variant, "query": query.name,
            "seconds": round(query.audio.size / rate, 2), "decision": result.decision,
            "stream_decision": final.kind, "top1": best.song_id if best else "",
            "score": round(best.score, 4) if best else 0.0, "confidence": round(result.confidence, 4),
            "windows": result.windows, "skipped": result.skipped, "time_ms": round(elapsed * 1000, 1)}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def rates(rows: list[dict]) -> dict:
    """False-accept counts and rates of rows, on whole queries and as streams."""
    n = len(rows)
    accepts = sum(r["decision"] == "match" for r in rows)
    stream = sum(r["stream_decision"] == "match" for r in rows)
    return {"queries": n, "false_accepts": accepts,
            "rate": round(accepts / n, 4) if n else None, "rate_ci95": wilson(accepts, n),
            "stream_false_accepts": stream, "stream_rate": round(stream / n, 4) if n else None,
            "embedded_fraction": round(sum(r["windows"] > 0 for r in rows) / n, 4) if n else None}


def summarise(rows: list[dict]) -> dict:
    summary = {"overall": rates(rows), "kinds": {}}
    for kind in KINDS:
        of_kind = [r for r in rows if r["kind"] == kind]
        if not of_kind:
            continue
        variants = sorted({r["variant"] for r in of_kind})
        summary["kinds"][kind] = dict(rates(of_kind), variants={
            v: rates([r for r in of_kind if r["variant"] == v]) for v in variants})
    summary["accepted"] = [{k: r[k] for k in ("kind", "query", "top1", "score", "confidence")}
                           for r in rows if r["decision"] == "match" or r["stream_decision"] == "match"]
    return summary


def build_queries(shared_data: Path, catalogue: Catalogue, kinds: list[str], per_kind: int, seed: int,
                  pool_cache: Path | None) -> tuple[list[Query], dict]:
    """(queries, notes): per_kind queries of each kind; notes say why a kind was skipped.

    The hums are of reserved tunes not in `catalogue`; pool_cache is
    benchmarks.distractors' pool pickle (else the pool is read: minutes).
    """
    rate = catalogue.frontend.sample_rate_hz
    queries, notes = [], {}
    if "noise" in kinds:
        queries += noise_queries(per_kind, seed, rate)
    if "speech" in kinds:
        try:
            queries += speech_queries(per_kind, seed, rate)
        except SpeechUnavailable as exc:
            notes["speech_skipped"] = str(exc)
            print(f"false_accepts: speech skipped: {exc}", file=sys.stderr)
    if "hum" in kinds:
        from benchmarks.distractors import load_pool
        pool = load_pool(shared_data, pool_cache, log=lambda line: None if line.startswith(
            "dropped") else print(line, file=sys.stderr, flush=True))
        in_catalogue = {s.song_id for s in catalogue.songs}
        songs = [s for s in pool.reserved if s.song_id not in in_catalogue]
        queries += hum_queries(songs, per_kind, seed, rate)
    return queries, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, required=True)
    parser.add_argument("--index", type=Path, default=assets.default_catalogue_dir())
    parser.add_argument("--out", type=Path, required=True, help="directory for the CSV and summary")
    parser.add_argument("--per-kind", type=int, default=100, help="queries of each kind")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"a subset of {','.join(KINDS)}")
    parser.add_argument("--pool-cache", type=Path,
                        help="benchmarks.distractors' pool pickle (else the pool is read: minutes)")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    if set(kinds) - set(KINDS):
        parser.error(f"--kinds: unknown {sorted(set(kinds) - set(KINDS))}")
    catalogue = Catalogue(args.index)
    recognizer = Recognizer(catalogue)
    queries, notes = build_queries(args.shared_data, catalogue, kinds, args.per_kind, args.seed,
                                   args.pool_cache)
    rows = []
    for number, query in enumerate(queries, 1):
        rows.append(judge(recognizer, query))
        if number % 50 == 0:
            print(f"false_accepts: {number}/{len(queries)} queries", file=sys.stderr, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "false_accepts.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    summary = dict(summarise(rows), catalogue=str(args.index), catalogue_songs=len(catalogue.songs),
                   catalogue_items=catalogue.n_items, seed=args.seed, per_kind=args.per_kind,
                   matcher=dataclasses.asdict(recognizer.config.matcher), **notes)
    (args.out / "false_accepts_summary.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
