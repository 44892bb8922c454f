"""Churnwatch benchmarks: ``python -m benchmarks`` (see :mod:`benchmarks.run`).

Benchmarks print figures; they are never timed tests.
"""
