"""Guardrails: prompt-injection detection, PII redaction, and their evaluations."""
