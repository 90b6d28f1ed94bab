"""Benchmarks: each script prints a table and one JSON line (see docs/development.md)."""
