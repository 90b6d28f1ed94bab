"""The answer pipeline: question → retrieval → context → generation → citation check."""
