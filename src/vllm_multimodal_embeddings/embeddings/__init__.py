"""Embedding: the I/O-free core, the sync and async clients, the streaming pipeline, the tuner.

The public names are re-exported from the package root (``EmbeddingClient`` and friends).
"""
