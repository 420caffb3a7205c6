"""Benchmarks that print figures (never timed tests): ``ig``, ``training`` and ``latency``."""
