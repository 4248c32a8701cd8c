"""Training: melody corpora, rendering, hum synthesis, augmentation, Keras model, losses."""
