"""The consent page's sessions (``vault/oauth/sessions.py``), one rule at a time, in process.

The browser tests (tests/integration/page) log in and out through a real server, which
``make mutate`` cannot reach: its child process runs the unmutated code. Here each rule of
the session is held against the real database with an exact clock: the cookie's
attributes, the idle and absolute deadlines to the microsecond, the throttle's window and
count, and the access decision each kind of visitor carries (issue 16).
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from sqlalchemy import func, insert, select
from starlette.requests import Request
from starlette.responses import Response

from tests.factories import patient, related_person
from tests.support.harness import Harness, network_account
from tests.support.smart import inwoner_account
from vault.app.clients import set_account
from vault.consent.access import AccessContext, Permissions
from vault.consent.representation import PARENT
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime, now_micros
from vault.oauth import sessions
from vault.oauth.accounts import find_account
from vault.oauth.models import Account, LoginFailure, WebSession
from vault.oauth.sessions import MICROS, Visitor

MINUTE = 60 * MICROS


@dataclass
class People:
    patient_id: str
    inwoner: tuple[str, str]  # user name, password
    representative: tuple[str, str]
    representative_rp: str
    network: tuple[str, str]
    network_rp: str


@pytest.fixture(scope="module")
def people(settings: Settings, runtime: Runtime) -> Iterator[People]:
    harness = Harness(runtime, settings)
    pid = harness.create(patient(), patient_id=None).resource_id
    mentor = harness.create(related_person(patient_id=pid), patient_id=pid).resource_id
    friend = harness.create(related_person(patient_id=pid), patient_id=pid).resource_id
    yield People(
        patient_id=pid,
        inwoner=inwoner_account(runtime, pid),
        representative=network_account(
            runtime, patient_id=pid, related_person=mentor, legal_basis="mentor"
        ),
        representative_rp=mentor,
        network=network_account(runtime, patient_id=pid, related_person=friend, legal_basis=None),
        network_rp=friend,
    )
    harness.close()


def _account_id(runtime: Runtime, username: str) -> str:
    with runtime.db.read() as conn:
        found = conn.execute(
            select(Account.account_id).where(Account.username == username)
        ).scalar_one()
    return str(found)


def _session(runtime: Runtime, *, account_id: str, created_at: int, expires_at: int) -> str:
    """A session row as the page would have left it; returns its id."""
    session_id = uuid.uuid4().hex
    with runtime.db.write() as conn:
        conn.execute(
            insert(WebSession).values(
                id_hash=sessions.hash_secret(session_id),
                account_id=account_id,
                csrf_token="csrf-" + session_id,
                created_at=created_at,
                expires_at=expires_at,
            )
        )
    return session_id


def _expires_at(runtime: Runtime, session_id: str) -> int | None:
    with runtime.db.read() as conn:
        return conn.scalar(
            select(WebSession.expires_at).where(
                WebSession.id_hash == sessions.hash_secret(session_id)
            )
        )


def _load(runtime: Runtime, session_id: str, now: int, settings: Settings) -> Visitor | None:
    with runtime.db.read() as conn:
        return sessions.load_visitor(conn, session_id, now=now, settings=settings)


# --- the session id and its hash ---


def test_the_database_keeps_the_sha256_of_the_session_id(runtime: Runtime) -> None:
    assert sessions.hash_secret("abc") == hashlib.sha256(b"abc").hexdigest()
    now = now_micros()
    account = f"acct-{uuid.uuid4().hex[:8]}"
    with runtime.db.write() as conn:
        session_id, csrf = sessions.start_session(
            conn, account_id=account, now=now, settings=runtime.settings
        )
    with runtime.db.read() as conn:
        row = conn.execute(select(WebSession).where(WebSession.account_id == account)).one()
    assert row.id_hash == hashlib.sha256(session_id.encode()).hexdigest()
    assert row.csrf_token == csrf != session_id
    assert len(session_id) == len(csrf) == 43  # 32 random bytes each, base64url
    assert row.created_at == now


@pytest.mark.parametrize(("idle", "most", "minutes"), [(15, 480, 15), (30, 10, 10), (20, 20, 20)])
def test_a_new_session_ends_at_the_sooner_of_the_two_deadlines(
    runtime: Runtime, settings: Settings, idle: int, most: int, minutes: int
) -> None:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    now = now_micros()
    limits = dataclasses.replace(settings, session_idle_minutes=idle, session_max_minutes=most)
    with runtime.db.write() as conn:
        sessions.start_session(conn, account_id=account, now=now, settings=limits)
    with runtime.db.read() as conn:
        row = conn.execute(select(WebSession).where(WebSession.account_id == account)).one()
    assert row.expires_at == now + minutes * MINUTE


def test_starting_a_session_clears_the_ended_ones_and_only_those(
    runtime: Runtime, settings: Settings
) -> None:
    now = 1_000_000  # 1970: no other test's session ends this early
    ended = _session(runtime, account_id="acct-old", created_at=now - MINUTE, expires_at=now)
    alive = _session(runtime, account_id="acct-old", created_at=now - MINUTE, expires_at=now + 1)
    with runtime.db.write() as conn:
        sessions.start_session(conn, account_id="acct-new", now=now, settings=settings)
    assert _expires_at(runtime, ended) is None
    assert _expires_at(runtime, alive) == now + 1
    with runtime.db.write() as conn:
        sessions.end_session(conn, sessions.hash_secret(alive))
    assert _expires_at(runtime, alive) is None


# --- loading the visitor ---


def test_each_kind_of_visitor_is_loaded_whole(
    runtime: Runtime, settings: Settings, people: People
) -> None:
    now = now_micros()
    expected = {
        people.inwoner: (people.patient_id, None, None, "Sanne"),
        people.representative: (
            people.patient_id,
            f"RelatedPerson/{people.representative_rp}",
            "mentor",
            "Ans",
        ),
        people.network: (people.patient_id, f"RelatedPerson/{people.network_rp}", None, "Ans"),
    }
    for login, (pid, rp, basis, name) in expected.items():
        account = _account_id(runtime, login[0])
        session_id = _session(runtime, account_id=account, created_at=now, expires_at=now + MINUTE)
        visitor = _load(runtime, session_id, now, settings)
        assert visitor == Visitor(
            session_hash=sessions.hash_secret(session_id),
            csrf_token="csrf-" + session_id,
            account_id=account,
            display_name=name,
            patient_id=pid,
            related_person=rp,
            legal_basis=basis,
            expires_at=now + MINUTE,
            lapsed_basis=None,
        )


def test_a_parent_whose_role_lapsed_at_sixteen_is_loaded_as_network(
    runtime: Runtime, settings: Settings
) -> None:
    harness = Harness(runtime, settings)
    child = harness.create(patient(birthDate="2005-01-01"), patient_id=None).resource_id
    mother = harness.create(related_person(patient_id=child), patient_id=child).resource_id
    harness.close()
    login = network_account(runtime, patient_id=child, related_person=mother, legal_basis=PARENT)
    now = now_micros()
    session_id = _session(
        runtime, account_id=_account_id(runtime, login[0]), created_at=now, expires_at=now + 1
    )
    visitor = _load(runtime, session_id, now, settings)
    assert visitor is not None
    assert (visitor.legal_basis, visitor.lapsed_basis) == (None, PARENT)
    assert visitor.related_person == f"RelatedPerson/{mother}"
    assert not visitor.may_manage and not visitor.is_inwoner


def test_a_session_id_that_is_empty_or_too_long_is_not_looked_up(
    runtime: Runtime, settings: Settings, people: People
) -> None:
    now = now_micros()
    account = _account_id(runtime, people.inwoner[0])
    for length, loads in ((200, True), (201, False)):
        session_id = (uuid.uuid4().hex * 7)[:length]
        with runtime.db.write() as conn:
            conn.execute(
                insert(WebSession).values(
                    id_hash=sessions.hash_secret(session_id),
                    account_id=account,
                    csrf_token="c",
                    created_at=now,
                    expires_at=now + MINUTE,
                )
            )
        assert (_load(runtime, session_id, now, settings) is not None) is loads, length
    assert _load(runtime, "", now, settings) is None


def test_the_idle_deadline_holds_to_the_microsecond(
    runtime: Runtime, settings: Settings, people: People
) -> None:
    now = now_micros()
    account = _account_id(runtime, people.inwoner[0])
    ended = _session(runtime, account_id=account, created_at=now - MINUTE, expires_at=now)
    alive = _session(runtime, account_id=account, created_at=now - MINUTE, expires_at=now + 1)
    assert _load(runtime, ended, now, settings) is None
    assert _load(runtime, alive, now, settings) is not None


def test_the_absolute_end_holds_to_the_microsecond(
    runtime: Runtime, settings: Settings, people: People
) -> None:
    now = now_micros()
    began = now - settings.session_max_minutes * MINUTE
    account = _account_id(runtime, people.inwoner[0])
    ended = _session(runtime, account_id=account, created_at=began, expires_at=now + MINUTE)
    alive = _session(runtime, account_id=account, created_at=began + 1, expires_at=now + MINUTE)
    assert _load(runtime, ended, now, settings) is None
    assert _load(runtime, alive, now, settings) is not None


def test_a_session_of_an_account_that_is_gone_or_unlinked_loads_no_one(
    runtime: Runtime, settings: Settings
) -> None:
    now = now_micros()
    gone = _session(runtime, account_id="acct-gone", created_at=now, expires_at=now + MINUTE)
    assert _load(runtime, gone, now, settings) is None
    username = f"los-{uuid.uuid4().hex[:8]}"
    set_account(runtime, username=username, patient_id=None, display_name="Los", password="x" * 12)
    unlinked = _session(
        runtime, account_id=_account_id(runtime, username), created_at=now, expires_at=now + 1
    )
    assert _load(runtime, unlinked, now, settings) is None


# --- the access decision each visitor carries ---


def _visitor(**fields: Any) -> Visitor:
    return Visitor("hash", "csrf", "acct-1", "Naam", "pat-1", **fields)


def _context(
    subject: str, kind: Literal["patient", "system"], patient: str | None, rp: str | None
) -> AccessContext:
    """The decision a visitor of account ``acct-1`` carries: every field but these four is
    the same for every page visitor (no organisation, client, purpose or practitioner)."""
    return AccessContext(
        subject=subject,
        kind=kind,
        patient_id=patient,
        organization=None,
        client_id=None,
        account_id="acct-1",
        permissions=Permissions.everything(),
        purposes=frozenset(),
        practitioner=None,
        representative=rp,
    )


def test_the_inwoner_reads_as_herself() -> None:
    visitor = _visitor()
    assert visitor.is_inwoner and visitor.may_manage
    assert visitor.context() == _context("inwoner:pat-1", "patient", "pat-1", None)


def test_a_representative_reads_as_the_inwoner_and_signs_as_themselves() -> None:
    visitor = _visitor(related_person="RelatedPerson/rp-1", legal_basis="curator")
    assert not visitor.is_inwoner and visitor.may_manage
    context = visitor.context()
    assert context == _context("vertegenwoordiger:acct-1", "patient", "pat-1", "RelatedPerson/rp-1")
    assert context.signer == "RelatedPerson/rp-1"


def test_someone_of_the_network_reads_only_what_is_granted_to_them() -> None:
    visitor = _visitor(related_person="RelatedPerson/rp-2")
    assert not visitor.is_inwoner and not visitor.may_manage
    context = visitor.context()
    assert context == _context("netwerk:acct-1", "system", None, "RelatedPerson/rp-2")
    assert context.grantees == frozenset({"RelatedPerson/rp-2"})


# --- sliding the idle deadline ---


def test_the_deadline_is_moved_once_it_is_more_than_a_minute_old(settings: Settings) -> None:
    now = now_micros()
    fresh = now + (settings.session_idle_minutes - 1) * MINUTE
    assert not sessions.needs_touch(_visitor(expires_at=fresh), now=now, settings=settings)
    assert sessions.needs_touch(_visitor(expires_at=fresh - 1), now=now, settings=settings)


def test_activity_moves_the_idle_deadline_but_never_past_the_absolute_end(
    runtime: Runtime, settings: Settings
) -> None:
    now = now_micros()
    idle, most = settings.session_idle_minutes * MINUTE, settings.session_max_minutes * MINUTE
    young = _session(runtime, account_id="acct-t", created_at=now - MINUTE, expires_at=now + 1)
    old_start = now - most + 5 * MINUTE  # five minutes left of its eight hours
    old = _session(runtime, account_id="acct-t", created_at=old_start, expires_at=now + 1)
    ended = _session(runtime, account_id="acct-t", created_at=now - MINUTE, expires_at=now)
    bystander = _session(runtime, account_id="acct-t", created_at=now, expires_at=now + 7)
    for session_id in (young, old, ended):
        with runtime.db.write() as conn:
            sessions.touch_session(
                conn, sessions.hash_secret(session_id), now=now, settings=settings
            )
    assert _expires_at(runtime, young) == now + idle
    assert _expires_at(runtime, old) == old_start + most
    assert _expires_at(runtime, ended) == now  # an ended session is not revived
    assert _expires_at(runtime, bystander) == now + 7


# --- the cookie ---


def _request(scheme: str = "http", forwarded: str | None = None) -> Request:
    headers = [] if forwarded is None else [(b"x-forwarded-proto", forwarded.encode())]
    return Request(
        {
            "type": "http",
            "scheme": scheme,
            "method": "GET",
            "path": "/",
            "query_string": b"",
            "server": ("127.0.0.1", 8000),
            "headers": headers,
        }
    )


@pytest.mark.parametrize(
    ("scheme", "public", "trust", "forwarded", "secure"),
    [
        ("https", "", None, None, True),
        ("http", "https://vault.example.nl", None, None, True),
        ("http", "http://127.0.0.1:8000", None, None, False),
        ("http", "", None, None, False),
        ("http", "", "1", "https", True),
        ("http", "", "1", "HTTPS", True),
        ("http", "", "1", "http", False),
        ("http", "", "1", None, False),
        ("http", "", None, "https", False),  # no proxy declared: the header is not believed
        ("http", "", "true", "https", False),
        ("http", "", "0", "https", False),
    ],
)
def test_the_cookie_is_secure_over_https_and_behind_a_declared_proxy(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    scheme: str,
    public: str,
    trust: str | None,
    forwarded: str | None,
    secure: bool,
) -> None:
    if trust is None:
        monkeypatch.delenv("VAULT_TRUST_FORWARDED_PROTO", raising=False)
    else:
        monkeypatch.setenv("VAULT_TRUST_FORWARDED_PROTO", trust)
    here = dataclasses.replace(settings, public_base_url=public)
    assert sessions.cookie_is_secure(_request(scheme, forwarded), here) is secure


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_the_session_cookie_has_every_attribute(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    monkeypatch.delenv("VAULT_TRUST_FORWARDED_PROTO", raising=False)
    response = Response()
    here = dataclasses.replace(settings, public_base_url="", session_max_minutes=90)
    sessions.set_session_cookie(response, "s3ss10n", request=_request(scheme), settings=here)
    secure = "; Secure" if scheme == "https" else ""
    assert response.headers.getlist("set-cookie") == [
        f"rk_session=s3ss10n; HttpOnly; Max-Age=5400; Path=/; SameSite=lax{secure}"
    ]


@pytest.mark.parametrize(
    ("expected", "given", "matches"),
    [("abc", "abc", True), ("abc", "abd", False), ("", "", False), ("abc", None, False)],
)
def test_a_csrf_token_matches_only_itself(expected: str, given: object, matches: bool) -> None:
    assert sessions.csrf_matches(expected, given) is matches


# --- logging in and the throttle ---


def _failures(runtime: Runtime, username: str) -> list[int]:
    key = runtime.blind.token("login:" + username)
    with runtime.db.read() as conn:
        return sorted(
            conn.scalars(select(LoginFailure.at).where(LoginFailure.username_hash == key))
        )


def _log_in(runtime: Runtime, username: str, password: str, now: int) -> sessions.LoginOutcome:
    with runtime.db.write() as conn:
        return sessions.log_in(
            conn, username=username, password=password, blind=runtime.blind, now=now
        )


def _fail(runtime: Runtime, username: str, at: int) -> None:
    with runtime.db.write() as conn:
        conn.execute(
            insert(LoginFailure).values(
                username_hash=runtime.blind.token("login:" + username), at=at
            )
        )


def test_a_wrong_password_is_counted_under_the_written_name(
    runtime: Runtime, people: People
) -> None:
    username, password = people.inwoner
    now = now_micros()
    outcome = _log_in(runtime, f"  {username.upper()} ", "fout", now)
    assert outcome == sessions.LoginOutcome(None, throttled=False)
    assert _failures(runtime, username) == [now]
    other_now, other = now + 1, f"iemand-{uuid.uuid4().hex[:8]}"
    _fail(runtime, other, other_now)
    right = _log_in(runtime, username, password, now + 2)
    assert not right.throttled and right.account is not None
    assert right.account.patient_id == people.patient_id
    assert _failures(runtime, username) == []  # a login clears its name's failures
    assert _failures(runtime, other) == [other_now]  # and no one else's


def test_a_failure_older_than_the_window_is_cleared_by_the_next_attempt(
    runtime: Runtime, people: People
) -> None:
    username = people.network[0]
    now = now_micros()
    since = now - sessions.FAILURE_WINDOW * MICROS
    _fail(runtime, username, since)  # exactly as old as the window: forgotten
    _fail(runtime, username, since + 1)  # a microsecond younger: still counts
    assert _log_in(runtime, username, "fout", now) == sessions.LoginOutcome(None)
    assert _failures(runtime, username) == [since + 1, now]


def test_the_fifth_failure_in_the_window_throttles_the_name(
    runtime: Runtime, settings: Settings, people: People
) -> None:
    username, password = people.representative
    now = now_micros()
    since = now - sessions.FAILURE_WINDOW * MICROS
    _fail(runtime, username, since)  # just outside the window: forgotten
    for step in range(sessions.MAX_FAILURES - 1):
        _fail(runtime, username, since + 1 + step)
    four = _log_in(runtime, username, password, now)
    assert four.account is not None and not four.throttled  # four failures: still let in
    for step in range(sessions.MAX_FAILURES):
        _fail(runtime, username, since + 1 + step)
    refused = _log_in(runtime, username, password, now)
    assert refused == sessions.LoginOutcome(None, throttled=True)
    assert len(_failures(runtime, username)) == sessions.MAX_FAILURES  # not checked, not counted
    # A microsecond later the oldest failure has left the window: four, let in again.
    later = _log_in(runtime, username, password, now + 1)
    assert later.account is not None and not later.throttled
    assert _failures(runtime, username) == []


def test_an_account_of_the_network_without_a_link_may_not_log_in(
    runtime: Runtime, people: People
) -> None:
    username = f"los-{uuid.uuid4().hex[:8]}"
    set_account(runtime, username=username, patient_id=None, display_name="Los", password="p" * 12)
    now = now_micros()
    assert _log_in(runtime, username, "p" * 12, now) == sessions.LoginOutcome(None)
    assert _failures(runtime, username) == [now]
    member = _log_in(runtime, people.network[0], people.network[1], now)
    assert member.account is not None
    with runtime.db.read() as conn:
        assert find_account(conn, member.account.account_id) == member.account
        assert (
            conn.scalar(
                select(func.count())
                .select_from(LoginFailure)
                .where(LoginFailure.at <= now - sessions.FAILURE_WINDOW * MICROS)
            )
            == 0
        )  # failures older than the window are cleared by every login
