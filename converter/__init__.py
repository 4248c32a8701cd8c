"""Keras to int8 TFLite, manifests, and packaging of the default catalogue."""
