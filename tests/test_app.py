"""App-wide behaviour: problem+json everywhere, health probes, request ids, logs, schema."""

from __future__ import annotations

import asyncio
import gc
import json
import logging

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.database import GC_THRESHOLDS
from api.observability import JsonFormatter, request_id_var
from api.settings import settings_from_env
from db.embedded import EmbeddedPostgres
from tests.people import Person, bearer
from tests.pg import scratch_dir
from tests.waiting import status_back

PROBLEM = "application/problem+json"


def assert_problem(response: object, status: int, slug: str) -> dict[str, object]:
    assert response.status_code == status  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith(PROBLEM)  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["status"] == status
    assert body["type"] == f"https://kinerja.dukcapil.example/problems/{slug}"
    assert body["title"]
    return body


async def test_unknown_route_is_problem_404(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/v1/nothing-here")
    assert_problem(response, 404, "not-found")
    assert response.headers["x-request-id"]


async def test_wrong_method_is_problem_405(client: AsyncTestClient[Litestar]) -> None:
    response = await client.delete("/v1/areas/16")
    assert_problem(response, 405, "method-not-allowed")
    assert "GET" in response.headers["allow"]


async def test_validation_error_names_the_field(client: AsyncTestClient[Litestar]) -> None:
    body = assert_problem(await client.get("/v1/areas?limit=x"), 400, "validation")
    assert body["errors"][0]["key"] == "limit"  # type: ignore[index]


async def test_unexpected_failure_is_problem_500_without_internals(
    client: AsyncTestClient[Litestar], conn: asyncpg.Connection
) -> None:
    await conn.execute("ALTER TABLE areas RENAME TO areas_gone")
    body = assert_problem(await client.get("/v1/areas/16"), 500, "internal")
    assert "areas_gone" not in json.dumps(body) and "areas" not in str(body["detail"])


async def test_request_id_is_echoed_or_made(client: AsyncTestClient[Litestar]) -> None:
    mine = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    made = await client.get("/health/live", headers={"X-Request-ID": "bad id\twith junk"})
    assert made.headers["x-request-id"] != "bad id\twith junk"
    assert len(made.headers["x-request-id"]) == 32


def test_log_lines_are_json_with_request_id() -> None:
    record = logging.LogRecord("kinerja.test", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    token = request_id_var.set("rid-1")
    try:
        line = JsonFormatter().format(record)
    finally:
        request_id_var.reset(token)
    entry = json.loads(line)
    assert entry["msg"] == "hello x"
    assert entry["request_id"] == "rid-1"
    assert entry["level"] == "info"


async def test_access_log_carries_request_id(
    client: AsyncTestClient[Litestar], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="kinerja.access"):
        await client.get("/health/live", headers={"X-Request-ID": "trace-me"})
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == "kinerja.access"]
    entries = [json.loads(line) for line in lines]
    assert any(e["request_id"] == "trace-me" and e["status"] == 200 for e in entries)


async def test_openapi_schema_is_served(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["info"]["title"] == "Kinerja API"
    assert "/v1/areas/{code}" in spec["paths"]


async def test_liveness_and_readiness(client: AsyncTestClient[Litestar]) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    assert (await client.get("/health/ready")).status_code == 200


async def test_a_started_worker_collects_garbage_at_its_own_thresholds(
    client: AsyncTestClient[Litestar],
) -> None:
    """The lifespan sets them: at the default (700) a worker spent 6% more CPU a report
    at 64 connections."""
    assert (await client.get("/health/live")).status_code == 200
    assert gc.get_threshold() == GC_THRESHOLDS != (700, 10, 10)


async def test_readiness_follows_the_database_down_and_back() -> None:
    with scratch_dir("kinerja-ready-") as workdir:
        cluster = EmbeddedPostgres(workdir / "data")
        dsn = cluster.start()
        try:
            settings = settings_from_env({}, database_url=dsn, environment="test", pool_min_size=1)
            app = create_app(settings, configure_logs=False)
            async with AsyncTestClient(app=app) as client:
                assert (await client.get("/health/ready")).status_code == 200
                await asyncio.to_thread(cluster.halt)
                down = await client.get("/health/ready")
                assert_problem(down, 503, "unavailable")
                assert down.headers["retry-after"]
                await asyncio.to_thread(cluster.boot)
                assert await status_back(client, "/health/ready") == 200
        finally:
            cluster.stop(mode="immediate")


async def test_oversize_body_is_problem_413(client: AsyncTestClient[Litestar]) -> None:
    big = b"grant_type=password&username=x&password=" + b"y" * (64 * 1024)
    response = await client.post(
        "/v1/auth/token",
        content=big,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    body = assert_problem(response, 413, "payload-too-large")
    # The limit is named, so a client's outbox knows what to cut (it said only "Request
    # Entity Too Large").
    assert body["max_body_bytes"] == 64 * 1024
    assert body["detail"] == "The request body is over the limit of 65536 bytes."


async def test_an_oversize_report_names_the_limit_too(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    response = await client.post(
        "/v1/submissions",
        content=b"x" * (64 * 1024 + 1),
        headers={**bearer(app, people["district_head"]), "Content-Type": "application/jose"},
    )
    body = assert_problem(response, 413, "payload-too-large")
    assert body["max_body_bytes"] == 64 * 1024


async def test_openapi_documents_security_schemes(client: AsyncTestClient[Litestar]) -> None:
    spec = (await client.get("/schema/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["BearerToken"]["scheme"] == "bearer"
    assert schemes["OAuth2"]["flows"]["password"]["tokenUrl"] == "/v1/auth/token"
    assert spec["paths"]["/v1/areas"]["get"]["security"] == [{}]


async def test_bench_yardstick_only_when_enabled(settings: object) -> None:
    import msgspec

    from api.authz import PUBLIC, declared_permission

    default = create_app(settings, configure_logs=False)  # type: ignore[arg-type]
    assert not any(r.path == "/bench/bytes" for r in default.routes)
    enabled = msgspec.structs.replace(settings, bench_routes=True)  # type: ignore[type-var]
    app = create_app(enabled, configure_logs=False)
    route = next(r for r in app.routes if r.path == "/bench/bytes")
    assert all(declared_permission(h) == PUBLIC for h in route.route_handlers)  # type: ignore[attr-defined]
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/bench/bytes", params={"size": 100})
        assert response.status_code == 200 and len(response.content) == 100
        assert (await client.get("/bench/bytes", params={"size": 0})).status_code == 400


async def test_head_answers_as_get_without_the_body(client: AsyncTestClient[Litestar]) -> None:
    got = await client.get("/v1/areas/16")
    head = await client.head("/v1/areas/16")
    assert got.status_code == head.status_code == 200
    assert got.content and head.content == b""
    for name in ("content-length", "content-type", "cache-control"):
        assert head.headers.get(name) == got.headers.get(name), name
    missing = await client.head("/v1/areas/99.99")
    assert missing.status_code == 404 and missing.content == b""
    assert missing.headers["content-type"].startswith(PROBLEM)


async def test_head_is_authorized_as_get(
    app: Litestar, client: AsyncTestClient[Litestar], people: dict[str, Person]
) -> None:
    ranking = "/v1/rankings/districts?year=2021&as_of=2021-05-15&province="
    anonymous = await client.head(ranking + "16")
    assert anonymous.status_code == 401 and anonymous.content == b""
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    monitor = bearer(app, people["province_monitor"])
    got = await client.get(ranking + "16", headers=monitor)
    head = await client.head(ranking + "16", headers=monitor)
    assert got.status_code == head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == got.headers["etag"]
    assert head.headers["content-length"] == got.headers["content-length"]
    unchanged = await client.head(
        ranking + "16", headers={**monitor, "If-None-Match": got.headers["etag"]}
    )
    assert unchanged.status_code == 304 and unchanged.content == b""
    # Another province is outside a province monitor's scope: refused as GET refuses it.
    refused = await client.get(ranking + "31", headers=monitor)
    outside = await client.head(ranking + "31", headers=monitor)
    assert outside.status_code == refused.status_code >= 400 and outside.content == b""


async def test_head_on_a_post_only_route_is_405(client: AsyncTestClient[Litestar]) -> None:
    response = await client.head("/v1/auth/token")
    assert response.status_code == 405 and response.content == b""
    assert "POST" in response.headers["allow"]
