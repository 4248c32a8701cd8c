"""TFLite embedder: normalised spectrogram windows in, L2-normalised embeddings out.

The interpreter comes from LiteRT (ai-edge-litert), else tflite-runtime, else TensorFlow's
tf.lite; TensorFlow is only imported as that last resort, never by default. The model is
called through its named signature "embed" (input "spectrogram", output "embedding").
"""
from __future__ import annotations

import contextlib
import importlib
import os
import sys
from pathlib import Path

import numpy as np

SIGNATURE = "embed"
INPUT_NAME = "spectrogram"
OUTPUT_NAME = "embedding"
_BACKENDS = (
    ("ai-edge-litert", "ai_edge_litert.interpreter"),
    ("tflite-runtime", "tflite_runtime.interpreter"),
    ("tensorflow", "tensorflow.lite"),
)


class EmbedderError(Exception):
    """The model cannot be loaded or does not have the expected signature."""


def load_interpreter_class(prefer: str | None = None):
    """Returns (backend name, Interpreter class) of the first runtime that imports.

    Args:
        prefer: a backend name from _BACKENDS to try alone (for tests and benchmarks).
    """
    tried = []
    for name, module in _BACKENDS:
        if prefer is not None and name != prefer:
            continue
        try:
            return name, importlib.import_module(module).Interpreter
        except ImportError as exc:
            tried.append(f"{name} ({exc})")
    raise EmbedderError("no TFLite runtime found; install ai-edge-litert or tflite-runtime: "
                        + "; ".join(tried))


@contextlib.contextmanager
def _quiet_native_stderr():
    """Hides what the C++ runtime prints on stderr while it starts (an INFO line about its
    CPU delegate on every start), so the CLI's stderr holds only our own messages."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


class Embedder:
    """Runs the embedding model.

    Args:
        model_path: the .tflite file.
        num_threads: interpreter threads (None: the runtime's default).
        backend: force one runtime by name (None: the first available).
    """

    def __init__(self, model_path: str | Path, num_threads: int | None = None,
                 backend: str | None = None):
        self.backend, interpreter_class = load_interpreter_class(backend)
        try:
            with _quiet_native_stderr():
                self._interpreter = interpreter_class(model_path=str(model_path), num_threads=num_threads)
                self._runner = self._interpreter.get_signature_runner(SIGNATURE)
        except (ValueError, RuntimeError) as exc:
            raise EmbedderError(f"{model_path}: not a usable embedding model ({exc})") from exc
        inputs, outputs = self._runner.get_input_details(), self._runner.get_output_details()
        if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
            raise EmbedderError(f"{model_path}: signature '{SIGNATURE}' lacks "
                                f"'{INPUT_NAME}' -> '{OUTPUT_NAME}'")
        self._in, self._out = inputs[INPUT_NAME], outputs[OUTPUT_NAME]
        self.input_shape = tuple(int(d) for d in self._in["shape"][1:])  # (frames, bins)
        self.embedding_dim = int(self._out["shape"][-1])
        with _quiet_native_stderr():  # the CPU delegate announces itself on the first run
            self.embed(np.zeros((1, *self.input_shape), dtype=np.float32))

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        dtype = self._in["dtype"]
        if dtype == np.float32:
            return x.astype(np.float32)
        scale, zero = self._in["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if self._out["dtype"] == np.float32:
            return y.astype(np.float32)
        scale, zero = self._out["quantization"]
        return ((y.astype(np.float32) - zero) * scale).astype(np.float32)

    def embed(self, windows: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Embeds windows.

        Args:
            windows: float32 (n, window_frames, n_bins), values in [0, 1] (frontend.windows).

        Returns:
            float32 (n, embedding_dim), each row of unit L2 norm.
        """
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 3 or windows.shape[1:] != self.input_shape:
            raise EmbedderError(f"expected windows of shape (n, {self.input_shape[0]}, "
                                f"{self.input_shape[1]}), got {windows.shape}")
        out = np.zeros((windows.shape[0], self.embedding_dim), dtype=np.float32)
        for start in range(0, windows.shape[0], batch_size):
            chunk = self._quantize(windows[start:start + batch_size])
            result = self._runner(**{INPUT_NAME: chunk})[OUTPUT_NAME]
            out[start:start + batch_size] = self._dequantize(result)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)
