"""Helpers for submission tests: keys made in the test, payloads signed the client's way."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.jwk import parse_public_jwk
from api.settings import Settings
from client.keys import SigningKey, jwk_thumbprint, public_jwk
from client.signing import SUBMISSION_TYP, algorithm_for, build_payload, sign_submission
from tests.people import Person, bearer

JOSE = "application/jose"
#: A plausible report for Kota Palembang: KTP-el and birth certificates.
VALUES: dict[str, tuple[int, int]] = {"ktp_el": (1_200_000, 1_250_000), "akta_lahir": (400, 500)}


@dataclass
class Signer:
    """A person with a registered key, ready to sign submissions."""

    person: Person
    key: SigningKey
    kid: str

    def sign_raw(self, payload: bytes | dict[str, Any]) -> str:
        """Sign exactly these payload bytes (or this dict as JSON), past the client's own
        checks: for payloads the client would refuse to build."""
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return jwt.api_jws.encode(
            raw,
            self.key,
            algorithm=algorithm_for(self.key),
            headers={"kid": self.kid, "typ": SUBMISSION_TYP},
        )

    def sign(
        self,
        values: dict[str, Any] | None = None,
        *,
        district: str | None = None,
        as_of: date | None = None,
        **extra: Any,
    ) -> str:
        payload = self.payload(values, district=district, as_of=as_of, **extra)
        return sign_submission(payload, self.key, self.kid)

    def payload(
        self,
        values: dict[str, Any] | None = None,
        *,
        district: str | None = None,
        as_of: date | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        if self.person.division_id is not None and "division" not in extra:
            extra["division"] = str(self.person.division_id)
        return build_payload(
            district or self.person.area_code,
            as_of or today(),
            VALUES if values is None else values,
            **extra,
        )


def today() -> date:
    return datetime.now(UTC).date()


async def register_key(
    conn: asyncpg.Connection, person: Person, key: SigningKey | None = None
) -> Signer:
    """Register a fresh public key for ``person`` (Ed25519 unless ``key`` is given)."""
    key = key or Ed25519PrivateKey.generate()
    jwk = public_jwk(key)
    parsed = parse_public_jwk(jwk)
    assert parsed.kid == jwk_thumbprint(jwk)
    await conn.execute(
        "INSERT INTO signing_keys (kid, owner_id, kty, alg, jwk) VALUES ($1, $2, $3, $4, $5)",
        parsed.kid,
        person.id,
        parsed.kty,
        parsed.alg,
        parsed.jwk,
    )
    return Signer(person, key, parsed.kid)


def ec_key() -> SigningKey:
    return ec.generate_private_key(ec.SECP256R1())


async def post_jws(
    client: AsyncTestClient[Litestar] | httpx.AsyncClient,
    app: Litestar,
    person: Person,
    jws: str | bytes,
    *,
    content_type: str = JOSE,
    idempotency_key: str | None = None,
) -> httpx.Response:
    headers = {**bearer(app, person), "Content-Type": content_type}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    content = jws.encode() if isinstance(jws, str) else jws
    return await client.post("/v1/submissions", content=content, headers=headers)


async def post_signed(
    app: Litestar,
    http: AsyncTestClient[Litestar] | httpx.AsyncClient,
    signer: Signer,
    jws: str,
    key: str | None = None,
) -> httpx.Response:
    """A JWS the signer made, posted as its person (with an Idempotency-Key if given)."""
    return await post_jws(http, app, signer.person, jws, idempotency_key=key)


def problem_slug(response: httpx.Response) -> str:
    """The last part of a problem's ``type`` (``jti-replayed``)."""
    return str(response.json().get("type", "")).rsplit("/", 1)[-1]


async def submit(
    client: AsyncTestClient[Litestar], app: Litestar, signer: Signer, **kwargs: Any
) -> dict[str, Any]:
    """Sign and submit; assert it was stored; return the response body."""
    response = await post_jws(client, app, signer.person, signer.sign(**kwargs))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def stored_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Rows in every table a submission writes to: all zero means nothing was stored."""
    counts = {}
    for table in (
        "submissions",
        "submission_values",
        "ledger_heads",
        "idempotency_keys",
        "data_versions",
    ):
        counts[table] = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    return counts


async def ensure_coordinated(
    conn: asyncpg.Connection, coordinator: Person, province: str, district: str
) -> None:
    """Make ``coordinator`` lead a region holding ``district`` (once; safe to repeat)."""
    year = today().year
    found = await conn.fetchval(
        "SELECT 1 FROM region_members m JOIN regions r ON r.id = m.region_id "
        "WHERE m.district_code = $1 AND r.coordinator_id = $2",
        district,
        coordinator.id,
    )
    if found:
        return
    region_id: UUID = await conn.fetchval(
        "INSERT INTO regions (province_code, year, name, coordinator_id) "
        "VALUES ($1, $2, $3, $4) RETURNING id",
        province,
        year,
        f"Wilayah {coordinator.username} {district}",
        coordinator.id,
    )
    await conn.execute(
        "INSERT INTO region_members (region_id, district_code, year) VALUES ($1, $2, $3)",
        region_id,
        district,
        year,
    )


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[tuple[Litestar, httpx.AsyncClient]]:
    """The app served in the test's own event loop, so requests really run concurrently.

    (``AsyncTestClient`` hands each request to a portal thread and waits for it, which
    serialises a ``gather`` of requests.) Entered in the test itself: the lifespan's task
    group must close in the task that opened it.
    """
    app = create_app(settings, configure_logs=False)
    transport = httpx.ASGITransport(app=app)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://k") as http:
        yield app, http


async def verify_all_with_cli(
    database_url: str, monkeypatch: Any, capsys: Any, which: tuple[str, ...] = ("--all",)
) -> tuple[int, dict[str, bool], str]:
    """``kinerja ledger verify --all`` (or ``which``) as an auditor runs it: its exit
    code, each printed district's ok, and what it wrote to stderr."""
    from api.cli import main

    monkeypatch.setenv("DATABASE_URL", database_url)

    def run() -> tuple[int, dict[str, bool], str]:
        code = main(["ledger", "verify", *which])
        out, err = capsys.readouterr()
        reports = [json.loads(line) for line in out.splitlines()]
        return code, {r["district"]: r["ok"] for r in reports}, err

    return await asyncio.to_thread(run)


async def asgi_post_submission(
    app: Litestar, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[int, dict[bytes, bytes], bytes]:
    """POST ``body`` to the submission route straight through the app's ASGI handler,
    with exactly these headers (and a host): a Content-Length that need not be the
    body's, as no HTTP client sends. The status, headers and body answered."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/submissions",
        "raw_path": b"/v1/submissions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"k"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    sent: list[dict[str, Any]] = []
    given = False

    async def receive() -> dict[str, Any]:
        nonlocal given
        if given:
            return {"type": "http.disconnect"}
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[arg-type]
    start = sent[0]
    return (
        int(start["status"]),
        dict(start["headers"]),
        b"".join(m.get("body", b"") for m in sent[1:]),
    )


async def review(
    client: AsyncTestClient[Litestar] | httpx.AsyncClient,
    app: Litestar,
    who: Person,
    submission_id: str,
    decision: str,
    reason: str | None = "Sudah dicek",
    *,
    generation: int = 0,
) -> httpx.Response:
    """``who`` accepts or returns the submission (``reason`` None: the body has none)."""
    body: dict[str, Any] = {"decision": decision}
    if reason is not None:
        body["reason"] = reason
    return await client.post(
        f"/v1/submissions/{submission_id}/review",
        json=body,
        headers=bearer(app, who, generation=generation),
    )
