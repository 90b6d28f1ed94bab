"""Tests that run several Cairn processes at once, the way a deployment does."""
