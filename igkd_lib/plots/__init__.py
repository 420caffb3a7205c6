"""Figures of the book, one module per subject: ``maps``, ``results``, ``latency``."""
