"""One harness for the tests that compare every answer of the vault with the reference.

The vault's real ASGI app runs in this process behind ``httpx.ASGITransport`` (no socket,
so thousands of requests fit in a minute), with its real bearer-token check: partners get
their tokens from ``/oauth/token`` with a signed client assertion (RFC 7523), the
inwoner's apps through the authorization-code flow with PKCE, exactly as over the network.
What the harness writes is kept in a :class:`tests.support.reference.World`, and each
``check_*`` asks the vault one question as one caller and asserts that the answer is
exactly what the reference allows: status, ids, totals, and for hidden resources the same
body as for an id that never existed.

Other issues reuse it: build a :class:`Harness` on the session's runtime, add inwoners and
resources with :meth:`Harness.create`, make callers with :meth:`Harness.partner` and
:meth:`Harness.app`, change things, and call the checks.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import orjson
from sqlalchemy import insert, select, update

from tests.support.reference import Caller, Record, World
from tests.support.smart import (
    ASSERTION_TYPE,
    App,
    client_assertion,
    inwoner_account,
    make_key,
    public_jwks,
)
from vault.app.clients import register_client, set_account
from vault.app.main import create_app
from vault.consent.access import AccessContext
from vault.consent.models import NetworkLink
from vault.consent.representation import set_role
from vault.fhir.repository import Repository
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime, now_micros
from vault.oauth.accounts import authenticate
from vault.oauth.models import OAuthClient
from vault.store.models import ResourceRow, SearchReference

__all__ = ["BASE", "Harness", "InProcess", "PageVisitor", "Party", "network_account", "page_login"]

# authlib refuses plain http except on loopback: the in-process app is addressed as such.
BASE = "http://127.0.0.1:8000"
FHIR_JSON = {"content-type": "application/fhir+json"}
T = TypeVar("T")
# What the page's preview lists (vault/page/sharing_data.py leaves out the logs).
PREVIEW_TYPES = (
    "Patient",
    "CarePlan",
    "Goal",
    "Observation",
    "CareTeam",
    "RelatedPerson",
    "Consent",
)
# Tokens are re-issued well before they expire, so a long run never sees a stale one.
TOKEN_AGE = 120.0


class InProcess:
    """A synchronous httpx-like client for an ASGI app, on an event loop of its own."""

    def __init__(self, app: Any, base_url: str = BASE) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=base_url, timeout=30
        )

    @property
    def base_url(self) -> httpx.URL:
        return self._client.base_url

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._run(self._client.get(url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._run(self._client.post(url, **kwargs))

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._run(self._client.put(url, **kwargs))

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._run(self._client.delete(url, **kwargs))

    def close(self) -> None:
        self._run(self._client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@dataclass
class Party:
    """A caller with a live token: what the reference knows of it, and how to get a token."""

    caller: Caller
    client_id: str
    issued: float = 0.0
    token: str = ""
    login: tuple[str, str] | None = None  # an app's inwoner account
    app: App | None = None
    key: Any = None


@dataclass(repr=False)
class Harness:
    runtime: Runtime
    settings: Settings
    world: World = field(default_factory=World)
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # What a never-existing id answers, per caller and path shape: hidden must match it.
        self._ghosts: dict[tuple[str, str], tuple[str, dict[str, str]]] = {}
        self.http = InProcess(create_app(self.settings, runtime=self.runtime))

    def close(self) -> None:
        self.http.close()

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    # -- the operator's writes, in process, kept in the world ----------------------------

    def _repo(self) -> Repository:
        return Repository(self.runtime, AccessContext.full("harness"))

    def _stored(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        with self.runtime.db.read() as conn:
            stored = self._repo().read(conn, resource_type, resource_id)
        body: dict[str, Any] = orjson.loads(stored.body or b"{}")
        return body

    def create(self, body: dict[str, Any], *, patient_id: str | None) -> Record:
        with self.runtime.db.write() as conn:
            stored, _ = self._repo().create(conn, body["resourceType"], body)
        kind, ident = stored.resource_type, stored.resource_id
        # A Patient, and a family's Group, each head a compartment of their own.
        owner = ident if kind in ("Patient", "Group") else patient_id
        record = Record(kind, ident, owner, [self._stored(kind, ident)])
        return self.world.add(record)

    def update(self, record: Record, body: dict[str, Any]) -> None:
        body = {**body, "id": record.resource_id}
        with self.runtime.db.write() as conn:
            self._repo().update(conn, record.resource_type, record.resource_id, body)
        record.versions.append(self._stored(record.resource_type, record.resource_id))
        self.world.written(record)

    def delete(self, record: Record) -> None:
        with self.runtime.db.write() as conn:
            self._repo().delete(conn, record.resource_type, record.resource_id)
        if not record.deleted:
            record.versions.append(None)
        self.world.written(record)

    def written(self, record: Record) -> None:
        """A caller changed ``record`` over HTTP: take the vault's new version into the world."""
        record.versions.append(self._stored(record.resource_type, record.resource_id))
        self.world.written(record)

    # -- callers -------------------------------------------------------------------------

    def partner(self, name: str, *, scopes: Iterable[str], purposes: Iterable[str] = ()) -> Party:
        """A partner organisation's backend system, registered with a key made here."""
        key = make_key("ES256")
        scopes = list(scopes)
        client_id = register_client(
            self.runtime,
            name=f"{name} systeem",
            organization_name=f"{name} {uuid.uuid4().hex[:8]}",
            scopes=scopes,
            jwks=public_jwks(key),
        )
        with self.runtime.db.write() as conn:
            conn.execute(
                update(OAuthClient)
                .where(OAuthClient.client_id == client_id)
                .values(purpose=" ".join(purposes))
            )
            org = conn.scalar(
                select(OAuthClient.organization_id).where(OAuthClient.client_id == client_id)
            )
        caller = Caller(
            name,
            "system",
            grantees=frozenset({f"Organization/{org}"}),
            purposes=frozenset(purposes),
            scopes=tuple(scopes),
        )
        return Party(caller, client_id, key=key)

    def app(self, name: str, *, patient_id: str, scopes: Iterable[str]) -> Party:
        """An app of the inwoner, logged in through the authorization-code flow."""
        scopes = ["launch/patient", "openid", "fhirUser", *scopes]
        redirect = "https://app.example/callback"
        client_id = register_client(
            self.runtime,
            name=f"{name} app",
            organization_name=f"{name} BV",
            scopes=scopes,
            redirect_uris=[redirect],
        )
        app = App(BASE, client_id, redirect, scopes)
        caller = Caller(name, "patient", patient_id=patient_id, scopes=tuple(scopes))
        login = inwoner_account(self.runtime, patient_id)
        return Party(caller, client_id, login=login, app=app)

    def token_of(self, party: Party) -> str:
        """The party's live access token (fetched when it has none or it is old)."""
        return self._token(party)

    def _token(self, party: Party) -> str:
        if party.token and time.monotonic() - party.issued < TOKEN_AGE:
            return party.token
        if party.app is not None:
            assert party.login is not None
            tokens = party.app.full_flow(
                self.http,  # type: ignore[arg-type]
                username=party.login[0],
                password=party.login[1],
            )
            party.token = str(tokens["access_token"])
        else:
            # The token endpoint of whichever way in the questions take now: a token that
            # expires while they go over uvicorn is fetched there, with that server's address.
            url = f"{str(self.http.base_url).rstrip('/')}/oauth/token"
            assertion = client_assertion(client_id=party.client_id, key=party.key, token_url=url)
            response = self.http.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "scope": " ".join(party.caller.scopes),
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": assertion,
                },
            )
            assert response.status_code == 200, response.text
            party.token = str(response.json()["access_token"])
        party.issued = time.monotonic()
        return party.token

    def fhir(self, party: Party, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self._token(party)}", **kwargs.pop("headers", {})}
        send = getattr(self.http, method)
        response: httpx.Response = send(f"/fhir{path}", headers=headers, **kwargs)
        assert response.status_code < 500, f"{method} {path}: {response.text}"
        return response

    # -- the checks: one question, the reference's answer ------------------------------------

    def _missing_like(self, party: Party, response: httpx.Response, path: str, ident: str) -> None:
        """A hidden resource answers exactly as one that never existed (design section 3)."""
        shape = (party.caller.name, path.replace(ident, "ID"))
        if shape not in self._ghosts:
            ghost = uuid.uuid4().hex[:16]
            other = self.fhir(party, "get", path.replace(ident, ghost))
            assert other.status_code == 404, (path, other.text)
            self._ghosts[shape] = (other.text.replace(ghost, "ID"), _plain(other.headers))
        text, headers = self._ghosts[shape]
        assert response.status_code == 404, (party.caller.name, path, response.text)
        assert response.text.replace(ident, "ID") == text, (party.caller.name, path)
        assert _plain(response.headers) == headers, (party.caller.name, path)

    def check_read(self, party: Party, record: Record) -> None:
        caller, now = party.caller, now_micros()
        path = f"/{record.resource_type}/{record.resource_id}"
        response = self.fhir(party, "get", path)
        self.count("read")
        if not caller.may("r", record.resource_type):
            assert response.status_code == 403, (caller.name, path, response.text)
        elif not self.world.sees(caller, record, now=now):
            self._missing_like(party, response, path, record.resource_id)
        elif record.deleted:
            assert response.status_code == 410, (caller.name, path, response.text)
        else:
            assert response.status_code == 200, (caller.name, path, response.text)
            assert response.json()["id"] == record.resource_id

    def check_correct(self, party: Party, record: Record) -> None:
        """A partner's write (Consent action ``correct``): allowed exactly where granted."""
        caller, now = party.caller, now_micros()
        path = f"/{record.resource_type}/{record.resource_id}"
        live = record.last_live()
        body = {k: v for k, v in live.items() if k != "meta"}
        # A partner sends the labels the resource has: changing them is the inwoner's (403).
        labels = (live.get("meta") or {}).get("security")
        if labels:
            body["meta"] = {"security": labels}
        if record.resource_type == "Goal":
            body["description"] = {"text": f"bijgewerkt {len(record.versions)}"}
        else:
            body["title"] = f"bijgewerkt {len(record.versions)}"
        response = self.fhir(party, "put", path, json=body, headers=FHIR_JSON)
        self.count("correct")
        if not caller.may("u", record.resource_type):
            assert response.status_code == 403, (caller.name, path, response.text)
        elif record.deleted or not self.world.sees(caller, record, now=now):
            assert response.status_code == 404, (caller.name, path, response.text)
        elif not self.world.decides(caller, record, now=now, action="correct"):
            assert response.status_code == 403, (caller.name, path, response.text)
        else:
            assert response.status_code == 200, (caller.name, path, response.text)
            self.written(record)
            # The vault's Provenance of the change: a new resource of the inwoner's.
            found = self._provenance_of(record)
            for ident in found:
                if f"Provenance/{ident}" not in self.world.records:
                    self.world.add(
                        Record(
                            "Provenance",
                            ident,
                            record.patient_id,
                            [self._stored("Provenance", ident)],
                        )
                    )

    def _provenance_of(self, record: Record) -> list[str]:
        r, sr = ResourceRow.__table__.c, SearchReference.__table__.c
        with self.runtime.db.read() as conn:
            return list(
                conn.scalars(
                    select(r.resource_id)
                    .join(SearchReference.__table__, sr.resource_pk == r.pk)
                    .where(
                        r.resource_type == "Provenance",
                        sr.param == "target",
                        sr.target_type == record.resource_type,
                        sr.target_id == record.resource_id,
                    )
                )
            )

    def check_preview(self, visitor: PageVisitor, party: Party, *, patient_id: str) -> None:
        """The page's "see what X sees" for a partner: per kind, exactly what X may search."""
        (grantee,) = party.caller.grantees
        kind, ident = grantee.split("/", 1)
        response = visitor.http.get(f"/bekijk/{kind}/{ident}")
        self.count("page-preview")
        assert response.status_code == 200, response.text
        now = now_micros()
        for resource_type in PREVIEW_TYPES:
            expected = (
                len(self.world.search(party.caller, resource_type, patient=patient_id, now=now))
                if party.caller.may("s", resource_type)
                else 0
            )
            section = re.search(
                rf'data-type="{resource_type}">(.*?)\n  </ul>', response.text, re.DOTALL
            )
            shown = len(re.findall(r"^    <li>", section.group(1), re.M)) if section else 0
            assert shown == expected, (party.caller.name, resource_type, shown, expected)

    def forget(self, record: Record) -> None:
        """Drop a record the checks will not ask about again (keeps long runs fast)."""
        self.world.drop(record.ref)

    def check_vread(self, party: Party, record: Record, version: int) -> None:
        caller, now = party.caller, now_micros()
        path = f"/{record.resource_type}/{record.resource_id}/_history/{version}"
        response = self.fhir(party, "get", path)
        self.count("vread")
        if not caller.may("r", record.resource_type):
            assert response.status_code == 403, (caller.name, path, response.text)
        elif not self.world.sees(caller, record, now=now):
            assert response.status_code == 404, (caller.name, path, response.text)
        elif record.versions[version - 1] is None:
            assert response.status_code == 410, (caller.name, path, response.text)
        else:
            assert response.status_code == 200, (caller.name, path, response.text)
            assert response.json()["meta"]["versionId"] == str(version)

    def check_instance_history(self, party: Party, record: Record) -> None:
        caller, now = party.caller, now_micros()
        path = f"/{record.resource_type}/{record.resource_id}/_history"
        response = self.fhir(party, "get", path, params={"_count": "100"})
        self.count("history-instance")
        if not caller.may("r", record.resource_type):
            assert response.status_code == 403, (caller.name, path, response.text)
        elif not self.world.sees(caller, record, now=now):
            assert response.status_code == 404, (caller.name, path, response.text)
        else:
            assert response.status_code == 200, (caller.name, path, response.text)
            assert len(response.json().get("entry", [])) == len(record.versions)

    def check_search(
        self,
        party: Party,
        resource_type: str,
        *,
        patient: str | None,
        include: str | None = None,
        revinclude: str | None = None,
    ) -> None:
        caller, now = party.caller, now_micros()
        params = {"_count": "1000", "_total": "accurate"}
        if patient is not None:
            params["patient" if resource_type != "Patient" else "_id"] = patient
        if include:
            params["_include"] = include
        if revinclude:
            params["_revinclude"] = revinclude
        response = self.fhir(party, "get", f"/{resource_type}", params=params)
        self.count("search" if not (include or revinclude) else "search-include")
        if not caller.may("s", resource_type):
            assert response.status_code == 403, (caller.name, resource_type, response.text)
            return
        assert response.status_code == 200, (caller.name, params, response.text)
        bundle = response.json()
        expected = self.world.search(caller, resource_type, patient=patient, now=now)
        found = _ids(bundle, "match")
        assert found == expected, (caller.name, resource_type, params, found ^ expected)
        assert bundle.get("total") == len(expected), (caller.name, params)
        if include or revinclude:
            wanted = self._included(caller, expected, include=include, revinclude=revinclude)
            got = _ids(bundle, "include")
            assert got == wanted, (caller.name, params, got ^ wanted)

    def _included(
        self, caller: Caller, matches: set[str], *, include: str | None, revinclude: str | None
    ) -> set[str]:
        now = now_micros()
        result: set[str] = set()
        if include:
            _, param = include.split(":")[:2]
            for ref in matches:
                body = self.world.records[ref].current or {}
                for target in _param_refs(ref.split("/")[0], param, body):
                    record = self.world.get(target)
                    if (
                        record is not None
                        and not record.deleted
                        and self.world.sees(caller, record, now=now)
                    ):
                        result.add(target)
        if revinclude:
            kind, param = revinclude.split(":")[:2]
            for record in self.world.of_type(kind):
                if record.deleted or not self.world.sees(caller, record, now=now):
                    continue
                if set(_param_refs(kind, param, record.current or {})) & matches:
                    result.add(record.ref)
        return result - matches

    def check_count(self, party: Party, resource_type: str, *, patient: str | None) -> None:
        caller, now = party.caller, now_micros()
        params = {"_summary": "count"}
        if patient is not None:
            params["patient" if resource_type != "Patient" else "_id"] = patient
        response = self.fhir(party, "get", f"/{resource_type}", params=params)
        self.count("count")
        if not caller.may("s", resource_type):
            assert response.status_code == 403, (caller.name, resource_type, response.text)
            return
        expected = self.world.search(caller, resource_type, patient=patient, now=now)
        assert response.status_code == 200, response.text
        assert response.json().get("total") == len(expected), (caller.name, resource_type)

    def check_type_history(self, party: Party, resource_type: str) -> None:
        """``Type/_history``: every version of the resources the caller may see."""
        caller, now = party.caller, now_micros()
        response = self.fhir(party, "get", f"/{resource_type}/_history", params={"_count": "1000"})
        self.count("history-type")
        if not caller.may("r", resource_type):
            assert response.status_code == 403, (caller.name, resource_type, response.text)
            return
        assert response.status_code == 200, response.text
        entries = response.json().get("entry", [])
        got: dict[str, int] = {}
        for entry in entries:
            ref = _entry_ref(entry)
            got[ref] = got.get(ref, 0) + 1
        expected = {
            r.ref: len(r.versions)
            for r in self.world.of_type(resource_type)
            if self.world.sees(caller, r, now=now)
        }
        # Only this harness's resources are compared: other tests share the database.
        mine = {ref: n for ref, n in got.items() if ref in self.world.records}
        assert mine == expected, (caller.name, resource_type, mine, expected)

    def check_everything(self, party: Party, patient: str) -> None:
        caller, now = party.caller, now_micros()
        response = self.fhir(party, "get", f"/Patient/{patient}/$everything")
        self.count("everything")
        expected = set()
        for record in self.world.records.values():
            if record.patient_id != patient or record.deleted:
                continue
            if self.world.sees(caller, record, now=now, letter="s"):
                expected.add(record.ref)
        if not expected:
            assert response.status_code in (403, 404), (caller.name, response.text)
            return
        assert response.status_code == 200, (caller.name, response.text)
        found = {_entry_ref(e) for e in response.json().get("entry", [])}
        found = {ref for ref in found if not ref.startswith("AuditEvent/") or ref in expected}
        expected = {r for r in expected if not r.startswith("AuditEvent/")}
        found = {r for r in found if not r.startswith("AuditEvent/")}
        assert found == expected, (caller.name, found ^ expected)


@dataclass
class PageVisitor:
    """Someone logged in on the consent page: their own client (cookies) and CSRF token."""

    http: InProcess
    csrf: str


def page_login(app: Any, username: str, password: str) -> PageVisitor:
    """Log in on the consent page through its own form (double-submit CSRF cookie)."""
    http = InProcess(app)
    form = http.get("/inloggen")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    done = http.post(
        "/inloggen",
        data={"csrf_token": token.group(1), "username": username, "password": password},
    )
    assert done.status_code == 303, done.text
    home = http.get("/")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', home.text)
    assert csrf is not None, home.text
    return PageVisitor(http, csrf.group(1))


def network_account(
    runtime: Runtime, *, patient_id: str, related_person: str, legal_basis: str | None
) -> tuple[str, str]:
    """An account of someone of the network (a representative with ``legal_basis``)."""
    username = f"netwerk-{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    set_account(runtime, username=username, patient_id=None, display_name="Ans", password=password)
    with runtime.db.write() as conn:
        account = authenticate(conn, username=username, password=password)
        assert account is not None
        conn.execute(
            insert(NetworkLink).values(
                account_id=account.account_id,
                patient_id=patient_id,
                related_person_id=related_person,
                created_at=now_micros(),
            )
        )
        # The one place the right to act for her comes from (vault/consent/representation.py).
        set_role(
            conn,
            patient_id=patient_id,
            related_person_id=related_person,
            legal_basis=legal_basis,
            now=now_micros(),
        )
    return username, password


_PARAM_PATHS = {
    ("CarePlan", "goal"): ("goal",),
    ("CarePlan", "care-team"): ("careTeam",),
    ("CarePlan", "subject"): ("subject",),
    ("Provenance", "target"): ("target",),
    ("Goal", "subject"): ("subject",),
    ("CareTeam", "participant"): ("participant", "member"),
}


def _param_refs(resource_type: str, param: str, body: dict[str, Any]) -> list[str]:
    """The references a search parameter reads, walked over the resource's own JSON."""
    path = _PARAM_PATHS[(resource_type, param)]
    nodes: list[Any] = [body]
    for step in path:
        nxt: list[Any] = []
        for node in nodes:
            value = node.get(step) if isinstance(node, dict) else None
            nxt.extend(value if isinstance(value, list) else [value] if value else [])
        nodes = nxt
    return [n["reference"] for n in nodes if isinstance(n, dict) and "reference" in n]


def _ids(bundle: dict[str, Any], mode: str) -> set[str]:
    return {
        _entry_ref(e)
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode", "match") == mode
    }


def _entry_ref(entry: dict[str, Any]) -> str:
    if "resource" in entry:
        return f"{entry['resource']['resourceType']}/{entry['resource']['id']}"
    # A deletion in a history Bundle: only its request URL says what it was.
    match = re.search(r"([A-Za-z]+/[A-Za-z0-9\-.]+)(/_history/\d+)?$", entry["request"]["url"])
    assert match is not None, entry
    return match.group(1)


def _plain(headers: httpx.Headers) -> dict[str, str]:
    """Headers that must not differ between hidden and missing (dates and ids aside)."""
    return {k: v for k, v in headers.items() if k not in ("date", "x-request-id", "content-length")}
