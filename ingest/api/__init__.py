"""REST API of the ingest app: documents."""
