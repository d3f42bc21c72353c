"""What README.md and the served OpenAPI document say, against what the code does:
findings of a review, each failed before its fix."""

from __future__ import annotations

import re
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.settings import Settings
from tests.people import Person, bearer

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_settings_table_lists_every_setting() -> None:
    """README "Configuration" (line 296 on): "Read once from the environment
    (api/settings.py)" with one row per variable. Settings.bench_routes
    (KINERJA_BENCH_ROUTES, which adds GET /bench/bytes) has no row."""
    text = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(KINERJA_[A-Z_]+|_[A-Z_]+)`", text))
    documented = {n.removeprefix("KINERJA_").lower() for n in named if n.startswith("KINERJA_")}
    # Rows such as `KINERJA_LOGIN_MAX_FAILURES_ACCOUNT` / `_ADDRESS`.
    suffixes = {n.lower() for n in named if n.startswith("_")}
    fields = {f.name for f in msgspec.structs.fields(Settings)}
    missing = {
        f
        for f in fields - documented - {"database_url"}
        if not any(
            f.endswith(s) and any(d.startswith(f[: -len(s)]) for d in documented) for s in suffixes
        )
    }
    assert missing == set(), f"settings with no README row: {sorted(missing)}"


async def test_missing_query_parameter_names_the_field(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """README line 362: `validation` (with `errors[]` naming each field). A missing
    required query parameter (GET /v1/agreements/cascade without `year`) is 400
    `validation` with no `errors` member at all."""
    response = await client.get(
        "/v1/agreements/cascade", headers=bearer(app, people["province_head"])
    )
    assert response.status_code == 400
    body = response.json()
    assert body["type"].endswith("/validation")
    assert "errors" in body, body
    assert [(e["key"], e["source"]) for e in body["errors"]] == [("year", "query")]


class _DeadPool:
    def acquire(self, timeout: float | None = None) -> Any:
        @asynccontextmanager
        async def refused() -> Any:
            raise OSError("connection refused")
            yield  # pragma: no cover

        return refused()


async def test_openapi_documents_ready_503(
    client: AsyncTestClient[Litestar], app: Litestar
) -> None:
    """GET /health/ready answers 503 problem+json with Retry-After when the database is
    down (api/routes/health.py); the served OpenAPI document gives it only 200 and 4XX."""
    live_pool = app.state.pool
    app.state.pool = _DeadPool()
    try:
        down = await client.get("/health/ready")
    finally:
        app.state.pool = live_pool
    assert down.status_code == 503
    doc = (await client.get("/schema/openapi.json")).json()
    responses = doc["paths"]["/health/ready"]["get"]["responses"]
    assert "503" in responses or "5XX" in responses, sorted(responses)


async def test_openapi_documents_scorecard_304(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """README line 175-177: an `If-None-Match` naming the ETag answers 304; the served
    OpenAPI document lists only 200, 400 and 4XX for the scorecard and ranking routes."""
    head = bearer(app, people["province_head"])
    first = await client.get("/v1/scorecards/districts/16.71", headers=head)
    again = await client.get(
        "/v1/scorecards/districts/16.71", headers={**head, "If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    doc = (await client.get("/schema/openapi.json")).json()
    responses = doc["paths"]["/v1/scorecards/districts/{code}"]["get"]["responses"]
    assert "304" in responses, sorted(responses)
