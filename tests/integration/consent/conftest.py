"""The consent engine as partners and inwoners meet it: a vault with its real token endpoint.

Partners are backend clients with keys made in the test; their tokens come from the vault's
own token endpoint. Each test makes its own organisations (unique names), so a Consent of
one test never reaches into another. The operator's writes (inwoners, their plan, most
Consents) go in-process through the repository with full access; the inwoner's own writes
go over HTTP with an app token when the test is about what the inwoner does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select, update

from tests.conftest import FHIR_JSON, ServerThread
from tests.factories import consent, patient
from tests.support.harness import Harness
from tests.support.smart import BackendClient, inwoner_account, register_app, register_backend
from vault.app.main import create_app
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime
from vault.oauth.models import OAuthClient

CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
RESTRICTED = {"system": CONF, "code": "R"}
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PARTNER_SCOPES = (
    "system/Goal.rus",
    "system/CarePlan.rs",
    "system/CareTeam.rs",
    "system/Observation.rs",
    "system/Provenance.rs",
    "system/Consent.rus",
    "system/AuditEvent.rs",
    "system/Patient.rs",
)
APP_SCOPES = (
    "launch/patient",
    "openid",
    "fhirUser",
    "patient/*.rs",
    "patient/Consent.cruds",
    "patient/Goal.cruds",
)


@pytest.fixture(scope="session")
def vault(settings: Settings, runtime: Runtime) -> Iterator[ServerThread]:
    """The vault with its real access resolver: only its own bearer tokens get in."""
    with ServerThread(create_app(settings, runtime=runtime)) as running:
        yield running


@pytest.fixture(scope="module")
def harness(settings: Settings, runtime: Runtime) -> Iterator[Harness]:
    """The property and end-to-end harness (tests/support/harness.py), one per module."""
    made = Harness(runtime, settings)
    yield made
    made.close()


@pytest.fixture(scope="module")
def page_app(settings: Settings, runtime: Runtime) -> Any:
    """The app the consent page's visitors log in to, in process."""
    return create_app(settings, runtime=runtime)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, follow_redirects=False) as client:
        yield client


class Operator:
    """The vault's own tools: full access, in process, one transaction per call."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def _repo(self) -> Repository:
        return Repository(self._rt, AccessContext.full("test-operator"))

    def create(self, resource: dict[str, Any]) -> str:
        with self._rt.db.write() as conn:
            stored, _ = self._repo().create(conn, resource["resourceType"], resource)
        return stored.resource_id

    def update(self, resource: dict[str, Any]) -> int:
        with self._rt.db.write() as conn:
            stored, _ = self._repo().update(
                conn, resource["resourceType"], resource["id"], resource
            )
        return stored.version_id

    def delete(self, resource_type: str, resource_id: str) -> None:
        with self._rt.db.write() as conn:
            self._repo().delete(conn, resource_type, resource_id)

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        with self._rt.db.read() as conn:
            stored = self._repo().read(conn, resource_type, resource_id)
        body: dict[str, Any] = orjson.loads(stored.body or b"{}")
        return body


@pytest.fixture(scope="session")
def operator(runtime: Runtime) -> Operator:
    return Operator(runtime)


@pytest.fixture
def inwoner(operator: Operator) -> str:
    """A fresh inwoner's Patient id."""
    return operator.create(patient())


@dataclass
class Partner:
    """A partner organisation's system with a live access token."""

    backend: BackendClient
    organization: str  # "Organization/<id>"
    fhir: httpx.Client

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.fhir.get(path, params=params)

    def put(self, resource: dict[str, Any]) -> httpx.Response:
        return self.fhir.put(
            f"/{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR_JSON
        )


@dataclass
class PartnerFactory:
    runtime: Runtime
    vault: ServerThread
    made: list[httpx.Client] = field(default_factory=list)
    organizations: list[str] = field(default_factory=list)

    def __call__(
        self, *, scopes: Sequence[str] = PARTNER_SCOPES, purposes: Sequence[str] = ()
    ) -> Partner:
        name = f"Partner {uuid.uuid4().hex[:10]}"
        backend = register_backend(
            self.runtime, self.vault.url, organization=name, scopes=list(scopes), alg="ES256"
        )
        with self.runtime.db.write() as conn:
            # Purposes of use are set by the operator at registration; no command for it yet.
            conn.execute(
                update(OAuthClient)
                .where(OAuthClient.client_id == backend.client_id)
                .values(purpose=" ".join(purposes))
            )
            organization_id = conn.scalar(
                select(OAuthClient.organization_id).where(
                    OAuthClient.client_id == backend.client_id
                )
            )
        with httpx.Client(timeout=30) as http:
            fhir = backend.fhir(http)
        self.made.append(fhir)
        self.organizations.append(str(organization_id))
        return Partner(backend, f"Organization/{organization_id}", fhir)


@pytest.fixture
def make_partner(
    runtime: Runtime, vault: ServerThread, operator: Operator
) -> Iterator[PartnerFactory]:
    factory = PartnerFactory(runtime, vault)
    yield factory
    for client in factory.made:
        client.close()
    # Organizations are the vault's shared directory: other tests page through it.
    for organization_id in factory.organizations:
        operator.delete("Organization", organization_id)


@pytest.fixture
def partner(make_partner: PartnerFactory) -> Partner:
    return make_partner()


@pytest.fixture
def make_inwoner_app(
    runtime: Runtime, vault: ServerThread
) -> Iterator[Callable[[str], httpx.Client]]:
    """The inwoner's own app, logged in: a /fhir client with a patient-context token."""
    made: list[httpx.Client] = []

    def login(patient_id: str) -> httpx.Client:
        app = register_app(runtime, vault.url, scopes=list(APP_SCOPES))
        username, password = inwoner_account(runtime, patient_id)
        with httpx.Client(timeout=30, follow_redirects=False) as http:
            tokens = app.full_flow(http, username=username, password=password)
        assert tokens["patient"] == patient_id
        client = httpx.Client(
            base_url=f"{vault.url}/fhir",
            timeout=30,
            headers={"authorization": f"Bearer {tokens['access_token']}"},
        )
        made.append(client)
        return client

    yield login
    for client in made:
        client.close()


def action_codes(*codes: str) -> list[dict[str, Any]]:
    system = "http://terminology.hl7.org/CodeSystem/consentaction"
    return [{"coding": [{"system": system, "code": code}]} for code in codes]


def grant(
    patient_id: str,
    *actors: str,
    actions: tuple[str, ...] = ("access",),
    classes: tuple[str, ...] = (),
    data: Sequence[tuple[str, str]] = (),
    label: dict[str, str] | None = None,
    purposes: Sequence[str] = (),
    period: dict[str, str] | None = None,
    denies: Sequence[dict[str, Any]] = (),
    **extra: Any,
) -> dict[str, Any]:
    """A Consent of ``patient_id`` for ``actors``; ``data`` as (reference, meaning) pairs."""
    body = consent(patient_id=patient_id, actors=list(actors), actions=actions, classes=classes)
    provision = body["provision"]
    if data:
        provision["data"] = [
            {"meaning": meaning, "reference": {"reference": ref}} for ref, meaning in data
        ]
    if label is not None:
        provision["securityLabel"] = [label]
    if purposes:
        provision["purpose"] = [{"system": ACT_REASON, "code": code} for code in purposes]
    if period is not None:
        provision["period"] = period
    if denies:
        provision["provision"] = [{"type": "deny", **deny} for deny in denies]
    return {**body, **extra}


def ids(response: httpx.Response, *, mode: str | None = None) -> set[str]:
    """``Type/id`` of the entries of a Bundle (only those with ``search.mode`` when given)."""
    assert response.status_code == 200, response.text
    bundle = response.json()
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if "resource" in e and (mode is None or e.get("search", {}).get("mode") == mode)
    }
