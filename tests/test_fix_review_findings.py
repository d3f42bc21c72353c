"""Review of the fixes in 2714ddf..HEAD: the header section check (api/header_section.py)
and the OpenAPI additions (api/openapi_doc.py).

The first tests speak raw HTTP/1.1 to a real uvicorn (the helpers of
tests/test_http_review_findings.py); the others ask the served document and the server
the same question (the small validator of tests/test_openapi_review_findings.py).
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.settings import Settings
from tests.people import Person, bearer, token_for
from tests.submitting import problem_slug, stored_counts
from tests.test_http_review_findings import (
    LANES,
    exchange,
    lane_settings,
    parse_responses,
    post,
    real_server,
    signer_for,
)
from tests.test_openapi_review_findings import (
    body_schema,
    documents_status,
    openapi,
    violations,
)

Json = dict[str, Any]


# --- Findings: each of these fails on the code as it stands. ---------------------------


@LANES
@pytest.mark.parametrize(
    ("extra", "status"),
    [
        (b"Content-Encoding: gzip\r\n", 415),
        (b"Transfer-Encoding: gzip, chunked\r\n", 501),
        (b"Idempotency-Key: outbox-0001\r\nIdempotency-Key: outbox-0002\r\n", 400),
    ],
    ids=["content-encoding", "transfer-coding", "key-twice"],
)
async def test_a_header_refusal_of_an_expect_continue_request_closes_the_connection(
    lane: bool,
    extra: bytes,
    status: int,
    settings: Settings,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """f18437d made an answer given before an ``Expect: 100-continue`` body was asked for
    say ``Connection: close`` (the client sends no body; a server still waiting for it
    reads the next request as that body). But only for answers from the app: the header
    section's own refusals (415 Content-Encoding, 501 transfer coding, 400 a key given
    twice) are sent before ``_closing_unless_read`` wraps anything, without
    ``Connection: close``, and the connection stays open waiting for a body the client
    will never send. RFC 9110, section 10.1.1: a server that responds with a final status
    code before reading the entire request content "SHOULD indicate whether it intends
    to close the connection ... or continue reading the request content"; a client that
    waits for 100 (Continue) sends nothing after a final status."""
    signer = await signer_for(conn, people)
    async with real_server(lane_settings(settings, lane)) as (app, port):
        token = token_for(app, signer.person)
        before = await stored_counts(conn)
        jws = signer.sign().encode()
        raw = post(token, jws, extra=extra + b"Expect: 100-continue\r\n")
        if b"Transfer-Encoding" in extra:
            raw = post(token, jws, extra=extra + b"Expect: 100-continue\r\n", length=False)
        head = raw[: raw.index(b"\r\n\r\n") + 4]  # the client waits: no body yet
        stream, closed = await exchange(port, head, wait=3)
        responses = parse_responses(stream)
        assert [r.status for r in responses] == [status], stream
        assert b"100 Continue" not in stream
        assert responses[0].header("connection") == "close", responses[0].headers
        assert closed, "the server kept waiting for the body of a request it had refused"
        assert await stored_counts(conn) == before


async def test_every_json_body_that_refuses_unknown_members_is_documented_closed(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """489b5e0 says "JSON request bodies refuse members they do not name
    (additionalProperties false)", but ``_limits_and_bodies`` closes only a body whose
    schema is a bare ``$ref``: ``POST /v1/agreements`` (its schema is an ``allOf`` beside
    its example, as for amendments and signatures) and every nested object (a target, a
    party, a region) stay open. The server refuses an unknown member at either level
    (``AgreementCreate``/``TargetIn`` have ``forbid_unknown_fields``: 400 ``validation``),
    so a client generated from, or validating against, the document sends a body the
    document calls valid and is refused (README: "OpenAPI: ``/schema/openapi.json``";
    JSON Schema 2020-12, section 10.3.2.3, as OpenAPI 3.1 reads it: without
    ``additionalProperties`` any other member is valid)."""
    doc = await openapi(client)
    schema = body_schema(doc, "/v1/agreements", "post")
    example: Json = schema["examples"][0]
    top = {**example, "catatan": "draft from the province"}
    nested = {**example, "targets": [{**example["targets"][0], "satuan": "%"}]}
    documented_as_valid = []
    for name, body in (("top-level", top), ("nested", nested)):
        answer = await client.post(
            "/v1/agreements", json=body, headers=bearer(app, people["province_head"])
        )
        assert answer.status_code == 400, answer.text
        assert problem_slug(answer) == "validation"
        if not violations(doc, schema, body):
            documented_as_valid.append(name)
    assert documented_as_valid == [], (
        f"the document accepts the {documented_as_valid} unknown member; the server: 400"
    )


async def test_the_token_endpoints_501_is_documented(
    client: AsyncTestClient[Litestar],
) -> None:
    """f18437d: "OpenAPI lists the 501 on bodies" (a Transfer-Encoding other than
    chunked). ``POST /v1/auth/token`` reads a body and answers that 501 like any other
    (``api.header_section`` runs before every route), but its request body is added to
    the document after ``_limits_and_bodies`` ran, so its responses list only 200 and
    4XX: a 5xx the document does not name (OpenAPI 3.1, 4.8.16: the responses object
    should cover the known errors)."""
    answer = await client.post(
        "/v1/auth/token",
        content=b"grant_type=password&username=a&password=b",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Transfer-Encoding": "gzip, chunked",
        },
    )
    assert answer.status_code == 501, answer.text
    doc = await openapi(client)
    assert documents_status(doc, "/v1/auth/token", "post", 501), sorted(
        doc["paths"]["/v1/auth/token"]["post"]["responses"]
    )


# --- Checked and correct: legitimate requests the header check must let through. -------


async def test_legitimate_header_sections_are_not_refused(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """HTTP/1.0 without Host (RFC 9112 3.2 requires Host of HTTP/1.1 only), a Host with
    a port, ``Transfer-Encoding: Chunked`` in capitals (RFC 9112 7: coding names are
    case-insensitive), and an Authorization of a 16 KiB token under the 32 KiB limit are
    answered by the route (401 for the unknown token, never 400/431/501)."""
    async with real_server(settings) as (_app, port):
        area = b"GET /v1/areas/16.71 HTTP/1.0\r\n\r\n"
        stream, _ = await exchange(port, area, wait=5)
        assert [r.status for r in parse_responses(stream)] == [200], stream[:300]
        with_port = b"GET /v1/areas/16.71 HTTP/1.1\r\nHost: kinerja.test:8000\r\n"
        stream, _ = await exchange(port, with_port + b"Connection: close\r\n\r\n", wait=5)
        assert [r.status for r in parse_responses(stream)] == [200], stream[:300]
        body = b"x.y.z"
        chunked = post(
            "a" * 16384,
            b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body),
            extra=b"Transfer-Encoding: Chunked\r\nConnection: close\r\n",
            length=False,
        )
        stream, _ = await exchange(port, chunked, wait=5)
        assert [r.status for r in parse_responses(stream)] == [401], stream[:300]
