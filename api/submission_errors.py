"""The problems a signed submission, its review or a page of submissions is refused with.

Each is a 4xx with a stable ``type`` (``api.errors``). They are kept apart so the checks,
the batch writer and the routes all raise and name the same classes.
"""

from __future__ import annotations

from api.errors import ApiError


class UnsupportedMediaType(ApiError):
    status_code = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class InvalidSubmission(ApiError):
    status_code = 422
    slug = "invalid-submission"
    title = "The submission payload is not valid"


class JtiReplayed(ApiError):
    status_code = 409
    slug = "jti-replayed"
    title = "This submission was already received"


class IatTooOld(ApiError):
    status_code = 422
    slug = "iat-too-old"
    title = "The submission was signed too long ago"


class IatInFuture(ApiError):
    status_code = 422
    slug = "iat-in-future"
    title = "The submission is signed in the future"


class FutureAsOf(ApiError):
    status_code = 422
    slug = "future-as-of"
    title = "The as-of date is in the future"


class AsOfTooEarly(ApiError):
    status_code = 422
    slug = "as-of-too-early"
    title = "The as-of date is before any reporting year"


class UnknownIndicator(ApiError):
    status_code = 422
    slug = "unknown-indicator"
    title = "Unknown indicator"


class InvalidDivision(ApiError):
    status_code = 422
    slug = "invalid-division"
    title = "The division is not one of the district's"


class InvalidSupersedes(ApiError):
    status_code = 422
    slug = "invalid-supersedes"
    title = "The superseded submission is not acceptable"


class AlreadySuperseded(ApiError):
    status_code = 409
    slug = "already-superseded"
    title = "The submission was already superseded"


class InvalidIdempotencyKey(ApiError):
    status_code = 400
    slug = "invalid-idempotency-key"
    title = "Invalid Idempotency-Key header"


class IdempotencyKeyReused(ApiError):
    status_code = 422
    slug = "idempotency-key-reused"
    title = "The Idempotency-Key was used for another request"


class ReviewNotAllowed(ApiError):
    status_code = 409
    slug = "review-not-allowed"
    title = "The submission cannot be reviewed that way now"


class InvalidCursor(ApiError):
    status_code = 400
    slug = "invalid-cursor"
    title = "Invalid cursor"
