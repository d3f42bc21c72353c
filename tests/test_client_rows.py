"""The client's row files, terminal rendering, outbox-flush details and CLI usage errors.

No server: row parsing and rendering are pure, the transport talks to an
``httpx.MockTransport``, and the CLI cases fail before any request is made.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from client import render
from client.cli import main
from client.config import save_token
from client.files import HOME_ENV
from client.outbox import Outbox
from client.rows import RowError, parse_csv, parse_json, read_reports
from client.transport import classify, flush

PROBLEMS = "https://kinerja.dukcapil.example/problems/"


# -- CSV ------------------------------------------------------------------------------


def test_csv_lines_group_into_one_submission_per_district_and_date() -> None:
    text = (
        "district,as_of,indicator,numerator,denominator,stated_pct,office,mobile,note\n"
        "16.71,2021-02-15,ktp_el,5545117,5940433,97.70,1200,300,alat rusak\n"
        "16.72,2021-02-15,ktp_el,100,200,,,,\n"
        "16.71,2021-02-15,akta_lahir,401_000,452000,,,,\n"
        "\n"
        "16.71,2021-01-31,ktp_el,5500000,5940433,,,,\n"
    )
    reports = parse_csv(text, "rows.csv")
    assert [(r.district, r.as_of) for r in reports] == [
        ("16.71", date(2021, 2, 15)),
        ("16.72", date(2021, 2, 15)),
        ("16.71", date(2021, 1, 31)),
    ]
    first = reports[0]
    assert first.values == {
        "ktp_el": {
            "numerator": 5545117,
            "denominator": 5940433,
            "stated_pct": 97.70,
            "channels": {"office": 1200, "mobile": 300},
        },
        "akta_lahir": {"numerator": 401000, "denominator": 452000},
    }
    assert first.note == "alat rusak"
    assert reports[1].note is None
    assert [r.source for r in reports] == ["rows.csv:2-4", "rows.csv:3", "rows.csv:6"]


def test_csv_from_a_spreadsheet_with_bom_and_semicolons(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(
        "\ufeffdistrict;as_of;indicator;numerator;denominator\n"
        "16.71;2021-02-15;kia;10;20\n".encode()
    )
    [report] = read_reports(path)
    assert report.values == {"kia": {"numerator": 10, "denominator": 20}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("district,as_of,indicator,numerator\n", "missing column(s) denominator"),
        (
            "district,as_of,indicator,numerator,denominator,percent\n",
            "unknown column(s) percent",
        ),
        ("district,as_of,indicator,numerator,denominator\n", "no rows"),
        (
            "district,as_of,indicator,numerator,denominator\n16.71,15/02/2021,kia,1,2\n",
            "rows.csv:2: as_of must be a date",
        ),
        (
            "district,as_of,indicator,numerator,denominator\n16.71,2021-02-15,kia,1.5,2\n",
            "rows.csv:2: numerator: expected a whole number",
        ),
        (
            "district,as_of,indicator,numerator,denominator\n16.71,2021-02-15,kia,-1,2\n",
            "expected a whole number >= 0",
        ),
        (
            "district,as_of,indicator,numerator,denominator\n16.71,2021-02-15,,1,2\n",
            "indicator is empty",
        ),
        (
            "district,as_of,indicator,numerator,denominator\n"
            "16.71,2021-02-15,kia,1,2\n16.71,2021-02-15,kia,3,4\n",
            "rows.csv:3: kia given twice",
        ),
        (
            "district,as_of,indicator,numerator,denominator,note\n"
            "16.71,2021-02-15,kia,1,2,a\n16.71,2021-02-15,ktp_el,3,4,b\n",
            "a different note",
        ),
        (
            "district,as_of,indicator,numerator,denominator\n16.71,2021-02-15,kia,1,2,9\n",
            "more values than columns",
        ),
        (
            "district,as_of,indicator,numerator,denominator,stated_pct\n"
            "16.71,2021-02-15,kia,1,2,97,7\n",
            "more values than columns",
        ),
    ],
)
def test_csv_mistakes_are_named_with_their_line(text: str, message: str) -> None:
    with pytest.raises(RowError, match=r"rows\.csv") as caught:
        parse_csv(text, "rows.csv")
    assert message in str(caught.value)


# -- JSON -----------------------------------------------------------------------------


def test_json_object_or_list() -> None:
    one = {
        "district": "16.71",
        "as_of": "2021-02-15",
        "values": {"ktp_el": {"numerator": 1, "denominator": 2, "channels": {"school": 3}}},
        "note": "n",
        "supersedes": {"id": "9b2f7c7e-1111-4a4a-9a9a-222222222222", "reason": "typo"},
    }
    [report] = parse_json(json.dumps(one), "r.json")
    assert report.values["ktp_el"]["channels"] == {"school": 3}
    assert report.supersedes == one["supersedes"] and report.note == "n"
    assert len(parse_json(json.dumps([one, {**one, "as_of": "2021-01-31"}]), "r.json")) == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("[]", "no rows"),
        ("{", "not valid JSON"),
        ("[1]", "r.json[1]: expected an object"),
        ('{"district": "16.71", "as_of": "2021-02-15"}', "values is required"),
        ('{"district": "16.71", "as_of": "2021-02-15", "values": {}}', "non-empty object"),
        ('{"district": 16.71, "as_of": "2021-02-15", "values": {"k": [1, 2]}}', "string"),
        ('{"district": "16.71", "as_of": "x", "values": {"k": [1, 2]}}', "as_of must be a date"),
        (
            '{"district": "16.71", "as_of": "2021-02-15", "values": {"k": [1, 2]}, "x": 1}',
            "unknown key(s) x",
        ),
    ],
)
def test_json_mistakes(data: str, message: str) -> None:
    with pytest.raises(RowError) as caught:
        parse_json(data, "r.json")
    assert message in str(caught.value)


# -- rendering ------------------------------------------------------------------------


def test_table_pads_and_right_aligns_numbers() -> None:
    out = render.table(("Code", "Count"), [("a", render.count(5545117)), ("bb", "7")], right=(1,))
    assert out.splitlines() == [
        "Code      Count",
        "----  ---------",
        "a     5,545,117",
        "bb            7",
    ]


def test_ranking_text_shows_ranked_and_unranked_rows() -> None:
    brief = {"coverage": 93.3512, "target": 100.0, "achievement": 93.35}
    doc: dict[str, Any] = {
        "kind": "districts",
        "province": "16",
        "method": {"indicator": "composite", "year": 2021, "as_of": "2021-02-28"},
        "counts": {"rows": 2, "ranked": 1, "no_data": 1, "no_target": 0},
        "rows": [
            {
                "code": "16.71",
                "name": "Kota Palembang",
                "status": "ranked",
                "rank": 1,
                "previous_rank": 3,
                "change": 2,
                "score": 93.35,
                "band": "yellow",
                "predikat": "AA",
                "indicators": {"ktp_el": brief},
            },
            {
                "code": "16.72",
                "name": "Kota Pagar Alam",
                "status": "no_data",
                "rank": None,
                "previous_rank": None,
                "change": None,
                "score": None,
                "band": None,
                "predikat": None,
                "indicators": {},
            },
        ],
    }
    text = render.ranking(doc)
    palembang = next(line for line in text.splitlines() if "16.71" in line)
    assert palembang.split() == [
        "1",
        "+2",
        "16.71",
        "Kota",
        "Palembang",
        "93.35",
        "yellow",
        "AA",
        "93.35",
    ]
    assert "no data" in next(line for line in text.splitlines() if "16.72" in line)
    assert "2 rows: 1 ranked, 1 without data" in text


def test_progress_bar_draws_in_place_only_when_enabled() -> None:
    stream = io.StringIO()
    bar = render.ProgressBar(2, stream, enabled=True, width=4)
    bar.advance("16.71")
    bar.advance("16.72")
    bar.close()
    drawn = stream.getvalue()
    assert drawn.count("\r") == 2 and drawn.endswith("\n")
    assert "[##..] 1/2" in drawn and "[####] 2/2" in drawn
    quiet = io.StringIO()
    silent = render.ProgressBar(2, quiet, enabled=False)
    silent.advance()
    silent.close()
    assert quiet.getvalue() == ""


# -- transport details the CLI relies on ----------------------------------------------


def _problem(status: int, slug: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={"type": PROBLEMS + slug, "title": "t", "detail": "d"},
        headers={"Content-Type": "application/problem+json"},
    )


def test_a_409_for_a_jws_already_stored_counts_as_stored() -> None:
    # An earlier attempt got through but its idempotency record has expired since.
    assert classify(_problem(409, "jti-replayed")).kind == "stored"
    assert classify(_problem(409, "already-superseded")).kind == "rejected"
    assert classify(_problem(409, "conflict")).kind == "retry"


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox.sqlite3", rand=lambda: 0.0) as box:
        yield box


def test_flush_everything_ignores_the_backoff(outbox: Outbox) -> None:
    outbox.put("h.p.1", "k1", now=1000.0)
    outbox.mark_failed("k1", "ConnectError", now=1000.0)  # next try at 1002
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["Idempotency-Key"])
        return httpx.Response(201, json={"id": "x"})

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        due = flush(http, "https://k.test", "tok", outbox, now=1001.0)
        assert due.stored == [] and sent == []
        everything = flush(http, "https://k.test", "tok", outbox, now=1001.0, everything=True)
    assert [e.item.idempotency_key for e in everything.stored] == ["k1"] and sent == ["k1"]
    assert outbox.all() == []


# -- CLI mistakes that never reach a server -------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    monkeypatch.setenv(HOME_ENV, str(folder))
    monkeypatch.setenv("KINERJA_SERVER", "http://127.0.0.1:9")  # discard port: nothing answers
    monkeypatch.delenv("KINERJA_PASSWORD", raising=False)
    return folder


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "--value", "ktp_el=1/2", "--district", "16.71"], "run `kinerja-client init`"),
        (["submit", "--district", "16.71"], "nothing to submit"),
        (["submit", "--value", "ktp_el=1/2"], "pass --district"),
        (["submit", "--district", "16.71", "--value", "ktp_el=12"], "expected CODE=NUM/DEN"),
        (["submit", "--district", "16.71", "--value", "ktp_el=a/2"], "whole number"),
        (
            ["submit", "--district", "16.71", "--value", "kia=1/2", "--channel", "ktp_el.office=1"],
            "no --value for ktp_el",
        ),
        (
            ["submit", "--district", "16.71", "--value", "kia=1/2", "--channel", "kia.bus=1"],
            "unknown channel bus",
        ),
        (["submit", "--district", "16.71", "--value", "kia=1/2", "--reason", "x"], "--supersedes"),
        (["submit", "--district", "16.7", "--value", "kia=1/2"], "district code"),
        (["submit", "--file", "rows.csv", "--value", "kia=1/2"], "cannot be combined"),
        (["submit", "--file", "missing.csv"], "missing.csv"),
        (["scorecard"], "not logged in"),
        (["outbox", "list", "--server", "ftp://x"], "must start with http"),
        (["login", "--username", "u"], "no password"),
        (["login"], "no account"),
    ],
)
def test_usage_mistakes_exit_2_with_a_message(
    home: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_an_unreachable_server_exits_3(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KINERJA_PASSWORD", "pw")
    assert main(["init"]) == 0
    assert main(["login", "--username", "u", "--timeout", "2"], transport=_refuse()) == 3
    assert "cannot reach http://127.0.0.1:9" in capsys.readouterr().err


def _refuse() -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    return httpx.MockTransport(handler)


def test_argparse_errors_exit_2(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert main(["rankings"]) == 2  # --province is required
    assert main(["--help"]) == 0
    assert "exit codes" in capsys.readouterr().out


def test_flush_wait_retries_with_backoff_until_stored(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_token("tok", time.time() + 600, home=home)
    with Outbox.open(home) as box:
        box.put("h.p.s", "key-1")
    answers = iter([httpx.Response(503), httpx.Response(201, json={"id": "abc", "flags": []})])
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Idempotency-Key"])
        return next(answers)

    started = time.monotonic()
    code = main(["outbox", "flush", "--wait", "30"], transport=httpx.MockTransport(handler))
    out = capsys.readouterr().out
    assert code == 0, out
    assert seen == ["key-1", "key-1"]  # the same key both times
    assert 1.5 < time.monotonic() - started < 10  # waited out the first backoff (2 s)
    assert "queued" in out and "id abc" in out and "1 stored, 0 rejected, 0 still queued" in out
