"""Regular expressions for whole values, the same to msgspec and to OpenAPI readers.

In Python's ``re`` (msgspec checks patterns with ``search``) a final ``$`` also matches
before a trailing newline, so ``"kadis_16.71\\n"`` passed as a username and made a
look-alike account. ``\\Z`` would mean something else in the JSON Schema dialect
OpenAPI uses; a lookahead refusing the newline reads the same in both.
"""

from __future__ import annotations


def whole(body: str) -> str:
    """A pattern the entire value must match, without a trailing newline."""
    return rf"^(?:{body})(?!\n)$"
