"""What a district office met in the client, found by review: each test failed before its fix
(a traceback and a wrong exit code, a server hammered after it asked for a pause, a
refusal hidden, an unreachable database read as a broken ledger)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.cli import main
from client.config import save_token
from client.outbox import OUTBOX_FILE, Outbox

REPO = Path(__file__).resolve().parents[1]
SERVER = "http://127.0.0.1:9"  # never reached: every test below fails before or mocks it
SUBMIT = ["submit", "--district", "16.71", "--as-of", "2021-02-15", "--value", "ktp_el=1/2"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("KINERJA_SERVER", raising=False)
    monkeypatch.delenv("KINERJA_CLIENT_HOME", raising=False)
    folder = tmp_path / "kinerja-home"
    assert main(["init", "--home", str(folder), "--server", SERVER]) == 0
    return folder


def run(home: Path, *args: str, transport: httpx.BaseTransport | None = None) -> int:
    return main([*args, "--home", str(home), "--server", SERVER], transport=transport)


# 1. A corrupt outbox file: traceback and exit 1 ("the server refused"), not a setup error.
def test_a_corrupt_outbox_is_a_one_line_setup_error(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (home / OUTBOX_FILE).write_bytes(b"not an sqlite database\n" * 200)
    capsys.readouterr()
    assert run(home, *SUBMIT) == 2
    assert "outbox" in capsys.readouterr().err


# 2. A count with a superscript digit (a footnote mark pasted from a document).
def test_a_superscript_digit_in_a_count_is_a_usage_error(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = tmp_path / "februari.csv"
    rows.write_text(
        "district,as_of,indicator,numerator,denominator\n16.71,2021-02-15,ktp_el,5545117²,5940433\n",
        encoding="utf-8",
    )
    capsys.readouterr()
    assert run(home, "submit", "--file", str(rows)) == 2
    assert "februari.csv:2" in capsys.readouterr().err


# 3. A passphrase-protected key (openssl genpkey ... -aes256): TypeError traceback.
def test_an_encrypted_signing_key_is_a_one_line_setup_error(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"rahasia"),
    )
    key = home / "signing-key.pem"
    key.unlink()
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
    capsys.readouterr()
    assert run(home, *SUBMIT) == 2
    assert "signing-key.pem" in capsys.readouterr().err


# 4. A typo in the server's port: httpx.InvalidURL escapes (not an httpx.RequestError).
def test_a_server_url_with_a_bad_port_is_a_usage_error(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KINERJA_PASSWORD", "x" * 12)
    capsys.readouterr()
    code = main(
        ["login", "--username", "kadis", "--home", str(home), "--server", "http://127.0.0.1:80O0"]
    )
    assert code == 2
    assert "80O0" in capsys.readouterr().err


# 5. 503 + Retry-After on the first report: the client still fires every other one at once.
def test_a_retry_after_stops_the_batch_instead_of_sending_every_row_at_once(
    home: Path, tmp_path: Path
) -> None:
    save_token("t.e.st", 4_000_000_000, home=home)
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "district,as_of,indicator,numerator,denominator\n"
        + "".join(f"16.71,2021-02-{day:02d},ktp_el,1,2\n" for day in range(1, 21)),
        encoding="utf-8",
    )
    posts = []

    def busy(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        return httpx.Response(
            503,
            headers={"Retry-After": "120", "Content-Type": "application/problem+json"},
            json={"title": "Service unavailable", "status": 503},
        )

    assert run(home, "submit", "--file", str(rows), transport=httpx.MockTransport(busy)) == 3
    with Outbox(home / OUTBOX_FILE) as box:
        assert len(box.all()) == 20  # nothing lost
    assert len(posts) == 1, f"{len(posts)} POSTs after the server said Retry-After: 120"


# 6. `outbox flush` says the outbox is empty while it keeps a refused report.
def test_flush_does_not_call_an_outbox_holding_a_rejected_report_empty(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_token("t.e.st", 4_000_000_000, home=home)

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            422,
            headers={"Content-Type": "application/problem+json"},
            json={"title": "Unknown indicator", "type": "https://x/problems/unknown-indicator"},
        )

    assert run(home, *SUBMIT, transport=httpx.MockTransport(refuse)) == 1
    capsys.readouterr()
    assert run(home, "outbox", "flush") == 0
    out = capsys.readouterr().out
    assert "The outbox is empty." not in out, out


# 7. `kinerja ledger verify --all` with the database down: traceback and exit 1, which
#    the command documents as "a ledger is broken".
def test_ledger_verify_with_an_unreachable_database_does_not_report_a_broken_ledger() -> None:
    env = {**os.environ, "DATABASE_URL": "postgresql://kinerja@127.0.0.1:9/kinerja"}
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "ledger", "verify", "--all"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 1, result.stderr[-600:]
    assert "Traceback" not in result.stderr


# 8. `outbox flush` with the link down pays a connect timeout for every queued report
#    (submit stops at the first one: "no point waiting for a timeout per row").
def test_flush_stops_at_the_first_network_failure(home: Path) -> None:
    save_token("t.e.st", 4_000_000_000, home=home)
    attempts = []

    def down(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ConnectTimeout("timed out", request=request)

    for day in range(1, 21):
        args = [*SUBMIT[:4], f"2021-02-{day:02d}", *SUBMIT[5:]]
        assert run(home, *args, transport=httpx.MockTransport(down)) == 3
    assert len(attempts) == 20
    attempts.clear()
    assert run(home, "outbox", "flush", transport=httpx.MockTransport(down)) == 3
    assert len(attempts) == 1, f"{len(attempts)} connect timeouts in one flush"


# Found by reviewing the fixes above.


def _submit_offline(home: Path, days: list[int]) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down", request=request)

    for day in days:
        args = [*SUBMIT[:4], f"2021-02-{day:02d}", *SUBMIT[5:]]
        assert run(home, *args, transport=httpx.MockTransport(down)) == 3


def test_flush_wait_counts_a_retry_after_from_the_answer(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pause was counted from the start of the flush: after a slow first report it was
    already over when set, and --wait sent again at once."""
    save_token("t.e.st", 4_000_000_000, home=home)
    _submit_offline(home, [1, 2])
    clock = [time.time() + 1000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    monkeypatch.setattr(time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    seen: list[tuple[str, float]] = []
    busy_at: list[float] = []

    def server(request: httpx.Request) -> httpx.Response:
        key = request.headers["Idempotency-Key"]
        seen.append((key, clock[0]))
        if key == seen[0][0]:
            clock[0] += 30.0  # a slow upload
            return httpx.Response(201, json={"id": "a"})
        if not busy_at:
            busy_at.append(clock[0])
            return httpx.Response(503, headers={"Retry-After": "10"}, json={"title": "busy"})
        return httpx.Response(201, json={"id": "b"})

    transport = httpx.MockTransport(server)
    assert run(home, "outbox", "flush", "--wait", "300", transport=transport) == 0
    second = [t for k, t in seen if k == seen[-1][0]]
    assert len(second) == 2
    assert second[1] >= busy_at[0] + 10


def test_a_scheduled_flush_keeps_the_pause_the_server_asked_for(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pause lived only in the process that heard it: flush --due 10 s into a 120 s
    Retry-After sent the next report at once."""
    save_token("t.e.st", 4_000_000_000, home=home)
    clock = [time.time()]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "district,as_of,indicator,numerator,denominator\n"
        + "".join(f"16.71,2021-02-{d:02d},ktp_el,1,2\n" for d in (1, 2, 3)),
        encoding="utf-8",
    )
    posts: list[float] = []

    def busy(request: httpx.Request) -> httpx.Response:
        posts.append(clock[0])
        return httpx.Response(503, headers={"Retry-After": "120"}, json={"title": "busy"})

    assert run(home, "submit", "--file", str(rows), transport=httpx.MockTransport(busy)) == 3
    clock[0] += 10.0
    assert run(home, "outbox", "flush", "--due", transport=httpx.MockTransport(busy)) == 3
    assert len(posts) == 1
    clock[0] += 115.0
    assert run(home, "outbox", "flush", "--due", transport=httpx.MockTransport(busy)) == 3
    assert len(posts) == 2


def test_a_busy_outbox_is_not_called_unreadable(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A locked outbox (another client's scheduled flush) was reported as unreadable,
    with advice to move it aside: that would split the queue."""
    Outbox(home / OUTBOX_FILE).close()
    other = sqlite3.connect(home / OUTBOX_FILE, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    try:
        capsys.readouterr()
        code = run(home, "outbox", "flush")
    finally:
        other.execute("ROLLBACK")
        other.close()
    err = capsys.readouterr().err
    assert code == 2
    assert "move it aside" not in err and "another kinerja-client" in err


def _busy(retry_after: str) -> httpx.MockTransport:
    return httpx.MockTransport(
        lambda _: httpx.Response(503, headers={"Retry-After": retry_after}, json={"title": "busy"})
    )


def test_a_huge_retry_after_is_a_pause_of_a_day_at_most(home: Path) -> None:
    """'Retry-After: 999999999999' was kept as is: 'outbox list' then raised 'year 33715 is
    out of range' for ever, and 400 digits (infinity to float) crashed submit itself."""
    save_token("t.e.st", 4_000_000_000, home=home)
    assert run(home, *SUBMIT, transport=_busy("9" * 400)) == 3
    assert run(home, "outbox", "flush", transport=_busy("999999999999")) == 3
    assert run(home, "outbox", "list") == 0
    with Outbox(home / OUTBOX_FILE) as box:
        (item,) = box.all()
        assert item.next_attempt_at <= time.time() + 86_400 + 60


@pytest.mark.parametrize(
    ("name", "content"),
    [
        # int() refuses over 4,300 digits with an error of its own
        (
            "rows.csv",
            "district,as_of,indicator,numerator,denominator\n"
            f"16.71,2021-02-15,ktp_el,{'9' * 5000},10\n",
        ),
        (
            "rows.json",
            '{"district": "16.71", "as_of": "2021-02-15", "values": {"ktp_el": {"numerator": '
            + "9" * 5000
            + ', "denominator": 1}}}',
        ),
        ("rows.json", "[" * 100_000 + "]" * 100_000),  # RecursionError
        # a quote never closed: the rest of the file is one field, over csv's size limit
        (
            "rows.csv",
            'district,as_of,indicator,numerator,denominator,note\n16.71,2021-02-14,ktp_el,1,2,"unclosed\n'
            + "".join(f"16.71,2021-02-15,i{i},1,2,n {i}\n" for i in range(6000)),
        ),
    ],
)
def test_a_row_file_that_does_not_parse_is_a_usage_error(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: str
) -> None:
    """Each of these ended in a traceback (exit 1, which means 'the server refused')."""
    rows = tmp_path / name
    rows.write_text(content, encoding="utf-8")
    assert run(home, "submit", "--file", str(rows)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{name}" in err, err[-500:]


def test_counts_and_waits_from_the_command_line_are_checked(home: Path) -> None:
    """A 5,000-digit --value crashed in int(); --wait nan made flush loop for ever."""
    assert run(home, "submit", "--district", "16.71", "--value", f"ktp_el={'9' * 5000}/1") == 2
    assert run(home, "outbox", "flush", "--wait", "nan") == 2


# Found in the closing review of the client (each failed before its fix).


def _rows(tmp_path: Path, days: tuple[int, ...]) -> Path:
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "district,as_of,indicator,numerator,denominator\n"
        + "".join(f"16.71,2021-02-{d:02d},ktp_el,1,2\n" for d in days),
        encoding="utf-8",
    )
    return rows


def test_a_flush_asked_for_by_hand_keeps_the_pause_the_server_asked_for(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only a scheduled flush (--due) waited: `outbox flush` 10 s into a 120 s Retry-After
    sent every queued report at once."""
    save_token("t.e.st", 4_000_000_000, home=home)
    clock = [time.time()]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    posts: list[float] = []

    def busy(request: httpx.Request) -> httpx.Response:
        posts.append(clock[0])
        if clock[0] < posts[0] + 120:
            return httpx.Response(503, headers={"Retry-After": "120"}, json={"title": "busy"})
        return httpx.Response(201, json={"id": str(len(posts))})

    server = httpx.MockTransport(busy)
    assert run(home, "submit", "--file", str(_rows(tmp_path, (1, 2, 3))), transport=server) == 3
    clock[0] += 10.0
    capsys.readouterr()
    assert run(home, "outbox", "flush", transport=server) == 3
    assert len(posts) == 1
    assert "pause" in capsys.readouterr().err
    clock[0] += 115.0
    assert run(home, "outbox", "flush", transport=server) == 0
    assert len(posts) == 4


def test_flush_now_ends_the_pause_the_server_asked_for(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A person who knows the server is back (its maintenance ended early) sends at once
    with --now instead of waiting out a pause of up to a day; without it nothing goes."""
    save_token("t.e.st", 4_000_000_000, home=home)
    clock = [time.time()]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    posts: list[float] = []
    up = [False]

    def maintenance(request: httpx.Request) -> httpx.Response:
        posts.append(clock[0])
        if not up[0]:
            return httpx.Response(503, headers={"Retry-After": "3600"}, json={"title": "down"})
        return httpx.Response(201, json={"id": str(len(posts))})

    server = httpx.MockTransport(maintenance)
    assert run(home, "submit", "--file", str(_rows(tmp_path, (1, 2))), transport=server) == 3
    assert len(posts) == 1
    up[0] = True
    clock[0] += 60.0
    assert run(home, "outbox", "flush", transport=server) == 3
    assert len(posts) == 1, "the pause holds without --now"
    capsys.readouterr()
    assert run(home, "outbox", "flush", "--now", transport=server) == 0
    assert len(posts) == 3
    assert "is ended" in capsys.readouterr().err
    with Outbox(home / OUTBOX_FILE) as box:
        assert box.all() == [] and box.held_until() is None


def test_a_report_submitted_during_a_pause_waits_for_its_end(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A submit after a Retry-After sent its report at once, and the list said every report
    it had not tried yet was due 'now'."""
    save_token("t.e.st", 4_000_000_000, home=home)
    clock = [time.time()]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    posts: list[httpx.Request] = []

    def busy(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        return httpx.Response(503, headers={"Retry-After": "600"}, json={"title": "busy"})

    server = httpx.MockTransport(busy)
    assert run(home, "submit", "--file", str(_rows(tmp_path, (1, 2))), transport=server) == 3
    clock[0] += 5.0
    assert run(home, *SUBMIT, transport=server) == 3
    assert len(posts) == 1
    with Outbox(home / OUTBOX_FILE) as box:
        items = box.all()
    assert len(items) == 3
    assert all(item.next_attempt_at >= clock[0] + 590 for item in items)
    capsys.readouterr()
    assert run(home, "outbox", "list") == 0
    table = capsys.readouterr().out
    assert " now " not in table, table


@pytest.mark.parametrize("command", ["submit", "flush"])
def test_a_refused_session_is_exit_2_as_documented(home: Path, command: str) -> None:
    """A 401 (the session expired) left the reports queued, as it should, but exited 3
    ('server unreachable'), where the README gives 2 for 'not logged in': a script would
    retry for ever what only a person logging in mends."""
    posts: list[httpx.Request] = []

    def expired(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        return httpx.Response(401, json={"title": "Unauthorized"})

    server = httpx.MockTransport(expired)
    if command == "flush":
        assert run(home, *SUBMIT) == 2  # never logged in: queued, nothing sent
        assert not posts
    save_token("t.e.st", 4_000_000_000, home=home)
    args = SUBMIT if command == "submit" else ["outbox", "flush"]
    assert run(home, *args, transport=server) == 2
    assert len(posts) == 1
    with Outbox(home / OUTBOX_FILE) as box:
        assert len(box.all()) == 1
