"""Issue 2 (foundation): an audit of its items, one sub-point at a time.

Each test covers a sub-point no other test proved, or probes a boundary a real user
hits. A failing test here is a finding, described in its docstring.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api import cli
from api.app import create_app
from api.observability import JsonFormatter
from api.settings import settings_from_env
from db import embedded
from db.embedded import EmbeddedPostgres, find_bindir
from db.migrate import MigrationError, load_migrations, migrate
from db.pool import connect
from tests.modules import clean_env
from tests.pg import scratch_dir
from tests.submitting import served

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "wilayah"
PROBLEM = "application/problem+json"
PROBLEMS = "https://kinerja.dukcapil.example/problems/"


def is_problem(response: Any, status: int, slug: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"]
    assert body["type"].startswith(PROBLEMS)
    if slug is not None:
        assert body["type"] == PROBLEMS + slug, body
    return body


def _csv(name: str) -> list[dict[str, str]]:
    with (ROOT / "db" / "data" / name).open(newline="") as f:
        return list(csv.DictReader(f))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- 1. layout and packaging ---------------------------------------------------------


def test_layout_packages_and_declared_dependencies() -> None:
    """Issue 2.1: the six packages, pyproject's runtime and test dependencies, the
    compose file, README, .ci/run, and a `kinerja` console command with serve and
    db migrate."""
    for package in ("api", "db", "scorecards", "client", "tests", "bench"):
        assert (ROOT / package / "__init__.py").is_file(), package
    for name in ("docker-compose.yml", "README.md", "Dockerfile"):
        assert (ROOT / name).is_file(), name
    ci = ROOT / ".ci" / "run"
    assert ci.is_file() and ci.stat().st_mode & stat.S_IXUSR
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    runtime = " ".join(project["dependencies"]).lower()
    for wanted in ("litestar", "msgspec", "asyncpg", "pyjwt[crypto]", "cryptography", "uvicorn"):
        assert wanted in runtime, wanted
    tests = " ".join(project["optional-dependencies"]["test"]).lower()
    for wanted in ("pytest", "testcontainers[postgres]"):
        assert wanted in tests, wanted
    assert project["scripts"]["kinerja"] == "api.cli:main"
    parser = cli.build_parser()
    assert parser.parse_args(["serve"]).func is cli.cmd_serve
    assert parser.parse_args(["db", "migrate"]).func is cli.cmd_db_migrate


# -- 2. two commands, CI -------------------------------------------------------------


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """Issue 2.2: `.ci/run` calls exactly the README's test command, and that command
    (the Makefile's target) runs the whole pytest suite."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Two commands", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make run", "make test"]
    steps = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert steps[-1] == "make test"
    assert not any("docker" in step for step in steps)
    makefile = (ROOT / "Makefile").read_text()
    target = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "pytest" in target and "-k" not in target and "tests/" not in target
    run = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "kinerja serve" in run


KINERJA = Path(sys.executable).parent / "kinerja"


def _spawn(workdir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`kinerja serve`, as `make run` runs it, from `workdir` with no KINERJA_DATA_DIR:
    what it prints in `log`, what it logs (stderr) in `log` + ".err"."""
    with log.open("ab") as out, log.with_suffix(".err").open("ab") as err:
        return subprocess.Popen(
            [str(KINERJA), "serve", "--port", str(port)],
            cwd=workdir,
            env=clean_env(),
            stdout=out,
            stderr=err,
        )


def _ready(proc: subprocess.Popen[bytes], port: int, seconds: float, log: Path) -> float:
    """Seconds until /health/ready answers 200; fails if the process exits first."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if proc.poll() is not None:
            said = log.read_text() + log.with_suffix(".err").read_text()
            raise AssertionError(f"kinerja serve exited:\n{said[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    said = log.read_text() + log.with_suffix(".err").read_text()
    raise AssertionError(f"not ready in {seconds} s:\n{said[-3000:]}")


def _stop(proc: subprocess.Popen[bytes], sig: int) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


async def _server_settings(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return {
            name: await conn.fetchval(f"SHOW {name}")
            for name in ("listen_addresses", "unix_socket_directories", "data_directory")
        }
    finally:
        await conn.close()


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def test_the_run_command_serves_on_the_embedded_database_and_stops_it() -> None:
    """Issue 2.2/2.3 and "Must show", end to end with the real `kinerja serve` that
    `make run` runs: a fresh folder (the default `.data` under the working directory),
    ready with 38 provinces and 514 districts and the OpenAPI document; the URL and the
    docs printed; PostgreSQL on a Unix socket inside the data folder and no TCP port,
    running as `postgres` when started by root; a second start on the same folder refused
    with a message while the first keeps serving; SIGTERM stops the cluster; a restart
    on the existing folder is ready within the 5 s aim; after a crash (SIGKILL) the next
    start reuses the cluster left running and stops it when it stops. Every line the
    server logs is JSON."""
    procs: list[subprocess.Popen[bytes]] = []
    with scratch_dir("kinerja-a2-run-") as workdir:
        data = workdir / ".data"
        cluster = EmbeddedPostgres(data)  # the same folder the server picks: no lock taken
        log = workdir / "serve.log"
        try:
            port = _free_port()
            first = _spawn(workdir, port, log)
            procs.append(first)
            _ready(first, port, 180, log)
            base = f"http://127.0.0.1:{port}"
            printed = log.read_text()
            assert f"http://127.0.0.1:{port}" in printed and "/schema" in printed
            for kind, total in (("province", 38), ("district", 514)):
                body = httpx.get(f"{base}/v1/areas", params={"kind": kind}, timeout=10).json()
                assert body["total"] == total, kind
            assert httpx.get(f"{base}/schema/openapi.json", timeout=10).status_code == 200
            assert httpx.get(f"{base}/v1/areas/16.71", timeout=10).json()["name"] == (
                "Kota Palembang"
            )
            # The cluster: in the default folder, on a Unix socket inside it, no TCP.
            assert cluster.initialised() and cluster.running()
            assert cluster.socket_dir.is_relative_to(data)
            assert (cluster.socket_dir / ".s.PGSQL.5432").is_socket()
            shown = asyncio.run(_server_settings(cluster.dsn("postgres")))
            assert shown["listen_addresses"] == ""
            assert Path(shown["unix_socket_directories"]).is_relative_to(data)
            postmaster = int((cluster.pgdata / "postmaster.pid").read_text().split()[0])
            if os.geteuid() == 0:
                assert _uid_of(postmaster) == pwd.getpwnam("postgres").pw_uid
            # A second start on the same folder: refused with a message, the first serves on.
            second = subprocess.run(
                [str(KINERJA), "serve", "--port", str(_free_port())],
                cwd=workdir, env=clean_env(), capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert second.returncode == 2, second
            assert "already in use" in second.stderr and "Traceback" not in second.stderr
            assert httpx.get(f"{base}/health/ready", timeout=5).status_code == 200
            # SIGTERM: the server and its cluster stop.
            assert _stop(first, signal.SIGTERM) == 0
            assert not cluster.running(), "embedded PostgreSQL left running after SIGTERM"
            # Restart on the existing folder: ready within the 5 s aim.
            again = _spawn(workdir, port, log)
            procs.append(again)
            took = _ready(again, port, 60, log)
            assert took < 5.0, f"start-up to ready took {took:.2f} s"
            # A crash: the cluster is left running; the next start reuses it, then stops it.
            again.kill()
            again.wait(timeout=30)
            assert cluster.running()
            third = _spawn(workdir, port, log)
            procs.append(third)
            _ready(third, port, 60, log)
            assert httpx.get(f"{base}/v1/areas/16", timeout=10).json()["child_count"] == 17
            assert _stop(third, signal.SIGINT) == 0
            assert not cluster.running(), "embedded PostgreSQL left running after Ctrl-C"
            # Logs: JSON lines, the access lines with a request id.
            lines = [line for line in log.with_suffix(".err").read_text().splitlines() if line]
            entries = [json.loads(line) for line in lines]
            access = [e for e in entries if e.get("logger") == "kinerja.access"]
            assert access and all(e.get("request_id") for e in access)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            if cluster.initialised() and cluster.running():
                cluster.halt(mode="immediate")


def _installed_closure(requirements: list[str]) -> set[str]:
    """Every distribution `pip install '.[test]'` brings in for these requirements
    (markers and extras evaluated here), by normalised name."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        extras = sorted(requirement.extras)
        key = f"{name}[{','.join(extras)}]"
        if key in seen:
            continue
        seen.add(key)
        for wanted in ("", *extras):
            todo += [(Requirement(r), wanted) for r in metadata.requires(name) or []]
    return {key.split("[", 1)[0] for key in seen}


def test_the_suite_needs_no_package_the_install_leaves_out() -> None:
    """Issue 2.2: `make test` on a fresh machine with Python 3.11+ (README), nothing done
    before it. `make test` makes the virtualenv with `python3 -m venv` and installs
    `.[test]`; from Python 3.12 on, `venv` installs pip alone (no setuptools), and no
    declared dependency pulls setuptools in. `tests/test_operator_findings.py::
    test_installed_package_keeps_its_subpackages` runs `sys.executable -c "import
    setuptools; setuptools.setup()"` with the venv's Python: on Python 3.12/3.13 (the
    default python3 of Ubuntu 24.04 and Debian 13) it fails with ModuleNotFoundError,
    so the README's test command does not pass there. It passes here only because this
    machine's python3 is 3.11, whose venv still ships setuptools."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    closure = _installed_closure(
        [*project["dependencies"], *project["optional-dependencies"]["test"]]
    )
    suite = "\n".join(
        p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p.name != Path(__file__).name
    )
    if "import setuptools" in suite:
        assert "setuptools" in closure, "the suite imports setuptools; nothing installs it"


# -- 3. embedded PostgreSQL ----------------------------------------------------------

SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")


def _no_binaries_anywhere(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.setenv("PATH", str(path))
    monkeypatch.delenv(embedded.PG_BINDIR_ENV, raising=False)
    monkeypatch.setattr(embedded, "SYSTEM_BINDIRS", str(path / "nothing" / "*" / "bin"))


def test_binaries_are_found_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 2.3: the server binaries found on PATH."""
    real = find_bindir()
    with scratch_dir("kinerja-a2-path-") as workdir:
        _no_binaries_anywhere(monkeypatch, workdir)
        monkeypatch.setenv("PATH", f"{workdir}:{real}")
        assert find_bindir() == real.resolve()


def test_binaries_are_found_through_pg_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 2.3: found via `pg_config --bindir` when PATH holds no pg_ctl."""
    real = find_bindir()
    with scratch_dir("kinerja-a2-pgconfig-") as workdir:
        _no_binaries_anywhere(monkeypatch, workdir)
        fake = workdir / "pg_config"
        fake.write_text(f'#!/bin/sh\n[ "$1" = --bindir ] && echo {real}\n')
        fake.chmod(0o755)
        assert find_bindir() == real


def test_binaries_are_found_under_the_distribution_folders_newest_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 2.3: found under /usr/lib/postgresql/*/bin; with several versions the newest
    (15 before 9, by number rather than by letter)."""
    with scratch_dir("kinerja-a2-sys-") as workdir:
        _no_binaries_anywhere(monkeypatch, workdir)
        for version in ("9", "15", "13"):
            bindir = workdir / "lib" / version / "bin"
            bindir.mkdir(parents=True)
            for name in SERVER_BINARIES:
                (bindir / name).write_text("")
        monkeypatch.setattr(embedded, "SYSTEM_BINDIRS", str(workdir / "lib" / "*" / "bin"))
        assert find_bindir() == workdir / "lib" / "15" / "bin"


def test_serve_without_binaries_names_both_fixes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 2.3: `kinerja serve` (the run command, not only `db migrate`) with no
    binaries: a short error naming both fixes, no traceback."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with scratch_dir("kinerja-a2-nobin-") as workdir:
        _no_binaries_anywhere(monkeypatch, workdir)
        monkeypatch.setenv("KINERJA_DATA_DIR", str(workdir / "data"))
        code = cli.main(["serve", "--port", str(_free_port())])
    err = capsys.readouterr().err
    assert code == 2
    assert "install the PostgreSQL server" in err and "DATABASE_URL" in err
    assert "Traceback" not in err and len(err.splitlines()) <= 3


def test_the_data_folder_defaults_under_the_working_directory_and_is_overridable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 2.3: default under the working directory, overridable."""
    monkeypatch.chdir(tmp_path)
    assert settings_from_env({}).data_path == tmp_path / ".data"
    other = settings_from_env({"KINERJA_DATA_DIR": "/srv/kinerja-data"})
    assert other.data_path == Path("/srv/kinerja-data")


async def test_with_database_url_nothing_is_started_and_db_migrate_applies_everything(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 2.3 and 2.4: with DATABASE_URL set, `kinerja db migrate` uses that server
    (no data folder made, no cluster started), applies every migration with its checksum
    and loads the 553 areas."""
    with scratch_dir("kinerja-a2-url-") as workdir:
        monkeypatch.setenv("DATABASE_URL", empty_database_url)
        monkeypatch.setenv("KINERJA_DATA_DIR", str(workdir / "data"))
        monkeypatch.setattr(
            embedded, "find_bindir", lambda: pytest.fail("looked for PostgreSQL binaries")
        )
        assert await asyncio.to_thread(cli.main, ["db", "migrate"]) == 0
        assert not (workdir / "data").exists()
    assert "areas loaded: 553" in capsys.readouterr().out
    conn = await connect(empty_database_url)
    try:
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations ORDER BY 1")
        kinds = dict(await conn.fetch("SELECT kind, count(*) FROM areas GROUP BY kind"))
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [(m.version, m.name, m.checksum) for m in load_migrations()]
    assert kinds == {"country": 1, "province": 38, "district": 514}


# -- 4. migrations -------------------------------------------------------------------


async def _tamper(dsn: str) -> None:
    conn = await connect(dsn)
    try:
        await migrate(conn)
        await conn.execute(
            "UPDATE schema_migrations SET checksum = 'x' || checksum WHERE version = 2"
        )
    finally:
        await conn.close()


async def test_a_changed_applied_migration_stops_kinerja_serve(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 2.4: a changed, already-applied file stops start-up with a clear error: the
    real start-up (`kinerja serve`) exits before serving, without a traceback."""
    import uvicorn

    await _tamper(empty_database_url)
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("served anyway"))
    monkeypatch.setattr(cli.signal, "signal", lambda *a, **k: None)  # not the main thread
    code = await asyncio.to_thread(cli.main, ["serve", "--port", str(_free_port())])
    err = capsys.readouterr().err
    assert code == 1
    assert "0002_identity.sql was changed after it was applied" in err
    assert "Traceback" not in err


async def test_the_app_refuses_to_start_on_a_changed_migration(empty_database_url: str) -> None:
    """Issue 2.4: the app's own start-up (the lifespan each worker runs) refuses too."""
    await _tamper(empty_database_url)
    settings = settings_from_env({}, database_url=empty_database_url, environment="test")
    app = create_app(settings, configure_logs=False)
    with pytest.raises(BaseException) as raised:  # the test client groups it
        async with AsyncTestClient(app=app):
            pass
    found: list[BaseException] = [raised.value]
    while found and not isinstance(found[0], MigrationError):
        first = found.pop(0)
        found += [*getattr(first, "exceptions", ()), first.__cause__ or first.__context__]
        found = [e for e in found if e is not None]
    assert found and "was changed after it was applied" in str(found[0])


async def test_the_app_migrates_and_loads_areas_at_start_up(empty_database_url: str) -> None:
    """Issue 2.4/2.5: applied at start-up (the app's lifespan, on an empty database), and
    the areas loaded there; a second start-up changes nothing."""
    settings = settings_from_env(
        {}, database_url=empty_database_url, environment="test", pool_max_size=2
    )
    for _ in range(2):
        async with AsyncTestClient(app=create_app(settings, configure_logs=False)) as client:
            assert (await client.get("/health/ready")).status_code == 200
            body = (await client.get("/v1/areas", params={"kind": "province"})).json()
            assert body["total"] == 38
    conn = await connect(empty_database_url)
    try:
        applied = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        areas = await conn.fetchval("SELECT count(*) FROM areas")
    finally:
        await conn.close()
    assert applied == len(load_migrations()) and areas == 553


# -- 5. areas ------------------------------------------------------------------------


def test_the_shipped_areas_are_the_shared_ones_with_their_provenance() -> None:
    """Issue 2.5: the 38 provinces and 514 districts of ../shared/data/wilayah/, copied
    into the project (byte for byte) with their provenance, and installed with it."""
    for name in ("provinces.csv", "regencies.csv", "population.csv"):
        assert (ROOT / "db" / "data" / name).read_bytes() == (SHARED / name).read_bytes(), name
    provenance = (ROOT / "db" / "data" / "PROVENANCE.md").read_text()
    for fact in ("cahyadsn/wilayah", "b7ad440a1322e7be3189a16a8cac35f7d4c3d7f7", "MIT", "Dukcapil"):
        assert fact in provenance, fact
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "*.md" in data["package-data"]["db.data"]


async def _all_areas(client: AsyncTestClient[Litestar], **params: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = await client.get("/v1/areas", params={**params, "limit": 500, "offset": offset})
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        offset += 500
        if offset >= body["total"]:
            assert len(items) == body["total"]
            return items


async def test_every_area_answers_its_source_row(client: AsyncTestClient[Litestar]) -> None:
    """Issue 2.5: every area read through `GET /v1/areas` (all pages, each once, in code
    order) and `GET /v1/areas/{code}` carries the source's name, kind, parent, population
    and child count."""
    population = {row["code"]: int(row["total"]) for row in _csv("population.csv")}
    provinces = {row["code"]: row for row in _csv("provinces.csv")}
    districts = {row["code"]: row for row in _csv("regencies.csv")}
    items = await _all_areas(client)
    codes = [item["code"] for item in items]
    assert len(codes) == len(set(codes)) == 553
    assert sorted(codes) == codes
    by_code = {item["code"]: item for item in items}
    country = by_code.pop("ID")
    assert (country["kind"], country["parent_code"], country["child_count"]) == (
        "country",
        None,
        38,
    )
    assert country["population"] == population["0"] == 284_973_643
    for code, row in provinces.items():
        area = by_code.pop(code)
        assert (area["kind"], area["name"], area["parent_code"]) == ("province", row["name"], "ID")
        assert area["child_count"] == int(row["regency_count"]), code
        assert area["population"] == population[code], code
    for code, row in districts.items():
        area = by_code.pop(code)
        assert (area["kind"], area["name"], area["parent_code"]) == (
            "district",
            row["name"],
            row["province_code"],
        )
        assert area["population"] == population[code] and area["child_count"] == 0, code
    assert by_code == {}
    for code in ("ID", "16", "16.71", "96.71"):
        one = await client.get(f"/v1/areas/{code}")
        assert one.status_code == 200
        body = one.json()
        assert {
            k: body[k] for k in ("name", "kind", "parent_code", "population", "child_count")
        } == {
            k: next(i for i in items if i["code"] == code)[k]
            for k in ("name", "kind", "parent_code", "population", "child_count")
        }


async def test_area_filters_combine(client: AsyncTestClient[Litestar]) -> None:
    """Issue 2.5: filter by kind and parent, alone and together."""

    async def total(**params: str) -> int:
        response = await client.get("/v1/areas", params=params)
        assert response.status_code == 200, response.text
        return int(response.json()["total"])

    assert await total() == 553
    assert await total(kind="country") == 1
    assert await total(parent="ID") == 38
    assert await total(kind="province", parent="ID") == 38
    assert await total(kind="district", parent="16") == 17
    assert await total(kind="province", parent="16") == 0
    assert await total(parent="31") == 6  # Jakarta: five kota and Kepulauan Seribu
    assert await total(parent="99") == 0


async def test_area_pages_at_their_bounds(client: AsyncTestClient[Litestar]) -> None:
    """Issue 2.5: paginated: the largest page allowed, the first refused, a page past the
    end (empty, the total still counted), and the page echoing its bounds."""
    full = (await client.get("/v1/areas", params={"kind": "district", "limit": 500})).json()
    assert (len(full["items"]), full["total"], full["limit"], full["offset"]) == (500, 514, 500, 0)
    is_problem(await client.get("/v1/areas", params={"limit": 501}), 400, "invalid-page")
    past = (await client.get("/v1/areas", params={"kind": "district", "offset": 514})).json()
    assert past["items"] == [] and past["total"] == 514
    last = (await client.get("/v1/areas", params={"kind": "province", "offset": 37})).json()
    assert [i["code"] for i in last["items"]] == ["96"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/areas/%00",
        "/v1/areas?parent=%00",
        "/v1/areas?parent=123456789",
        "/v1/areas?kind=Province",
        "/v1/areas?kind=",
        "/v1/areas?limit=1.5",
        "/v1/areas?limit=-1",
        "/v1/areas?offset=99999999999999999999999",
        "/v1/areas?kind=province&kind=district",
    ],
)
async def test_bad_area_requests_are_4xx_problems(
    client: AsyncTestClient[Litestar], path: str
) -> None:
    """Issue 2.5/2.6: bad input on the area routes is a 400 problem, never a 5xx."""
    is_problem(await client.get(path), 400)


@pytest.mark.parametrize("code", ["99", "16.99", "ID.1", "id", "16.7", "9" * 2000, "%C3%A9"])
async def test_unknown_area_codes_are_404_problems(
    client: AsyncTestClient[Litestar], code: str
) -> None:
    """Issue 2.5: unknown code: 404 problem+json, whatever its shape."""
    body = is_problem(await client.get(f"/v1/areas/{code}"), 404, "not-found")
    assert body["detail"]


# -- 6. the app ----------------------------------------------------------------------


async def test_every_kind_of_error_is_a_problem_with_the_request_id(
    client: AsyncTestClient[Litestar], conn: asyncpg.Connection
) -> None:
    """Issue 2.6: 404, 405, 400 validation, 413, 431 and 500 are problem+json with their
    stable type, each answered with the request id the caller sent."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("GET", "/v1/nothing", {}, 404, "not-found"),
        ("GET", "/schema/nothing", {}, 404, "not-found"),
        ("PUT", "/v1/areas", {}, 405, "method-not-allowed"),
        ("GET", "/v1/areas?limit=x", {}, 400, "validation"),
        ("POST", "/v1/auth/token", {"content": b"a" * (64 * 1024 + 1), "headers": form}, 413,
         "payload-too-large"),
        ("GET", "/v1/areas", {"headers": {"X-Big": "a" * (40 * 1024)}}, 431,
         "header-fields-too-large"),
    ]  # fmt: skip
    for number, (method, path, extra, status, slug) in enumerate(cases):
        rid = f"audit-{number}"
        headers = {**extra.pop("headers", {}), "X-Request-ID": rid}
        response = await client.request(method, path, headers=headers, **extra)
        is_problem(response, status, slug)
        assert response.headers.get("x-request-id") == rid, (path, status)
    await conn.execute("ALTER TABLE areas RENAME TO areas_away")
    response = await client.get("/v1/areas", headers={"X-Request-ID": "audit-500"})
    is_problem(response, 500, "internal")
    assert response.headers.get("x-request-id") == "audit-500"


async def test_the_body_limit_is_64_kib_by_default(settings: Any) -> None:
    """Issue 2.6: 64 KiB exactly is read; one byte more is 413, with or without a
    Content-Length."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    prefix = b"grant_type=password&username=nobody&password="

    async def chunked(data: bytes) -> Any:
        yield data

    async with served(settings) as (_app, http):
        for size, refused in ((64 * 1024, False), (64 * 1024 + 1, True)):
            body = prefix + b"y" * (size - len(prefix))
            for content in (body, chunked(body)):
                response = await http.post("/v1/auth/token", content=content, headers=form)
                assert (response.status_code == 413) is refused, (size, response.status_code)
                assert response.headers["content-type"].startswith(PROBLEM)


class _Lines(logging.Handler):
    """Formats each record when it is logged, as the service's handler does."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_a_500_is_logged_as_one_json_line_with_the_request_id(
    client: AsyncTestClient[Litestar], conn: asyncpg.Connection
) -> None:
    """Issue 2.6: the request id in every log line: the lines logged while a request
    fails with a 500 (the error with its traceback, the access line) are JSON lines, each
    carrying the id the response carried."""
    await conn.execute("ALTER TABLE areas RENAME TO areas_away")
    handler = _Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        response = await client.get("/v1/areas/16", headers={"X-Request-ID": "trace-500"})
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert response.status_code == 500
    entries = [json.loads(line) for line in handler.lines if "\n" not in line]
    assert len(entries) == len(handler.lines)
    ours = [e for e in entries if e["logger"].startswith("kinerja")]
    assert {e["logger"] for e in ours} >= {"kinerja.errors", "kinerja.access"}
    assert all(e.get("request_id") == "trace-500" for e in ours), ours
    assert any("UndefinedTableError" in e.get("exc", "") for e in ours)


async def test_the_docs_page_is_served_at_schema(client: AsyncTestClient[Litestar]) -> None:
    """Issue 2.6: OpenAPI at /schema (a page), the document at /schema/openapi.json with the
    area routes' filters and pages."""
    page = await client.get("/schema")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    spec = (await client.get("/schema/openapi.json")).json()
    params = {p["name"] for p in spec["paths"]["/v1/areas"]["get"]["parameters"]}
    assert params == {"kind", "parent", "limit", "offset"}


async def test_the_pool_is_opened_and_closed_by_the_lifespan(settings: Any) -> None:
    """Issue 2.6: the asyncpg pool is opened in the lifespan and closed with it."""
    app = create_app(settings, configure_logs=False)
    async with AsyncTestClient(app=app) as client:
        assert (await client.get("/health/ready")).status_code == 200
        pool: asyncpg.Pool = app.state.pool
        assert not pool.is_closing()
    assert pool.is_closing()


# -- 8. docker-compose ---------------------------------------------------------------


def test_compose_runs_postgres_15_and_the_api_built_by_the_dockerfile() -> None:
    """Issue 2.8: PostgreSQL 15 and the API (built by the Dockerfile), configured by
    environment: the API's DATABASE_URL names the db service with the credentials and
    database the db service is created with; the image serves on the port the load
    balancer sends to; the README documents it."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    db, api = services["db"], services["api"]
    assert db["image"] in ("postgres:15", "postgres:15-alpine")
    assert api["build"] in (".", {"context": "."})
    env = api["environment"]
    url = env["DATABASE_URL"]
    user, database = db["environment"]["POSTGRES_USER"], db["environment"]["POSTGRES_DB"]
    password = db["environment"]["POSTGRES_PASSWORD"]
    assert url == f"postgresql://{user}:{password}@db:5432/{database}"
    assert api["depends_on"]["db"]["condition"] == "service_healthy"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^CMD \["kinerja", "serve"\]', dockerfile, re.M)
    assert "KINERJA_HOST=0.0.0.0" in dockerfile and "KINERJA_PORT=8000" in dockerfile
    for part in ("api", "db", "scorecards", "client", "pyproject.toml"):
        assert re.search(rf"^COPY {re.escape(part)}\b", dockerfile, re.M), part
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "server api:8000;" in nginx
    mounted = services["lb"]["volumes"]
    assert any(v.startswith("./deploy/nginx.conf:/etc/nginx/nginx.conf") for v in mounted)
    assert "docker compose up" in (ROOT / "README.md").read_text()


async def test_replicas_preparing_at_once_all_start(empty_database_url: str) -> None:
    """Issue 2.4: several replicas starting at once (each worker's lifespan migrates,
    loads the areas and makes the first token key) all start, and each migration is
    applied once, each area and the first key made once."""
    from api.database import prepare_database
    from db.pool import create_pool

    pools = [await create_pool(empty_database_url, min_size=1, max_size=2) for _ in range(4)]
    try:
        await asyncio.gather(*(prepare_database(pool) for pool in pools))
        conn = pools[0]
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(
            load_migrations()
        )
        assert await conn.fetchval("SELECT count(*) FROM areas") == 553
        assert await conn.fetchval("SELECT count(*) FROM server_keys") == 1
    finally:
        for pool in pools:
            await pool.close()


async def test_the_api_answers_in_problem_json_while_the_database_is_down_and_recovers() -> None:
    """Issue 2.6: with the database stopped, an area request is a problem+json 5xx (not a
    hang, not a bare error), readiness 503; when it returns, both recover by themselves."""
    with scratch_dir("kinerja-a2-down-") as workdir:
        cluster = EmbeddedPostgres(workdir / "data")
        dsn = cluster.start()
        try:
            settings = settings_from_env({}, database_url=dsn, environment="test", pool_min_size=2)
            app = create_app(settings, configure_logs=False)
            async with AsyncTestClient(app=app, timeout=30) as client:
                assert (await client.get("/v1/areas/16")).status_code == 200
                await asyncio.to_thread(cluster.halt)
                started = time.monotonic()
                down = await client.get("/v1/areas/16")
                assert time.monotonic() - started < 10
                assert down.status_code >= 500
                assert down.headers["content-type"].startswith(PROBLEM)
                assert down.json()["type"].startswith(PROBLEMS)
                is_problem(await client.get("/health/ready"), 503, "unavailable")
                await asyncio.to_thread(cluster.boot)
                statuses: list[int] = []
                for _ in range(100):
                    statuses = [
                        (await client.get(path)).status_code
                        for path in ("/health/ready", "/v1/areas/16", "/v1/areas")
                    ]
                    if statuses == [200, 200, 200]:
                        break
                    await asyncio.sleep(0.1)
                assert statuses == [200, 200, 200]
        finally:
            cluster.stop(mode="immediate")


def test_compose_keeps_the_callers_request_id() -> None:
    """Issue 2.8 against README "Errors": "Every response carries `X-Request-ID` (yours if
    you send a sane one)". In the documented docker-compose deployment every request
    passes nginx, whose `proxy_set_header X-Request-ID $request_id` replaces the caller's
    id with nginx's own; the replica echoes that, so a caller who sends `X-Request-ID:
    abc` gets another id back and cannot find its request in the logs by its own id.
    (Forwarding `$http_x_request_id` when present, `$request_id` otherwise, keeps both.)"""
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    sent = re.search(r"proxy_set_header\s+X-Request-ID\s+(\S+);", nginx)
    if sent is not None:
        value = sent.group(1)
        if value != "$http_x_request_id":
            # A map from the caller's header, falling back to nginx's id, is fine too.
            mapped = re.search(
                rf"map\s+\$http_x_request_id\s+{re.escape(value)}\s*\{{[^}}]*\$http_x_request_id",
                nginx,
            )
            assert mapped, f"nginx sends X-Request-ID {value}, not the caller's"
