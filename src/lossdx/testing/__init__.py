"""Helpers for tests, benchmarks and users' own tests: synthetic curves and fixture writers."""
