"""Document parsers: a file's bytes to structural blocks (``base``), one module per type.

Use ``ingest.parsing.registry.parse_document``; every failure is a ``ParseError`` whose
message can be shown to the admin as it is.
"""
