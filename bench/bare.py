"""The issue's yardstick, measured in the same run as the API: a bare Litestar + asyncpg
route that verifies an Ed25519 JWS and inserts one row (no token, no scope, no ledger,
no idempotency, no flags, no latest values). Its rate says how quick this machine is
at the moment, so the API's rate can be read against the issue's figure for it (about
3,000 requests/s with 2 workers at 64 connections) as a ratio of the same run.

Served by stock uvicorn, as the issue measured it: ``uvicorn bench.bare:create_app
--factory`` with ``DATABASE_URL`` set, its workers sharing one listening socket. Also,
so the API can be read against it on equal terms, as ``kinerja serve`` runs the API:
``python -m bench.bare PORT WORKERS``, each worker on a socket of its own
(``api.workers``). The requests are the API's own (the same path and bytes).
"""

from __future__ import annotations

import base64
import binascii
import os
import sys
import uuid
from typing import Any

import asyncpg
import msgspec
from litestar import Litestar, Request, post
from litestar.exceptions import ClientException
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

TABLE = "bench_bare_rows"
CREATE_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} "
    "(id uuid PRIMARY KEY, kid text NOT NULL, jws text NOT NULL)"
)


class _Header(msgspec.Struct):
    alg: str
    kid: str


def _b64(segment: bytes) -> bytes:
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))


@post("/v1/submissions", status_code=201)
async def bare_submission(request: Request[Any, Any, Any]) -> dict[str, str]:
    body = await request.body()
    try:
        head, payload, signature = body.split(b".")
        header = msgspec.json.decode(_b64(head), type=_Header)
        key: VerifyKey | None = request.app.state.verify_keys.get(header.kid)
        if key is None or header.alg != "EdDSA":
            raise ClientException("unknown key or algorithm")
        key.verify(head + b"." + payload, _b64(signature))
        msgspec.json.decode(_b64(payload))
    except (ValueError, binascii.Error, msgspec.DecodeError, BadSignatureError) as exc:
        raise ClientException("not a valid JWS") from exc
    row_id = uuid.uuid4()
    async with request.app.state.pool.acquire() as conn:
        await conn.execute(
            f"INSERT INTO {TABLE} (id, kid, jws) VALUES ($1, $2, $3)",
            row_id,
            header.kid,
            body.decode(),
        )
    return {"id": str(row_id)}


async def _start(app: Litestar) -> None:
    dsn = os.environ["DATABASE_URL"]
    app.state.pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
    rows = await app.state.pool.fetch(
        "SELECT kid, jwk->>'x' AS x FROM signing_keys WHERE alg = 'EdDSA' AND revoked_at IS NULL"
    )
    app.state.verify_keys = {r["kid"]: VerifyKey(_b64(r["x"].encode())) for r in rows}


async def _stop(app: Litestar) -> None:
    await app.state.pool.close()


def create_app() -> Litestar:
    return Litestar(route_handlers=[bare_submission], on_startup=[_start], on_shutdown=[_stop])


if __name__ == "__main__":
    import uvicorn

    from api.workers import check_free, serve_workers

    port, workers = int(sys.argv[1]), int(sys.argv[2])
    check_free("127.0.0.1", port)
    serve_workers(
        uvicorn.Config(
            "bench.bare:create_app",
            factory=True,
            host="127.0.0.1",
            port=port,
            workers=workers,
            log_level="warning",
            access_log=False,
        )
    )
