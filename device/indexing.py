"""Building and extending catalogues from folders of audio, on any machine (no TensorFlow)."""
from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np

from device import frontend as fe
from device import manifest as mf
from device.audio import AudioError, load_audio
from device.catalogue import Catalogue, IndexConfig, SongInfo, write_catalogue
from device.embedder import Embedder

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".m4a", ".opus")


def read_metadata(path: Path | None) -> dict[str, tuple[str, str]]:
    """song_id -> (title, artist) from a CSV with columns song_id,title,artist."""
    if path is None:
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"song_id", "title", "artist"} - set(reader.fieldnames or ())
            if missing:
                raise mf.ManifestError(f"{path}: metadata CSV lacks columns {sorted(missing)}")
            return {r["song_id"]: (r["title"], r["artist"]) for r in reader}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise mf.ManifestError(f"{path}: unreadable metadata CSV ({exc})") from exc


def audio_files(directory: Path) -> list[Path]:
    """Audio files directly in or below `directory`, sorted by path."""
    directory = Path(directory)
    if not directory.is_dir():
        raise mf.ManifestError(f"{directory}: no such directory")
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def embed_recording(audio: np.ndarray, embedder: Embedder, config: fe.FrontendConfig,
                    hop_frames: int) -> np.ndarray:
    """float32 (n_windows, embedding_dim): windows every hop_frames, from frame 0.

    A recording shorter than one window is zero-padded to one window.
    """
    need = (config.window_frames - 1) * config.hop_length_samples + config.frame_length_samples
    if audio.size < need:
        audio = np.concatenate([audio, np.zeros(need - audio.size, dtype=np.float32)])
    spectrogram = fe.log_spectrogram(audio, config)
    return embedder.embed(fe.windows(spectrogram, hop_frames, config))


def build(audio_dir: Path, out_dir: Path, model_dir: Path | None, metadata_csv: Path | None = None,
          config: IndexConfig = IndexConfig(), base: Catalogue | None = None,
          log: Callable[[str], None] = print) -> tuple[int, int]:
    """Embeds every recording in audio_dir into a new catalogue at out_dir.

    Args:
        model_dir: a model directory (model.tflite + manifest.json), or a catalogue
            directory whose model is used; ignored when extending `base`.
        base: an existing catalogue whose songs are kept first (extending it); its model
            and index settings are used.
        log: receives one line per skipped file and progress lines.

    Returns:
        (songs added, files skipped).
    """
    metadata = read_metadata(metadata_csv)
    files = audio_files(audio_dir)
    if base is not None:
        model_manifest, model_path = base.manifest, base.model_path
        config = base.config
        songs, vectors = list(base.songs), [base.vectors()]
        model_dir = base.directory
    else:
        model_manifest = _read_model_manifest(Path(model_dir))
        model_path = mf.check_file(Path(model_dir), model_manifest["model"], "model")
        songs, vectors = [], []
    frontend = mf.check_frontend(model_manifest, model_dir)
    embedder = Embedder(model_path)
    seen = {s.song_id for s in songs}
    next_item = sum(s.n_items for s in songs)
    added = skipped = 0
    for number, path in enumerate(files, 1):
        song_id = path.stem
        if song_id in seen:
            log(f"skipped {path}: song id {song_id!r} is already in the catalogue")
            skipped += 1
            continue
        try:
            audio = load_audio(path, frontend.sample_rate_hz)
        except AudioError as exc:
            log(f"skipped {exc}")
            skipped += 1
            continue
        embedded = embed_recording(audio, embedder, frontend, config.hop_frames)
        title, artist = metadata.get(song_id, (song_id, ""))
        songs.append(SongInfo(song_id, title, artist, next_item, embedded.shape[0],
                              audio.size / frontend.sample_rate_hz))
        vectors.append(embedded)
        seen.add(song_id)
        next_item += embedded.shape[0]
        added += 1
        if number % 100 == 0:
            log(f"embedded {number}/{len(files)} files")
    if added == 0:
        raise mf.ManifestError(f"{audio_dir}: no new readable audio files; nothing was written")
    write_catalogue(out_dir, model_manifest, model_path, songs,
                    np.concatenate(vectors).astype(np.float32), config)
    return added, skipped


def _read_model_manifest(model_dir: Path) -> dict:
    """A model directory's manifest, or the model part of a catalogue directory's."""
    try:
        return mf.read(model_dir, mf.MODEL_FORMAT)
    except mf.ManifestError:
        catalogue = mf.read(model_dir, mf.CATALOGUE_FORMAT)
        return {"format": mf.MODEL_FORMAT, "frontend": catalogue["frontend"], "model": catalogue["model"]}
