"""Document ingestion: parse, chunk, embed (Celery)."""
