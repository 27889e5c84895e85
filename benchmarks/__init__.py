"""Benchmarks: each module prints one JSON object as its last line."""
