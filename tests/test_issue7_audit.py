"""Audit of issue 7 (the district head's client) against its acceptance criteria.

Each test covers a sub-point no other client test proves end to end against the real
server (uvicorn in a subprocess, ``tests/test_client_cli.py``): a client killed in the
middle of a request, a real read timeout, a gateway's 5xx after the server stored the
report, two flushes of one outbox at once, the default progress bar, and the scorecard
and ranking commands' formats and refusals.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from api.demo import seed
from api.settings import Settings
from client.cli import main
from client.config import TOKEN_FILE, load_token
from client.outbox import OUTBOX_FILE, Outbox
from tests.people import DISTRICT, OTHER_DISTRICT, PASSWORD, PROVINCE, make_user
from tests.test_client_cli import SCRIPT, Cli, Server, _province_target, _write_csv
from tests.test_client_cli import cli as cli  # the fixtures, shared
from tests.test_client_cli import server as server

AS_OF = "2021-02-15"
TYPED = ["--as-of", AS_OF, "--value", "ktp_el=5545117/5940433"]


# -- helpers ----------------------------------------------------------------------------


def _run(cli: Cli, url: str, *args: str, transport: httpx.BaseTransport | None = None) -> Any:
    """``kinerja-client`` in-process against ``url`` (not the fixture's server)."""
    cli.capsys.readouterr()
    code = main([*args, "--home", str(cli.home), "--server", url], transport=transport)
    captured = cli.capsys.readouterr()
    return code, captured.out, captured.err


def _read_request(conn: socket.socket) -> bytes:
    """One HTTP/1.1 request (headers and a Content-Length body) from a socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class HangingGateway:
    """A loopback listener that never answers: with ``upstream``, each request is first
    passed to the real server (which stores it) and its answer dropped, as a link that
    dies after the request went out would."""

    def __init__(self, upstream: str | None) -> None:
        self.upstream = upstream
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.forwarded: list[int] = []
        self.received = 0
        self.stop = threading.Event()
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.held.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        raw = _read_request(conn)
        self.received += 1
        if self.upstream is None or not raw:
            return
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() not in ("host", "content-length", "connection"):
                headers[name] = value.strip()
        answer = httpx.request(method, self.upstream + path, headers=headers, content=body)
        self.forwarded.append(answer.status_code)
        # ...and the answer never reaches the client.

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.fixture
def hanging() -> Iterator[list[HangingGateway]]:
    made: list[HangingGateway] = []
    yield made
    for gateway in made:
        gateway.close()


async def _count(conn: asyncpg.Connection, sql: str = "SELECT count(*) FROM submissions") -> int:
    return int(await conn.fetchval(sql))


def _spawn(home: Path, url: str, *args: str, pipe: bool = False) -> subprocess.Popen[str]:
    """The installed ``kinerja-client`` in its own process (one that can be killed)."""
    env = {k: v for k, v in os.environ.items() if k != "KINERJA_PASSWORD"}
    env.update(KINERJA_CLIENT_HOME=str(home), KINERJA_SERVER=url)
    out = subprocess.PIPE if pipe else subprocess.DEVNULL
    return subprocess.Popen([str(SCRIPT), *args], env=env, stdout=out, stderr=out, text=True)


def _until(done: Any, proc: subprocess.Popen[str], seconds: float) -> None:
    """Wait (the process still running) until ``done()`` or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        assert proc.poll() is None, "the client ended early"
        time.sleep(0.05)


def _claims(jws: str) -> dict[str, Any]:
    part = jws.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- item 3: the outbox survives a crash; a timeout; a 5xx after storing -----------------


async def test_a_client_killed_mid_request_keeps_the_report_and_a_flush_stores_it_once(
    cli: Cli, conn: asyncpg.Connection, hanging: list[HangingGateway]
) -> None:
    """Power cut while the answer is on its way: the server stored the report, the
    process is gone. The outbox still holds it; the flush gets the original answer."""
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    cli.enrol("kadis_palembang")
    gateway = HangingGateway(cli.server.url)
    hanging.append(gateway)

    proc = _spawn(cli.home, gateway.url, "submit", *TYPED, "--timeout", "60")
    try:
        _until(lambda: gateway.forwarded, proc, 30)
        assert gateway.forwarded == [201]
    finally:
        proc.kill()  # the power cut
        proc.wait()
    original = await conn.fetchrow("SELECT id, jws FROM submissions")
    assert original is not None

    [item] = cli.queued()
    assert item.jws == original["jws"]
    flushed = cli("outbox", "flush")
    assert flushed.code == 0, flushed
    assert f"id {original['id']}" in flushed.out
    assert cli.queued() == []
    assert await _count(conn) == 1


async def test_a_read_timeout_queues_the_report_and_a_flush_stores_it_once(
    cli: Cli, conn: asyncpg.Connection, hanging: list[HangingGateway]
) -> None:
    """A server that takes the connection and never answers (a real socket, no mock):
    the report waits in the outbox, exit 3; the next flush stores it once."""
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    cli.enrol("kadis_palembang")
    gateway = HangingGateway(None)
    hanging.append(gateway)

    started = time.monotonic()
    code, out, err = _run(cli, gateway.url, "submit", *TYPED, "--timeout", "1")
    assert time.monotonic() - started < 15
    assert code == 3, (out, err)
    assert "ReadTimeout" in out and "1 queued" in out
    assert gateway.received == 1
    [item] = cli.queued()
    assert item.attempts == 1
    assert await _count(conn) == 0

    flushed = cli("outbox", "flush")
    assert flushed.code == 0, flushed
    assert "1 stored, 0 rejected, 0 still queued" in flushed.out
    stored = await conn.fetchval("SELECT jws FROM submissions")
    assert stored == item.jws
    assert await _count(conn) == 1


class GatewayFailsAfterStoring(httpx.BaseTransport):
    """A gateway in front of the server: passes each POST /v1/submissions on, then
    answers ``status`` itself (the server's 201 is lost behind it)."""

    def __init__(self, status: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.status = status
        self.sent: list[tuple[str, bytes]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path == "/v1/submissions":
            response.read()
            response.close()
            self.sent.append((request.headers["Idempotency-Key"], request.content))
            return httpx.Response(self.status, text="<html>gateway error</html>")
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("status", [500, 504])
async def test_a_5xx_after_the_server_stored_is_retried_and_stored_once(
    cli: Cli, conn: asyncpg.Connection, tmp_path: Path, status: int
) -> None:
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    cli.enrol("kadis_palembang")
    rows = [
        {
            "district": DISTRICT,
            "as_of": day,
            "indicator": "ktp_el",
            "numerator": n,
            "denominator": 5_940_433,
        }
        for day, n in (("2021-01-31", 5_500_000), (AS_OF, 5_545_117))
    ]
    rows_csv = _write_csv(tmp_path / "rows.csv", rows)
    gateway = GatewayFailsAfterStoring(status)
    failed = cli("submit", "--file", str(rows_csv), transport=gateway)
    assert failed.code == 3, failed
    assert "0 stored, 0 rejected, 2 queued" in failed.out
    queued = {item.idempotency_key: item.jws for item in cli.queued()}
    assert len(queued) == 2
    # Every attempt so far was the very bytes and key now queued.
    assert all(queued[key] == body.decode() for key, body in gateway.sent)
    # Each row its own signed report: a fresh jti and a current iat, under its own key.
    claims = [_claims(jws) for jws in queued.values()]
    assert len({c["jti"] for c in claims}) == 2
    assert all(abs(c["iat"] - time.time()) < 120 for c in claims)
    stored_before = await _count(conn)
    assert stored_before == len(gateway.sent) >= 1

    flushed = cli("outbox", "flush")
    assert flushed.code == 0, flushed
    assert "2 stored, 0 rejected, 0 still queued" in flushed.out
    assert cli.queued() == []
    assert await _count(conn) == 2
    assert sorted(r["jws"] for r in await conn.fetch("SELECT jws FROM submissions")) == sorted(
        queued.values()
    )


async def test_two_flushes_of_one_outbox_at_once_store_each_report_once(
    cli: Cli, conn: asyncpg.Connection
) -> None:
    """A scheduled `outbox flush --due` and one typed by hand, at the same moment."""
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    cli.enrol("kadis_palembang")
    cli.server.stop()
    for day in range(1, 7):
        down = cli("submit", "--as-of", f"2021-02-{day:02d}", "--value", f"ktp_el={day}000/9000")
        assert down.code == 3, down
    cli.server.start()
    assert len(cli.queued()) == 6

    procs = [_spawn(cli.home, cli.server.url, "outbox", "flush", pipe=True) for _ in range(2)]
    results = [proc.communicate(timeout=60) for proc in procs]
    codes = [proc.returncode for proc in procs]
    assert codes == [0, 0], results
    assert cli.queued() == []
    assert await _count(conn) == 6
    assert await _count(conn, "SELECT count(DISTINCT as_of) FROM submissions") == 6


# -- item 3: many rows show a progress bar ------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_many_rows_on_a_terminal_show_a_progress_bar_by_default(
    cli: Cli, conn: asyncpg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    cli.enrol("kadis_palembang")
    rows = [
        {
            "district": DISTRICT,
            "as_of": f"2021-01-{day:02d}",
            "indicator": "ktp_el",
            "numerator": 5_000_000 + day,
            "denominator": 5_940_433,
        }
        for day in range(1, 6)
    ]
    rows_csv = _write_csv(tmp_path / "rows.csv", rows)
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    where = ["--home", str(cli.home), "--server", cli.server.url]
    code = main(["submit", "--file", str(rows_csv), *where])
    assert code == 0
    assert "5/5" in terminal.getvalue() and "[" in terminal.getvalue()
    assert await _count(conn) == 5

    one = _Terminal()
    monkeypatch.setattr("sys.stderr", one)
    code = main(["submit", *TYPED, *where])
    assert code == 0
    assert "1/1" not in one.getvalue()  # one row: no bar


# -- item 3: rows from files reach the server as written ---------------------------------


async def test_csv_and_json_rows_carry_channels_stated_figure_and_note_to_the_server(
    cli: Cli, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    cli.enrol("kadis_palembang")
    rows_csv = tmp_path / "februari.csv"
    rows_csv.write_text(
        "district,as_of,indicator,numerator,denominator,stated_pct,office,mobile,note\n"
        "16.71,2021-02-15,ktp_el,5545117,5940433,97.70,1200,300,alat perekam rusak\n"
        "16.71,2021-02-15,akta_lahir,401000,452000,,,,\n",
        encoding="utf-8",
    )
    assert cli("submit", "--file", str(rows_csv)).code == 0
    rows_json = tmp_path / "maret.json"
    rows_json.write_text(
        json.dumps(
            {
                "district": DISTRICT,
                "as_of": "2021-03-15",
                "note": "jemput bola",
                "values": {
                    "kia": {
                        "numerator": 10,
                        "denominator": 40,
                        "stated_pct": 25,
                        "channels": {"school": 7},
                    }
                },
            }
        )
    )
    assert cli("submit", "--file", str(rows_json)).code == 0

    got = await conn.fetch(
        "SELECT s.as_of::text, s.note, v.indicator_code, v.numerator, v.denominator,"
        " v.stated_pct, v.channels FROM submissions s"
        " JOIN submission_values v ON v.submission_id = s.id ORDER BY s.as_of, v.indicator_code"
    )

    def channels(value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    shaped = [
        (
            r["as_of"],
            r["note"],
            r["indicator_code"],
            r["numerator"],
            r["denominator"],
            None if r["stated_pct"] is None else float(r["stated_pct"]),
            channels(r["channels"]),
        )
        for r in got
    ]
    zero = dict.fromkeys(("office", "kecamatan", "mobile", "school", "hospital", "other"), 0)
    assert shaped == [
        ("2021-02-15", "alat perekam rusak", "akta_lahir", 401000, 452000, None, None),
        (
            "2021-02-15",
            "alat perekam rusak",
            "ktp_el",
            5545117,
            5940433,
            97.7,
            {**zero, "office": 1200, "mobile": 300},
        ),
        ("2021-03-15", "jemput bola", "kia", 10, 40, 25.0, {**zero, "school": 7}),
    ]


# -- item 2: init, login, register-key ---------------------------------------------------


async def test_init_makes_an_existing_open_folder_owner_only_and_login_caches_until_expiry(
    cli: Cli, conn: asyncpg.Connection
) -> None:
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    cli.home.mkdir(mode=0o755)
    cli.home.chmod(0o755)
    assert cli("init", "--username", "kadis_palembang").code == 0
    assert _mode(cli.home) == 0o700
    assert _mode(cli.home / "signing-key.pem") == 0o600

    before = time.time()
    logged = cli("login")
    assert logged.code == 0, logged
    cache = json.loads((cli.home / TOKEN_FILE).read_text())
    assert _mode(cli.home / TOKEN_FILE) == 0o600
    # Cached until the server's token expires (15 minutes by default), not longer.
    assert before + 14 * 60 < cache["expires_at"] <= time.time() + 15 * 60 + 1
    assert load_token(home=cli.home) == cache["token"]
    assert load_token(now=cache["expires_at"], home=cli.home) is None


async def test_a_wrong_password_is_refused_with_the_problem_and_caches_nothing(
    cli: Cli, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    assert cli("init", "--username", "kadis_palembang").code == 0
    monkeypatch.setenv("KINERJA_PASSWORD", "not the password")
    refused = cli("login")
    assert refused.code == 1, refused
    assert "HTTP 401" in refused.err and "Traceback" not in refused.err
    assert not (cli.home / TOKEN_FILE).exists()

    monkeypatch.setenv("KINERJA_PASSWORD", PASSWORD)
    assert cli("login").code == 0
    token = load_token(home=cli.home)
    # A later wrong password does not log out the session that works.
    monkeypatch.setenv("KINERJA_PASSWORD", "not the password")
    assert cli("login").code == 1
    assert load_token(home=cli.home) == token


async def test_register_key_refuses_a_key_registered_to_someone_else(
    cli: Cli, conn: asyncpg.Connection, server: Server, tmp_path: Path
) -> None:
    """The same key file copied to another head's computer: not "already registered to
    you", and the other account's key stays its own."""
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    await make_user(conn, "district_head", username="kadis_banyuasin", area_code="16.07")
    cli.enrol("kadis_palembang")

    other = Cli(cli.capsys, tmp_path / "other-home", server)
    assert other("init").code == 0
    (other.home / "signing-key.pem").write_bytes((cli.home / "signing-key.pem").read_bytes())
    assert other("login", "--username", "kadis_banyuasin").code == 0
    copied = other("register-key")
    assert copied.code == 1, copied
    assert "already registered to you" not in copied.out
    assert "HTTP 409" in copied.err
    owners = await conn.fetch(
        "SELECT u.username FROM signing_keys k JOIN users u ON u.id = k.owner_id"
    )
    assert [r["username"] for r in owners] == ["kadis_palembang"]


async def test_register_key_of_a_revoked_key_says_to_make_a_new_one(
    cli: Cli, conn: asyncpg.Connection
) -> None:
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    cli.enrol("kadis_palembang")
    await conn.execute("UPDATE signing_keys SET revoked_at = now()")
    again = cli("register-key")
    assert again.code == 1, again
    assert "revoked" in again.err and "init --force" in again.err
    assert cli("init", "--force").code == 0
    assert cli("register-key").code == 0
    assert await _count(conn, "SELECT count(*) FROM signing_keys WHERE revoked_at IS NULL") == 1


# -- item 4: scorecard and rankings --------------------------------------------------------


async def _ranked_province(conn: asyncpg.Connection, cli: Cli) -> Cli:
    """Palembang's head reports, South Sumatra has targets; the province monitor's CLI."""
    monitor = await make_user(conn, "province_monitor", username="monev_sumsel", area_code=PROVINCE)
    await _province_target(conn, monitor)
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    cli.enrol("kadis_palembang")
    assert cli("submit", *TYPED).code == 0
    monev = Cli(cli.capsys, cli.home.parent / "home-monev", cli.server)
    assert monev("login", "--username", "monev_sumsel").code == 0
    return monev


def _server_get(cli: Cli, path: str, params: dict[str, str], accept: str) -> httpx.Response:
    token = load_token(home=cli.home)
    return httpx.get(
        cli.server.url + path,
        params=params,
        headers={"Authorization": f"Bearer {token}", "Accept": accept},
        timeout=30,
    )


def _without_generated_at(doc: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    doc["method"].pop("generated_at", None)
    return doc


async def test_json_and_csv_print_what_the_server_answers(
    cli: Cli, conn: asyncpg.Connection
) -> None:
    monev = await _ranked_province(conn, cli)
    params = {"province": PROVINCE, "as_of": "2021-02-28", "indicator": "ktp_el"}
    args = ("rankings", "--province", PROVINCE, "--as-of", "2021-02-28", "--indicator", "ktp_el")

    as_json = monev(*args, "--json")
    assert as_json.code == 0, as_json
    direct = _server_get(monev, "/v1/rankings/districts", params, "application/json")
    assert _without_generated_at(json.loads(as_json.out)) == _without_generated_at(direct.json())

    as_csv = monev(*args, "--csv")
    assert as_csv.code == 0, as_csv
    direct_csv = _server_get(monev, "/v1/rankings/districts", params, "text/csv")
    assert direct_csv.headers["content-type"].startswith("text/csv")
    got = list(csv.reader(io.StringIO(as_csv.out)))
    want = list(csv.reader(io.StringIO(direct_csv.text)))
    assert got[0] == want[0] and len(got) == len(want) == 18

    table = monev(*args)
    assert table.code == 0, table
    assert "indicator ktp_el" in table.out and "Kota Palembang" in table.out
    assert "17 rows: 1 ranked, 16 without data" in table.out

    card = cli("scorecard", "--as-of", "2021-02-28", "--csv")
    assert card.code == 0, card
    header = next(csv.reader(io.StringIO(card.out)))
    assert any("coverage" in name for name in header), header
    card_json = cli("scorecard", "--as-of", "2021-02-28", "--json")
    direct_card = _server_get(
        cli, f"/v1/scorecards/districts/{DISTRICT}", {"as_of": "2021-02-28"}, "application/json"
    )
    assert _without_generated_at(json.loads(card_json.out)) == _without_generated_at(
        direct_card.json()
    )


async def test_reports_out_of_scope_or_refused_are_exit_1_with_the_problem(
    cli: Cli, conn: asyncpg.Connection
) -> None:
    monev = await _ranked_province(conn, cli)
    cases = [
        (cli, ("scorecard", "--district", OTHER_DISTRICT), "HTTP 404"),
        (cli, ("scorecard", "--district", "16.07"), "HTTP 404"),
        (monev, ("rankings", "--province", "31"), "HTTP 404"),
        (monev, ("rankings", "--province", PROVINCE, "--indicator", "no_such"), "HTTP 4"),
        (monev, ("rankings", "--province", PROVINCE, "--year", "1999"), "HTTP 400"),
        (monev, ("scorecard", "--district", "99.99"), "HTTP 404"),
    ]
    for runner, args, expected in cases:
        result = runner(*args)
        assert result.code == 1, (args, result)
        assert expected in result.err, (args, result.err)
        assert "Traceback" not in result.err
        assert result.out == "", (args, result.out)


async def test_the_scorecard_table_shows_the_numbers_the_server_computed(
    cli: Cli, conn: asyncpg.Connection
) -> None:
    await _ranked_province(conn, cli)
    card = cli("scorecard", "--as-of", "2021-02-28")
    assert card.code == 0, card
    assert "Kota Palembang (16.71)  year 2021, as of 2021-02-28, basis latest" in card.out
    line = next(row for row in card.out.splitlines() if row.startswith("ktp_el"))
    # 5,545,117 / 5,940,433 = 93.35 % against the province's 100 %: achievement 93.35.
    assert "5,545,117" in line and "5,940,433" in line and "93.35" in line and "100.00" in line
    assert "Composite: score 93.35" in card.out


# -- item 3: retried with backoff, against a server that comes back ----------------------


async def test_flush_wait_keeps_retrying_until_the_server_is_back_and_stores_once(
    cli: Cli, conn: asyncpg.Connection
) -> None:
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    cli.enrol("kadis_palembang")
    cli.server.stop()
    assert cli("submit", *TYPED).code == 3

    proc = _spawn(
        cli.home, cli.server.url, "outbox", "flush", "--wait", "90", "--timeout", "2", pipe=True
    )
    try:
        _until(lambda: False, proc, 3)  # a try or two while the link is still down
        cli.server.start()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (out, err)
    assert "1 stored, 0 rejected, 0 still queued" in out
    assert cli.queued() == []
    assert await _count(conn) == 1


# -- the README's walk-through, against the demo year -------------------------------------


async def test_the_readme_walk_through_runs_against_the_demo(
    cli: Cli,
    conn: asyncpg.Connection,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = "kinerja-demo-password"
    assert await seed(conn, settings, date.today(), password) is True
    monkeypatch.setenv("KINERJA_PASSWORD", password)
    before = await _count(conn)

    assert cli("init", "--username", "kadis_16.71").code == 0
    assert cli("login").code == 0
    assert cli("register-key").code == 0
    first = cli(
        "submit",
        "--as-of",
        "2021-02-15",
        "--value",
        "ktp_el=5545117/5940433",
        "--stated",
        "ktp_el=97.70",
        "--channel",
        "ktp_el.mobile=300",
        "--note",
        "alat perekam rusak",
    )
    assert first.code == 0, first
    assert "stated_mismatch" in first.out
    first_id = first.out.split(" id ", 1)[1].split()[0]

    februari = tmp_path / "februari.csv"
    februari.write_text(
        "district,as_of,indicator,numerator,denominator,stated_pct,mobile,note\n"
        "16.71,2021-02-15,ktp_el,5545117,5940433,97.70,300,alat perekam rusak\n"
        "16.71,2021-02-15,akta_lahir,401000,452000,,,\n"
    )
    from_file = cli("submit", "--file", str(februari))
    assert from_file.code == 0, from_file

    corrected = cli(
        "submit",
        "--as-of",
        "2021-02-15",
        "--value",
        "ktp_el=5545117/5940433",
        "--supersedes",
        first_id,
        "--reason",
        "salah ketik",
    )
    assert corrected.code == 0, corrected
    assert await _count(conn) == before + 3

    assert "The outbox is empty." in cli("outbox", "list").out
    assert cli("outbox", "flush").code == 0
    card = cli("scorecard", "--as-of", "2021-02-28")
    assert card.code == 0, card
    assert "Kota Palembang (16.71)" in card.out
    refused = cli("rankings", "--province", "16")
    assert refused.code == 1 and "HTTP 403" in refused.err

    province = Cli(cli.capsys, tmp_path / "home-kadis-16", cli.server)
    assert province("login", "--username", "kadis_16").code == 0
    ranked = province("rankings", "--province", "16")
    assert ranked.code == 0, ranked
    assert "17 rows" in ranked.out and "Kota Palembang" in ranked.out


# -- item 3: "never send one twice", with a key replaced while a stored report waited ----


class LoseSubmissionAnswers(httpx.BaseTransport):
    """Delivers each POST /v1/submissions, then drops the answer (a reset link)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path == "/v1/submissions":
            response.read()
            response.close()
            raise httpx.ReadError("connection reset before the answer arrived", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


async def test_a_stored_report_whose_key_was_revoked_is_not_signed_again_into_a_duplicate(
    cli: Cli, conn: asyncpg.Connection
) -> None:
    """Day 0: the report reaches the server, the answer is lost, it waits in the outbox.
    Then the office's old key is revoked and a new one registered, and the link stays
    down past the Idempotency-Key's 8 days. The flush must learn the report is stored
    (README: a stored report sent again is "already received"; only a report the server
    does not hold is signed again). Instead the server answers invalid-signature (the
    signature is checked before the jti), the client says "`outbox resign #` signs it
    again", and following that advice stores the same report a second time."""
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    cli.enrol("kadis_palembang")
    lost = cli("submit", *TYPED, transport=LoseSubmissionAnswers())
    assert lost.code == 3, lost
    assert await _count(conn) == 1  # stored; the client does not know
    [waiting] = cli.queued()

    # The old key is revoked and replaced; nine days pass (the idempotency record expires).
    await conn.execute("UPDATE signing_keys SET revoked_at = now()")
    assert cli("init", "--force").code == 0
    assert cli("register-key").code == 0
    await conn.execute("UPDATE idempotency_keys SET created_at = created_at - interval '9 days'")

    flushed = cli("outbox", "flush")
    if flushed.code == 1:  # refused: do what the client says
        with Outbox(cli.home / OUTBOX_FILE) as box:
            [rejected] = box.rejected()
        assert rejected.jws == waiting.jws
        assert f"outbox resign {rejected.id}" in flushed.out, flushed
        cli("outbox", "resign", str(rejected.id))
    assert await _count(conn) == 1, flushed.out
