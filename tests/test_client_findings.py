"""The district client, second review: each test failed before its fix."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from client.config import save_token
from client.outbox import OUTBOX_FILE, Outbox
from client.rows import RowError, parse_csv
from tests.test_client_robustness import SERVER, SUBMIT, _rows, main, run
from tests.test_client_robustness import home as home  # the fixture, shared


# 1. A 429 without Retry-After: the server said "too many requests", and the client fires
#    every remaining row of the file at it anyway (and a flush does the same).
@pytest.mark.parametrize("command", ["submit", "flush"])
def test_a_429_without_retry_after_stops_the_batch(
    home: Path, tmp_path: Path, command: str
) -> None:
    save_token("t.e.st", 4_000_000_000, home=home)
    posts: list[httpx.Request] = []

    def limited(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        return httpx.Response(429, json={"title": "Too many requests", "status": 429})

    server = httpx.MockTransport(limited)
    rows = _rows(tmp_path, tuple(range(1, 11)))
    if command == "flush":
        down = httpx.MockTransport(lambda r: (_ for _ in ()).throw(httpx.ConnectError("down")))
        assert run(home, "submit", "--file", str(rows), transport=down) == 3
        assert run(home, "outbox", "flush", transport=server) == 3
    else:
        assert run(home, "submit", "--file", str(rows), transport=server) == 3
    with Outbox(home / OUTBOX_FILE) as box:
        assert len(box.all()) == 10
    assert len(posts) == 1, f"{len(posts)} reports sent after a 429"


# 2. A redirect (the server moved to https): README gives exit 2 for a wrong server URL, but
#    the client calls it "unreachable or failing" (exit 3) and never says where it moved.
def test_a_redirect_is_a_server_url_problem_not_a_failing_server(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_token("t.e.st", 4_000_000_000, home=home)
    moved = httpx.MockTransport(
        lambda r: httpx.Response(
            301, headers={"Location": "https://kinerja.example.go.id/v1/submissions"}
        )
    )
    capsys.readouterr()
    code = run(home, *SUBMIT, transport=moved)
    captured = capsys.readouterr()
    assert "https://kinerja.example.go.id" in captured.out + captured.err
    assert code == 2


# 3. A captive portal (hotel/office Wi-Fi login page, 200 text/html) answering the scorecard:
#    the client prints an empty scorecard ("? (?) ... no score") and exits 0.
@pytest.mark.parametrize("fmt", [[], ["--json"]])
def test_a_scorecard_from_a_captive_portal_is_not_success(
    home: Path, capsys: pytest.CaptureFixture[str], fmt: list[str]
) -> None:
    save_token("t.e.st", 4_000_000_000, home=home)
    portal = httpx.MockTransport(
        lambda r: httpx.Response(
            200,
            headers={"Content-Type": "text/html"},
            content=b"<html><body>Login to Wi-Fi</body></html>",
        )
    )
    capsys.readouterr()
    code = run(home, "scorecard", "--district", "16.71", *fmt, transport=portal)
    assert code != 0, capsys.readouterr().out


# 4. A config folder that cannot be used (KINERJA_CLIENT_HOME / --home naming a file, a
#    mistyped path): a Python traceback with exit 1 ("the server refused"), not exit 2.
def test_a_home_that_is_a_file_is_a_setup_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KINERJA_SERVER", raising=False)
    monkeypatch.delenv("KINERJA_CLIENT_HOME", raising=False)
    not_a_folder = tmp_path / "kinerja.txt"
    not_a_folder.write_text("x")
    try:
        code = main(["outbox", "list", "--home", str(not_a_folder), "--server", SERVER])
    except OSError as exc:  # escapes main: the console script prints a traceback, exit 1
        pytest.fail(f"traceback: {exc!r}")
    assert code == 2


# 5. The pause is stored as an absolute local time and never bounded when read: a pause
#    heard while the office PC's clock was a year ahead (then corrected) blocks every flush
#    and submit for a year, where README says "a day at most, whatever it asked".
def test_a_pause_heard_under_a_wrong_clock_lasts_a_day_at_most(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_token("t.e.st", 4_000_000_000, home=home)
    real = time.time()
    clock = [real + 365 * 86_400]  # the clock is a year ahead
    monkeypatch.setattr(time, "time", lambda: clock[0])
    busy = httpx.MockTransport(
        lambda r: httpx.Response(503, headers={"Retry-After": "120"}, json={"title": "busy"})
    )
    assert run(home, *SUBMIT, transport=busy) == 3
    clock[0] = real + 2 * 86_400  # clock corrected; two days later
    posts: list[httpx.Request] = []

    def ok(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        return httpx.Response(201, json={"id": "a"})

    assert run(home, "outbox", "flush", transport=httpx.MockTransport(ok)) == 0
    assert len(posts) == 1


# 6. A ';' file from a spreadsheet in an Indonesian locale (the reason it uses ';') writes
#    decimals with a comma: README says such files are fine, but every stated_pct is refused.
def test_a_semicolon_file_with_a_decimal_comma() -> None:
    text = (
        "district;as_of;indicator;numerator;denominator;stated_pct\r\n"
        "16.71;2021-02-15;ktp_el;5545117;5940433;97,70\r\n"
    )
    (report,) = parse_csv(text, "februari.csv")
    assert report.values["ktp_el"]["stated_pct"] == pytest.approx(97.70)


# 7. A spreadsheet export with trailing empty columns (a cell once touched to the right):
#    refused with "unknown column(s) , " -- an empty, unreadable column list.
def test_trailing_empty_columns_from_a_spreadsheet() -> None:
    text = (
        "district;as_of;indicator;numerator;denominator;;\r\n"
        "16.71;2021-02-15;ktp_el;5545117;5940433;;\r\n"
    )
    try:
        (report,) = parse_csv(text, "februari.csv")
    except RowError as exc:
        pytest.fail(f"refused: {exc}")
    assert report.values["ktp_el"]["numerator"] == 5545117


# 8. A blank line before the header: refused as "empty file" although it holds rows (blank
#    lines elsewhere are skipped).
def test_a_blank_line_before_the_header_is_not_an_empty_file() -> None:
    text = "\ndistrict,as_of,indicator,numerator,denominator\n16.71,2021-02-15,ktp_el,1,2\n"
    try:
        (report,) = parse_csv(text, "februari.csv")
    except RowError as exc:
        assert "empty file" not in str(exc), str(exc)
        return
    assert report.values["ktp_el"]["numerator"] == 1


# 9. Duplicate rows: the CSV reader refuses an indicator given twice for one district and
#    date, but a JSON file holding the same report twice (a copy-paste) becomes two
#    submissions, each with its own jti and key: the server stores the report twice.
def test_a_json_file_with_the_same_report_twice_is_refused() -> None:
    from client.rows import parse_json

    one = (
        '{"district": "16.71", "as_of": "2021-02-15",'
        ' "values": {"ktp_el": {"numerator": 1, "denominator": 2}}}'
    )
    with pytest.raises(RowError):
        parse_json(f"[{one}, {one}]", "februari.json")


# 10. Two client processes on one outbox (a scheduled flush and one by hand): the server
#     refuses a report (422) for one of them while the other's attempt times out; the
#     timeout overwrites the refusal's reason, so `outbox list` shows "Rejected ... Why:
#     ReadTimeout" and the head never learns what to correct.
def test_a_late_failure_from_another_process_keeps_the_rejection_reason(home: Path) -> None:
    with Outbox(home / OUTBOX_FILE) as box:
        box.put("a.b.c", "k1")
        box.mark_rejected("k1", "HTTP 422: The as-of date is in the future")
        box.mark_failed("k1", "ReadTimeout")  # the other process's attempt, answered later
        (item,) = box.rejected()
    assert item.last_error == "HTTP 422: The as-of date is in the future"


def test_json_entries_may_split_one_date_across_indicators() -> None:
    """Only an indicator given twice is refused: two entries for one district and date
    with different indicators are two reports, as before."""
    from client.rows import parse_json

    text = (
        '[{"district": "16.71", "as_of": "2021-02-15",'
        ' "values": {"ktp_el": {"numerator": 1, "denominator": 2}}},'
        ' {"district": "16.71", "as_of": "2021-02-15",'
        ' "values": {"kia": {"numerator": 1, "denominator": 2}}}]'
    )
    assert [sorted(r.values) for r in parse_json(text, "f.json")] == [["ktp_el"], ["kia"]]


def test_lines_after_skipped_blank_lines_keep_their_numbers() -> None:
    text = "\n\ndistrict,as_of,indicator,numerator,denominator\n16.71,2021-02-15,ktp_el,x,2\n"
    with pytest.raises(RowError, match=r"februari\.csv:4"):
        parse_csv(text, "februari.csv")


def test_init_saves_the_server_named_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: `export KINERJA_SERVER=...`, then `init`: it printed and saved the default
    server instead (found running the README end to end)."""
    from client.config import load_config

    monkeypatch.setenv("KINERJA_SERVER", "http://127.0.0.1:8765")
    folder = tmp_path / "home"
    assert main(["init", "--home", str(folder), "--username", "kadis"]) == 0
    assert "http://127.0.0.1:8765" in capsys.readouterr().out
    monkeypatch.delenv("KINERJA_SERVER")
    assert load_config(folder).base_url == "http://127.0.0.1:8765"


def test_one_queued_report_waits(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_token("t.e.st", 4_000_000_000, home=home)
    down = httpx.MockTransport(lambda r: (_ for _ in ()).throw(httpx.ConnectError("down")))
    assert run(home, *SUBMIT, transport=down) == 3
    assert "1 report waits in the outbox" in capsys.readouterr().err
