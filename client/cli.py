"""``kinerja-client``: the district head's command line.

Reports are signed with the head's own key and written to the local outbox
before they are sent, so a dropped link, a crash or a closed laptop never loses
one; every retry sends the same JWS under the same idempotency key, so the
server stores each report once.

Exit codes: 0 done; 1 the server refused something (a 4xx: rows rejected, wrong
password, not found); 2 usage or local setup (bad arguments or row file, no
key, not logged in); 3 the server could not be reached or failed (anything
signed waits in the outbox: run ``kinerja-client outbox flush`` later).
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import math
import os
import re
import socket
import sqlite3
import stat
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn, TextIO

import httpx

from client import render
from client.config import (
    ClientConfig,
    cached_token,
    clear_token,
    load_config,
    load_token,
    save_config,
    save_token,
)
from client.files import PRIVATE_DIR_MODE, ensure_home
from client.keys import KeyPair, generate_keypair, load_keypair
from client.outbox import OUTBOX_FILE, Outbox, OutboxItem, due_at
from client.rows import Report, RowError, parse_count, parse_date, parse_percent, read_reports
from client.signing import CHANNELS, build_payload, sign_submission
from client.transport import FlushEntry, Outcome, deliver, flush, holds_back

PROG = "kinerja-client"
EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

SERVER_ENV = "KINERJA_SERVER"
PASSWORD_ENV = "KINERJA_PASSWORD"
DEFAULT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0

_DISTRICT = re.compile(r"\d{2}\.\d{2}")

EPILOG = """\
exit codes:
  0  done
  1  the server refused something (4xx): rows rejected, wrong password, not found
  2  usage or local setup: bad arguments or row file, no key, not logged in
  3  server unreachable or failing: signed reports wait in the outbox

environment: KINERJA_SERVER (server URL), KINERJA_CLIENT_HOME (config folder,
default ~/.config/kinerja), KINERJA_PASSWORD (password for login)
"""


class CliError(Exception):
    """A failure to report in one line and end with ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass
class Session:
    """What one command runs with: arguments, settings, server and output streams."""

    args: argparse.Namespace
    config: ClientConfig
    server: str
    out: TextIO
    err: TextIO
    transport: httpx.BaseTransport | None
    #: Why there is no usable server (a bad address saved, and none given instead).
    server_problem: str = ""

    @property
    def base_url(self) -> str:
        """The server: refused here, not at start, so a command that needs none (`outbox
        list`) still runs when the saved address is bad."""
        if self.server_problem:
            raise CliError(self.server_problem)
        return self.server

    @property
    def home(self) -> Path:
        return self.config.home_path

    def http(self) -> httpx.Client:
        """An HTTP client with the command's timeouts (and the test transport, if any)."""
        seconds = float(getattr(self.args, "timeout", DEFAULT_TIMEOUT))
        return httpx.Client(
            timeout=httpx.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT)),
            transport=self.transport,
            headers={"User-Agent": f"{PROG}/{_version()}"},
        )

    def token(self) -> str:
        """The cached access token, or a usage error telling the user to log in."""
        token = load_token(home=self.home)
        if token is None:
            raise CliError(f"not logged in, or the session expired: run `{PROG} login`")
        return token

    def print(self, line: str = "") -> None:
        self.out.write(line + "\n")

    def note(self, line: str) -> None:
        self.err.write(line + "\n")


# -- entry point ------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, *, transport: httpx.BaseTransport | None = None) -> int:
    """Run one command and return its exit code.

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.
        transport: HTTP transport to use instead of the network (tests).
    """
    out, err = sys.stdout, sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        session = _session(args, out, err, transport)
        return int(args.handler(session))
    except CliError as exc:
        err.write(f"{PROG}: {exc.message}\n")
        return exc.code
    except sqlite3.OperationalError as exc:  # locked by another client process, disk full
        err.write(
            f"{PROG}: the outbox ({OUTBOX_FILE} in the client folder) is not available: {exc}; "
            "if another kinerja-client is running (a scheduled flush), try again when it ends\n"
        )
        return EXIT_USAGE
    except sqlite3.DatabaseError as exc:  # only the outbox is a database here
        err.write(
            f"{PROG}: the outbox ({OUTBOX_FILE} in the client folder) cannot be read: {exc}; "
            "keep a copy, then move it aside to start an empty one\n"
        )
        return EXIT_USAGE
    except OSError as exc:  # the client folder or a file in it (network errors are caught)
        err.write(f"{PROG}: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.write(
            f"\n{PROG}: interrupted; whatever was signed is in the outbox "
            f"(`{PROG} outbox list`); do not submit it again, flush it\n"
        )
        return 130


def _seconds(value: str) -> float:
    """A duration from the command line: a finite number >= 0 (``nan`` made --wait loop
    for ever, since no time is past a NaN deadline)."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {value!r}")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=f"server URL (default: ${SERVER_ENV}, else the config file)",
    )
    common.add_argument(
        "--home",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="config folder (default: $KINERJA_CLIENT_HOME, else ~/.config/kinerja)",
    )
    common.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_seconds,
        default=argparse.SUPPRESS,
        help=f"HTTP timeout (default {DEFAULT_TIMEOUT:g})",
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[common],
        description="Sign and send progress reports; read scorecards and rankings.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    init = command("init", "make the Ed25519 signing key in the config folder", cmd_init)
    init.add_argument("--force", action="store_true", help="replace an existing key")
    init.add_argument("--username", help="remember this account for login")

    login = command("login", "get an access token (cached until it expires)", cmd_login)
    login.add_argument("--username", help="account (default: the one remembered)")
    login.add_argument(
        "--password-stdin",
        action="store_true",
        help=f"read the password from stdin's first line (else ${PASSWORD_ENV}, else a prompt)",
    )

    register = command("register-key", "register the public key with the server", cmd_register)
    register.add_argument("--label", help="a name for the key (default: this computer's name)")

    submit = command("submit", "sign and send progress reports", cmd_submit)
    submit.add_argument("--file", type=Path, help="rows from a CSV or JSON file (see README)")
    submit.add_argument("--district", help="district code, e.g. 16.71 (default: your own)")
    submit.add_argument("--as-of", help="date of the counts, YYYY-MM-DD (default: today)")
    submit.add_argument(
        "--value",
        action="append",
        default=[],
        metavar="CODE=NUM/DEN",
        help="an indicator's counts, e.g. ktp_el=5545117/5940433 (repeatable)",
    )
    submit.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="CODE.CHANNEL=N",
        help=f"records by service channel ({', '.join(CHANNELS)}), e.g. ktp_el.mobile=300",
    )
    submit.add_argument(
        "--stated",
        action="append",
        default=[],
        metavar="CODE=PCT",
        help="the percentage printed in the report, e.g. ktp_el=97.70 (kept for comparison)",
    )
    submit.add_argument("--note", help="free text, e.g. a broken recording device")
    submit.add_argument("--division", metavar="ID", help="report for this division of yours")
    submit.add_argument(
        "--supersedes",
        metavar="ID",
        help="the submission this one corrects (give its date as --as-of)",
    )
    submit.add_argument("--reason", help="why it is corrected (with --supersedes)")
    submit.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: for many rows on a terminal)",
    )

    outbox = command("outbox", "reports waiting to be delivered", _outbox_usage)
    outbox_sub = outbox.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    listing = outbox_sub.add_parser(
        "list", parents=[common], help="show what waits", description="Show what waits."
    )
    listing.add_argument("--json", action="store_true", help="as JSON")
    listing.set_defaults(handler=cmd_outbox_list)
    flushing = outbox_sub.add_parser(
        "flush",
        parents=[common],
        help="send what waits",
        description="Send what waits: the same signed reports under the same idempotency keys.",
    )
    flushing.add_argument(
        "--due", action="store_true", help="only items whose backoff has passed (for schedulers)"
    )
    flushing.add_argument(
        "--wait",
        metavar="SECONDS",
        type=_seconds,
        default=0.0,
        help="keep retrying with backoff for up to this long until the outbox is empty",
    )
    flushing.add_argument(
        "--now",
        action="store_true",
        help="send even if the server asked for a pause (it may ask again)",
    )
    flushing.set_defaults(handler=cmd_outbox_flush)
    discarding = outbox_sub.add_parser(
        "discard",
        parents=[common],
        help="remove a rejected report",
        description="Remove a report the server rejected (its # in `outbox list`), once dealt"
        " with. Reports still waiting to be delivered cannot be removed.",
    )
    discarding.add_argument("number", type=int, metavar="#", help="the report's # in the list")
    discarding.set_defaults(handler=cmd_outbox_discard)
    resigning = outbox_sub.add_parser(
        "resign",
        parents=[common],
        help="sign a rejected report again and send it",
        description="Sign a rejected report (its # in `outbox list`) again, under its own jti"
        " with a fresh iat and your current key, queue it in the rejected one's place and"
        " send it (a server already holding it answers 'already received'):"
        " for a report refused because it waited too long to be sent, or was signed with a"
        " key since replaced. It holds the same district, date, counts, note and correction;"
        " a report refused for what it says needs correcting and submitting instead.",
    )
    resigning.add_argument("number", type=int, metavar="#", help="the report's # in the list")
    resigning.set_defaults(handler=cmd_outbox_resign)

    scorecard = command("scorecard", "your district's scorecard", cmd_scorecard)
    scorecard.add_argument("--district", help="district code (default: your own)")
    _report_options(scorecard)

    rankings = command("rankings", "rank a province's districts", cmd_rankings)
    rankings.add_argument("--province", required=True, help="province code, e.g. 16")
    rankings.add_argument(
        "--indicator", default=None, help="composite (default) or an indicator code"
    )
    _report_options(rankings)
    return parser


def _report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--year", type=int, help="agreement year (default: the as-of year)")
    parser.add_argument("--as-of", help="YYYY-MM-DD (default: today)")
    parser.add_argument("--basis", choices=("latest", "accepted"), help="which reports count")
    formats = parser.add_mutually_exclusive_group()
    formats.add_argument("--json", action="store_true", help="print the server's JSON")
    formats.add_argument("--csv", action="store_true", help="print the server's CSV")


def _session(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    transport: httpx.BaseTransport | None,
) -> Session:
    try:
        config = load_config(getattr(args, "home", None))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    given = getattr(args, "server", None) or os.environ.get(SERVER_ENV)
    base_url = given or config.base_url
    problem = ""
    if given:
        try:
            ClientConfig(base_url=given)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    elif config.saved_url_problem:
        problem = f"{config.saved_url_problem} (correct it, or pass --server)"
    return Session(
        args=args,
        config=config,
        server=base_url.rstrip("/"),
        out=out,
        err=err,
        transport=transport,
        server_problem=problem,
    )


def _outbox_usage(session: Session) -> int:  # pragma: no cover - argparse requires an action
    raise CliError("outbox needs an action: list, flush or discard")


# -- init, login, register-key ----------------------------------------------------------


def cmd_init(s: Session) -> int:
    """Make the key pair (refusing to replace one without --force) and save the settings."""
    home = ensure_home(s.config.home)
    if os.name == "posix" and stat.S_IMODE(home.stat().st_mode) & 0o077:
        home.chmod(PRIVATE_DIR_MODE)  # the folder holds the key and the token: owner only
    try:
        pair = generate_keypair(home, force=s.args.force)
    except FileExistsError:
        raise CliError(
            f"a signing key already exists in {home}; `{PROG} init --force` replaces it "
            "(then register the new key; reports signed with the old one stay valid)"
        ) from None
    config = ClientConfig(
        base_url=s.base_url,  # --server, else $KINERJA_SERVER, else the one saved before
        username=s.args.username or s.config.username,
        home=str(home),
    )
    save_config(config)
    s.print(f"Signing key: {pair.path} (Ed25519, owner-only)")
    s.print(f"Key id:      {pair.kid}")
    s.print(f"Public key:  {json.dumps(pair.jwk)}")
    s.print(f"Settings:    {config.config_path}")
    s.print(f"Server:      {config.base_url}")
    s.print(f"Next: `{PROG} login`, then `{PROG} register-key`.")
    return EXIT_OK


def cmd_login(s: Session) -> int:
    """Exchange the password for an access token and cache it owner-only until it expires."""
    username = s.args.username or s.config.username
    if not username:
        raise CliError("no account: pass --username")
    password = _password(s, username)
    with s.http() as http:
        response = _request(
            s,
            http,
            "POST",
            "/v1/auth/token",
            data={"grant_type": "password", "username": username, "password": password},
        )
    if response.status_code != 200:
        _fail(s, response, what="login")
    body = _json(response)
    token = body.get("access_token") if isinstance(body, dict) else None
    expires_in = body.get("expires_in") if isinstance(body, dict) else None
    if not isinstance(token, str) or not isinstance(expires_in, int | float):
        raise CliError("the server's token answer is not understood", EXIT_UNREACHABLE)
    expires_at = time.time() + float(expires_in)
    save_token(token, expires_at, home=s.home)
    save_config(ClientConfig(base_url=s.base_url, username=username, home=str(s.home)))
    claims = _claims(token)
    s.print(
        f"Logged in to {s.base_url} as {username} ({claims.get('role', '?')}, "
        f"area {claims.get('area', '?')}) until {render.local_time(expires_at)}."
    )
    return EXIT_OK


def _password(s: Session, username: str) -> str:
    if s.args.password_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
    elif os.environ.get(PASSWORD_ENV):
        password = os.environ[PASSWORD_ENV]
    elif sys.stdin is not None and sys.stdin.isatty():
        password = getpass.getpass(f"Password for {username}: ")
    else:
        raise CliError(f"no password: use --password-stdin or set {PASSWORD_ENV}")
    if not password:
        raise CliError("empty password")
    return password


def cmd_register(s: Session) -> int:
    """Register the public key; a key already registered to this account is fine."""
    pair = _keypair(s)
    token = s.token()
    label = s.args.label or f"{PROG} on {socket.gethostname()}"[:200]
    with s.http() as http:
        response = _request(
            s, http, "POST", "/v1/keys", token=token, json={"jwk": pair.jwk, "label": label}
        )
        if response.status_code == 201:
            s.print(f"Registered key {pair.kid} ({label}).")
            return EXIT_OK
        if response.status_code != 409:
            _fail(s, response, what="register-key")
        mine = _request(s, http, "GET", "/v1/keys", token=token, params={"limit": 500})
    if mine.status_code == 200:
        for key in (_json(mine) or {}).get("items", []):
            if key.get("kid") == pair.kid:
                if key.get("revoked_at"):
                    raise CliError(
                        f"key {pair.kid} was revoked at {key['revoked_at']}; make a new one "
                        f"with `{PROG} init --force` and register it",
                        EXIT_REJECTED,
                    )
                s.print(f"Key {pair.kid} is already registered to you.")
                return EXIT_OK
    _fail(s, response, what="register-key")


def _keypair(s: Session) -> KeyPair:
    try:
        return load_keypair(s.home)
    except FileNotFoundError:
        raise CliError(f"no signing key in {s.home}: run `{PROG} init` first") from None
    except (PermissionError, ValueError) as exc:
        raise CliError(str(exc)) from None


# -- submit and the outbox --------------------------------------------------------------


@dataclass
class _Queued:
    """A signed report on its way, with what became of it."""

    report: Report
    jws: str
    key: str
    outcome: Outcome | None = None
    #: Its # in the outbox, once queued.
    number: int | None = None


def cmd_submit(s: Session) -> int:
    """Sign every report, queue them all durably, then deliver them one by one."""
    token = load_token(home=s.home)
    reports = _reports(s, token)
    # A login is bound to one district: a row for another (a typo) would be refused
    # after the others were stored, so the whole file is refused before any is sent.
    own = _own_district(token or cached_token(home=s.home))
    if own is not None and (others := sorted({r.district for r in reports} - {own})):
        raise CliError(
            f"your login is for district {own}; nothing was sent, as rows are for "
            f"{', '.join(others)}"
        )
    payloads = [_payload(report) for report in reports]
    pair = _keypair(s)
    with Outbox.open(s.home) as box:
        # Everything is signed and queued before the first request: if the process dies
        # part-way, the rest waits in the outbox instead of tempting a second submit.
        queued = []
        for report, payload in zip(reports, payloads, strict=True):
            item = _Queued(report, sign_submission(payload, pair.private_key, pair.kid), _key())
            item.number = box.put(item.jws, item.key).id
            queued.append(item)
        mend = _deliver_all(s, box, token, queued)
    return _submit_summary(s, queued, mend=mend)


def _payload(report: Report) -> dict[str, Any]:
    """A report's payload with a fresh ``iat`` (and ``jti``, unless it was signed before),
    checked before it is signed."""
    try:
        return build_payload(
            report.district,
            report.as_of,
            report.values,
            note=report.note,
            division=report.division,
            supersedes=report.supersedes,
            jti=report.jti,
        )
    except ValueError as exc:
        raise CliError(f"{report.source}: {exc}") from None


#: What a person must do before the outbox can be sent: log in, or fix the server address.
_LOG_IN = f"run `{PROG} login`, then `{PROG} outbox flush`"
_FIX_SERVER = f"fix the server address (--server or {SERVER_ENV}), then run `{PROG} outbox flush`"


def _deliver_all(s: Session, box: Outbox, token: str | None, queued: list[_Queued]) -> str | None:
    """Send the reports in order until one answer says the rest should wait; what a
    person must do first when that was the session (none, or refused) or the server's
    address (a redirect), which no retry mends."""
    show = getattr(s.args, "progress", None)  # `outbox resign` sends one report
    if show is None:
        show = len(queued) > 1 and s.err.isatty()
    bar = render.ProgressBar(len(queued), s.err, enabled=bool(show))
    reason = None if token else "not logged in"
    mend = None if token else _LOG_IN
    if reason is None and (held := box.held_until()) is not None:
        reason = f"the server asked for a pause until {render.local_time(held)}"
    with s.http() as http:
        bar.draw()
        for item in queued:
            if reason is None and token is not None:
                item.outcome = deliver(http, s.base_url, token, item.jws, item.key, box)
                if item.outcome.kind == "unauthorized":
                    clear_token(home=s.home, refused=token)
                    reason = f"the server refused the session ({item.outcome.error})"
                    mend = _LOG_IN
                elif item.outcome.kind == "moved":
                    reason = item.outcome.error
                    mend = _FIX_SERVER
                elif item.outcome.kind == "retry" and item.outcome.status is None:
                    reason = f"server unreachable ({item.outcome.error})"
                elif item.outcome.kind == "retry" and item.outcome.retry_after is not None:
                    wait = item.outcome.retry_after
                    box.hold(time.time() + wait)  # a scheduled flush waits too
                    reason = f"the server asked to wait {round(wait)} s ({item.outcome.error})"
                elif holds_back(item.outcome):  # overloaded or down, with no time given
                    reason = f"the server is busy or down ({item.outcome.error})"
            else:  # no point waiting for a timeout per row: it stays queued, untried
                item.outcome = Outcome(kind="retry", error=f"not sent: {reason}")
            bar.advance(f"{item.report.district} {item.report.as_of}")
    bar.close()
    return mend


def _submit_summary(s: Session, queued: list[_Queued], *, mend: str | None) -> int:
    counts = {"stored": 0, "rejected": 0, "queued": 0}
    for item in queued:
        assert item.outcome is not None
        state = _print_outcome(
            s, item.report.district, str(item.report.as_of), item.outcome, number=item.number
        )
        counts[state] += 1
    total = len(queued)
    s.print(
        f"{total} submission{'s' if total != 1 else ''}: {counts['stored']} stored, "
        f"{counts['rejected']} rejected, {counts['queued']} queued in the outbox"
    )
    return _finish(s, counts["rejected"], counts["queued"], mend=mend)


def _print_outcome(
    s: Session, district: str, as_of: str, outcome: Outcome, *, number: int | None
) -> str:
    """One line (plus the problem for a rejection); returns stored, rejected or queued."""
    what = f"{district} {as_of}"
    body = outcome.body if isinstance(outcome.body, dict) else {}
    if outcome.kind == "stored":
        if outcome.status == 409:
            s.print(f"stored    {what}  already on the server (an earlier attempt got through)")
        else:
            line = f"stored    {what}  id {body.get('id', '?')}"
            if body.get("flags"):
                line += f"  flags: {', '.join(body['flags'])}"
            s.print(line)
        return "stored"
    if outcome.kind == "rejected":
        s.print(
            f"rejected  {what}  not retried; kept in `{PROG} outbox list` until discarded;"
            " correct it and submit again"
        )
        for line in _problem_lines(outcome.status, outcome.body):
            s.print("          " + line)
        which = "#" if number is None else number
        again = f"`{PROG} outbox resign {which}` signs it again"
        slug = str(body.get("type", "")).rsplit("/", 1)[-1]
        hint = {
            "iat-too-old": f"it waited too long: {again}",
            "iat-in-future": f"this computer's clock was ahead: set it, then {again}",
            "invalid-signature": f"if your key was replaced or revoked since, {again}",
        }.get(slug)
        if hint:
            s.print("          " + hint)
        return "rejected"
    s.print(f"queued    {what}  {outcome.error or 'will be retried'}")
    return "queued"


def _finish(s: Session, rejected: int, queued: int, *, mend: str | None = None) -> int:
    """The exit code: refusals first, then something a person must mend (log in, fix
    the server address: no point in a script retrying), then reports left waiting."""
    if queued:
        advice = mend or f"run `{PROG} outbox flush` when the server is reachable"
        waiting = "1 report waits" if queued == 1 else f"{queued} reports wait"
        s.note(f"{waiting} in the outbox; {advice}")
    if rejected:
        return EXIT_REJECTED
    if mend and queued:
        return EXIT_USAGE
    return EXIT_UNREACHABLE if queued else EXIT_OK


def _key() -> str:
    """A fresh idempotency key: one per signed report, reused by every retry of it."""
    return str(uuid.uuid4())


def _reports(s: Session, token: str | None) -> list[Report]:
    """The reports to sign, from --file or from the value flags."""
    a = s.args
    flags_given = a.value or a.channel or a.stated or a.note or a.supersedes or a.division
    try:
        if a.file is not None:
            if flags_given or a.district or a.as_of:
                raise CliError("--file cannot be combined with --district/--as-of/--value/...")
            return read_reports(a.file)
        if not a.value:
            raise CliError("nothing to submit: give --value CODE=NUM/DEN (repeatable) or --file")
        # A lapsed login still says whose district it is: the report waits in the outbox.
        district = a.district or _own_district(token or cached_token(home=s.home))
        if district is None:
            raise CliError("pass --district (it is taken from your login otherwise)")
        values: dict[str, Any] = {}
        for spec in a.value:
            code, counts = _split(spec, "=", "--value", "CODE=NUM/DEN")
            numerator, denominator = _split(counts, "/", "--value", "CODE=NUM/DEN")
            if code in values:
                raise CliError(f"--value {code} given twice")
            values[code] = {
                "numerator": parse_count(numerator, f"--value {code}"),
                "denominator": parse_count(denominator, f"--value {code}"),
            }
        for spec in a.channel:
            target, number = _split(spec, "=", "--channel", "CODE.CHANNEL=N")
            code, channel = _split(target, ".", "--channel", "CODE.CHANNEL=N")
            if code not in values:
                raise CliError(f"--channel {spec}: no --value for {code}")
            channels = values[code].setdefault("channels", {})
            channels[channel] = parse_count(number, f"--channel {spec}")
        for spec in a.stated:
            code, pct = _split(spec, "=", "--stated", "CODE=PCT")
            if code not in values:
                raise CliError(f"--stated {spec}: no --value for {code}")
            values[code]["stated_pct"] = parse_percent(pct, f"--stated {spec}")
        if a.reason and not a.supersedes:
            raise CliError("--reason goes with --supersedes")
        supersedes = None
        if a.supersedes:
            if not a.reason:
                raise CliError("--supersedes needs --reason")
            if not a.as_of:
                raise CliError("--supersedes needs --as-of: the date of the report it corrects")
            supersedes = {"id": a.supersedes, "reason": a.reason}
        as_of = parse_date(a.as_of, "--as-of") if a.as_of else date.today()
        return [
            Report(
                district=district,
                as_of=as_of,
                values=values,
                note=a.note,
                division=a.division,
                supersedes=supersedes,
                source="command line",
            )
        ]
    except RowError as exc:
        raise CliError(str(exc)) from None


def _split(spec: str, sep: str, option: str, shape: str) -> tuple[str, str]:
    left, found, right = spec.partition(sep)
    if not found or not left.strip() or not right.strip():
        raise CliError(f"{option} {spec!r}: expected {shape}")
    return left.strip(), right.strip()


def cmd_outbox_list(s: Session) -> int:
    """Show what waits in the outbox, oldest first, then what the server rejected."""
    with Outbox.open(s.home) as box:
        items = box.all()
        rejected = box.rejected()
    now = time.time()
    if s.args.json:
        listed = [_item_json(item) for item in items + rejected]
        s.print(json.dumps(listed, indent=2, ensure_ascii=False))
        return EXIT_OK
    if not items and not rejected:
        s.print("The outbox is empty.")
        return EXIT_OK
    if items:
        rows = [
            (
                *_what(item),
                render.local_time(item.created_at),
                item.attempts,
                _next_try(item, now),
                render.text(item.last_error),
            )
            for item in items
        ]
        headers = (
            "#",
            "District",
            "As of",
            "Values",
            "Queued",
            "Tries",
            "Next try",
            "Last error",
        )
        s.print(render.table(headers, rows, right=(0, 5)))
        s.print(f"\n{len(items)} waiting; `{PROG} outbox flush` sends them.")
    if rejected:
        rows = [
            (
                *_what(item),
                render.local_time(item.rejected_at or item.created_at),
                render.text(item.last_error),
            )
            for item in rejected
        ]
        if items:
            s.print("")
        s.print("Rejected by the server (not retried):")
        headers = ("#", "District", "As of", "Values", "Rejected", "Why")
        s.print(render.table(headers, rows, right=(0,)))
        s.print(
            f"\n{len(rejected)} rejected; correct and submit again, then"
            f" `{PROG} outbox discard #` removes each (one refused only for waiting too"
            f" long, or for a key since replaced: `{PROG} outbox resign #`)."
        )
    return EXIT_OK


def _next_try(item: OutboxItem, now: float) -> str:
    due = due_at(item.next_attempt_at, now)
    return render.local_time(due) if due > now else "now"


def _what(item: OutboxItem) -> tuple[int, str, str, str]:
    """An outbox row's first columns: its number, district, date and what it counts (so
    a report refused for good can be typed again from this list)."""
    claims = _claims(item.jws)
    values = claims.get("values") or {}
    counts = ",".join(
        f"{code}={v.get('numerator', '?')}/{v.get('denominator', '?')}"
        if isinstance(v, dict)
        else str(code)
        for code, v in sorted(values.items())
    )
    return item.id, claims.get("district", "?"), claims.get("as_of", "?"), counts


def _item_json(item: OutboxItem) -> dict[str, Any]:
    claims = _claims(item.jws)
    return {
        "id": item.id,
        "state": "waiting" if item.rejected_at is None else "rejected",
        "idempotency_key": item.idempotency_key,
        "district": claims.get("district"),
        "as_of": claims.get("as_of"),
        "jti": claims.get("jti"),
        "indicators": sorted(claims.get("values") or {}),
        # What was signed, to type again a report refused for what it says.
        "values": claims.get("values") or {},
        "note": claims.get("note"),
        "supersedes": claims.get("supersedes"),
        "created_at": item.created_at,
        "attempts": item.attempts,
        "next_attempt_at": due_at(item.next_attempt_at, time.time()),
        "last_error": item.last_error,
        "rejected_at": item.rejected_at,
    }


def cmd_outbox_discard(s: Session) -> int:
    """Remove one rejected report the user has dealt with."""
    with Outbox.open(s.home) as box:
        gone = box.discard(s.args.number)
    if gone is None:
        raise CliError(
            f"no rejected report #{s.args.number} (see `{PROG} outbox list`;"
            " reports still waiting are only removed once the server has them)"
        )
    claims = _claims(gone.jws)
    s.print(f"discarded #{gone.id}  {claims.get('district', '?')} {claims.get('as_of', '?')}")
    return EXIT_OK


def cmd_outbox_resign(s: Session) -> int:
    """Sign a rejected report again (its own jti, a fresh iat, the current key) in its
    place, then send it as ``submit`` would. Keeping the jti matters: a report refused for
    its key may be stored already (its answer lost), and the server then answers "already
    received" instead of storing it a second time."""
    token = load_token(home=s.home)
    pair = _keypair(s)
    number = s.args.number
    missing = CliError(
        f"no rejected report #{number} (see `{PROG} outbox list`; reports still waiting"
        f" are sent as they are by `{PROG} outbox flush`)"
    )
    with Outbox.open(s.home) as box:
        old = next((item for item in box.rejected() if item.id == number), None)
        if old is None:
            raise missing
        report = _report_of(old)
        payload = _payload(report)
        item = _Queued(report, sign_submission(payload, pair.private_key, pair.kid), _key())
        queued = box.replace_rejected(number, old.jws, item.jws, item.key)
        if queued is None:
            raise missing  # discarded or signed again by another run meanwhile
        item.number = queued.id
        mend = _deliver_all(s, box, token, [item])
    return _submit_summary(s, [item], mend=mend)


def _report_of(item: OutboxItem) -> Report:
    """What a queued report says, read back from its JWS to sign it again."""
    claims = _claims(item.jws)
    try:
        as_of = parse_date(str(claims.get("as_of")), f"#{item.id}")
    except RowError as exc:
        raise CliError(str(exc)) from None
    return Report(
        district=str(claims.get("district")),
        as_of=as_of,
        values=claims.get("values") or {},
        note=claims.get("note"),
        division=claims.get("division"),
        supersedes=claims.get("supersedes"),
        source=f"outbox #{item.id}",
        jti=str(claims.get("jti")) if claims.get("jti") is not None else None,
    )


def cmd_outbox_flush(s: Session) -> int:
    """Re-send what waits; with --wait keep going, backing off, until it is empty."""
    with Outbox.open(s.home) as box:
        if not box.all():
            refused = len(box.rejected())
            if refused:
                reports = f"{refused} refused reports stay"
                if refused == 1:
                    reports = "1 refused report stays"
                s.print(
                    f"Nothing to send; {reports} in the outbox (`{PROG} outbox list`, then "
                    f"correct and submit, or `{PROG} outbox discard #`)."
                )
            else:
                s.print("The outbox is empty.")
            return EXIT_OK
        try:
            token = s.token()
        except CliError as exc:
            raise CliError(f"{exc.message}; {len(box.all())} reports stay queued") from None
        if s.args.now and (held := box.held_until()) is not None:
            box.release()
            s.note(f"the pause the server asked for (until {render.local_time(held)}) is ended")
        deadline = time.monotonic() + max(s.args.wait, 0.0)
        everything = not s.args.due
        stored = rejected = 0
        with s.http() as http:
            while True:
                report = flush(http, s.base_url, token, box, everything=everything)
                entries: list[FlushEntry] = report.stored + report.rejected + report.retrying
                for entry in sorted(entries, key=lambda e: e.item.id):
                    claims = _claims(entry.item.jws)
                    state = _print_outcome(
                        s,
                        claims.get("district", "?"),
                        claims.get("as_of", "?"),
                        entry.outcome,
                        number=entry.item.id,
                    )
                    stored += state == "stored"
                    rejected += state == "rejected"
                if report.unauthorized:
                    clear_token(home=s.home, refused=token)
                    s.note(f"the server refused the session: {report.refusal}")
                    break
                if report.moved:
                    s.note(f"the server answered {report.moved}")
                    break
                due = box.next_due()
                if due is None:
                    break
                wait = max(due, report.held_until or 0.0) - time.time()
                if time.monotonic() + max(wait, 0.0) > deadline:
                    if not entries and report.held_until is not None:
                        until = render.local_time(report.held_until)
                        s.note(f"the server asked for a pause until {until}: nothing was sent")
                    break
                time.sleep(max(wait, 0.0))
                # What the person asked to send now goes once the pause is over.
                everything = everything and not entries
                # With the login made meanwhile (a pause may outlast a session).
                fresh = load_token(home=s.home)
                if fresh is None:
                    s.note(f"the session ended during the pause: run `{PROG} login`")
                    break
                token = fresh
        left = len(box.all())
        first_due = box.next_due()
    summary = f"{stored} stored, {rejected} rejected, {left} still queued"
    mend = _LOG_IN if report.unauthorized else _FIX_SERVER if report.moved else None
    if first_due is not None and mend is None:
        next_try = max(first_due, report.held_until or 0.0)
        summary += f" (next try after {render.local_time(next_try)})"
    s.print(summary)
    return _finish(s, rejected, left, mend=mend)


# -- scorecards and rankings ------------------------------------------------------------


def cmd_scorecard(s: Session) -> int:
    """A district's scorecard: yours unless --district names another in your scope."""
    token = s.token()
    district = s.args.district or _own_district(token)
    if district is None:
        raise CliError("pass --district (your login is not bound to one district)")
    path = f"/v1/scorecards/districts/{district}"
    return _report(s, token, "scorecard", path, {}, render.scorecard)


def cmd_rankings(s: Session) -> int:
    """The ranking of a province's districts."""
    token = s.token()
    params = {"province": s.args.province}
    if s.args.indicator:
        params["indicator"] = s.args.indicator
    return _report(s, token, "rankings", "/v1/rankings/districts", params, render.ranking)


def _report(s: Session, token: str, what: str, path: str, params: dict[str, Any], show: Any) -> int:
    a = s.args
    if a.as_of:
        try:
            params["as_of"] = parse_date(a.as_of, "--as-of").isoformat()
        except RowError as exc:
            raise CliError(str(exc)) from None
    if a.year is not None:
        params["year"] = a.year
    if a.basis:
        params["basis"] = a.basis
    accept = "text/csv" if a.csv else "application/json"
    with s.http() as http:
        response = _request(s, http, "GET", path, token=token, params=params, accept=accept)
    if response.status_code != 200:
        _fail(s, response, what=what)
    media = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    body = None if a.csv else _json(response)
    if (media != "text/csv") if a.csv else not isinstance(body, dict):
        # A 200 that is not the server's answer: a captive portal's login page, a proxy.
        raise CliError(
            f"{what}: the answer (HTTP 200, {media or 'no type'}) is not the server's;"
            " a login page or a proxy in the way?",
            EXIT_UNREACHABLE,
        )
    if a.json or a.csv:
        s.out.write(response.text if response.text.endswith("\n") else response.text + "\n")
    else:
        s.print(show(body))
    return EXIT_OK


# -- HTTP helpers -----------------------------------------------------------------------


def _request(
    s: Session,
    http: httpx.Client,
    method: str,
    path: str,
    *,
    token: str | None = None,
    accept: str = "application/json",
    **kwargs: Any,
) -> httpx.Response:
    headers = {"Accept": f"{accept}, application/problem+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        return http.request(method, s.base_url + path, headers=headers, **kwargs)
    except httpx.RequestError as exc:
        detail = str(exc) or type(exc).__name__
        raise CliError(f"cannot reach {s.base_url}: {detail}", EXIT_UNREACHABLE) from None


def _fail(s: Session, response: httpx.Response, *, what: str) -> NoReturn:
    """Show the server's problem detail and end with the matching exit code."""
    status = response.status_code
    for line in _problem_lines(status, _json(response)):
        s.note(line)
    if status == 401 and what != "login":
        sent = response.request.headers.get("authorization", "").partition(" ")[2]
        clear_token(home=s.home, refused=sent or None)
        raise CliError(f"the server refused the session: run `{PROG} login` again")
    if 300 <= status < 400:  # no redirect is followed: the address is wrong (exit 2)
        where = response.headers.get("location") or "an address it did not give"
        raise CliError(
            f"{what}: the server at {s.base_url} answered HTTP {status}, moved to {where}; "
            f"fix the server address (--server or {SERVER_ENV})"
        )
    if 400 <= status < 500:
        raise CliError(f"{what}: refused by the server (HTTP {status})", EXIT_REJECTED)
    raise CliError(f"{what}: the server failed (HTTP {status}); try again later", EXIT_UNREACHABLE)


def _problem_lines(status: int | None, body: Any) -> list[str]:
    """An RFC 9457 problem as lines: title, detail, field errors, type."""
    if not isinstance(body, dict):
        return [f"HTTP {status}" if status else "no answer"]
    lines = [f"HTTP {status}: {body.get('title') or 'error'}"]
    if body.get("detail") and body.get("detail") != body.get("title"):
        lines.append(f"  detail: {body['detail']}")
    for error in body.get("errors") or []:
        if isinstance(error, dict):
            where = error.get("key") or error.get("field") or ""
            lines.append(f"  - {where}: {error.get('message', error)}" if where else f"  - {error}")
    if body.get("type") and body.get("type") != "about:blank":
        lines.append(f"  type: {body['type']}")
    return lines


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _claims(compact: str) -> dict[str, Any]:
    """The payload of a compact JWS or JWT, read without checking it (display only)."""
    try:
        part = compact.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _own_district(token: str | None) -> str | None:
    """The district the login is bound to (the token's ``area`` claim), if it is one."""
    area = _claims(token).get("area") if token else None
    return area if isinstance(area, str) and _DISTRICT.fullmatch(area) else None


def _version() -> str:
    try:
        return metadata.version("kinerja")
    except metadata.PackageNotFoundError:
        return "0"


if __name__ == "__main__":
    sys.exit(main())
