"""The district client and the operator CLI: findings of a review, each failed before
its fix."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from client.config import save_token
from client.outbox import OUTBOX_FILE, Outbox
from client.rows import RowError, parse_csv, parse_json
from tests.test_client_robustness import SUBMIT, _rows, main, run
from tests.test_client_robustness import home as home  # the fixture, shared

# -- client: exit codes ------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["login", "--username", "kadis"],
        ["scorecard", "--district", "16.71"],
        ["rankings", "--province", "16"],
        ["register-key"],
    ],
)
def test_a_redirect_outside_submit_is_a_server_address_problem(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    """README exit 2: "a server address that answers with a redirect". submit and flush say
    so; login, scorecard, rankings and register-key say "the server failed (HTTP 301); try
    again later" and exit 3, and never name where it moved."""
    save_token("t.e.st", 4_000_000_000, home=home)
    monkeypatch.setenv("KINERJA_PASSWORD", "a-long-password")
    moved = httpx.MockTransport(
        lambda r: httpx.Response(301, headers={"Location": "https://kinerja.example.go.id/"})
    )
    capsys.readouterr()
    code = run(home, *command, transport=moved)
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert "https://kinerja.example.go.id" in captured.out + captured.err


@pytest.mark.parametrize("url", ["http://", "https://:8000", "http://127.0.0.1:80000"])
def test_a_server_url_without_a_host_is_a_usage_error(
    home: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    """README exit 2: "bad arguments, server URL". A URL with no host, or a port over
    65535 (ClientConfig's own docstring: "a mistyped port"), passes the check in
    ClientConfig; the report is signed, queued and "the server is unreachable" (exit 3),
    so a scheduled flush retries it for ever."""
    save_token("t.e.st", 4_000_000_000, home=home)
    code = main([*SUBMIT, "--home", str(home), "--server", url])
    assert code == 2, capsys.readouterr().err


def test_server_flag_wins_over_a_bad_address_in_the_settings_file(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: "The server is `--server`, else `$KINERJA_SERVER`, else the one saved".
    A config.json whose base_url fails today's check (hand-edited `localhost:8000`, or
    saved before the check) stops every command, `outbox list` and `init --force`
    included, whatever --server says, and the message does not name the file."""
    (home / "config.json").write_text('{"base_url": "localhost:8000", "username": "kadis"}')
    capsys.readouterr()
    code = run(home, "outbox", "list")
    assert code == 0, capsys.readouterr().err


# -- client: row files --------------------------------------------------------------------


def test_a_json_indicator_given_twice_in_one_values_object_is_refused() -> None:
    """README: "an indicator given twice for one district and date is refused, in JSON
    files too". Twice inside one `values` object, json.loads keeps the last silently
    (and the server itself refuses a member named twice)."""
    text = (
        '{"district": "16.71", "as_of": "2021-02-15", "values": {'
        '"ktp_el": {"numerator": 5545117, "denominator": 5940433},'
        '"ktp_el": {"numerator": 1, "denominator": 2}}}'
    )
    with pytest.raises(RowError):
        parse_json(text, "februari.json")


# -- client: the pause and `outbox flush --now` ---------------------------------------------


def test_flush_now_ends_the_pause_for_the_reports_it_did_not_reach(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: "`outbox flush --now` ends the pause early". `hold` wrote the pause into
    every waiting item's next_attempt_at and `release` deletes only the hold row: when
    the --now flush stops at its first report (link down again), the reports it did not
    reach keep the old pause, so the scheduled `flush --due` (and `outbox list`) still
    wait out the hour the person just ended."""
    save_token("t.e.st", 4_000_000_000, home=home)
    clock = [time.time()]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    state = ["maintenance"]
    posts: list[float] = []

    def server(request: httpx.Request) -> httpx.Response:
        posts.append(clock[0])
        if state[0] == "maintenance":
            return httpx.Response(503, headers={"Retry-After": "3600"}, json={"title": "down"})
        if state[0] == "unreachable":
            raise httpx.ConnectError("no route to host")
        return httpx.Response(201, json={"id": str(len(posts))})

    transport = httpx.MockTransport(server)
    assert run(home, "submit", "--file", str(_rows(tmp_path, (1, 2))), transport=transport) == 3
    state[0] = "unreachable"
    clock[0] += 60.0
    assert run(home, "outbox", "flush", "--now", transport=transport) == 3
    state[0] = "up"
    clock[0] += 300.0  # five minutes on: the first report's own backoff (2 s) is long over
    with Outbox(home / OUTBOX_FILE) as box:
        assert box.held_until() is None  # the pause is ended, says the outbox
        waiting = {item.id: item.next_attempt_at for item in box.all()}
    assert all(due <= clock[0] for due in waiting.values()), (
        f"reports still paused until +{max(waiting.values()) - clock[0]:.0f} s"
    )
    assert run(home, "outbox", "flush", "--due", transport=transport) == 0


def test_flush_now_with_due_sends_the_reports_the_pause_held(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`outbox flush --now --due` prints "the pause ... is ended", then sends nothing: the
    untried reports are "not due" only because of that pause."""
    save_token("t.e.st", 4_000_000_000, home=home)
    clock = [time.time()]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    up = [False]
    posts: list[float] = []

    def server(request: httpx.Request) -> httpx.Response:
        posts.append(clock[0])
        if not up[0]:
            return httpx.Response(503, headers={"Retry-After": "3600"}, json={"title": "down"})
        return httpx.Response(201, json={"id": str(len(posts))})

    transport = httpx.MockTransport(server)
    assert run(home, "submit", "--file", str(_rows(tmp_path, (1, 2))), transport=transport) == 3
    up[0] = True
    clock[0] += 900.0  # past the first report's own backoff (the cap is 600 s)
    capsys.readouterr()
    code = run(home, "outbox", "flush", "--now", "--due", transport=transport)
    err = capsys.readouterr().err
    assert "is ended" in err
    assert len(posts) == 3 and code == 0, f"{len(posts) - 1} sent after --now; exit {code}"


# -- operator CLI ----------------------------------------------------------------------------


def _operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("KINERJA_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("DATABASE_URL", raising=False)


def test_a_database_url_port_out_of_range_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`_bad_port` refuses a port that is not a number, but a number over 65535 (a typo:
    54320) reaches asyncpg, whose socket code raises OverflowError: a traceback, exit 1
    (which `db migrate` uses for "migrations refused")."""
    from api import cli

    _operator_env(monkeypatch)
    monkeypatch.setenv("DATABASE_URL", "postgresql://kinerja@127.0.0.1:99999/kinerja")
    try:
        code = cli.main(["db", "migrate"])
    except OverflowError as exc:
        pytest.fail(f"traceback instead of a one-line error: {exc!r}")
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_an_unknown_log_level_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """KINERJA_LOG_LEVEL=verbose is accepted by the settings, then `configure_logging`
    raises ValueError("Unknown level") in uvicorn's app factory: `kinerja serve` migrates,
    prints "Kinerja serving on ...", then dies with a traceback (exit 1)."""
    import msgspec

    from api.settings import settings_from_env

    with pytest.raises((msgspec.ValidationError, ValueError)):
        settings_from_env({"KINERJA_LOG_LEVEL": "verbose"})


def test_serve_refuses_a_port_flag_out_of_range(monkeypatch: pytest.MonkeyPatch) -> None:
    """KINERJA_PORT=70000 is refused (0-65535), but `kinerja serve --port 70000` is not:
    it prints "serving on http://127.0.0.1:70000" and listens on 4464 (70000 - 65536),
    checked by hand: `curl localhost:4464/health/ready` answers."""
    import uvicorn

    from api import cli

    _operator_env(monkeypatch)
    monkeypatch.setenv("DATABASE_URL", "postgresql://kinerja@127.0.0.1:1/kinerja")
    monkeypatch.setenv("KINERJA_MIGRATE_ON_START", "false")
    started: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: started.append(k))
    with pytest.raises(SystemExit) as refused:  # argparse's usage error
        cli.main(["serve", "--port", "70000"])
    assert refused.value.code == 2
    assert started == [], f"uvicorn started on port {started[0]['port']}"


def test_a_csv_column_named_twice_is_refused() -> None:
    """Two columns with one name (a numerator column pasted twice): the reader keeps the
    last silently, and the client signs 7 of 10 where the first column said 5."""
    text = (
        "district,as_of,indicator,numerator,denominator,numerator\n16.71,2021-02-15,ktp_el,5,10,7\n"
    )
    with pytest.raises(RowError):
        parse_csv(text, "februari.csv")
