"""The LLM gateway: providers behind one streaming interface, with retries, breakers,
fallbacks, caches and a usage ledger (see docs/architecture.md)."""
