"""Validators for the variants of flag keys that a higher app understands.

``flags`` sits below ``chat`` and may not import it, yet a "prompt_version" variant must
name a prompt version that exists and a "route_chain:<route>" variant must be a chain the
route parser accepts. Chat registers one validator per key (or key prefix) when it starts
(``ChatConfig.ready``); ``Flag.clean`` runs the one that matches. A key nobody registered is
accepted as it is: "anything new" needs no code here.
"""

from __future__ import annotations

from collections.abc import Callable

# A validator raises django.core.exceptions.ValidationError (or ValueError) for a variant
# it refuses; its return value is ignored.
VariantValidator = Callable[[str, str], None]  # (key, variant)

_exact: dict[str, VariantValidator] = {}
_prefixes: dict[str, VariantValidator] = {}


def validator_register(key: str, validator: VariantValidator, *, prefix: bool = False) -> None:
    """Check the variants of ``key`` (or of every key starting with it, ``prefix=True``)."""
    (_prefixes if prefix else _exact)[key] = validator


def validator_for(key: str) -> VariantValidator | None:
    """The validator of ``key``: an exact registration first, else the longest prefix."""
    if key in _exact:
        return _exact[key]
    matches = [p for p in _prefixes if key.startswith(p)]
    return _prefixes[max(matches, key=len)] if matches else None


def known_keys() -> list[str]:
    """The registered keys, prefixes shown with a trailing "<…>", for help texts."""
    return sorted(_exact) + sorted(f"{p}<…>" for p in _prefixes)


def _on_or_off(key: str, variant: str) -> None:
    if variant not in ("on", "off"):
        raise ValueError(f'{key} takes "on" or "off", not {variant!r}')


# Keys whose variants flags can check itself; chat adds prompt_version and route_chain:.
validator_register("semantic_cache", _on_or_off)
validator_register("auto_tickets", _on_or_off)
