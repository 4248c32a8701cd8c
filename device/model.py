"""The TFLite melody model: normalised spectrogram windows in, melody salience out.

The interpreter comes from LiteRT (ai-edge-litert), else tflite-runtime, else TensorFlow's
tf.lite; TensorFlow is only imported as that last resort, never by default. The model is
called through its named signature "salience" (input "spectrogram", output "salience").
"""
from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SIGNATURE = "salience"
INPUT_NAME = "spectrogram"
OUTPUT_NAME = "salience"
_BACKENDS = (
    ("ai-edge-litert", "ai_edge_litert.interpreter"),
    ("tflite-runtime", "tflite_runtime.interpreter"),
    ("tensorflow", "tensorflow.lite"),
)


class ModelError(Exception):
    """The model cannot be loaded or does not have the expected signature."""


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]


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
    raise ModelError("no TFLite runtime found; install ai-edge-litert or tflite-runtime: "
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


def check_in_child(model_path: str | Path, timeout_s: float = 120.0) -> None:
    """Loads and runs the model once in a child process. A damaged model can abort the
    native interpreter (SIGABRT in a kernel), which no Python code survives; here the
    child's death becomes a ModelError. A Python-level failure in the child is left to the
    in-process load, which reports it in one line."""
    code = "import sys; from device.model import MelodyModel; MelodyModel(sys.argv[1], num_threads=1)"
    here = str(Path(__file__).resolve().parents[1])  # the child imports this very package
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p))
    try:
        run = subprocess.run([sys.executable, "-c", code, str(model_path)], capture_output=True,
                             timeout=timeout_s, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise ModelError(f"{model_path}: the interpreter did not finish one run in {timeout_s:.0f} s") from None
    if run.returncode < 0:
        raise ModelError(f"{model_path}: the interpreter crashed running it (signal {-run.returncode}); "
                         "the model is damaged")


class MelodyModel:
    """Runs the melody model: normalised spectrogram windows in, melody salience out.

    Args:
        model_path: the .tflite file.
        num_threads: interpreter threads (None: the runtime's default).
        backend: force one runtime by name (None: the first available).

    Attributes:
        input_shape: (window_frames, n_bins) of one window.
        output_shape: (salience_frames, n_bins) of one window's salience.
    """

    def __init__(self, model_path: str | Path, num_threads: int | None = None,
                 backend: str | None = None):
        self.backend, interpreter_class = load_interpreter_class(backend)
        try:
            with _quiet_native_stderr():
                self._interpreter = interpreter_class(model_path=str(model_path), num_threads=num_threads)
                self._runner = self._interpreter.get_signature_runner(SIGNATURE)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{model_path}: not a usable melody model ({_one_line(exc)})") from exc
        inputs, outputs = self._runner.get_input_details(), self._runner.get_output_details()
        if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
            raise ModelError(f"{model_path}: signature '{SIGNATURE}' lacks "
                             f"'{INPUT_NAME}' -> '{OUTPUT_NAME}'")
        self._in, self._out = inputs[INPUT_NAME], outputs[OUTPUT_NAME]
        self.input_shape = tuple(int(d) for d in self._in["shape"][1:])
        self.output_shape = tuple(int(d) for d in self._out["shape"][1:])
        if len(self.input_shape) != 2 or len(self.output_shape) != 2 \
                or self.output_shape[1] != self.input_shape[1] or self.output_shape[0] < 1 \
                or self.input_shape[0] % self.output_shape[0]:
            raise ModelError(f"{model_path}: shapes {self.input_shape} -> {self.output_shape} "
                             "are not those of a melody model")
        for tensor in (self._in, self._out):
            scale = tensor["quantization"][0]
            if tensor["dtype"] != np.float32 and not (np.isfinite(scale) and scale > 0):
                raise ModelError(f"{model_path}: quantization scale {scale} of '{tensor['name']}' is unusable")
        try:
            with _quiet_native_stderr():  # the CPU delegate announces itself on the first run
                self.salience(np.zeros((1, *self.input_shape), dtype=np.float32))
        except (ValueError, RuntimeError) as exc:  # e.g. "failed to prepare" on a damaged model
            raise ModelError(f"{model_path}: not a usable melody model ({_one_line(exc)})") from exc

    @property
    def time_stride(self) -> int:
        """Input frames per salience frame."""
        return self.input_shape[0] // self.output_shape[0]

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

    def salience(self, windows: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """Melody salience of windows.

        Args:
            windows: float32 (n, window_frames, n_bins), values in [0, 1] (frontend.windows).

        Returns:
            float32 (n, salience_frames, n_bins) in [0, 1].
        """
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 3 or windows.shape[1:] != self.input_shape:
            raise ModelError(f"expected windows of shape (n, {self.input_shape[0]}, "
                             f"{self.input_shape[1]}), got {windows.shape}")
        out = np.zeros((windows.shape[0], *self.output_shape), dtype=np.float32)
        for start in range(0, windows.shape[0], batch_size):
            chunk = self._quantize(windows[start:start + batch_size])
            out[start:start + batch_size] = self._dequantize(self._runner(**{INPUT_NAME: chunk})[OUTPUT_NAME])
        return out
