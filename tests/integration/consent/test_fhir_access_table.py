"""Every FHIR interaction by every kind of caller, in one allow/deny table (issue 16).

FHIR R4 RESTful API (https://hl7.org/fhir/R4/http.html) as design section 3 decides it, with
real tokens through the in-process harness: a partner system with a Consent that lets it
read and correct goals, the same kind of partner without one, the inwoner's own app with
SMART v2 write scopes, a read-only app, an app of another inwoner, and no token at all.

    allow   the interaction is carried out (2xx; a search or history lists the goal)
    hidden  answered as if the goal did not exist (404; a search or history lists nothing;
            a create for that inwoner as for an inwoner the vault does not hold, 422)
    scope   refused for the token's scopes or the caller's kind (403)
    login   no valid token (401)

Each cell runs on a goal of its own, so a delete in one cell changes no other.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select

from tests.factories import consent, goal, patient, related_person
from tests.support.harness import FHIR_JSON, Harness, Party, network_account, page_login
from tests.support.reference import Record
from vault.app.main import create_app
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime
from vault.store.models import ResourceRow

CALLERS = ("partner", "partner-without-consent", "app", "app-read-only", "app-other", "nobody")
A, H, S, L = "allow", "hidden", "scope", "login"
TABLE: dict[str, tuple[str, ...]] = {
    # interaction:        partner  no-consent app  read-only other nobody
    "read": (A, H, A, A, H, L),
    "vread": (A, H, A, A, H, L),
    "history-instance": (A, H, A, A, H, L),
    "history-type": (A, H, A, A, H, L),
    "search": (A, H, A, A, H, L),
    "search-post": (A, H, A, A, H, L),
    "count": (A, H, A, A, H, L),
    "everything": (A, H, A, A, H, L),
    "update": (A, H, A, S, H, L),
    "create": (S, S, A, S, H, L),
    "delete": (S, S, A, S, H, L),
}
CELLS = [
    (interaction, caller, TABLE[interaction][n])
    for interaction in TABLE
    for n, caller in enumerate(CALLERS)
]


@dataclass
class Scene:
    harness: Harness
    inwoner: str
    parties: dict[str, Party]


@pytest.fixture(scope="module")
def scene(settings: Settings, runtime: Runtime) -> Iterator[Scene]:
    harness = Harness(runtime, settings)
    pid = harness.create(patient(), patient_id=None).resource_id
    other = harness.create(patient(), patient_id=None).resource_id
    scopes = ("system/Goal.cruds", "system/Patient.rs")
    partner = harness.partner("partner", scopes=scopes)
    stranger = harness.partner("stranger", scopes=scopes)
    (org,) = partner.caller.grantees
    harness.create(
        consent(patient_id=pid, actors=[org], actions=("access", "correct"), classes=("Goal",)),
        patient_id=pid,
    )
    parties = {
        "partner": partner,
        "partner-without-consent": stranger,
        "app": harness.app(
            "app", patient_id=pid, scopes=("patient/Goal.cruds", "patient/Patient.rs")
        ),
        "app-read-only": harness.app("read-only", patient_id=pid, scopes=("patient/*.rs",)),
        "app-other": harness.app("other", patient_id=other, scopes=("patient/*.cruds",)),
    }
    yield Scene(harness, pid, parties)
    harness.close()


def _send(scene: Scene, caller: str, method: str, path: str, **kwargs: object) -> httpx.Response:
    if caller == "nobody":
        send: Callable[..., httpx.Response] = getattr(scene.harness.http, method)
        return send(f"/fhir{path}", **kwargs)
    return scene.harness.fhir(scene.parties[caller], method, path, **kwargs)


def _lists(response: httpx.Response, record: Record) -> bool:
    assert response.status_code == 200, response.text
    bundle = response.json()
    refs = {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if "resource" in e
    }
    return record.ref in refs


@pytest.mark.parametrize(("interaction", "caller", "expected"), CELLS)
def test_fhir_interaction_by_caller(
    scene: Scene, interaction: str, caller: str, expected: str
) -> None:
    h, pid = scene.harness, scene.inwoner
    record = h.create(goal(patient_id=pid), patient_id=pid)
    path = f"/Goal/{record.resource_id}"
    listing = {
        "history-type": ("get", "/Goal/_history", {"params": {"_count": "1000"}}),
        "search": ("get", "/Goal", {"params": {"patient": pid, "_count": "1000"}}),
        "search-post": ("post", "/Goal/_search", {"data": {"patient": pid, "_count": "1000"}}),
        "everything": ("get", f"/Patient/{pid}/$everything", {}),
    }
    body = {k: v for k, v in (record.current or {}).items() if k != "meta"}
    single = {
        "read": ("get", path, {}),
        "vread": ("get", f"{path}/_history/1", {}),
        "history-instance": ("get", f"{path}/_history", {}),
        "update": ("put", path, {"json": body, "headers": FHIR_JSON}),
        "create": ("post", "/Goal", {"json": goal(patient_id=pid), "headers": FHIR_JSON}),
        "delete": ("delete", path, {}),
        "count": ("get", "/Goal", {"params": {"patient": pid, "_summary": "count"}}),
    }
    method, target, kwargs = (listing | single)[interaction]
    response = _send(scene, caller, method, target, **kwargs)
    if expected == L:
        assert response.status_code == 401, response.text
    elif expected == S:
        assert response.status_code == 403, response.text
    elif interaction in listing:
        # $everything of an inwoner the caller may see nothing of is 404, as a missing one.
        if interaction == "everything" and expected == H:
            assert response.status_code == 404, response.text
        else:
            assert _lists(response, record) == (expected == A), (interaction, caller)
    elif interaction == "create" and expected == H:
        # Another inwoner's Patient is answered exactly as one the vault does not hold.
        ghost = "0" * 8 + pid[8:]
        unknown = _send(
            scene, caller, "post", "/Goal", json=goal(patient_id=ghost), headers=FHIR_JSON
        )
        assert response.status_code == unknown.status_code == 422, response.text
        assert response.text.replace(pid, "ID") == unknown.text.replace(ghost, "ID")
    elif interaction == "count":
        assert response.status_code == 200, response.text
        assert (response.json()["total"] > 0) == (expected == A), (interaction, caller)
    elif expected == H:
        assert response.status_code == 404, response.text
    else:
        assert response.status_code in (200, 201, 204), response.text


def _vault_chain_record(scene: Scene) -> str:
    """An access-log record of nobody's compartment: a denied read of an unknown id."""
    scene.harness.fhir(scene.parties["partner"], "get", f"/Goal/{uuid.uuid4().hex}")
    scene.harness.runtime.audit.settle_all()  # its AuditEvent, which the callers then ask for
    r = ResourceRow.__table__.c
    with scene.harness.runtime.db.read() as conn:
        found = conn.scalar(
            select(r.resource_id)
            .where(r.resource_type == "AuditEvent", r.patient_id.is_(None))
            .order_by(r.pk.desc())
            .limit(1)
        )
    assert found is not None
    return str(found)


@pytest.mark.parametrize("caller", [c for c in CALLERS if c != "nobody"])
def test_the_vaults_own_access_log_is_nobodys_to_read(scene: Scene, caller: str) -> None:
    """Rows outside every compartment are only the shared directory's (design section 3)."""
    ident = _vault_chain_record(scene)
    party = scene.parties[caller]
    read = scene.harness.fhir(party, "get", f"/AuditEvent/{ident}")
    assert read.status_code in (403, 404), read.text
    listed = scene.harness.fhir(party, "get", "/AuditEvent", params={"_id": ident})
    if listed.status_code == 200:
        assert listed.json().get("total", 0) == 0 and not listed.json().get("entry")
    else:
        assert listed.status_code == 403, listed.text


def test_a_consent_is_shown_to_the_actors_it_names_not_to_what_its_data_names(
    scene: Scene,
) -> None:
    """A party sees its own grant (enforce.names_grantee), and only through
    ``provision.actor``: someone of the network whom a partner's Consent merely names in
    ``provision.data`` learns nothing of that Consent."""
    h, pid = scene.harness, scene.inwoner
    person = h.create(related_person(patient_id=pid), patient_id=pid)
    login = network_account(
        h.runtime, patient_id=pid, related_person=person.resource_id, legal_basis=None
    )
    visitor = page_login(create_app(h.settings, runtime=h.runtime), *login)
    try:
        (org,) = scene.parties["partner"].caller.grantees
        body = consent(patient_id=pid, actors=[org])
        body["provision"]["data"] = [
            {"meaning": "instance", "reference": {"reference": person.ref}}
        ]
        h.create(body, patient_id=pid)
        page = visitor.http.get("/")
        assert page.status_code == 200, page.text
        assert 'data-type="Consent"' not in page.text
        # Named as an actor, the same person does see that grant.
        h.create(consent(patient_id=pid, actors=[person.ref], classes=("Goal",)), patient_id=pid)
        assert 'data-type="Consent"' in visitor.http.get("/").text
    finally:
        visitor.http.close()


def test_a_consent_naming_another_type_with_the_same_id_is_not_the_partners(
    scene: Scene,
) -> None:
    """Ids are chosen by clients on update-as-create, so ``RelatedPerson/x`` and
    ``Organization/x`` can share ``x``: naming the one never shows the Consent to the other."""
    h, pid = scene.harness, scene.inwoner
    reader = h.partner("reader", scopes=("system/Consent.rs",))
    (org,) = reader.caller.grantees
    twin = related_person(patient_id=pid, id=org.split("/", 1)[1])
    with h.runtime.db.write() as conn:
        h._repo().update(conn, "RelatedPerson", twin["id"], twin)
    record = h.create(
        consent(patient_id=pid, actors=[f"RelatedPerson/{twin['id']}"], classes=("Goal",)),
        patient_id=pid,
    )
    h.check_read(reader, record)
