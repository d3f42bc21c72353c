"""``kinerja-client`` end to end, against a real server the test starts and stops.

The server is uvicorn in a subprocess on a free loopback port, over the test's own
database; stopping it is "the network is down". The CLI runs in-process through
``client.cli.main`` (output captured), and once as the installed console script.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from client.cli import main
from client.outbox import OUTBOX_FILE, Outbox
from tests.people import DISTRICT, PASSWORD, PROVINCE, make_user

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "kinerja-client"
AS_OF = "2021-02-15"
YEAR = 2021


# -- a real server in a subprocess ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``uvicorn api.app:create_app_from_env`` on one port; stop and start it at will."""

    def __init__(self, database_url: str, log_path: Path) -> None:
        self.database_url = database_url
        self.log_path = log_path
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "KINERJA_LOG_LEVEL": "WARNING",
            "KINERJA_POOL_MAX_SIZE": "4",
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "api.app:create_app_from_env",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log_path.read_text()}")
            try:
                if httpx.get(self.url + "/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not get ready:\n{self.log_path.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    srv = Server(database_url, tmp_path / "server.log")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


# -- the CLI, in-process --------------------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Cli:
    """Runs ``kinerja-client`` in-process for one config folder against one server."""

    capsys: pytest.CaptureFixture[str]
    home: Path
    server: Server

    def __call__(self, *args: str, transport: httpx.BaseTransport | None = None) -> Result:
        self.capsys.readouterr()
        code = main(
            [*args, "--home", str(self.home), "--server", self.server.url], transport=transport
        )
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def enrol(self, username: str) -> None:
        """init, login, register-key: what a district head does once."""
        for args in (("init",), ("login", "--username", username), ("register-key",)):
            result = self(*args)
            assert result.code == 0, (args, result)

    def queued(self) -> list[Any]:
        with Outbox(self.home / OUTBOX_FILE) as box:
            return box.all()


@pytest.fixture
def cli(
    server: Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    monkeypatch.setenv("KINERJA_PASSWORD", PASSWORD)
    monkeypatch.delenv("KINERJA_SERVER", raising=False)
    monkeypatch.delenv("KINERJA_CLIENT_HOME", raising=False)
    return Cli(capsys, tmp_path / "kinerja-home", server)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


async def _count(conn: asyncpg.Connection, sql: str = "SELECT count(*) FROM submissions") -> int:
    return int(await conn.fetchval(sql))


# -- the package boundary, and the console script -------------------------------------


def test_cli_imports_no_server_code() -> None:
    code = (
        "import sys, client.cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'api', 'db', 'asyncpg', 'litestar', 'scorecards', 'uvicorn'})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def _script(
    home: Path, server: Server, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KINERJA_PASSWORD"}
    env.update(KINERJA_CLIENT_HOME=str(home), KINERJA_SERVER=server.url)
    return subprocess.run(
        [str(SCRIPT), *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
    )


async def test_console_script_from_init_to_a_stored_submission_with_private_files(
    server: Server, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    home = tmp_path / "home"

    init = _script(home, server, "init", "--username", "kadis_palembang")
    assert init.returncode == 0, init.stderr
    key = home / "signing-key.pem"
    assert _mode(home) == 0o700
    assert _mode(key) == 0o600
    assert _mode(home / "config.json") == 0o600
    first_key = key.read_bytes()

    again = _script(home, server, "init")
    assert again.returncode == 2
    assert "already exists" in again.stderr and "--force" in again.stderr
    assert key.read_bytes() == first_key

    login = _script(home, server, "login", "--password-stdin", stdin=PASSWORD + "\n")
    assert login.returncode == 0, login.stderr
    assert "district_head" in login.stdout and DISTRICT in login.stdout
    assert _mode(home / "token.json") == 0o600

    register = _script(home, server, "register-key")
    assert register.returncode == 0, register.stderr
    assert _script(home, server, "register-key").returncode == 0  # already registered: fine

    submit = _script(
        home,
        server,
        "submit",
        "--as-of",
        AS_OF,
        "--value",
        "ktp_el=5545117/5940433",
        "--stated",
        "ktp_el=97.70",
        "--channel",
        "ktp_el.mobile=300",
        "--note",
        "alat perekam rusak",
    )
    assert submit.returncode == 0, submit.stdout + submit.stderr
    assert "stored" in submit.stdout and "stated_mismatch" in submit.stdout
    assert _mode(home / OUTBOX_FILE) == 0o600
    row = await conn.fetchrow(
        "SELECT s.district_code, s.note, v.numerator, v.denominator, v.channels "
        "FROM submissions s JOIN submission_values v ON v.submission_id = s.id"
    )
    assert row["district_code"] == DISTRICT and row["note"] == "alat perekam rusak"
    assert (row["numerator"], row["denominator"]) == (5545117, 5940433)
    channels = row["channels"]
    channels = json.loads(channels) if isinstance(channels, str) else channels
    assert channels["mobile"] == 300 and channels["office"] == 0

    forced = _script(home, server, "init", "--force")
    assert forced.returncode == 0
    assert key.read_bytes() != first_key and _mode(key) == 0o600

    # Helpful failures: the scorecard works, the ranking is not a district head's to read.
    card = _script(home, server, "scorecard", "--as-of", "2021-02-28")
    assert card.returncode == 0 and "Kota Palembang" in card.stdout and "93.35" in card.stdout
    ranking = _script(home, server, "rankings", "--province", PROVINCE)
    assert ranking.returncode == 1 and "HTTP 403" in ranking.stderr


# -- the outbox -----------------------------------------------------------------------


async def test_server_down_queues_and_a_flush_stores_each_report_once(
    cli: Cli, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    cli.enrol("kadis_palembang")
    rows = [
        {"district": DISTRICT, "as_of": day, "indicator": code, "numerator": n, "denominator": d}
        for day in ("2021-01-31", AS_OF)
        for code, n, d in (("ktp_el", 5_500_000, 5_940_433), ("akta_lahir", 400_000, 450_000))
    ]
    rows_csv = _write_csv(tmp_path / "rows.csv", rows)

    cli.server.stop()
    down = cli("submit", "--file", str(rows_csv), "--progress")
    assert down.code == 3, down
    assert "2 submissions: 0 stored, 0 rejected, 2 queued" in down.out
    assert "2/2" in down.err  # the progress bar
    assert "outbox flush" in down.err
    listed = json.loads(cli("outbox", "list", "--json").out)
    assert [(item["district"], item["as_of"]) for item in listed] == [
        (DISTRICT, "2021-01-31"),
        (DISTRICT, AS_OF),
    ]
    assert listed[0]["attempts"] == 1 and "ConnectError" in listed[0]["last_error"]
    assert "2 waiting" in cli("outbox", "list").out
    queued = {item.idempotency_key: item.jws for item in cli.queued()}

    still_down = cli("outbox", "flush")
    assert still_down.code == 3 and "2 still queued" in still_down.out
    assert {item.idempotency_key: item.jws for item in cli.queued()} == queued

    cli.server.start()
    flushed = cli("outbox", "flush")
    assert flushed.code == 0, flushed
    assert "2 stored, 0 rejected, 0 still queued" in flushed.out
    assert cli.queued() == []
    stored = await conn.fetch("SELECT jws FROM submissions ORDER BY as_of")
    assert sorted(r["jws"] for r in stored) == sorted(queued.values())  # the very bytes signed
    assert await _count(conn, "SELECT count(*) FROM submission_values") == 4

    assert cli("outbox", "flush").out.startswith("The outbox is empty.")
    assert "The outbox is empty." in cli("outbox", "list").out
    assert await _count(conn) == 2


class LoseSubmissionResponses(httpx.BaseTransport):
    """Delivers each POST /v1/submissions, then drops the answer as a reset link would."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path == "/v1/submissions":
            response.read()
            response.close()
            self.lost += 1
            raise httpx.ReadError("connection reset before the answer arrived", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


async def test_a_lost_response_is_retried_and_answers_the_original(
    cli: Cli, conn: asyncpg.Connection
) -> None:
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    cli.enrol("kadis_palembang")

    losing = LoseSubmissionResponses()
    lost = cli("submit", "--as-of", AS_OF, "--value", "ktp_el=5545117/5940433", transport=losing)
    assert losing.lost == 1
    assert lost.code == 3 and "ReadError" in lost.out
    original = await conn.fetchrow("SELECT id, jws FROM submissions")
    assert original is not None  # the server stored it; the client does not know
    [item] = cli.queued()
    assert item.jws == original["jws"]

    retried = cli("outbox", "flush")
    assert retried.code == 0, retried
    assert f"id {original['id']}" in retried.out  # the original answer, replayed
    assert cli.queued() == []
    assert await _count(conn) == 1
    assert await _count(conn, "SELECT count(*) FROM idempotency_keys") == 1


class CountingTransport(httpx.BaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.posts = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/v1/submissions":
            self.posts += 1
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


async def test_rejections_show_the_problem_and_are_not_retried(
    cli: Cli, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    assert cli("init").code == 0

    # Not logged in: nothing is lost, the report waits until the session is back.
    offline = cli("submit", "--district", DISTRICT, "--as-of", "2021-01-31", "--value", "kia=10/20")
    assert offline.code == 2 and "not logged in" in offline.out
    assert cli("login", "--username", "kadis_palembang").code == 0
    assert cli("register-key").code == 0
    assert cli("outbox", "flush").code == 0
    assert await _count(conn) == 1

    # Rows only the server can refuse (the client refuses a future date or another
    # district's row before anything is sent).
    ktp = {"ktp_el": {"numerator": 5545117, "denominator": 5940433}}
    nowhere = str(uuid.uuid4())
    rows = [
        {"district": DISTRICT, "as_of": AS_OF, "values": ktp, "note": "ok"},
        {"district": DISTRICT, "as_of": AS_OF, "values": ktp, "division": nowhere},
        {
            "district": DISTRICT,
            "as_of": AS_OF,
            "values": {"no_such": {"numerator": 1, "denominator": 2}},
        },
        {
            "district": DISTRICT,
            "as_of": AS_OF,
            "values": ktp,
            "supersedes": {"id": nowhere, "reason": "salah ketik"},
        },
    ]
    rows_json = tmp_path / "rows.json"
    rows_json.write_text(json.dumps(rows))
    counting = CountingTransport()
    result = cli("submit", "--file", str(rows_json), transport=counting)
    assert result.code == 1, result
    assert "4 submissions: 1 stored, 3 rejected, 0 queued" in result.out
    for expected in (
        "HTTP 422: The division is not one of the district's",
        "problems/invalid-division",
        "HTTP 422: Unknown indicator",
        "detail: Unknown indicator: no_such.",
        "problems/unknown-indicator",
        "problems/invalid-supersedes",
    ):
        assert expected in result.out, expected
    assert counting.posts == 4
    assert cli.queued() == []
    flushed = cli("outbox", "flush", transport=counting)
    assert flushed.code == 0 and counting.posts == 4  # nothing left to retry
    assert await _count(conn) == 2
    # The rejected reports stay listed, with why, until discarded one by one.
    listed = cli("outbox", "list")
    assert listed.code == 0 and "Rejected by the server (not retried):" in listed.out
    assert "3 rejected" in listed.out and "The division is not one of the" in listed.out
    kept = json.loads(cli("outbox", "list", "--json").out)
    assert [item["state"] for item in kept] == ["rejected"] * 3
    gone = cli("outbox", "discard", str(kept[0]["id"]))
    assert gone.code == 0 and f"discarded #{kept[0]['id']}" in gone.out
    again = cli("outbox", "discard", str(kept[0]["id"]))
    assert again.code == 2 and "no rejected report" in again.err
    assert len(json.loads(cli("outbox", "list", "--json").out)) == 2

    bad_file = tmp_path / "bad.csv"
    bad_file.write_text("district,as_of,indicator,numerator\n16.71,2021-02-15,ktp_el,1\n")
    bad = cli("submit", "--file", str(bad_file))
    assert bad.code == 2 and "missing column(s) denominator" in bad.err


# -- South Sumatra: 17 districts into the ranking --------------------------------------


async def _province_target(conn: asyncpg.Connection, creator: Any) -> None:
    """An active national-province agreement for South Sumatra: KTP-el 100%, KIA 30%."""
    agreement = await conn.fetchval(
        "INSERT INTO agreements (lineage_id, version, year, level, first_area, first_official, "
        "second_area, second_official, status, document_sha256, created_by, activated_at) "
        "VALUES (gen_random_uuid(), 1, $1, 'national_province', 'ID', 'Dirjen Dukcapil', $2, "
        "'Kadis Dukcapil Sumsel', 'active', repeat('0', 64), $3, now()) RETURNING id",
        YEAR,
        PROVINCE,
        creator.id,
    )
    await conn.executemany(
        "INSERT INTO agreement_targets (agreement_id, indicator_code, annual) VALUES ($1, $2, $3)",
        [(agreement, "ktp_el", 100), (agreement, "kia", 30)],
    )


async def test_seventeen_districts_of_south_sumatra_reach_the_ranking(
    server: Server,
    conn: asyncpg.Connection,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KINERJA_PASSWORD", PASSWORD)
    codes = [
        r["code"]
        for r in await conn.fetch(
            "SELECT code FROM areas WHERE kind = 'district' AND parent_code = $1 ORDER BY code",
            PROVINCE,
        )
    ]
    assert len(codes) == 17
    monitor = await make_user(conn, "province_monitor", username="monev_sumsel", area_code=PROVINCE)
    await _province_target(conn, monitor)

    # The province's one CSV: a line per district (KTP-el 80.0% ... 96.0%, KIA 20% ... 36%).
    lines = []
    for i, code in enumerate(codes):
        lines.append(
            {
                "district": code,
                "as_of": AS_OF,
                "indicator": "ktp_el",
                "numerator": 800_000 + 10_000 * i,
                "denominator": 1_000_000,
                "note": f"laporan {code}",
            }
        )
    _write_csv(tmp_path / "sumsel.csv", lines)
    with (tmp_path / "sumsel.csv").open(newline="") as file:
        header, *body = list(csv.reader(file))
    assert len(body) == 17

    # Each district head submits their own line, from their own computer (config folder).
    for code, line in zip(codes, body, strict=True):
        username = f"kadis_{code.replace('.', '_')}"
        await make_user(conn, "district_head", username=username, area_code=code)
        head = Cli(capsys, tmp_path / f"home-{code}", server)
        head.enrol(username)
        own = tmp_path / f"{code}.csv"
        with own.open("w", newline="") as file:
            csv.writer(file).writerows([header, line])
        result = head("submit", "--file", str(own))
        assert result.code == 0, (code, result)
        assert "1 stored" in result.out
    assert await _count(conn) == 17

    monev = Cli(capsys, tmp_path / "home-monev", server)
    assert monev("login", "--username", "monev_sumsel").code == 0
    ranked = monev("rankings", "--province", PROVINCE, "--as-of", "2021-02-28", "--json")
    assert ranked.code == 0, ranked
    doc = json.loads(ranked.out)
    assert doc["counts"]["rows"] == 17 and doc["counts"]["ranked"] == 17
    by_code = {row["code"]: row for row in doc["rows"]}
    assert set(by_code) == set(codes)
    for i, code in enumerate(codes):
        assert by_code[code]["indicators"]["ktp_el"]["coverage"] == pytest.approx(80.0 + i)
    assert by_code[codes[-1]]["rank"] == 1 and by_code[codes[0]]["rank"] == 17

    table = monev("rankings", "--province", PROVINCE, "--as-of", "2021-02-28")
    assert table.code == 0
    assert "17 rows: 17 ranked" in table.out
    assert all(code in table.out for code in codes)
    assert "Kota Palembang" in table.out

    palembang = Cli(capsys, tmp_path / f"home-{DISTRICT}", server)
    card = palembang("scorecard", "--as-of", "2021-02-28")
    assert card.code == 0, card
    assert "Kota Palembang (16.71)" in card.out and "ktp_el" in card.out
    as_json = json.loads(palembang("scorecard", "--as-of", "2021-02-28", "--json").out)
    assert as_json["district"]["code"] == DISTRICT
