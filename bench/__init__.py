"""Benchmarks: results go to BENCHMARKS.md with date and machine."""
