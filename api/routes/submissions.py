"""Signed progress submissions, their review, and ledger verification."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.exceptions import ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import (
    FromPath,
    HeaderParameter,
    JSONBody,
    QueryParameter,
    RawBody,
)
from litestar.response.base import ASGIResponse
from litestar.types import Send

from api import submissions
from api.auth.principal import Principal
from api.ingest import Appender
from api.ledger import verify_district
from api.pagination import PageOutOfRange
from api.routes.users import caller
from api.schemas.patterns import described, whole
from api.schemas.submissions import (
    Flag,
    LedgerReport,
    ReviewIn,
    ReviewOut,
    Status,
    SubmissionDetail,
    SubmissionPage,
)
from api.settings import local_today
from api.submission_rules import JOSE_MEDIA_TYPE
from api.submission_views import detail
from db.submissions import ListFilters

#: Filters shaped as area codes are (a typo such as 16.7 is refused, not an empty page).
_DISTRICT = whole(r"[0-9]{2}\.[0-9]{2}")
_PROVINCE = described(whole("[0-9]{2}"), "a province code such as 16")


@dataclass
class JwsBodyOperation(Operation):
    """Documents the raw body, which Litestar cannot infer from ``RawBody``."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description=(
                "Compact JWS signed with your registered key. Its protected header holds "
                "alg (EdDSA or ES256, as the key), typ kinerja-submission+jwt and kid, "
                "each once and nothing else. Whitespace around it (the newline a file "
                "sent as it is ends in) is not part of the JWS: it is dropped before "
                "the JWS is checked, hashed into the ledger and kept."
            ),
            content={
                JOSE_MEDIA_TYPE: OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.STRING,
                        pattern=r"^\s*[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\s*$",
                    )
                )
            },
        )


class Answer(msgspec.Struct, frozen=True):
    """A submission's answer: status, the headers of its own, the JSON body."""

    status_code: int
    headers: list[tuple[str, str]]
    body: bytes

    def asgi_response(self) -> ASGIResponse:
        """For Litestar, which adds content-type and content-length after these."""
        return ASGIResponse(
            body=self.body,
            status_code=self.status_code,
            media_type=MediaType.JSON,
            headers=self.headers,
        )

    async def send(self, send: Send) -> None:
        """Straight to the server, with the headers ``asgi_response`` would send: building
        Litestar's response and its header mapping cost more than the rest of it."""
        headers = [(name.encode(), value.encode()) for name, value in self.headers]
        headers += [(b"content-type", _JSON), (b"content-length", b"%d" % len(self.body))]
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


_JSON = MediaType.JSON.value.encode()


async def answer_submission(
    appender: Appender,
    principal: Principal,
    body: bytes,
    *,
    content_type: str | None,
    idempotency_key: str | None,
) -> Answer:
    """Check, store and answer one signed submission: the route's work, shared with the
    submission lane. Whitespace around the Idempotency-Key is not part of it (RFC 9110
    5.5); the HTTP parser drops the leading part only."""
    if idempotency_key is not None:
        idempotency_key = idempotency_key.strip(" \t")
    result = await appender.receive(
        principal, body, content_type=content_type, idempotency_key=idempotency_key
    )
    headers = [("location", f"/v1/submissions/{result.submission_id}")]
    if result.replayed:
        headers.append(("idempotent-replayed", "true"))
    return Answer(result.status_code, headers, result.body)


class SubmissionController(Controller):
    path = "/v1/submissions"
    tags = ["submissions"]

    @post(
        "/",
        opt={"permission": "submissions:submit"},
        summary="Submit a signed progress report (compact JWS, application/jose)",
        operation_class=JwsBodyOperation,
        responses={
            201: ResponseSpec(
                data_container=SubmissionDetail, description="Stored, or a replayed retry"
            )
        },
    )
    async def submit(
        self,
        request: Request[Any, Any, Any],
        body: RawBody,
        # No max_length: a longer key is refused by check_idempotency_key, as
        # invalid-idempotency-key like any other bad key (the document says 255).
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
    ) -> ASGIResponse:
        """The body is the JWS made by ``client.signing``; flags mark, they never reject.

        A retry with the same ``Idempotency-Key`` and body answers the first response
        again (header ``Idempotent-Replayed: true``) and stores nothing new.
        """
        # Most submissions take ``api.submission_lane`` instead, which ends in the same
        # function; this handler answers the rest (and documents the route).
        answer = await answer_submission(
            request.app.state.appender,
            caller(request),
            bytes(body),
            content_type=request.headers.get("content-type"),
            idempotency_key=idempotency_key,
        )
        return answer.asgi_response()

    @get("/", opt={"permission": "submissions:read"}, summary="List submissions in your scope")
    async def list_submissions(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        state: State,
        district: Annotated[str | None, QueryParameter(pattern=_DISTRICT)] = None,
        province: Annotated[str | None, QueryParameter(pattern=_PROVINCE)] = None,
        status: Annotated[Status | None, QueryParameter()] = None,
        flag: Annotated[Flag | None, QueryParameter()] = None,
        as_of_from: Annotated[date | None, QueryParameter()] = None,
        as_of_to: Annotated[date | None, QueryParameter()] = None,
        cursor: Annotated[str | None, QueryParameter(max_length=200)] = None,
        limit: Annotated[int | None, QueryParameter()] = None,
    ) -> SubmissionPage:
        """Newest first; ``next_cursor`` (opaque) continues where a page ended."""
        settings = state.settings
        chosen = settings.page_size_default if limit is None else limit
        if not 1 <= chosen <= settings.page_size_max:
            raise PageOutOfRange(
                f"limit must be between 1 and {settings.page_size_max}", extra={"limit": chosen}
            )
        if as_of_from is not None and as_of_to is not None and as_of_from > as_of_to:
            # An empty page would read as "nobody reported in this period".
            raise ValidationException(
                "as_of_from is after as_of_to: no date is in that range.",
                extra=[
                    {"key": "as_of_from", "source": "query", "message": "after as_of_to"},
                ],
            )
        filters = ListFilters(
            district=district,
            province=province,
            status=status,
            flag=flag,
            as_of_from=as_of_from,
            as_of_to=as_of_to,
        )
        return await submissions.list_page(
            db, caller(request), filters, cursor=cursor, limit=chosen
        )

    @get(
        "/{submission_id:uuid}",
        opt={"permission": "submissions:read"},
        summary="One submission: payload, flags, reviews, ledger position and the JWS",
    )
    async def get_submission(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        submission_id: FromPath[UUID],
    ) -> SubmissionDetail:
        row = await submissions.visible(db, caller(request), submission_id)
        return await detail(db, row)

    @post(
        "/{submission_id:uuid}/review",
        opt={"permission": "submissions:review"},
        summary="Accept or return a submission (province head or monitor, region coordinator)",
    )
    async def review(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        submission_id: FromPath[UUID],
        data: JSONBody[ReviewIn],
    ) -> ReviewOut:
        """A returned submission stops counting; it is corrected by a superseding one.
        Nobody reviews a submission they signed (403)."""
        return await submissions.review(db, caller(request), submission_id, data)


@get(
    "/v1/districts/{code:str}/ledger/verify",
    opt={"permission": "ledger:verify"},
    summary="Recompute a district's hash chain and re-verify every signature",
    tags=["submissions"],
)
async def verify_ledger(
    request: Request[Any, Any, Any],
    db: NamedDependency[asyncpg.Connection],
    code: FromPath[str],
) -> LedgerReport:
    """Answers ok, or the first broken entry (seq, id) and what broke."""
    this_year = local_today(request.app.state.settings).year
    district = await submissions.verifiable_district(db, caller(request), code, this_year)
    return await verify_district(db, district)
