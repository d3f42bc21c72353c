"""Found by a review of what ``POST /v1/submissions`` takes: each test failed on the code
it was written against. Each runs through the submission lane and through the plain
Litestar route (``submission_lane`` on and off), which answered alike, and wrongly."""

from __future__ import annotations

import base64
import gzip
import json

import asyncpg
import msgspec
import pytest

from api.settings import Settings
from client.signing import SUBMISSION_TYP
from tests.people import Person, bearer
from tests.submitting import JOSE, register_key, served, stored_counts


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def _submission_rows(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM submissions"))


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "route"])
@pytest.mark.parametrize(
    "typ", ["application/" + SUBMISSION_TYP, "Kinerja-Submission+JWT"], ids=["full", "case"]
)
async def test_typ_written_as_the_full_media_type_is_the_same_type(
    lane: bool, typ: str, settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """RFC 7515 section 4.1.9: ``typ`` is a media type; media types compare
    case-insensitively, and "a recipient using the media type value MUST treat it as if
    'application/' were prepended to any 'typ' value not containing a '/'". So
    ``application/kinerja-submission+jwt`` (what a JOSE library that writes full media
    types emits; RFC 9068 likewise accepts both ``at+jwt`` and ``application/at+jwt``)
    and ``Kinerja-Submission+JWT`` name exactly the type the server pins. A client that
    signs a valid report with such a header expects it stored (201), not 422
    ``invalid-signature`` "The JWS typ must be 'kinerja-submission+jwt'"."""
    signer = await register_key(conn, people["district_head"])
    header = {"alg": "EdDSA", "kid": signer.kid, "typ": typ}
    payload = json.dumps(signer.payload()).encode()
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(payload)}"
    jws = f"{signing_input}.{_b64(signer.key.sign(signing_input.encode()))}"
    async with served(msgspec.structs.replace(settings, submission_lane=lane)) as (app, http):
        response = await http.post(
            "/v1/submissions",
            content=jws.encode(),
            headers={**bearer(app, signer.person), "Content-Type": JOSE},
        )
        rows = await _submission_rows(conn)
    assert response.status_code == 201, response.text
    assert rows == 1


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "route"])
async def test_a_content_encoding_the_server_does_not_decode_is_refused_as_such(
    lane: bool, settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """The server never reads ``Content-Encoding``: it takes the bytes as they arrive for
    the JWS itself (RFC 9110 section 8.4: a coded representation is decoded, or refused).

    A client that sends a valid report gzip-compressed, with ``Content-Encoding: gzip``,
    expects it decoded and stored (201), or refused as an unsupported coding: 415
    ``unsupported-media-type`` (RFC 9110 section 15.5.16: "The format problem might be
    due to the request's indicated Content-Type or Content-Encoding"). It gets 422
    ``invalid-submission`` "The body must be a compact JWS (ASCII)": its report is called
    malformed. And a body that says it is gzip but is not (not valid gzip data) is
    stored as if the header were absent, where nothing should be stored."""
    signer = await register_key(conn, people["district_head"])
    async with served(msgspec.structs.replace(settings, submission_lane=lane)) as (app, http):
        headers = {**bearer(app, signer.person), "Content-Type": JOSE}
        before = await stored_counts(conn)
        response = await http.post(
            "/v1/submissions",
            content=gzip.compress(signer.sign().encode()),
            headers={**headers, "Content-Encoding": "gzip"},
        )
        after = await stored_counts(conn)
        # Plain bytes labelled gzip: they are not gzip data, so nothing may be stored.
        rows = await _submission_rows(conn)
        labelled = await http.post(
            "/v1/submissions",
            content=signer.sign().encode(),
            headers={**headers, "Content-Encoding": "gzip"},
        )
        rows_after = await _submission_rows(conn)
    # This API decodes no coding: 415, naming the one it takes (identity).
    assert response.status_code == 415, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["accept-encoding"] == "identity"
    assert response.headers["x-request-id"]
    assert after == before
    assert labelled.status_code == 415, labelled.text
    assert labelled.headers["content-type"] == "application/problem+json"
    assert rows_after == rows
