"""Selectors of the chat app: they read, always scoped to the asking user."""
