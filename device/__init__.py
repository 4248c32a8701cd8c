"""On-device query-by-humming runtime: audio in, frontend, TFLite melody model, catalogue,
shortlist, alignment, decision, recognizer, CLI. Never imports TensorFlow."""
