"""What exactly gets embedded for a chunk (ingestion and re-embedding must agree)."""

from __future__ import annotations


def chunk_embedding_input(*, heading_path: str, text: str) -> str:
    """The chunk's text under its section path: the path tells the model what the
    passage is about when the text alone does not ("Enterprise plans" under
    "Refunds" rather than a bare list of numbers)."""
    return f"{heading_path}\n\n{text}" if heading_path else text
