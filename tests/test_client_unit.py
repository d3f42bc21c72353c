"""Unit tests of the district head's client: keys, signing, outbox, transport, config.

No network and no database: the HTTP peer is an ``httpx.MockTransport``; the
tests against a real server live elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.config import (
    ClientConfig,
    clear_token,
    load_config,
    load_token,
    save_config,
    save_token,
)
from client.files import HOME_ENV, resolve_home, write_private_file
from client.keys import (
    PRIVATE_KEY_FILE,
    generate_keypair,
    jwk_thumbprint,
    load_keypair,
    public_jwk,
)
from client.outbox import BACKOFF_CAP, Outbox, backoff_delay
from client.signing import SUBMISSION_TYP, build_payload, sign_submission
from client.transport import deliver, flush, send_submission

# RFC 8037 appendix A.1-A.3: an Ed25519 key and its RFC 7638 thumbprint.
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

BASE_URL = "https://kinerja.test"
T0 = 1_700_000_000.0


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _b64decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "kinerja-home"
    monkeypatch.setenv(HOME_ENV, str(folder))
    return folder


@pytest.fixture
def outbox(home: Path) -> Iterator[Outbox]:
    with Outbox.open(home, rand=lambda: 0.0) as box:
        yield box


def _payload(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "district": "16.71",
        "as_of": date(2021, 2, 15),
        "values": {"ktp_el": (5545117, 5940433)},
        "now": T0,
    }
    args.update(overrides)
    return build_payload(**args)


def _http(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


# --- package boundaries ------------------------------------------------------------


def test_client_imports_no_server_code() -> None:
    code = (
        "import sys, client.config, client.keys, client.outbox, client.signing, "
        "client.transport\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'api', 'db', 'asyncpg', 'litestar', 'scorecards'})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


# --- keys --------------------------------------------------------------------------


def test_generated_key_is_owner_only_pkcs8_and_loads_back(home: Path) -> None:
    pair = generate_keypair()
    assert pair.path == home / PRIVATE_KEY_FILE
    assert _mode(pair.path) == 0o600
    assert pair.path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pair.jwk.keys() == {"kty", "crv", "x"}
    assert pair.jwk["kty"] == "OKP" and pair.jwk["crv"] == "Ed25519"
    assert len(_b64decode(pair.jwk["x"])) == 32 and "=" not in pair.jwk["x"]
    loaded = load_keypair()
    assert loaded.jwk == pair.jwk and loaded.kid == pair.kid == jwk_thumbprint(pair.jwk)


def test_generate_refuses_to_overwrite_unless_forced(home: Path) -> None:
    first = generate_keypair()
    pem = first.path.read_bytes()
    with pytest.raises(FileExistsError, match="force=True"):
        generate_keypair()
    assert first.path.read_bytes() == pem
    second = generate_keypair(force=True)
    assert second.kid != first.kid
    assert first.path.read_bytes() != pem
    assert _mode(second.path) == 0o600
    assert sorted(p.name for p in home.iterdir()) == [PRIVATE_KEY_FILE]  # no temp file left


def test_home_argument_wins_over_environment(home: Path, tmp_path: Path) -> None:
    assert resolve_home() == home
    other = tmp_path / "other"
    pair = generate_keypair(other)
    assert pair.path == other / PRIVATE_KEY_FILE
    assert not home.exists()


def test_default_home_without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HOME_ENV, raising=False)
    assert resolve_home() == Path("~/.config/kinerja").expanduser()


def test_thumbprint_matches_rfc8037_vector() -> None:
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}
    assert jwk_thumbprint(jwk) == RFC8037_THUMBPRINT
    # Extra members (and their order) do not change the thumbprint.
    assert jwk_thumbprint({"x": RFC8037_X, "use": "sig", "crv": "Ed25519", "kty": "OKP"}) == (
        RFC8037_THUMBPRINT
    )


def test_public_jwk_of_rfc8037_private_key() -> None:
    key = Ed25519PrivateKey.from_private_bytes(_b64decode(RFC8037_D))
    jwk = public_jwk(key)
    assert jwk == {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}
    assert jwk_thumbprint(jwk) == RFC8037_THUMBPRINT


def test_ec_thumbprint_covers_crv_kty_x_y() -> None:
    jwk = public_jwk(ec.generate_private_key(ec.SECP256R1()))
    canonical = '{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}'.format(**jwk)
    digest = hashlib.sha256(canonical.encode()).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert jwk_thumbprint({**jwk, "kid": "ignored"}) == expected


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
        {"crv": "Ed25519", "x": RFC8037_X},
        {"kty": "OKP", "crv": "Ed25519"},
        {"kty": "EC", "crv": "P-256", "x": "AA"},
        {"kty": "OKP", "crv": "Ed25519", "x": 5},
    ],
)
def test_thumbprint_rejects_unsupported_or_incomplete_jwk(jwk: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="JWK"):
        jwk_thumbprint(jwk)


def test_p256_key_is_loaded_and_signs_es256(home: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    home.mkdir()
    write_private_file(home / PRIVATE_KEY_FILE, pem, overwrite=False)
    pair = load_keypair()
    assert pair.jwk["kty"] == "EC" and pair.jwk["crv"] == "P-256"
    token = sign_submission(_payload(), pair.private_key, pair.kid)
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    claims = jwt.decode(token, key.public_key(), algorithms=["ES256"])
    assert claims["district"] == "16.71"


def test_load_refuses_key_readable_by_others(home: Path) -> None:
    pair = generate_keypair()
    pair.path.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        load_keypair()


def test_load_rejects_unsupported_key_type(home: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    home.mkdir()
    write_private_file(home / PRIVATE_KEY_FILE, pem, overwrite=False)
    with pytest.raises(ValueError, match="unsupported key type"):
        load_keypair()


# --- signing -----------------------------------------------------------------------


def test_signed_submission_verifies_and_carries_kid_and_typ(home: Path) -> None:
    pair = generate_keypair()
    payload = _payload(note="perekaman terhambat: alat rusak")
    token = sign_submission(payload, pair.private_key, pair.kid)
    assert token.count(".") == 2
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "kid": pair.kid, "typ": SUBMISSION_TYP}
    public = pair.private_key.public_key()
    assert jwt.decode(token, public, algorithms=["EdDSA"]) == payload
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other, algorithms=["EdDSA"])


def test_payload_has_every_key_with_nulls() -> None:
    payload = build_payload(
        "16.71",
        date(2021, 2, 15),
        {
            "ktp_el": (5545117, 5940433),
            "kia": {"numerator": 10, "denominator": 40, "stated_pct": 25},
            "akta_lahir": [7, 8],
        },
        channels={"ktp_el": {"office": 10, "kecamatan": 5, "mobile": 3}},
        stated={"ktp_el": 97.70},
        supersedes=("0b6f3c1e-8d0a-4f59-9d7e-2a1b3c4d5e6f", "salah ketik"),
        division="bidang-pia",
        now=T0 + 0.9,
    )
    jti = payload.pop("jti")
    assert len(jti) == 36
    assert payload == {
        "iat": int(T0),
        "district": "16.71",
        "division": "bidang-pia",
        "as_of": "2021-02-15",
        "values": {
            "ktp_el": {
                "numerator": 5545117,
                "denominator": 5940433,
                "stated_pct": 97.70,
                "channels": {
                    "office": 10,
                    "kecamatan": 5,
                    "mobile": 3,
                    "school": 0,
                    "hospital": 0,
                    "other": 0,
                },
            },
            "kia": {"numerator": 10, "denominator": 40, "stated_pct": 25.0, "channels": None},
            "akta_lahir": {"numerator": 7, "denominator": 8, "stated_pct": None, "channels": None},
        },
        "note": None,
        "supersedes": {"id": "0b6f3c1e-8d0a-4f59-9d7e-2a1b3c4d5e6f", "reason": "salah ketik"},
    }
    minimal = _payload()
    assert list(minimal) == [
        "jti",
        "iat",
        "district",
        "division",
        "as_of",
        "values",
        "note",
        "supersedes",
    ]
    assert minimal["division"] is None and minimal["supersedes"] is None
    assert minimal["jti"] != _payload()["jti"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"values": {"ktp_el": (-1, 10)}}, "ktp_el.numerator must be a non-negative integer"),
        ({"values": {"ktp_el": (1, 10.0)}}, "ktp_el.denominator must be a non-negative integer"),
        ({"values": {"ktp_el": (True, 10)}}, "non-negative integer"),
        ({"values": {"ktp_el": (1, 2, 3)}}, "expected \\(numerator, denominator\\)"),
        ({"values": {"ktp_el": {"numerator": 1}}}, "numerator and denominator are required"),
        ({"values": {"ktp_el": {"numerator": 1, "denominator": 2, "x": 3}}}, "unknown value"),
        ({"values": {}}, "non-empty mapping"),
        ({"values": {"KTP-el": (1, 2)}}, "indicator code"),
        ({"channels": {"ktp_el": {"radio": 1}}}, "unknown channel radio"),
        ({"channels": {"ktp_el": {"office": -3}}}, "ktp_el.channels.office"),
        ({"channels": {"kia": {"office": 1}}}, "channels given for kia"),
        ({"stated": {"ktp_el": -1.0}}, "stated_pct must be a number from 0 to 1000000"),
        ({"stated": {"ktp_el": float("nan")}}, "stated_pct must be a number from 0 to 1000000"),
        ({"stated": {"ktp_el": 1e23}}, "stated_pct must be a number from 0 to 1000000"),
        (
            {
                "values": {"ktp_el": {"numerator": 1, "denominator": 2, "stated_pct": 50}},
                "stated": {"ktp_el": 50},
            },
            "given twice",
        ),
        ({"as_of": "2021-02-15"}, "as_of must be a date"),
        ({"as_of": datetime(2021, 2, 15, 8, 0)}, "as_of must be a date"),
        ({"district": "1671"}, "district must be a district code"),
        ({"district": "16"}, "district must be a district code"),
        ({"division": " "}, "division must be a non-empty string"),
        ({"note": 5}, "note must be a string"),
        ({"supersedes": {"id": "nope", "reason": "x"}}, "supersedes.id must be a UUID"),
        (
            {"supersedes": ("0b6f3c1e-8d0a-4f59-9d7e-2a1b3c4d5e6f", "")},
            "supersedes.reason must be a non-empty string",
        ),
        ({"supersedes": "0b6f3c1e-8d0a-4f59-9d7e-2a1b3c4d5e6f"}, "supersedes must be"),
    ],
)
def test_payload_validation(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _payload(**overrides)


def test_sign_refuses_incomplete_payload_and_empty_kid(home: Path) -> None:
    pair = generate_keypair()
    with pytest.raises(ValueError, match="payload lacks supersedes"):
        sign_submission(
            {k: v for k, v in _payload().items() if k != "supersedes"}, pair.private_key, pair.kid
        )
    with pytest.raises(ValueError, match="kid"):
        sign_submission(_payload(), pair.private_key, "")


# --- outbox ------------------------------------------------------------------------


def test_outbox_survives_reopening_and_is_owner_only(home: Path) -> None:
    with Outbox.open() as box:
        box.put("a.b.c", "key-1", T0)
    path = home / "outbox.sqlite3"
    assert _mode(path) == 0o600
    for side in home.glob("outbox.sqlite3-*"):
        assert _mode(side) == 0o600
    with Outbox.open() as box:
        (item,) = box.all()
        assert (item.idempotency_key, item.jws, item.attempts) == ("key-1", "a.b.c", 0)
        assert item.created_at == item.next_attempt_at == T0
    with closing(sqlite3.connect(path)) as conn:  # WAL mode is a property of the file
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_put_is_idempotent_and_refuses_a_different_jws_under_the_same_key(outbox: Outbox) -> None:
    first = outbox.put("a.b.c", "key-1", T0)
    again = outbox.put("a.b.c", "key-1", T0 + 50)
    assert again == first
    with pytest.raises(ValueError, match="different JWS"):
        outbox.put("x.y.z", "key-1", T0)
    assert [i.jws for i in outbox.all()] == ["a.b.c"]


def test_backoff_grows_and_caps(outbox: Outbox) -> None:
    outbox.put("a.b.c", "key-1", T0)
    delays = []
    for _ in range(12):
        item = outbox.mark_failed("key-1", "HTTP 503", T0)
        assert item is not None
        delays.append(item.next_attempt_at - T0)
    assert delays == [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600, 600]
    assert item.attempts == 12 and item.last_error == "HTTP 503"
    assert outbox.mark_failed("missing", "x", T0) is None


def test_backoff_jitter_only_shortens() -> None:
    assert backoff_delay(0) == 0.0
    assert backoff_delay(1, lambda: 0.0) == 2.0
    assert backoff_delay(3, lambda: 0.5) == pytest.approx(8 * 0.95)
    assert backoff_delay(1000, lambda: 0.999999) <= BACKOFF_CAP
    assert backoff_delay(1000, lambda: 0.999999) >= 0.9 * BACKOFF_CAP


def test_retry_after_is_honoured_up_to_the_cap(outbox: Outbox) -> None:
    outbox.put("a.b.c", "key-1", T0)
    item = outbox.mark_failed("key-1", "HTTP 429", T0, retry_after=120)
    assert item is not None and item.next_attempt_at == T0 + 120
    item = outbox.mark_failed("key-1", "HTTP 429", T0, retry_after=86400)
    assert item is not None and item.next_attempt_at == T0 + BACKOFF_CAP


def test_pending_returns_due_items_oldest_first(outbox: Outbox) -> None:
    outbox.put("1.1.1", "key-1", T0)
    outbox.put("2.2.2", "key-2", T0 + 1)
    outbox.put("3.3.3", "key-3", T0 + 2)
    outbox.mark_failed("key-2", "down", T0 + 1)  # due again at T0 + 3
    assert [i.idempotency_key for i in outbox.pending(T0 + 2)] == ["key-1", "key-3"]
    assert [i.idempotency_key for i in outbox.pending(T0 + 3)] == ["key-1", "key-2", "key-3"]


def test_mark_sent_removes(outbox: Outbox) -> None:
    outbox.put("a.b.c", "key-1", T0)
    outbox.put("d.e.f", "key-2", T0)
    assert outbox.mark_sent("key-1") is True
    assert outbox.mark_sent("key-1") is False
    assert [i.idempotency_key for i in outbox.all()] == ["key-2"]
    assert outbox.get("key-1") is None


# --- transport ---------------------------------------------------------------------


def test_send_posts_the_jws_with_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "s-1", "flags": []})

    with _http(handler) as http:
        outcome = send_submission(http, BASE_URL + "/", "tok", "h.p.s", "key-1")
    assert (outcome.kind, outcome.status, outcome.body) == (
        "stored",
        201,
        {"id": "s-1", "flags": []},
    )
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == BASE_URL + "/v1/submissions"
    assert request.headers["Content-Type"] == "application/jose"
    assert request.headers["Authorization"] == "Bearer tok"
    assert request.headers["Idempotency-Key"] == "key-1"
    assert request.content == b"h.p.s"


@pytest.mark.parametrize(
    ("status", "headers", "kind"),
    [
        (200, {}, "stored"),
        (201, {}, "stored"),
        (400, {}, "rejected"),
        (403, {}, "rejected"),
        (404, {}, "rejected"),
        (422, {}, "rejected"),
        (401, {}, "unauthorized"),
        (409, {}, "retry"),
        (429, {"Retry-After": "30"}, "retry"),
        (500, {}, "retry"),
        (502, {}, "retry"),
        (503, {"Retry-After": "7"}, "retry"),
    ],
)
def test_send_classifies_answers(status: int, headers: dict[str, str], kind: str) -> None:
    problem: dict[str, Any] = {
        "type": "about:blank",
        "title": "Unprocessable",
        "detail": "as_of in the future",
    }
    if kind == "stored":
        problem = {"id": "s-1", "flags": []}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status, json=problem, headers={**headers, "Content-Type": "application/problem+json"}
        )

    with _http(handler) as http:
        outcome = send_submission(http, BASE_URL, "tok", "h.p.s", "key-1")
    assert outcome.kind == kind
    assert outcome.status == status
    assert outcome.body == problem
    if kind != "stored":
        assert outcome.error == f"HTTP {status}: Unprocessable: as_of in the future"
    if "Retry-After" in headers:
        assert outcome.retry_after == float(headers["Retry-After"])


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("peer closed connection"),
    ],
)
def test_network_errors_are_retried(error: httpx.TransportError) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    with _http(handler) as http:
        outcome = send_submission(http, BASE_URL, "tok", "h.p.s", "key-1")
    assert outcome.kind == "retry" and outcome.status is None
    assert outcome.error is not None and type(error).__name__ in outcome.error


def test_non_json_error_body_is_described() -> None:
    with _http(lambda request: httpx.Response(502, text="<html>bad gateway</html>")) as http:
        outcome = send_submission(http, BASE_URL, "tok", "h.p.s", "key-1")
    assert outcome.kind == "retry" and outcome.body is None
    assert outcome.error == "HTTP 502: Bad Gateway"


def test_deliver_stored_leaves_nothing_queued(outbox: Outbox) -> None:
    with _http(lambda request: httpx.Response(201, json={"id": "s-1"})) as http:
        outcome = deliver(http, BASE_URL, "tok", "h.p.s", "key-1", outbox, T0)
    assert outcome.kind == "stored"
    assert outbox.all() == []


def test_deliver_rejected_is_kept_as_rejected_not_queued(outbox: Outbox) -> None:
    with _http(lambda request: httpx.Response(422, json={"title": "Invalid"})) as http:
        outcome = deliver(http, BASE_URL, "tok", "h.p.s", "key-1", outbox, T0)
    assert outcome.kind == "rejected"
    assert outbox.all() == [] and outbox.pending(T0 + 3600) == []
    (kept,) = outbox.rejected()
    assert (kept.jws, kept.rejected_at, kept.last_error) == ("h.p.s", T0, "HTTP 422: Invalid")


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, html="<html>Log in to the hotel Wi-Fi</html>"),
        httpx.Response(204),
        httpx.Response(201, json=["not", "a", "report"]),
    ],
    ids=["captive portal page", "no content", "not a report"],
)
def test_a_2xx_that_is_not_a_stored_report_keeps_it_queued(
    answer: httpx.Response, outbox: Outbox
) -> None:
    with _http(lambda request: answer) as http:
        outcome = deliver(http, BASE_URL, "tok", "h.p.s", "key-1", outbox, T0)
    assert outcome.kind == "retry" and outcome.error is not None
    assert outcome.error.endswith("(not stored)")
    (item,) = outbox.all()
    assert item.attempts == 1 and item.rejected_at is None


def test_a_retry_after_that_is_no_number_is_ignored() -> None:
    answer = httpx.Response(503, headers=[(b"Retry-After", b"\xb2")])
    with _http(lambda request: answer) as http:
        outcome = send_submission(http, BASE_URL, "tok", "h.p.s", "key-1")
    assert outcome.kind == "retry" and outcome.retry_after is None


def test_only_a_rejected_item_can_be_discarded(outbox: Outbox) -> None:
    waiting = outbox.put("a.a.a", "key-1", T0)
    refused = outbox.put("b.b.b", "key-2", T0)
    outbox.mark_rejected("key-2", "HTTP 422: Invalid", T0)
    assert outbox.discard(waiting.id) is None
    gone = outbox.discard(refused.id)
    assert gone is not None and gone.jws == "b.b.b"
    assert outbox.discard(refused.id) is None
    assert [i.jws for i in outbox.all()] == ["a.a.a"] and outbox.rejected() == []


def test_an_outbox_from_before_the_rejected_state_keeps_its_items(home: Path) -> None:
    home.mkdir(mode=0o700)
    path = home / "outbox.sqlite3"
    with closing(sqlite3.connect(path)) as old:
        old.execute(
            "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, idempotency_key TEXT"
            " NOT NULL UNIQUE, jws TEXT NOT NULL, created_at REAL NOT NULL, attempts INTEGER"
            " NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL, last_error TEXT)"
        )
        old.execute(
            "INSERT INTO outbox (idempotency_key, jws, created_at, next_attempt_at)"
            " VALUES ('key-1', 'a.a.a', 1, 1)"
        )
        old.execute("PRAGMA user_version=1")
        old.commit()
    with Outbox(path) as box:
        (item,) = box.all()
        assert (item.jws, item.rejected_at) == ("a.a.a", None)
        box.mark_rejected("key-1", "HTTP 403", T0)
        assert [i.jws for i in box.rejected()] == ["a.a.a"]
    with Outbox(path) as again:  # opening an upgraded file again changes nothing
        assert [i.jws for i in again.rejected()] == ["a.a.a"]


def test_retry_reuses_the_same_jws_and_key_until_stored(outbox: Outbox) -> None:
    seen: list[tuple[str, bytes]] = []
    answers: list[httpx.Response | Exception] = [
        httpx.ConnectTimeout("no route"),
        httpx.Response(503),
        httpx.Response(201, json={"id": "s-1"}),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers["Idempotency-Key"], request.content))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    with _http(handler) as http:
        assert deliver(http, BASE_URL, "tok", "h.p.s", "key-1", outbox, T0).kind == "retry"
        (item,) = outbox.all()
        assert item.attempts == 1 and item.next_attempt_at == T0 + 2
        assert "ConnectTimeout" in (item.last_error or "")

        early = flush(http, BASE_URL, "tok", outbox, T0 + 1)  # not due yet: nothing sent
        assert (early.stored, early.rejected, early.retrying) == ([], [], [])

        second = flush(http, BASE_URL, "tok", outbox, T0 + 2)
        assert [e.outcome.kind for e in second.retrying] == ["retry"]
        (item,) = outbox.all()
        assert item.attempts == 2 and item.next_attempt_at == T0 + 2 + 4

        third = flush(http, BASE_URL, "tok", outbox, T0 + 6)
        assert [e.item.idempotency_key for e in third.stored] == ["key-1"]
    assert outbox.all() == []
    assert seen == [("key-1", b"h.p.s")] * 3


def test_flush_removes_stored_keeps_rejected_and_backs_off_the_rest(outbox: Outbox) -> None:
    answers = {
        b"ok.ok.ok": httpx.Response(200, json={"id": "s-1", "replayed": True}),
        b"no.no.no": httpx.Response(422, json={"title": "Invalid", "detail": "unknown kid"}),
        b"down.down.down": httpx.Response(500),
    }
    for n, jws in enumerate(answers):
        outbox.put(jws.decode(), f"key-{n}", T0)

    with _http(lambda request: answers[request.content]) as http:
        report = flush(http, BASE_URL, "tok", outbox, T0)
    assert [e.item.jws for e in report.stored] == ["ok.ok.ok"]
    assert [e.item.jws for e in report.rejected] == ["no.no.no"]
    assert report.rejected[0].outcome.error == "HTTP 422: Invalid: unknown kid"
    assert [e.item.jws for e in report.retrying] == ["down.down.down"]
    assert report.unauthorized is False
    (left,) = outbox.all()
    assert left.jws == "down.down.down" and left.attempts == 1
    assert [i.jws for i in outbox.rejected()] == ["no.no.no"]


def test_flush_stops_on_401_and_leaves_items_untouched(outbox: Outbox) -> None:
    outbox.put("a.a.a", "key-1", T0)
    outbox.put("b.b.b", "key-2", T0)
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers["Idempotency-Key"])
        return httpx.Response(401, json={"title": "Unauthorized"})

    with _http(handler) as http:
        report = flush(http, BASE_URL, "expired", outbox, T0)
        assert report.unauthorized is True
        assert deliver(http, BASE_URL, "expired", "c.c.c", "key-3", outbox, T0).kind == (
            "unauthorized"
        )
    assert calls == ["key-1", "key-3"]
    assert [(i.idempotency_key, i.attempts) for i in outbox.all()] == [
        ("key-1", 0),
        ("key-2", 0),
        ("key-3", 0),
    ]


# --- config and token cache --------------------------------------------------------


def test_token_cache_is_owner_only_and_expires(home: Path) -> None:
    assert load_token(T0) is None
    path = save_token("tok-1", T0 + 600)
    assert _mode(path) == 0o600
    assert load_token(T0) == "tok-1"
    assert load_token(T0 + 560) == "tok-1"
    assert load_token(T0 + 580) is None  # within the leeway: treated as expired
    assert load_token(T0 + 601) is None
    save_token("tok-2", T0 + 900)
    assert load_token(T0 + 601) == "tok-2"
    clear_token()
    assert load_token(T0) is None


def test_corrupt_token_cache_counts_as_absent(home: Path) -> None:
    home.mkdir()
    (home / "token.json").write_text("{not json")
    assert load_token(T0) is None


def test_config_round_trip_and_paths(home: Path) -> None:
    config = load_config()
    assert config.base_url == "http://127.0.0.1:8000" and config.username is None
    path = save_config(
        ClientConfig(
            base_url="https://kinerja.example.go.id", username="kadis.1671", home=str(home)
        )
    )
    assert json.loads(path.read_text()) == {
        "base_url": "https://kinerja.example.go.id",
        "username": "kadis.1671",
    }
    loaded = load_config()
    assert (loaded.base_url, loaded.username) == ("https://kinerja.example.go.id", "kadis.1671")
    assert loaded.private_key_path == home / PRIVATE_KEY_FILE
    assert loaded.outbox_path == home / "outbox.sqlite3"
    assert loaded.token_path == home / "token.json"
    assert loaded.config_path == path


def test_config_rejects_bad_url_and_bad_file(home: Path) -> None:
    with pytest.raises(ValueError, match="http"):
        ClientConfig(base_url="kinerja.example.go.id")
    home.mkdir()
    (home / "config.json").write_text('{"base_url": 5}')
    with pytest.raises(ValueError, match=r"config\.json"):
        load_config()


def test_the_client_bounds_stated_percentages_as_the_api_does() -> None:
    from api.schemas.submissions import STATED_PCT_MAX
    from client.signing import STATED_PCT_MAX as CLIENT_MAX

    assert CLIENT_MAX == STATED_PCT_MAX
