"""The PII filter of Cairn's log handler (observability.logging names it in LOGGING)."""

from __future__ import annotations

import ipaddress
import logging

from kb.guard.pii import IP_ADDRESS, PLACEHOLDER_STEMS, PiiLogFilter, pii_redact, pii_restore

# Lines in which a server names the address it listens on or the broker it connects
# to: (logger, start of the message template). That address is the server's own
# configuration, not a visitor's, so the PII filter leaves it when it cannot identify
# anyone outside the host's network: loopback, unspecified (0.0.0.0, ::) or private.
# A public address there, and any address in any other line, is still redacted.
SERVER_ADDRESS_LINES = (
    ("uvicorn.error", "Uvicorn running on "),
    ("celery.worker.consumer.connection", "Connected to "),
)
_IP_PLACEHOLDER = f"[{PLACEHOLDER_STEMS[IP_ADDRESS]}_"


def _server_address_line(record: logging.LogRecord) -> bool:
    return any(
        record.name == logger and isinstance(record.msg, str) and record.msg.startswith(start)
        for logger, start in SERVER_ADDRESS_LINES
    )


def _not_personal(address: str) -> bool:
    try:
        value = ipaddress.ip_address(address)
    except ValueError:
        return False
    return value.is_loopback or value.is_unspecified or value.is_private


class LogPiiFilter(PiiLogFilter):
    """``PiiLogFilter``, except for the listen and broker addresses in the server's own
    start-up lines (``SERVER_ADDRESS_LINES``): "Uvicorn running on http://127.0.0.1:8000"
    stays as it is instead of becoming "http://[IP_1]:8000"."""

    def redact(self, text: str, record: logging.LogRecord) -> str:
        redaction = pii_redact(text)
        if not redaction.placeholders or not _server_address_line(record):
            return redaction.text
        kept = {
            placeholder: value
            for placeholder, value in redaction.placeholders.items()
            if placeholder.startswith(_IP_PLACEHOLDER) and _not_personal(value)
        }
        return pii_restore(redaction.text, kept)
