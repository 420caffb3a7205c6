"""Benchmarks that print figures (never timed tests), and the latency measurements chapter 6 reads.

``ig`` (IG against captum), ``training`` (a student's step), ``latency`` (teacher and student, deployment
variants; its results are committed under ``results/latency/``), ``variants``, ``campaign`` (the GPU trainers
side by side) and ``pointwise`` (1x1 convolutions). It reads training and attribution; evidence and the book
read its latency results.
"""
MODULES = ("ig", "training", "latency", "variants", "campaign", "pointwise")
__all__ = ["MODULES"]
