"""Losses over a batch of pairs: embeddings (2B, D) = [queries (B, D); recordings (B, D)].

Row i of the queries and row i of the recordings are the same passage of the same song;
every other row of the batch is another song. Written with keras.ops so any backend runs it.
"""
from __future__ import annotations

from keras import ops


def _similarity(embeddings):
    """Cosine similarity (B, B) of queries (rows) against recordings (columns)."""
    half = ops.shape(embeddings)[0] // 2
    return ops.matmul(embeddings[:half], ops.transpose(embeddings[half:]))


def triplet_loss(embeddings, margin: float, mining: str):
    """Triplet loss with online negative mining, both directions (query->rec, rec->query).

    mining="hard": the most similar negative. mining="semi-hard": the most similar negative
    that is still less similar than the positive, else the hardest.
    """
    sim = _similarity(embeddings)
    b = ops.shape(sim)[0]
    eye = ops.eye(b, dtype=sim.dtype)
    losses = []
    for s in (sim, ops.transpose(sim)):
        positive = ops.diagonal(s)[:, None]
        negatives = s - 4.0 * eye  # the positive can never be picked
        hardest = ops.max(negatives, axis=1, keepdims=True)
        if mining == "semi-hard":
            easier = ops.where(negatives < positive, negatives, -4.0)
            semi = ops.max(easier, axis=1, keepdims=True)
            chosen = ops.where(semi > -2.0, semi, hardest)
        elif mining == "hard":
            chosen = hardest
        else:
            raise ValueError(f"unknown mining {mining!r}")
        losses.append(ops.mean(ops.relu(chosen - positive + margin)))
    return (losses[0] + losses[1]) / 2.0


def confidence_loss(embeddings, temperature: float):
    """Softmax over the batch: drives the confidence that each query picks its own recording
    (and each recording its own query) among all batch pairs towards 100%."""
    logits = _similarity(embeddings) / temperature
    b = ops.shape(logits)[0]
    labels = ops.arange(b)
    forward = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    backward = ops.sparse_categorical_crossentropy(labels, ops.transpose(logits), from_logits=True)
    return (ops.mean(forward) + ops.mean(backward)) / 2.0


def batch_top1(embeddings):
    """Fraction of queries whose most similar recording in the batch is their own."""
    sim = _similarity(embeddings)
    b = ops.shape(sim)[0]
    return ops.mean(ops.cast(ops.equal(ops.argmax(sim, axis=1), ops.arange(b)), "float32"))
