"""Benchmarks that print figures (never timed tests), and the latency measurements chapter 6 reads.

``ig`` (IG against captum), ``training`` (a student's step), ``latency`` (teacher and student, deployment
variants; its results are committed under ``results/latency/``), ``variants``, ``campaign`` (the GPU trainers
side by side), ``pointwise`` (1x1 convolutions) and ``teacher_engines`` (the teacher's training: the loop and the
graph engine). It reads training and attribution; evidence and the book read its latency results.
"""
MODULES = ("ig", "training", "latency", "variants", "campaign", "pointwise", "teacher_engines")
__all__ = ["MODULES"]
