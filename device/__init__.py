"""On-device query-by-humming runtime: audio in, frontend, TFLite embedder, catalogue,
matcher, recognizer, CLI. Never imports TensorFlow."""
