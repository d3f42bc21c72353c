"""The served OpenAPI document against what the submission routes really do (issue 5).

Other systems and the district client are generated from ``/schema/openapi.json``, so a
schema that accepts what the server refuses (or the reverse), a status the document does
not list, or a header it never names misleads them. Each test below asks the server and
the document the same question. No JSON-Schema library is installed, so ``violations``
is a small validator for the keywords the document uses (and those a fix would use:
``additionalProperties``, ``if``/``then``, ``minimum``/``maximum``); patterns are read as
OpenAPI readers read them (ECMAScript: a final ``$`` is the end, not "before a newline").
"""

from __future__ import annotations

import re
import time
from datetime import date
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.schemas.submissions import FLAGS
from api.settings import Settings
from client.keys import public_jwk
from tests.people import Person, bearer
from tests.submitting import (
    JOSE,
    Signer,
    post_jws,
    problem_slug,
    register_key,
    review,
    served,
    submit,
)

Json = dict[str, Any]
PROBLEM_JSON = "application/problem+json"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_DATE_TIME = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)


# -- a small JSON-Schema reader --------------------------------------------------------


def _ecma_search(pattern: str, value: str) -> bool:
    """``pattern`` as ECMAScript reads it: a final ``$`` matches at the very end only."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.search(pattern, value) is not None


def _is_type(name: str, value: Any) -> bool:
    checks: dict[str, Any] = {
        "null": lambda v: v is None,
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "string": lambda v: isinstance(v, str),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
    }
    return bool(checks[name](value))


def _format_ok(fmt: str, value: str) -> bool:
    if fmt == "uuid":
        return _UUID.match(value) is not None
    if fmt == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            return False
        return len(value) == 10
    if fmt == "date-time":
        return _DATE_TIME.match(value) is not None
    return True


def violations(doc: Json, schema: Json, value: Any, where: str = "$") -> list[str]:
    """What in ``value`` the document's ``schema`` refuses (empty: valid)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return violations(doc, doc["components"]["schemas"][name], value, where)
    found: list[str] = []
    if "oneOf" in schema:
        passing = [s for s in schema["oneOf"] if not violations(doc, s, value, where)]
        if len(passing) != 1:
            found.append(f"{where}: {value!r} matches {len(passing)} of oneOf")
    if "anyOf" in schema and not any(not violations(doc, s, value, where) for s in schema["anyOf"]):
        found.append(f"{where}: {value!r} matches none of anyOf")
    for part in schema.get("allOf", []):
        found += violations(doc, part, value, where)
    if "if" in schema and not violations(doc, schema["if"], value, where):
        found += violations(doc, schema.get("then", {}), value, where)
    elif "if" in schema:
        found += violations(doc, schema.get("else", {}), value, where)
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        found.append(f"{where}: {value!r} is not {schema['const']!r}")
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(t, value) for t in types):
            return [*found, f"{where}: {value!r} is not {types}"]
    if isinstance(value, str):
        if "pattern" in schema and not _ecma_search(schema["pattern"], value):
            found.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if len(value) > schema.get("maxLength", len(value)):
            found.append(f"{where}: longer than {schema['maxLength']}")
        if len(value) < schema.get("minLength", 0):
            found.append(f"{where}: shorter than {schema['minLength']}")
        if "format" in schema and not _format_ok(schema["format"], value):
            found.append(f"{where}: {value!r} is not a {schema['format']}")
    if _is_type("number", value):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{where}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{where}: {value} > maximum {schema['maximum']}")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                found.append(f"{where}: required {name!r} missing")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                found += violations(doc, properties[name], item, f"{where}.{name}")
            elif extra is False:
                found.append(f"{where}: {name!r} is not allowed")
            elif isinstance(extra, dict):
                found += violations(doc, extra, item, f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += violations(doc, schema["items"], item, f"{where}[{i}]")
    return found


# -- helpers ---------------------------------------------------------------------------


async def openapi(client: AsyncTestClient[Litestar]) -> Json:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    doc: Json = response.json()
    return doc


def operation(doc: Json, path: str, method: str) -> Json:
    found: Json = doc["paths"][path][method]
    return found


def parameter(doc: Json, path: str, method: str, name: str) -> Json:
    for param in operation(doc, path, method).get("parameters", []):
        if param["name"].lower() == name.lower():
            schema: Json = param["schema"]
            return schema
    raise AssertionError(f"{method.upper()} {path} documents no parameter {name!r}")


def body_schema(doc: Json, path: str, method: str, media: str = "application/json") -> Json:
    schema: Json = operation(doc, path, method)["requestBody"]["content"][media]["schema"]
    return schema


def response_schema(doc: Json, path: str, method: str, status: int) -> Json:
    responses = operation(doc, path, method)["responses"]
    assert str(status) in responses, (status, sorted(responses))
    schema: Json = responses[str(status)]["content"]["application/json"]["schema"]
    return schema


def documents_status(doc: Json, path: str, method: str, status: int) -> bool:
    responses = operation(doc, path, method)["responses"]
    return str(status) in responses or f"{str(status)[0]}XX" in responses


def assert_documented_problem(doc: Json, path: str, method: str, response: Any) -> None:
    """A refusal is problem+json, and the document lists its status with that media type."""
    status = response.status_code
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    responses = operation(doc, path, method)["responses"]
    documented = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
    assert documented is not None, (path, status, sorted(responses))
    schema = documented["content"][PROBLEM_JSON]["schema"]
    assert violations(doc, schema, response.json()) == [], response.json()


@pytest.fixture
async def head(conn: asyncpg.Connection, people: dict[str, Person]) -> Signer:
    return await register_key(conn, people["district_head"])


SUBMISSIONS = "/v1/submissions"
ONE = "/v1/submissions/{submission_id}"
REVIEW = "/v1/submissions/{submission_id}/review"
VERIFY = "/v1/districts/{code}/ledger/verify"


# -- findings: the document and the server disagree ------------------------------------


async def test_list_limit_bounds_are_not_in_the_document(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    settings: Settings,
    people: dict[str, Person],
) -> None:
    """Document: ``limit`` is any integer (no minimum, no maximum). Server: 400
    ``invalid-page`` outside 1..page_size_max (500). A generated client cannot know a
    page of 1,000 is refused; the schema should say minimum 1, maximum 500 (the
    configured maximum, as the document is served)."""
    doc = await openapi(client)
    schema = parameter(doc, SUBMISSIONS, "get", "limit")
    refused = []
    for limit in (0, settings.page_size_max + 1):
        response = await client.get(
            SUBMISSIONS, params={"limit": limit}, headers=bearer(app, people["province_head"])
        )
        assert response.status_code == 400, response.text
        assert problem_slug(response) == "invalid-page"
        if not violations(doc, schema, limit):
            refused.append(limit)
    assert refused == [], f"the document accepts limit {refused}, the server refuses it"


async def test_area_filters_with_a_trailing_newline_are_read_as_nobody_reporting(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    head: Signer,
    people: dict[str, Person],
) -> None:
    """Document: ``district`` matches ``^[0-9]{2}\\.[0-9]{2}$`` and ``province``
    ``^[0-9]{2}$`` (ECMAScript: nothing after the digits). Server: the same regex in
    Python, where ``$`` also matches before a final newline, so ``16.71\\n`` passes and
    answers 200 with an empty page: the very "typo read as nobody reporting" the route's
    comment says the pattern prevents. The server should use ``whole()``
    (api/schemas/patterns.py) as the payload's DistrictCode does, and answer 400."""
    await submit(client, app, head)
    doc = await openapi(client)
    auth = bearer(app, people["province_head"])
    answers = {}
    for name, value in (("district", "16.71\n"), ("province", "16\n")):
        assert violations(doc, parameter(doc, SUBMISSIONS, "get", name), value)
        response = await client.get(SUBMISSIONS, params={name: value}, headers=auth)
        answers[name] = (response.status_code, len(response.json().get("items", [])))
    assert answers == {"district": (400, 0), "province": (400, 0)}, answers


async def test_idempotency_key_shape_is_not_in_the_document(
    client: AsyncTestClient[Litestar], app: Litestar, head: Signer
) -> None:
    """Document: ``Idempotency-Key`` is any string up to 255 characters. Server: 400
    ``invalid-idempotency-key`` unless it is 1 to 255 visible ASCII characters
    (``_IDEMPOTENCY_KEY``): a key with a space (``outbox 17``), as a client might build
    from a file name, is refused. The schema should carry
    ``pattern: ^[\\x21-\\x7e]{1,255}$`` (and minLength 1)."""
    doc = await openapi(client)
    schema = parameter(doc, SUBMISSIONS, "post", "Idempotency-Key")
    accepted_by_doc_refused_by_server = []
    # Whitespace around a key is not part of it (RFC 9110 5.5): " lead" is "lead".
    for key in ("outbox 17", "tab\tkey", "k" * 256):
        response = await post_jws(client, app, head.person, head.sign(), idempotency_key=key)
        assert response.status_code == 400, (key, response.text)
        assert problem_slug(response) == "invalid-idempotency-key"
        if not violations(doc, schema, key):
            accepted_by_doc_refused_by_server.append(key)
    assert accepted_by_doc_refused_by_server == []


async def test_request_bodies_that_refuse_unknown_fields_document_it(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    head: Signer,
    people: dict[str, Person],
) -> None:
    """Document: ``ReviewIn`` and ``KeyRegister`` allow any other member (no
    ``additionalProperties: false``). Server: both structs forbid unknown fields and
    answer 400 ``validation`` to ``{"decision": "accept", "comment": ...}`` (a natural
    guess for the reason's name) or a key with ``"use_for": ...``. The document should
    say ``additionalProperties: false`` (msgspec's ``forbid_unknown_fields``)."""
    made = await submit(client, app, head)
    doc = await openapi(client)
    reviewed = {"decision": "accept", "comment": "Sudah dicek"}
    answer = await client.post(
        f"/v1/submissions/{made['id']}/review",
        json=reviewed,
        headers=bearer(app, people["province_head"]),
    )
    assert answer.status_code == 400, answer.text
    assert problem_slug(answer) == "validation"
    key = {"jwk": public_jwk(Ed25519PrivateKey.generate()), "use_for": "reports"}
    registered = await client.post("/v1/keys", json=key, headers=bearer(app, head.person))
    assert registered.status_code == 400, registered.text
    assert problem_slug(registered) == "validation"
    documented_as_fine = {
        "ReviewIn": violations(doc, body_schema(doc, REVIEW, "post"), reviewed) == [],
        "KeyRegister": violations(doc, body_schema(doc, "/v1/keys", "post"), key) == [],
    }
    assert documented_as_fine == {"ReviewIn": False, "KeyRegister": False}


async def test_a_return_without_a_reason_is_documented_as_valid(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    head: Signer,
    people: dict[str, Person],
) -> None:
    """Document: ``ReviewIn`` requires only ``decision``; ``reason`` is optional for both
    decisions. Server: ``{"decision": "return"}`` (or a blank reason) is 422
    ``unprocessable``: "Returning a submission needs a reason". A form built from the
    document lets a reviewer leave it empty. The schema should say it (an ``if``
    decision is ``return`` ``then`` reason is required, or a ``oneOf`` of the two shapes,
    with a description)."""
    made = await submit(client, app, head)
    doc = await openapi(client)
    response = await review(client, app, people["province_head"], made["id"], "return", None)
    assert response.status_code == 422, response.text
    assert problem_slug(response) == "unprocessable"
    schema = body_schema(doc, REVIEW, "post")
    assert violations(doc, schema, {"decision": "return"}), (
        "the document accepts a return without a reason; the server refuses it (422)"
    )


async def test_a_return_reason_that_shows_nothing_is_refused_by_document_and_server(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    head: Signer,
    people: dict[str, Person],
) -> None:
    """The document's rule for a return's reason is the server's: something visible, so
    a zero-width space or a byte-order mark is no reason to either."""
    made = await submit(client, app, head)
    doc = await openapi(client)
    schema = body_schema(doc, REVIEW, "post")
    for reason in ("\u200b", " \ufeff "):
        assert violations(doc, schema, {"decision": "return", "reason": reason}), reason
        response = await review(client, app, people["province_head"], made["id"], "return", reason)
        assert response.status_code == 422, response.text
    assert not violations(doc, schema, {"decision": "return", "reason": "Angka KIA salah"})


async def test_submission_body_size_limit_is_not_in_the_document(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    settings: Settings,
    head: Signer,
) -> None:
    """Document: the ``application/jose`` body is a string of any length matching the
    compact-JWS pattern. Server: a body over ``max_body_bytes`` (64 KiB) is 413
    ``payload-too-large`` (issue 5, item 1). The limit, the one a client's outbox must
    respect when it adds a long note, should be the body schema's ``maxLength``."""
    doc = await openapi(client)
    schema = body_schema(doc, SUBMISSIONS, "post", "application/jose")
    big = "a" * (settings.max_body_bytes + 1 - len(".b.c")) + ".b.c"
    assert len(big) == settings.max_body_bytes + 1
    response = await post_jws(client, app, head.person, big)
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert violations(doc, schema, big), "the document accepts a body the server refuses (413)"


async def test_submission_answer_headers_are_not_in_the_document(
    client: AsyncTestClient[Litestar], app: Litestar, head: Signer
) -> None:
    """Server: the 201 carries ``Location: /v1/submissions/{id}``, and a retry with the
    same ``Idempotency-Key`` and body is the same 201 with ``Idempotent-Replayed: true``:
    the only way a client tells "stored now" from "was stored before" (the README and the
    handler's docstring say so, but Litestar leaves docstrings out of the document).
    Document: the 201 response has no ``headers`` at all, and nothing names the replay
    header. Both should be response headers of the 201."""
    jws = head.sign()
    first = await post_jws(client, app, head.person, jws, idempotency_key="outbox-17")
    again = await post_jws(client, app, head.person, jws, idempotency_key="outbox-17")
    assert first.status_code == again.status_code == 201, again.text
    assert first.headers["location"] == f"/v1/submissions/{first.json()['id']}"
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    doc = await openapi(client)
    created = operation(doc, SUBMISSIONS, "post")["responses"]["201"]
    named = {name.lower() for name in created.get("headers", {})}
    assert {"location", "idempotent-replayed"} <= named, sorted(named)


async def test_submission_503_while_shutting_down_is_not_in_the_document(
    settings: Settings, head: Signer
) -> None:
    """Server: once the ingest appender is closing (a rolling restart; ``AppenderClosed``
    in api/ingest.py) a valid submission is 503 problem+json ``shutting-down``: "send the
    report again shortly", the answer an offline outbox must keep and retry. Document:
    POST /v1/submissions lists 201, 400 and 4XX only, so a generated client treats the
    503 as an undocumented failure. It should list 503 (and ideally Retry-After)."""
    async with served(settings) as (app, http):
        await app.state.appender.close()
        response = await post_jws(http, app, head.person, head.sign())
        doc = (await http.get("/schema/openapi.json")).json()
    assert response.status_code == 503, response.text
    assert problem_slug(response) == "shutting-down"
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert documents_status(doc, SUBMISSIONS, "post", 503), sorted(
        operation(doc, SUBMISSIONS, "post")["responses"]
    )


async def test_response_enums_are_left_as_free_strings(client: AsyncTestClient[Litestar]) -> None:
    """The server emits only the six flags of ``FLAGS`` (the ``flag`` query parameter
    documents exactly them), review decisions ``accept``/``return`` and reviewer roles of
    the four reviewing roles. Document: ``SubmissionOut.flags``, ``ValueOut.flags``,
    ``SubmissionDetail.flags`` and ``ReviewOut.decision`` are any string, so a generated
    client cannot switch over them and cannot tell a new flag from a typo. They should
    carry the same enums as the query parameter and ``ReviewIn.decision``."""
    doc = await openapi(client)
    schemas = doc["components"]["schemas"]
    flag_enum = set(FLAGS)
    flags_where = {
        "SubmissionOut.flags": schemas["SubmissionOut"]["properties"]["flags"]["items"],
        "SubmissionDetail.flags": schemas["SubmissionDetail"]["properties"]["flags"]["items"],
        "ValueOut.flags": schemas["ValueOut"]["properties"]["flags"]["items"],
    }
    unenumerated = [name for name, items in flags_where.items() if "enum" not in items]
    decision = schemas["ReviewOut"]["properties"]["decision"]
    if set(decision.get("enum", [])) != {"accept", "return"}:
        unenumerated.append("ReviewOut.decision")
    assert set(parameter(doc, SUBMISSIONS, "get", "flag")["enum"]) - {None} == flag_enum
    assert unenumerated == []


async def test_the_signed_payload_is_described_nowhere(
    client: AsyncTestClient[Litestar], app: Litestar, head: Signer
) -> None:
    """Document: the body of POST /v1/submissions is an opaque string ("Compact JWS ...
    signed with your registered key"); no schema anywhere in it names the claims signed
    inside. Server: the payload must be exactly ``SubmissionPayload`` (``jti``, ``iat``,
    ``district``, ``as_of``, ``values`` required; ``division``, ``note`` up to 4,000
    characters, ``supersedes {id, reason}`` optional; channels limited to six names;
    unknown members refused with 422 ``invalid-submission``). Another system writing
    its own submitter has only this document; the payload schema should be a component
    (as the scorecards' are at /v1/schemas/), referenced from the body's description."""
    extra = head.payload()
    extra["source"] = "siak"
    response = await post_jws(client, app, head.person, head.sign_raw(extra))
    assert response.status_code == 422, response.text
    assert problem_slug(response) == "invalid-submission"
    doc = await openapi(client)
    claims = {"jti", "iat", "district", "as_of", "values"}
    described = [
        name
        for name, schema in doc["components"]["schemas"].items()
        if claims <= set(schema.get("properties", {}))
    ]
    assert described, "no schema in the document describes the signed submission payload"


# -- what matched: real answers validate against the document --------------------------


async def test_real_submission_answers_validate_against_the_document(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    head: Signer,
    people: dict[str, Person],
    outsiders: dict[str, Person],
) -> None:
    """Every success body of the submission routes validates against its documented
    schema, field by field (names, types, nullability, enums, formats), and every refusal
    listed in issue 5 is problem+json under a documented status."""
    doc = await openapi(client)
    reviewer = bearer(app, people["province_head"])
    values = {
        "ktp_el": {
            "numerator": 5_545_117,
            "denominator": 5_940_433,
            "stated_pct": 97.70,
            "channels": {"office": 10, "mobile": 3},
        },
        "akta_lahir": (600, 500),
    }
    made = await submit(client, app, head, values=values, note="alat rusak")
    assert violations(doc, response_schema(doc, SUBMISSIONS, "post", 201), made) == []
    assert {"over_100", "stated_mismatch"} <= set(made["flags"])
    fix = await submit(client, app, head, supersedes={"id": made["id"], "reason": "salah ketik"})
    assert violations(doc, response_schema(doc, SUBMISSIONS, "post", 201), fix) == []

    accepted = await review(client, app, people["province_head"], fix["id"], "accept", None)
    assert accepted.status_code == 201, accepted.text
    assert violations(doc, response_schema(doc, REVIEW, "post", 201), accepted.json()) == []

    for person in (head.person, people["province_head"]):
        one = await client.get(f"/v1/submissions/{made['id']}", headers=bearer(app, person))
        assert violations(doc, response_schema(doc, ONE, "get", 200), one.json()) == []
        detail = await client.get(f"/v1/submissions/{fix['id']}", headers=bearer(app, person))
        assert detail.json()["reviews"], detail.json()
        assert violations(doc, response_schema(doc, ONE, "get", 200), detail.json()) == []
    page = await client.get(SUBMISSIONS, params={"limit": 1}, headers=reviewer)
    assert page.json()["next_cursor"] is not None
    assert violations(doc, response_schema(doc, SUBMISSIONS, "get", 200), page.json()) == []

    verify = "/v1/districts/16.71/ledger/verify"
    ok = await client.get(verify, headers=reviewer)
    assert ok.json()["ok"] is True
    assert violations(doc, response_schema(doc, VERIFY, "get", 200), ok.json()) == []
    await conn.execute("UPDATE submissions SET jws = jws || 'x' WHERE seq = 1")
    broken = await client.get(verify, headers=reviewer)
    assert broken.json()["first_broken"]["problem"] == "hash_mismatch"
    assert violations(doc, response_schema(doc, VERIFY, "get", 200), broken.json()) == []

    # Refusals of issue 5, each problem+json under a documented status.
    person, stale = head.person, time.time() - 30 * 86400
    as_json = await post_jws(client, app, person, head.sign(), content_type="application/json")
    no_token = await client.post(SUBMISSIONS, content=b"a.b.c", headers={"Content-Type": JOSE})
    outside = await post_jws(client, app, person, head.sign(district="31.71"))
    replayed = await post_jws(client, app, person, made["jws"])
    too_old = await post_jws(client, app, person, head.sign(now=stale))
    not_a_submitter = await post_jws(client, app, people["province_head"], head.sign())
    not_in_scope = await review(client, app, outsiders["province_head"], made["id"], "accept")
    superseded = await review(client, app, people["province_head"], made["id"], "accept")
    not_a_reviewer = await review(client, app, people["district_head"], fix["id"], "accept")
    province = await client.get("/v1/districts/16/ledger/verify", headers=reviewer)
    bad_cursor = await client.get(SUBMISSIONS, params={"cursor": "nope"}, headers=reviewer)
    refusals = [
        (SUBMISSIONS, "post", as_json, 415),
        (SUBMISSIONS, "post", no_token, 401),
        (SUBMISSIONS, "post", outside, 404),
        (SUBMISSIONS, "post", replayed, 409),
        (SUBMISSIONS, "post", too_old, 422),
        (SUBMISSIONS, "post", not_a_submitter, 403),
        (REVIEW, "post", not_in_scope, 404),
        (REVIEW, "post", superseded, 409),
        (REVIEW, "post", not_a_reviewer, 403),
        (VERIFY, "get", province, 404),
        (SUBMISSIONS, "get", bad_cursor, 400),
    ]
    assert [r.status_code for _, _, r, _ in refusals] == [s for _, _, _, s in refusals]
    for path, method, response, _ in refusals:
        assert_documented_problem(doc, path, method, response)


async def test_key_answers_validate_against_the_document(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """POST /v1/keys (201) and its revoke (200) answer the documented SigningKeyOut."""
    doc = await openapi(client)
    auth = bearer(app, people["district_head"])
    jwk = public_jwk(Ed25519PrivateKey.generate())
    made = await client.post("/v1/keys", json={"jwk": jwk, "label": "laptop"}, headers=auth)
    assert made.status_code == 201, made.text
    assert violations(doc, response_schema(doc, "/v1/keys", "post", 201), made.json()) == []
    again = await client.post("/v1/keys", json={"jwk": jwk}, headers=auth)
    assert again.status_code == 409
    assert_documented_problem(doc, "/v1/keys", "post", again)
    revoked = await client.post(f"/v1/keys/{made.json()['kid']}/revoke", headers=auth)
    assert revoked.status_code == 200, revoked.text
    body = revoked.json()
    assert body["revoked_at"] is not None
    assert violations(doc, response_schema(doc, "/v1/keys/{kid}/revoke", "post", 200), body) == []
