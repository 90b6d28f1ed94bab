"""Words the pipeline says to people, in one place (tests and the UI match on them)."""

from __future__ import annotations

# What every answerer says when the documents do not hold the answer; the
# extractive answerer and the prompt templates use these exact words, and the
# citation check turns an answer without supported content into them.
ABSTENTION_TEXT = "I don't have that information in the knowledge base."
