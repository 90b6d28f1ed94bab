"""Knowledge bases: tenants, documents, chunks and retrieval."""
