"""Send signed submissions to the server, through the outbox when the link fails.

Every answer is classified once, here: stored (done), rejected (the server read
it and said no; re-sending the same bytes cannot help, so the user must be told),
or retry (we do not know whether it arrived; re-send the same JWS under the same
idempotency key until the server answers). A 401 is its own case: the report is
fine, the session is not, so it stays queued untouched until the user logs in.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
import msgspec

from client.outbox import PAUSE_CAP_S, Outbox, OutboxItem

SUBMISSIONS_PATH = "/v1/submissions"
JWS_MEDIA_TYPE = "application/jose"

RETRYABLE_4XX = frozenset({408, 409, 425, 429})
"""4xx answers that mean "not now" rather than "no": request timeout, a request
with the same idempotency key still in progress (draft-ietf-httpapi-idempotency-
key-header), too early, rate limited."""

ALREADY_RECEIVED = "jti-replayed"
"""Problem type (last path segment) of a 409 saying this very JWS (its ``jti``) is
already stored: an earlier attempt got through after its idempotency record expired.
The report is on the server, so the item is done, not retried for ever."""

FINAL_CONFLICTS = frozenset({"already-superseded"})
"""Problem types of a 409 that re-sending cannot change: rejected, not retried."""

OutcomeKind = Literal["stored", "rejected", "retry", "unauthorized", "moved"]

#: Answers that say the server (or a gateway before it) is overloaded or down: the rest
#: of a run waits as after a ``Retry-After``, rather than each report trying in turn.
BUSY = frozenset({429, 502, 503, 504})


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What became of one delivery attempt.

    Attributes:
        kind: ``stored`` (2xx, or a 409 saying this JWS is already stored),
            ``rejected`` (4xx: do not retry), ``retry`` (network error, 5xx, or
            a "not now" 4xx), ``unauthorized`` (401: log in again, then flush),
            ``moved`` (a redirect: the server address is wrong; fix it, then flush).
        status: HTTP status, None when no answer arrived.
        body: Decoded JSON body (the stored submission, or a problem+json);
            None if absent or not JSON.
        error: Human-readable reason for anything but ``stored``.
        retry_after: Seconds the server asked to wait (``Retry-After``), if any.
    """

    kind: OutcomeKind
    status: int | None = None
    body: Any = None
    error: str | None = None
    retry_after: float | None = None


class FlushEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One outbox item and what the flush did with it."""

    item: OutboxItem
    outcome: Outcome


class FlushReport(msgspec.Struct, frozen=True, kw_only=True):
    """What a flush did.

    Attributes:
        stored: Delivered and removed from the outbox.
        rejected: Refused by the server and removed; show these to the user,
            they need a corrected (superseding or new) submission.
        retrying: Still queued, backed off.
        unauthorized: The token was refused; the flush stopped and left the
            remaining items untouched. Log in again, then flush.
        refusal: What the server said of the refused session (its problem detail).
        moved: The server answered with a redirect (what it said): the flush stopped
            and left the items untouched; the server address must be fixed.
        held_until: The server was unreachable or asked to wait (``Retry-After``): the
            flush stopped there, the remaining items untried, and the next attempt is
            not due before this Unix time.
    """

    stored: list[FlushEntry]
    rejected: list[FlushEntry]
    retrying: list[FlushEntry]
    unauthorized: bool = False
    refusal: str | None = None
    moved: str | None = None
    held_until: float | None = None


def send_submission(
    http: httpx.Client, base_url: str, token: str, jws: str, idempotency_key: str
) -> Outcome:
    """POST one signed submission and classify the answer; never raises for network errors.

    Args:
        http: Client carrying the timeouts (and TLS settings) to use.
        base_url: Server root, e.g. ``https://kinerja.example.go.id``.
        token: Bearer token from ``POST /v1/auth/token``.
        jws: Compact JWS from ``sign_submission``.
        idempotency_key: Same value on every attempt for this JWS.
    """
    try:
        response = http.post(
            base_url.rstrip("/") + SUBMISSIONS_PATH,
            content=jws.encode("ascii"),
            headers={
                "Content-Type": JWS_MEDIA_TYPE,
                "Accept": "application/json, application/problem+json",
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": idempotency_key,
            },
        )
    except httpx.RequestError as exc:  # transport errors and timeouts: outcome unknown
        detail = str(exc)
        error = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        return Outcome(kind="retry", error=error)
    outcome = classify(response)
    body = outcome.body
    if outcome.kind == "stored" and isinstance(body, dict) and body.get("jws", jws) != jws:
        # The answer for another report (a proxy's cached 201): this one may never have
        # arrived, so it stays queued.
        return Outcome(
            kind="retry",
            status=outcome.status,
            body=body,
            error=f"HTTP {outcome.status}: the answer for another report (not stored)",
        )
    return outcome


def classify(response: httpx.Response) -> Outcome:
    """Map an HTTP answer to an ``Outcome``."""
    status = response.status_code
    body = _json(response)
    error = _describe(status, body, response)
    if 200 <= status < 300:
        if status in (200, 201) and isinstance(body, dict) and "id" in body:
            return Outcome(kind="stored", status=status, body=body)
        # Not the server's answer for a stored report (a captive portal, a proxy's page):
        # the report may never have arrived, so it stays queued.
        return Outcome(kind="retry", status=status, body=body, error=f"{error} (not stored)")
    if status == 409:
        slug = _problem_slug(body)
        if slug == ALREADY_RECEIVED:
            return Outcome(kind="stored", status=status, body=body)
        if slug in FINAL_CONFLICTS:
            return Outcome(kind="rejected", status=status, body=body, error=error)
    if status == 401:
        return Outcome(kind="unauthorized", status=status, body=body, error=error)
    if 300 <= status < 400:  # httpx follows no redirect: a report is never re-posted blindly
        where = response.headers.get("Location") or "an address it did not give"
        return Outcome(kind="moved", status=status, error=f"HTTP {status}: moved to {where}")
    if 400 <= status < 500 and status not in RETRYABLE_4XX:
        return Outcome(kind="rejected", status=status, body=body, error=error)
    # 5xx, "not now" 4xx, and unexpected 1xx/3xx (a misconfigured proxy): keep the item.
    return Outcome(
        kind="retry", status=status, body=body, error=error, retry_after=_retry_after(response)
    )


def deliver(
    http: httpx.Client,
    base_url: str,
    token: str,
    jws: str,
    idempotency_key: str,
    outbox: Outbox,
    now: float | None = None,
) -> Outcome:
    """Send a submission, leaving it in the outbox unless the server answered for it.

    The item is queued *before* the request and removed only after a stored
    answer (a refusal keeps it, marked rejected), so a crash mid-request leaves
    it queued for the next flush (the idempotency key makes the re-send harmless).
    """
    at = time.time() if now is None else now
    outbox.put(jws, idempotency_key, at)
    outcome = send_submission(http, base_url, token, jws, idempotency_key)
    _record(outbox, idempotency_key, outcome, at)
    return outcome


def flush(
    http: httpx.Client,
    base_url: str,
    token: str,
    outbox: Outbox,
    now: float | None = None,
    *,
    everything: bool = False,
) -> FlushReport:
    """Re-send the due outbox items (with ``everything``, all of them), oldest first.

    Stored items leave the outbox; rejected ones stay, marked so with the reason,
    and are not retried; the rest back off. A 401 stops the flush: every other item would
    be refused the same way, and none of them is at fault. So does an unreachable server
    (each other item would wait out its own timeout) and a ``Retry-After`` (the server
    asked for a pause, not for the next report at once): the rest stay queued, untried.
    ``everything`` is for a person who asked for a flush now: the backoff paces
    unattended retries, but a pause the server asked for holds for everyone (nothing is
    sent before it ends).
    """
    at = time.time() if now is None else now
    if (held := outbox.held_until(at)) is not None:
        return FlushReport(stored=[], rejected=[], retrying=[], held_until=held)
    stored: list[FlushEntry] = []
    rejected: list[FlushEntry] = []
    retrying: list[FlushEntry] = []
    for item in outbox.all() if everything else outbox.pending(at):
        outcome = send_submission(http, base_url, token, item.jws, item.idempotency_key)
        answered = time.time() if now is None else now  # a pause counts from its answer
        if outcome.kind in ("unauthorized", "moved"):
            return FlushReport(
                stored=stored,
                rejected=rejected,
                retrying=retrying,
                unauthorized=outcome.kind == "unauthorized",
                refusal=outcome.error if outcome.kind == "unauthorized" else None,
                moved=outcome.error if outcome.kind == "moved" else None,
            )
        updated = _record(outbox, item.idempotency_key, outcome, answered)
        entry = FlushEntry(item=item, outcome=outcome)
        if outcome.kind == "stored":
            stored.append(entry)
        elif outcome.kind == "rejected":
            rejected.append(entry)
        else:
            retrying.append(entry)
            if holds_back(outcome):
                held = updated.next_attempt_at if updated is not None else answered
                if outcome.retry_after is not None:
                    outbox.hold(answered + outcome.retry_after, answered)
                return FlushReport(
                    stored=stored, rejected=rejected, retrying=retrying, held_until=held
                )
    return FlushReport(stored=stored, rejected=rejected, retrying=retrying)


def holds_back(outcome: Outcome) -> bool:
    """Whether the rest of a run of reports should wait: the server was not reached, it
    asked for a pause (``Retry-After``), or it said it is overloaded or down."""
    return outcome.kind == "retry" and (
        outcome.status is None or outcome.retry_after is not None or outcome.status in BUSY
    )


def _record(
    outbox: Outbox, idempotency_key: str, outcome: Outcome, now: float
) -> OutboxItem | None:
    """Update the outbox after an attempt: remove stored items, keep refused ones as
    rejected (with the reason), back off failed ones (returned, as updated)."""
    if outcome.kind == "stored":
        outbox.mark_sent(idempotency_key)
    elif outcome.kind == "rejected":
        outbox.mark_rejected(idempotency_key, outcome.error or "rejected", now)
    elif outcome.kind == "retry":
        return outbox.mark_failed(
            idempotency_key, outcome.error or "retry", now, retry_after=outcome.retry_after
        )
    # unauthorized, moved: leave the item as it is; it has not failed, the session or the
    # server address has.
    return None


def _json(response: httpx.Response) -> Any:
    """Decode a JSON (or problem+json) body; None when empty or not JSON."""
    if not response.content:
        return None
    try:
        return msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return None


def _problem_slug(body: Any) -> str | None:
    """Last path segment of a problem's ``type`` (``.../problems/jti-replayed``), if any."""
    kind = body.get("type") if isinstance(body, dict) else None
    if not isinstance(kind, str) or kind == "about:blank":
        return None
    return kind.rstrip("/").rsplit("/", 1)[-1]


def _describe(status: int, body: Any, response: httpx.Response) -> str:
    """One line for the user: status plus the problem's title and detail when present."""
    parts = [f"HTTP {status}"]
    if isinstance(body, dict):
        parts += [str(body[k]) for k in ("title", "detail") if isinstance(body.get(k), str)]
    elif response.reason_phrase:
        parts.append(response.reason_phrase)
    return ": ".join(parts)


#: The longest pause a server's ``Retry-After`` may ask for: a day. More (a header of
#: 400 digits is infinity to float) broke the outbox's times and the lines showing them.
RETRY_AFTER_CAP_S = PAUSE_CAP_S


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), at most
    ``RETRY_AFTER_CAP_S``; None if absent or bad."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²" is a digit to Python, not to float()
        return min(float(value), RETRY_AFTER_CAP_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(0.0, when.timestamp() - time.time()), RETRY_AFTER_CAP_S)
