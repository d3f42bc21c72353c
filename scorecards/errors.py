"""The one error family of the scorecard core.

The API maps :class:`ScorecardError` to a problem+json response; it subclasses
``ValueError`` so that msgspec, when a struct's ``__post_init__`` raises it while
decoding, reports it as an ordinary validation error.
"""

from __future__ import annotations


class ScorecardError(ValueError):
    """Input that the numbers cannot be computed from (not a bug in the caller's data flow)."""
