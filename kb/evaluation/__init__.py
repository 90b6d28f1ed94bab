"""Retrieval evaluation on golden question sets (see tests/golden/README.md)."""
