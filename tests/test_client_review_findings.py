"""The district head's client, reviewed once more: what a Kepala Dinas would meet.

Each test runs ``kinerja-client`` in-process against a mock transport (no server) and
asserts what the README, DESIGN.md or issue 5 lead a district head to expect.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from client.cli import main
from client.config import save_token
from client.outbox import OUTBOX_FILE, Outbox
from tests.test_client_robustness import home as home  # the fixture, shared
from tests.test_client_robustness import run

DISTRICT = "16.71"
AS_OF = "2021-02-15"
FAR_FUTURE = 4_000_000_000
PROBLEMS = "https://kinerja.example/problems/"


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _log_in(home: Path, area: str = DISTRICT) -> None:
    """A cached login as a district head of ``area`` (the token's claims are all the
    client reads from it)."""
    token = ".".join((_b64({"alg": "EdDSA"}), _b64({"role": "district_head", "area": area}), "sig"))
    save_token(token, FAR_FUTURE, home=home)


def _claims(jws: str) -> dict[str, Any]:
    part = jws.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def _header(jws: str) -> dict[str, Any]:
    part = jws.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def _stored(request: httpx.Request) -> httpx.Response:
    """The server's 201: the stored submission, echoing the JWS it received."""
    jws = request.content.decode()
    claims = _claims(jws)
    return httpx.Response(
        201,
        json={
            "id": str(uuid.uuid4()),
            "district": claims["district"],
            "as_of": claims["as_of"],
            "flags": [],
            "jws": jws,
        },
    )


def _problem(status: int, slug: str, title: str) -> httpx.Response:
    return httpx.Response(
        status,
        headers={"Content-Type": "application/problem+json"},
        json={"type": PROBLEMS + slug, "title": title, "status": status},
    )


def _down(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("down", request=request)


def _outbox(home: Path) -> tuple[list[Any], list[Any]]:
    with Outbox(home / OUTBOX_FILE) as box:
        return box.all(), box.rejected()


# 1. A 201 that is not the server's answer for *this* report (a caching proxy in front of
#    the server answering every POST with the first one's response): the client takes it
#    for "stored" and deletes a report the server never saw.
#    README: "a 2xx that is not the server's answer for a stored report (a captive
#    portal's page)" leaves the report queued; the server's 201 carries "the JWS itself"
#    ("GET /v1/submissions/{id} (with the payload, flags, ledger position and JWS)").
def test_a_201_for_another_report_does_not_delete_this_one(home: Path, tmp_path: Path) -> None:
    _log_in(home)
    rows = tmp_path / "februari.csv"
    rows.write_text(
        "district,as_of,indicator,numerator,denominator\n"
        "16.71,2021-02-15,ktp_el,5545117,5940433\n"
        "16.71,2021-02-28,ktp_el,5546000,5940433\n",
        encoding="utf-8",
    )
    first: list[httpx.Response] = []
    posted: list[str] = []

    def cached(request: httpx.Request) -> httpx.Response:
        posted.append(request.content.decode())
        if not first:
            first.append(_stored(request))
        cached_answer = first[0]
        return httpx.Response(201, json=json.loads(cached_answer.content))

    run(home, "submit", "--file", str(rows), transport=httpx.MockTransport(cached))
    assert len(posted) == 2
    waiting, rejected = _outbox(home)
    # The second report was never stored: it must still wait in the outbox.
    assert [_claims(item.jws)["as_of"] for item in waiting] == ["2021-02-28"], (
        "the report answered with another report's 201 was deleted from the outbox"
    )
    assert not rejected


# 2. A row file with a line for another district (a typo: 16.17 for 16.71) is not checked
#    against the login: the lines before it are stored, that one refused (404).
#    client/rows.py: "A row file is read and checked as a whole before anything is signed
#    or sent, so a typo on line 40 does not leave lines 1 to 39 on the server and the
#    rest not." README: "A district head may submit only for their own district."
def test_a_row_for_another_district_is_refused_before_anything_is_sent(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _log_in(home)
    rows = tmp_path / "februari.csv"
    rows.write_text(
        "district,as_of,indicator,numerator,denominator\n"
        "16.71,2021-02-15,ktp_el,5545117,5940433\n"
        "16.71,2021-02-15,akta_lahir,401000,452000\n"
        "16.17,2021-02-15,kia,1200,9000\n",
        encoding="utf-8",
    )
    posted: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        posted.append(request.content.decode())
        if _claims(request.content.decode())["district"] != DISTRICT:
            return _problem(404, "not-found", "Not found")
        return _stored(request)

    code = run(home, "submit", "--file", str(rows), transport=httpx.MockTransport(server))
    err = capsys.readouterr().err
    assert posted == [], f"{len(posted)} report(s) sent from a file with a wrong district"
    assert code == 2
    assert "16.17" in err
    assert _outbox(home) == ([], [])


# 3. A correction typed without --as-of is signed with today's date, which the server
#    refuses: "A correction carries supersedes: {id, reason} and the as_of of the report
#    it corrects (another date is 422 invalid-supersedes)" (README). The client either
#    takes the date of the corrected report or asks for it; it never signs a correction
#    dated today for a report of 15 February 2021.
def test_a_correction_without_as_of_is_not_signed_with_todays_date(home: Path) -> None:
    _log_in(home)
    corrected = str(uuid.uuid4())
    posted: list[dict[str, Any]] = []

    def server(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == f"/v1/submissions/{corrected}":
            return httpx.Response(200, json={"id": corrected, "district": DISTRICT, "as_of": AS_OF})
        if request.method == "POST" and request.url.path == "/v1/submissions":
            claims = _claims(request.content.decode())
            posted.append(claims)
            if claims["as_of"] != AS_OF:
                return _problem(422, "invalid-supersedes", "The superseded submission is not")
            return _stored(request)
        return _problem(404, "not-found", "Not found")

    run(
        home,
        "submit",
        "--value",
        "ktp_el=5545117/5940433",
        "--supersedes",
        corrected,
        "--reason",
        "salah ketik",
        transport=httpx.MockTransport(server),
    )
    waiting, rejected = _outbox(home)
    signed = [_claims(item.jws)["as_of"] for item in waiting + rejected]
    dates = {claims["as_of"] for claims in posted} | set(signed)
    assert dates <= {AS_OF}, f"a correction of the {AS_OF} report was signed as of {dates}"


# 4. A date the server always refuses (in the future; before 2000, the first year
#    scorecards cover) is signed and queued; offline, it waits in the outbox for days
#    only to be refused. README: "an as_of in the future (422 future-as-of) or before
#    2000 (422 as-of-too-early)"; issue 5: "as_of not in the future"; and the client's own
#    signing module: "a mistake the server would reject is better caught while the person
#    is still at the keyboard". Counts, district codes and unknown columns are caught
#    before signing (exit 2): a date that cannot be right should be too.
@pytest.mark.parametrize("as_of", ["2099-02-15", "1921-02-15"])
def test_an_as_of_the_server_always_refuses_is_caught_at_the_keyboard(
    home: Path, as_of: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _log_in(home)
    code = run(
        home,
        "submit",
        "--as-of",
        as_of,
        "--value",
        "ktp_el=5545117/5940433",
        transport=httpx.MockTransport(_down),
    )
    err = capsys.readouterr().err
    assert code == 2, f"exit {code}: a report as of {as_of} was signed and queued"
    assert "as_of" in err or "as-of" in err
    assert _outbox(home) == ([], [])


# 5. A report that waited while the key was replaced (init --force, register-key, the old
#    key revoked) is refused as invalid-signature; the flush tells the district head to
#    "correct it and submit again", and names `outbox resign` only for iat-too-old.
#    README: "A report refused only for when or with what it was signed (iat-too-old
#    after more than a week offline, or a key revoked and replaced since) needs no typing
#    again: `outbox resign #`". The client knows it: the JWS's kid is not its key's.
def test_a_report_signed_with_a_replaced_key_points_to_resign(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _log_in(home)
    typed = ["submit", "--as-of", AS_OF, "--value", "ktp_el=5545117/5940433"]
    assert run(home, *typed, transport=httpx.MockTransport(_down)) == 3
    (waiting,), _ = _outbox(home)
    old_kid = _header(waiting.jws)["kid"]
    assert run(home, "init", "--force") == 0
    capsys.readouterr()

    def server(request: httpx.Request) -> httpx.Response:
        if _header(request.content.decode())["kid"] == old_kid:
            return _problem(422, "invalid-signature", "The signature does not verify")
        return _stored(request)

    assert run(home, "outbox", "flush", transport=httpx.MockTransport(server)) == 1
    out = capsys.readouterr().out
    _, (rejected,) = _outbox(home)
    assert f"outbox resign {rejected.id}" in out, out


# 6. A computer clock running ahead (iat-in-future) gets the same advice as a wrong
#    count: "correct it and submit again". Nothing in the report is wrong: the time it
#    was signed is. README: "A report refused only for when ... it was signed ... needs
#    no typing again: `outbox resign #`"; the message should say so (and name the clock).
def test_a_report_signed_by_a_clock_running_ahead_points_to_the_clock_and_resign(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _log_in(home)

    def server(request: httpx.Request) -> httpx.Response:
        return _problem(422, "iat-in-future", "The submission is signed in the future")

    typed = ["submit", "--as-of", AS_OF, "--value", "ktp_el=5545117/5940433"]
    assert run(home, *typed, transport=httpx.MockTransport(server)) == 1
    out = capsys.readouterr().out
    _, (rejected,) = _outbox(home)
    assert "clock" in out.lower(), out
    assert f"outbox resign {rejected.id}" in out, out


# Passing, kept: a stated figure with a decimal comma in an Indonesian-locale file with a
# BOM and CRLF line ends, and the seed's own mismatch (97,70 for 93.35%) is signed as
# stated, never "corrected" by the client (issue 5: "always ranks on the computed value",
# the stated value is kept for the stated_mismatch flag).
def test_a_semicolon_crlf_bom_file_keeps_the_stated_figure_as_printed(
    home: Path, tmp_path: Path
) -> None:
    _log_in(home)
    rows = tmp_path / "februari.csv"
    rows.write_bytes(
        "\ufeffdistrict;as_of;indicator;numerator;denominator;stated_pct;mobile;note\r\n"
        "16.71;2021-02-15;ktp_el;5545117;5940433;97,70;300;alat perekam rusak\r\n"
        "16.71;2021-02-15;akta_lahir;401000;452000;;;\r\n".encode()
    )
    posted: list[dict[str, Any]] = []

    def server(request: httpx.Request) -> httpx.Response:
        posted.append(_claims(request.content.decode()))
        return _stored(request)

    assert run(home, "submit", "--file", str(rows), transport=httpx.MockTransport(server)) == 0
    (claims,) = posted
    assert claims["district"] == DISTRICT and claims["as_of"] == AS_OF
    ktp = claims["values"]["ktp_el"]
    assert (ktp["numerator"], ktp["denominator"], ktp["stated_pct"]) == (5545117, 5940433, 97.7)
    assert ktp["channels"]["mobile"] == 300
    assert claims["values"]["akta_lahir"]["stated_pct"] is None
    assert claims["note"] == "alat perekam rusak"
    assert date.fromisoformat(claims["as_of"]) == date(2021, 2, 15)


# Passing, kept: a 409 jti-replayed on a flush is "already stored" (the report left the
# outbox, exit 0), not a rejection to type again (README: "a replayed jti (409
# jti-replayed, checked before the times, so a report stored long ago and sent again is
# known as stored rather than refused as too old)").
def test_a_jti_replayed_answer_clears_the_report_as_stored(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _log_in(home)
    typed = ["submit", "--as-of", AS_OF, "--value", "ktp_el=5545117/5940433"]
    assert run(home, *typed, transport=httpx.MockTransport(_down)) == 3
    capsys.readouterr()

    def server(request: httpx.Request) -> httpx.Response:
        return _problem(409, "jti-replayed", "This submission was already received")

    assert run(home, "outbox", "flush", transport=httpx.MockTransport(server)) == 0
    assert "already on the server" in capsys.readouterr().out
    assert _outbox(home) == ([], [])
    assert main(["outbox", "list", "--home", str(home)]) == 0
