"""Turning text into vectors: the provider interface, the bundled model, token counting."""
