"""Regular expressions for whole values, the same to msgspec and to OpenAPI readers.

In Python's ``re`` (msgspec checks patterns with ``search``) a final ``$`` also matches
before a trailing newline, so ``"kadis_16.71\\n"`` passed as a username and made a
look-alike account. ``\\Z`` would mean something else in the JSON Schema dialect
OpenAPI uses; a lookahead refusing the newline reads the same in both. For the same
reason digits are ``[0-9]``: Python's ``\\d`` also takes other scripts' digits.
"""

from __future__ import annotations


def whole(body: str) -> str:
    """A pattern the entire value must match, without a trailing newline."""
    return rf"^(?:{body})(?!\n)$"


#: Text with something visible in it and no NUL (PostgreSQL text cannot hold one): a
#: name or note of spaces alone names nothing. Written to match in linear time: the
#: obvious ``^[^\x00]*[^\x00\s][^\x00]*$`` backtracks quadratically on a long text
#: ending in a NUL (16 ms of CPU for 2,000 characters).
VISIBLE_TEXT = r"^\s*[^\x00\s][^\x00]*$"
