"""The family plan through the real HTTP API (issue 17 item 1, docs/family.md section 6).

One family: mama, papa and a child, each with a goal of their own in their own
compartment, and a family compartment (the Group's id) with the family CarePlan, two shared
goals and a CareTeam whose regisseur the family chose. Real partner tokens (client
credentials with a signed assertion) and the members' own apps (authorization code + PKCE):

    MEE      granted by mama: the family plan, ``related``
    GGZ      granted by papa: the family plan, ``related``, with a nested deny of Goals
    Wijkteam granted by nobody
    mama's app, and the app of an inwoner outside the family

Every answer is compared with the reference (``tests/support/reference.py``, which restates
the family rule on its own) and, for the first partner, also spelled out here: MEE sees the
family plan's shared parts and mama's own goal, never papa's or the child's; hidden answers
exactly like an id that never existed; totals, ``_include`` and ``_revinclude`` agree;
history, ``$everything``, export and notifications follow the same decision.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from tests.factories import careplan, careteam, family, goal, of_family, organization, patient
from tests.factories import subscription as subscription_body
from tests.integration.consent.conftest import grant
from tests.support import inwoner_context, settle_notifications
from tests.support.harness import Harness, Party
from tests.support.reference import Caller, Record
from tests.support.smart import make_key, public_jwks
from vault.app.clients import register_client
from vault.app.demo import DEMO_FAMILY_ID, load_demo
from vault.consent.access import AccessContext
from vault.consent.family import families_of, family_consent_ids, family_named, members_of
from vault.fhir.family import family_plan, regisseurs
from vault.fhir.repository import Repository
from vault.kernel.errors import Unprocessable
from vault.notify.worker import Notifier
from vault.page.mydata import erase_vault
from vault.page.sharing_data import partner_context
from vault.store.models import DataKey

SCOPES = (
    "system/Goal.rs",
    "system/CarePlan.rs",
    "system/CareTeam.rs",
    "system/Group.rs",
    "system/Consent.rs",
    "system/Patient.rs",
    "system/Subscription.cruds",
)
REGISSEUR = {
    "coding": [{"system": "https://regiekluis.nl/fhir/CodeSystem/rol", "code": "regisseur"}],
    "text": "regisseur",
}
TYPES = ("CarePlan", "Goal", "CareTeam", "Group")
FHIR_JSON = {"content-type": "application/fhir+json"}


@dataclass
class Family:
    mama: str
    papa: str
    kind: str
    own: dict[str, Record]  # each member's own goal
    group: Record
    shared: list[Record]  # the shared goals
    team: Record
    plan: Record
    mee: Party
    ggz: Party
    wijkteam: Party
    mama_app: Party
    outsider_app: Party

    @property
    def records(self) -> list[Record]:
        return [*self.own.values(), self.group, *self.shared, self.team, self.plan]

    @property
    def parties(self) -> list[Party]:
        return [self.mee, self.ggz, self.wijkteam, self.mama_app, self.outsider_app]


def _org(party: Party) -> str:
    (grantee,) = party.caller.grantees
    return grantee


def _build(harness: Harness) -> Family:
    members = {
        name: harness.create(patient(given=name.title()), patient_id=None).resource_id
        for name in ("mama", "papa", "kind")
    }
    own = {
        name: harness.create(goal(patient_id=pid, text=f"{name} wil iets"), patient_id=pid)
        for name, pid in members.items()
    }
    group = harness.create(family(members=list(members.values())), patient_id=None)
    fam = group.resource_id
    shared = [
        harness.create(of_family(goal(patient_id=fam, text=text), fam), patient_id=fam)
        for text in ("We willen samen rust in huis", "De schulden op een rij")
    ]
    sociaal = harness.create(organization(name="Sociaal team"), patient_id=None)
    team_body = careteam(patient_id=fam, members=[sociaal.ref])
    team_body["participant"][0]["role"] = [REGISSEUR]
    team = harness.create(of_family(team_body, fam), patient_id=fam)
    plan_body = careplan(
        patient_id=fam,
        goals=[*(g.resource_id for g in shared), *(g.resource_id for g in own.values())],
        careteams=[team.resource_id],
        title="Gezinsplan",
        note=[{"text": "Samenwerkoverleg: elke maand bij het gezin thuis"}],
    )
    plan = harness.create(of_family(plan_body, fam), patient_id=fam)
    mee = harness.partner("MEE", scopes=SCOPES)
    ggz = harness.partner("GGZ", scopes=SCOPES)
    wijkteam = harness.partner("Wijkteam", scopes=SCOPES)
    harness.create(
        grant(members["mama"], _org(mee), data=[(plan.ref, "related")]),
        patient_id=members["mama"],
    )
    harness.create(
        grant(
            members["papa"],
            _org(ggz),
            data=[(plan.ref, "related")],
            denies=[{"class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Goal"}]}],
        ),
        patient_id=members["papa"],
    )
    outsider = harness.create(patient(given="Buurman"), patient_id=None).resource_id
    return Family(
        members["mama"],
        members["papa"],
        members["kind"],
        own,
        group,
        shared,
        team,
        plan,
        mee,
        ggz,
        wijkteam,
        harness.app("mama-app", patient_id=members["mama"], scopes=("patient/*.rs",)),
        harness.app("buurman-app", patient_id=outsider, scopes=("patient/*.rs",)),
    )


@pytest.fixture(scope="module")
def fam(harness: Harness) -> Family:
    return _build(harness)


def _visible(harness: Harness, party: Party, resource_type: str, **params: str) -> set[str]:
    response = harness.fhir(
        party, "get", f"/{resource_type}", params={"_count": "1000", "_total": "accurate", **params}
    )
    assert response.status_code == 200, response.text
    bundle = response.json()
    found = {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e["search"]["mode"] == "match"
    }
    assert bundle["total"] == len(found)
    return found


def _family_refs(fam: Family, found: set[str]) -> set[str]:
    mine = {r.ref for r in fam.records}
    return found & mine


def test_a_partner_granted_by_mama_sees_the_shared_plan_and_only_her_own_part(
    harness: Harness, fam: Family
) -> None:
    seen = set()
    for resource_type in TYPES:
        seen |= _family_refs(fam, _visible(harness, fam.mee, resource_type))
    assert seen == {
        fam.plan.ref,
        fam.group.ref,  # Group.member: whoever a member granted the family plan
        fam.team.ref,
        *(g.ref for g in fam.shared),
        fam.own["mama"].ref,
    }
    # Papa's and the child's own goals: exactly as an id that never existed.
    for name in ("papa", "kind"):
        harness.check_read(fam.mee, fam.own[name])
        assert harness.fhir(fam.mee, "get", f"/Goal/{fam.own[name].resource_id}").status_code == 404
    # The family plan's goals as an include: the ones she may see, and the total agrees.
    response = harness.fhir(
        fam.mee,
        "get",
        "/CarePlan",
        params={"_id": fam.plan.resource_id, "_include": "CarePlan:goal", "_total": "accurate"},
    )
    bundle = response.json()
    assert bundle["total"] == 1
    included = {
        f"Goal/{e['resource']['id']}" for e in bundle["entry"] if e["search"]["mode"] == "include"
    }
    assert included == {*(g.ref for g in fam.shared), fam.own["mama"].ref}
    # The regisseur is on the family's CareTeam.
    team = harness.fhir(fam.mee, "get", f"/CareTeam/{fam.team.resource_id}").json()
    assert team["participant"][0]["role"][0]["coding"][0]["code"] == "regisseur"


def test_papas_deny_cuts_into_the_family_plan_as_into_his_own(
    harness: Harness, fam: Family
) -> None:
    seen = set()
    for resource_type in TYPES:
        seen |= _family_refs(fam, _visible(harness, fam.ggz, resource_type))
    assert seen == {fam.plan.ref, fam.group.ref, fam.team.ref}


def test_an_ungranted_partner_and_an_outsiders_app_see_nothing_of_the_family(
    harness: Harness, fam: Family
) -> None:
    for party in (fam.wijkteam, fam.outsider_app):
        for resource_type in TYPES:
            assert _family_refs(fam, _visible(harness, party, resource_type)) == set()
        for record in fam.records:
            harness.check_read(party, record)


def test_a_members_app_sees_the_family_plan_and_her_own_part(harness: Harness, fam: Family) -> None:
    seen = set()
    for resource_type in TYPES:
        seen |= _family_refs(fam, _visible(harness, fam.mama_app, resource_type))
    assert seen == {
        fam.plan.ref,
        fam.group.ref,
        fam.team.ref,
        *(g.ref for g in fam.shared),
        fam.own["mama"].ref,
    }
    # Her $everything is her own compartment: the family plan is the family's.
    harness.check_everything(fam.mama_app, fam.mama)


def test_every_answer_agrees_with_the_reference(harness: Harness, fam: Family) -> None:
    for party in fam.parties:
        for record in fam.records:
            harness.check_read(party, record)
            harness.check_vread(party, record, 1)
            harness.check_instance_history(party, record)
        for resource_type in TYPES:
            harness.check_search(party, resource_type, patient=None)
            harness.check_count(party, resource_type, patient=None)
            harness.check_type_history(party, resource_type)
        harness.check_search(party, "CarePlan", patient=None, include="CarePlan:goal")
        harness.check_search(party, "CarePlan", patient=None, include="CarePlan:care-team")
        harness.check_search(party, "Goal", patient=None, revinclude="CarePlan:goal")
        harness.check_search(party, "Goal", patient=fam.mama)
    for party in (fam.mee, fam.ggz, fam.wijkteam):
        harness.check_everything(party, fam.mama)


def test_a_consent_may_name_only_a_family_plan_of_the_inwoners_own_family(
    harness: Harness, fam: Family
) -> None:
    outsider = harness.create(patient(given="Vreemde"), patient_id=None).resource_id
    repo = Repository(harness.runtime, AccessContext.full("test"))
    refused = pytest.raises(Unprocessable, match="is not part of this inwoner's plan")
    with refused, harness.runtime.db.write() as conn:
        repo.create(
            conn,
            "Consent",
            grant(outsider, _org(fam.wijkteam), data=[(fam.plan.ref, "related")]),
        )
    assert _family_refs(fam, _visible(harness, fam.wijkteam, "CarePlan")) == set()


def test_family_named_tells_which_family_plan_a_consent_is_about(
    harness: Harness, fam: Family
) -> None:
    # The page tells a rule (or a proposal, which has no grant rows) about the family plan
    # from one about her own plan by the Consent's own data references.
    gid = fam.group.resource_id

    def about(patient_id: str, *data: tuple[str, str], nested: bool = False) -> str | None:
        body = grant(patient_id, "Organization/x", data=list(data))
        body["status"] = "proposed"
        if nested:
            provision = body["provision"]
            body["provision"] = {
                "type": "permit",
                "actor": provision["actor"],
                "provision": [{**provision, "type": "deny", "actor": None}],
            }
            body["provision"]["provision"][0].pop("actor")
        with harness.runtime.db.read() as conn:
            return family_named(conn, patient_id, body)

    shared = fam.shared[0].ref
    assert about(fam.mama, (fam.plan.ref, "related")) == gid
    assert about(fam.kind, (shared, "instance")) == gid
    assert about(fam.mama, (shared, "instance"), nested=True) == gid  # data of a nested one
    assert about(fam.mama, (fam.own["mama"].ref, "instance")) is None  # her own goal
    assert about(fam.mama, ("CarePlan/bestaat-niet", "related")) is None
    assert about(fam.mama) is None  # no data at all: a rule by class
    # The family's plan named by someone outside the family: not hers to name.
    outsider = harness.create(patient(given="Vreemde"), patient_id=None).resource_id
    assert about(outsider, (fam.plan.ref, "related")) is None
    # The type counts with the id: a Goal with the plan's id is not the plan.
    assert about(fam.mama, (f"Goal/{fam.plan.resource_id}", "instance")) is None
    # A family plan named in the root beside her own goal in a nested deny: still hers.
    body = grant(fam.mama, "Organization/x", data=[(fam.plan.ref, "related")])
    body["provision"]["provision"] = [
        {
            "type": "deny",
            "data": [{"meaning": "instance", "reference": {"reference": fam.own["mama"].ref}}],
        }
    ]
    with harness.runtime.db.read() as conn:
        assert family_named(conn, fam.mama, body) == gid
    # It reads Consents as they are stored or proposed: a data item that is not an object,
    # or whose reference is not one, names nothing (and raises nothing).
    body = grant(fam.mama, "Organization/x")
    body["provision"]["data"] = [fam.plan.ref, {"meaning": "related", "reference": fam.plan.ref}]
    with harness.runtime.db.read() as conn:
        assert family_named(conn, fam.mama, body) is None
    # Mama in a second family (its id sorts first, its plan's id last): a Consent naming
    # both plans is about the first family in id order, whatever order the rows come in.
    repo = Repository(harness.runtime, AccessContext.full("test"))
    second, second_plan = "00000000-gezin-opa", "zzz-gezinsplan-opa"
    with harness.runtime.db.write() as conn:
        repo.update(conn, "Group", second, {**family(members=[fam.mama]), "id": second})
        plan = {**of_family(careplan(patient_id=second), second), "id": second_plan}
        repo.update(conn, "CarePlan", second_plan, plan)
    both = about(fam.mama, (fam.plan.ref, "related"), (f"CarePlan/{second_plan}", "related"))
    assert both == second
    # The Group deleted: nobody is a member any more, so its plan is no family's of hers.
    with harness.runtime.db.write() as conn:
        repo.delete(conn, "CarePlan", second_plan)
        repo.delete(conn, "Group", second)
    with harness.runtime.db.read() as conn:
        assert families_of(conn, fam.mama) == [gid]


def test_family_consent_ids_are_her_consents_that_grant_the_family_plan(
    harness: Harness, fam: Family
) -> None:
    # What "Wie mag wat zien" keeps apart from her own plan's rules: exactly her Consents
    # whose grants reach a family compartment, not her own plan's, not another member's.
    buurt = _org(harness.partner("Buurtteam", scopes=SCOPES))
    own_rule = harness.create(grant(fam.mama, buurt, classes=("Goal",)), patient_id=fam.mama)
    family_rule = harness.create(
        grant(fam.mama, buurt, data=[(fam.plan.ref, "related")]), patient_id=fam.mama
    )
    papas = harness.create(
        grant(fam.papa, buurt, data=[(fam.plan.ref, "related")]), patient_id=fam.papa
    )
    try:
        with harness.runtime.db.read() as conn:
            mamas = family_consent_ids(conn, fam.mama)
            assert family_rule.resource_id in mamas
            assert own_rule.resource_id not in mamas
            assert papas.resource_id not in mamas
            assert papas.resource_id in family_consent_ids(conn, fam.papa)
            assert family_consent_ids(conn, fam.kind) == set()
    finally:
        for record in (own_rule, family_rule, papas):
            harness.delete(record)


def test_who_is_a_member_is_read_from_group_member_as_fhir_says_it(
    harness: Harness, fam: Family
) -> None:
    # An inactive member is none (first in the list, so the next ones still count), an
    # explicit "inactive": false is one, and an entity of another type with a Patient's id
    # (mama's, as a Practitioner) is not that Patient.
    repo = Repository(harness.runtime, AccessContext.full("test"))
    gid = "gezin-leden-test"
    group = family(members=[])
    group["member"] = [
        {"entity": {"reference": f"Patient/{fam.mama}"}, "inactive": True},
        {"entity": {"reference": f"Patient/{fam.papa}"}, "inactive": False},
        {"entity": {"reference": f"Practitioner/{fam.mama}"}},
        {"entity": {"reference": f"Patient/{fam.kind}"}},
    ]
    with harness.runtime.db.write() as conn:
        repo.update(conn, "Group", gid, {**group, "id": gid})
    try:
        with harness.runtime.db.read() as conn:
            assert members_of(conn, gid) == {fam.papa, fam.kind}
    finally:
        with harness.runtime.db.write() as conn:
            repo.delete(conn, "Group", gid)
    with harness.runtime.db.read() as conn:
        assert members_of(conn, gid) == set()
    # A Patient without a live key (one that never was, one erased) is never made a member.
    gone = harness.create(patient(given="Gewist"), patient_id=None).resource_id
    with harness.runtime.db.write() as conn:
        erase_vault(conn, patient_id=gone)
    harness.world.erased.add(gone)
    group["member"] = [
        {"entity": {"reference": f"Patient/{ref}"}} for ref in (gone, "bestaat-niet", fam.papa)
    ]
    with harness.runtime.db.write() as conn:
        repo.update(conn, "Group", gid, {**group, "id": gid})
    try:
        with harness.runtime.db.read() as conn:
            assert members_of(conn, gid) == {fam.papa}
    finally:
        with harness.runtime.db.write() as conn:
            repo.delete(conn, "Group", gid)


def test_a_family_and_an_inwoner_never_share_a_compartments_id(
    harness: Harness, fam: Family
) -> None:
    # A Group with a Patient's id would make her compartment the family's (and the other
    # way round): refused, and nothing of either changes.
    repo = Repository(harness.runtime, AccessContext.full("test"))
    taken = pytest.raises(Unprocessable, match="already names a compartment")
    with taken, harness.runtime.db.write() as conn:
        repo.update(conn, "Group", fam.papa, {**family(members=[fam.papa]), "id": fam.papa})
    gid = fam.group.resource_id
    with taken, harness.runtime.db.write() as conn:
        repo.update(conn, "Patient", gid, {**patient(given="Dubbel"), "id": gid})
    with harness.runtime.db.read() as conn:
        assert families_of(conn, fam.papa) == [gid]
        assert members_of(conn, gid) == {fam.mama, fam.papa, fam.kind}


def test_a_read_of_the_family_plan_is_logged_as_the_familys(harness: Harness, fam: Family) -> None:
    # The access log of the family compartment names the family as a Group, not a Patient.
    assert harness.fhir(fam.mee, "get", f"/CarePlan/{fam.plan.resource_id}").status_code == 200
    gid = fam.group.resource_id
    repo = Repository(harness.runtime, AccessContext.full("test"))
    harness.runtime.audit.settle_all()  # a store-level search: the log's waiting records first
    with harness.runtime.db.read() as conn:
        query = repo.parse("AuditEvent", [("entity", f"Group/{gid}")], lenient=False)
        found = repo.search(conn, query)
        events = [orjson.loads(m.body or b"{}") for m in found.matches]
    reads = [e for e in events if f"CarePlan/{fam.plan.resource_id}" in orjson.dumps(e).decode()]
    assert reads, "no AuditEvent of the family plan's read"
    for event in reads:
        owners = [x["what"]["reference"] for x in event["entity"] if x.get("type")]
        assert owners == [f"Group/{gid}"]
        assert f"Patient/{gid}" not in orjson.dumps(event).decode()


def test_a_members_app_cannot_write_the_family_plan_nor_a_partner_its_members(
    harness: Harness, fam: Family
) -> None:
    body = of_family(goal(patient_id=fam.group.resource_id), fam.group.resource_id)
    response = harness.fhir(
        fam.mama_app, "post", "/Goal", json=body, headers={"content-type": "application/fhir+json"}
    )
    assert response.status_code in (403, 422), response.text  # a read-only app: 403 first
    # An app that may write: the family plan is the operator's to write (docs/family.md).
    writer = harness.app("mama-writer", patient_id=fam.mama, scopes=("patient/*.cruds",))
    response = harness.fhir(
        writer, "post", "/Goal", json=body, headers={"content-type": "application/fhir+json"}
    )
    assert response.status_code == 422, response.text
    # A partner granted ``correct`` on the Group by a member cannot change who is in it.
    fixer = harness.partner("Fixer", scopes=("system/Group.rus",))
    harness.create(
        grant(
            fam.kind, _org(fixer), actions=("access", "correct"), data=[(fam.group.ref, "instance")]
        ),
        patient_id=fam.kind,
    )
    group = {k: v for k, v in fam.group.last_live().items() if k != "meta"}
    assert harness.fhir(fixer, "get", f"/Group/{fam.group.resource_id}").status_code == 200
    stranger = harness.create(patient(given="Vreemde"), patient_id=None).ref
    more = {**group, "member": [*group["member"], {"entity": {"reference": stranger}}]}
    response = harness.fhir(
        fixer, "put", f"/Group/{fam.group.resource_id}", json=more, headers=FHIR_JSON
    )
    assert response.status_code == 422, response.text
    issue = response.json()["issue"][0]
    assert issue["code"] == "business-rule"
    assert issue["expression"] == ["Group.member"]
    assert issue["diagnostics"] == (
        "Group.member says who sees the family plan; only the vault's operator can change it"
    )
    renamed = {**group, "name": "Gezin Jansen-de Vries"}
    response = harness.fhir(
        fixer, "put", f"/Group/{fam.group.resource_id}", json=renamed, headers=FHIR_JSON
    )
    assert response.status_code == 200, response.text
    harness.written(fam.group)
    with harness.runtime.db.read() as conn:
        assert members_of(conn, fam.group.resource_id) == {fam.mama, fam.papa, fam.kind}
        assert families_of(conn, fam.kind) == [fam.group.resource_id]


def test_leaving_the_family_ends_what_a_members_grant_reaches_there_at_once(
    harness: Harness, fam: Family
) -> None:
    """Membership is read at every request: the operator takes papa out of the Group, and
    the grant he wrote (unchanged) no longer reaches the family compartment."""
    papa_app = harness.app("papa-app", patient_id=fam.papa, scopes=("patient/*.rs",))
    assert _family_refs(fam, _visible(harness, fam.ggz, "CarePlan")) == {fam.plan.ref}
    assert _family_refs(fam, _visible(harness, papa_app, "Goal")) == {
        *(g.ref for g in fam.shared),
        fam.own["papa"].ref,
    }
    body = fam.group.last_live()
    without = [m for m in body["member"] if m["entity"]["reference"] != f"Patient/{fam.papa}"]
    harness.update(fam.group, {**body, "member": without})
    assert _family_refs(fam, _visible(harness, fam.ggz, "CarePlan")) == set()
    assert _family_refs(fam, _visible(harness, papa_app, "Goal")) == {fam.own["papa"].ref}
    for party in (fam.ggz, papa_app, fam.mee):
        for record in fam.records:
            harness.check_read(party, record)
        harness.check_search(party, "CarePlan", patient=None, include="CarePlan:goal")
    harness.update(fam.group, body)
    assert _family_refs(fam, _visible(harness, fam.ggz, "CarePlan")) == {fam.plan.ref}


class _Receiver:
    """A partner's notification endpoint on 127.0.0.1: the focus of every Bundle sent."""

    def __init__(self) -> None:
        foci: list[str] = []
        self.foci = foci

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = orjson.loads(self.rfile.read(int(self.headers["content-length"] or 0)))
                params = body["entry"][0]["resource"]["parameter"]
                for p in params:
                    if p["name"] == "notification-event":
                        for part in p["part"]:
                            if part["name"] == "focus":
                                ref = part["valueReference"]["reference"]
                                foci.append(ref.split("/fhir/", 1)[-1])
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    made = _Receiver()
    yield made
    made.server.shutdown()
    made.server.server_close()


def _export(harness: Harness, party: Party) -> set[str]:
    kick = harness.fhir(
        party,
        "get",
        "/$export",
        params={"_type": "Goal,CarePlan,Group"},
        headers={"prefer": "respond-async", "accept": "application/fhir+json"},
    )
    assert kick.status_code == 202, kick.text
    status = kick.headers["content-location"].split("/fhir", 1)[1]
    for _ in range(600):
        done = harness.fhir(party, "get", status)
        if done.status_code != 202:
            assert done.status_code == 200, done.text
            found = set()
            for item in done.json()["output"]:
                lines = harness.fhir(party, "get", item["url"].split("/fhir", 1)[1])
                for line in lines.content.splitlines():
                    if line.strip():
                        data = orjson.loads(line)
                        found.add(f"{data['resourceType']}/{data['id']}")
            return found
        time.sleep(0.02)
    raise AssertionError("the export did not finish")


def test_export_and_notifications_follow_the_same_decision(
    harness: Harness, fam: Family, receiver: _Receiver
) -> None:
    mine = {r.ref for r in fam.records}
    assert _export(harness, fam.mee) & mine == {
        fam.plan.ref,
        fam.group.ref,
        *(g.ref for g in fam.shared),
        fam.own["mama"].ref,
    }
    assert _export(harness, fam.ggz) & mine == {fam.plan.ref, fam.group.ref}
    subs = {}
    for party in (fam.mee, fam.ggz, fam.wijkteam):
        response = harness.fhir(
            party,
            "post",
            "/Subscription",
            content=orjson.dumps(subscription_body(endpoint=receiver.url, types=("Goal",))),
            headers={"content-type": "application/fhir+json"},
        )
        assert response.status_code == 201, response.text
        subs[party.caller.name] = response.json()["id"]
    notifier = Notifier(harness.runtime)
    settle_notifications(notifier, harness.runtime)
    receiver.foci.clear()
    changed = [fam.shared[0], fam.own["papa"]]
    for record in changed:
        harness.update(record, {**record.last_live(), "description": {"text": "nieuw"}})
    settle_notifications(notifier, harness.runtime)
    heard = set(receiver.foci) & {r.ref for r in changed}
    # Only MEE may read the shared goal; papa's own goal is nobody's here.
    assert heard == {fam.shared[0].ref}
    assert receiver.foci.count(fam.shared[0].ref) == 1
    for party in (fam.mee, fam.ggz, fam.wijkteam):
        harness.fhir(party, "delete", f"/Subscription/{subs[party.caller.name]}")


def test_erasing_a_member_leaves_the_family_plan_and_the_last_one_destroys_its_key(
    harness: Harness, fam: Family
) -> None:
    fid = fam.group.resource_id

    def erase(pid: str) -> None:
        with harness.runtime.db.write() as conn:
            erase_vault(conn, patient_id=pid)
        harness.world.erased.add(pid)

    def family_key() -> bytes | None:
        with harness.runtime.db.read() as conn:
            wrapped: bytes | None = conn.scalar(select(DataKey.wrapped).where(DataKey.owner == fid))
        return wrapped

    # Her app's token, live before she erases: a slow run (mutmut) may outlast TOKEN_AGE,
    # and an erased inwoner cannot log in for a new one.
    live = harness.token_of(fam.mama_app)
    erase(fam.mama)
    # MEE's grant was mama's: it ends; papa's GGZ still sees his grant's part.
    assert _family_refs(fam, _visible(harness, fam.mee, "CarePlan")) == set()
    assert _family_refs(fam, _visible(harness, fam.ggz, "CarePlan")) == {fam.plan.ref}
    assert family_key() is not None
    # Her app's token ended with her vault; everyone else's answers agree with the reference.
    gone = harness.http.get(
        f"/fhir/CarePlan/{fam.plan.resource_id}", headers={"authorization": f"Bearer {live}"}
    )
    assert gone.status_code == 401
    still = [p for p in fam.parties if p is not fam.mama_app]
    for party in still:
        for record in fam.records:
            harness.check_read(party, record)
    erase(fam.papa)
    assert family_key() is not None  # the child is still a member
    erase(fam.kind)
    assert family_key() is None
    harness.world.erased.add(fid)  # the family compartment went with its last member
    with harness.runtime.db.read() as conn:
        assert members_of(conn, fid) == set()
        operator = Repository(harness.runtime, AccessContext.full("test"))
        found = operator.search(
            conn, operator.parse("CarePlan", [("_id", fam.plan.resource_id)], lenient=False)
        )
        assert found.matches == []
    for party in still:
        for record in fam.records:
            harness.check_read(party, record)


# -- the demo family (issue 17 item 5) -------------------------------------------------------

DEMO_SCOPES = ["system/Goal.rs", "system/CarePlan.rs", "system/CareTeam.rs", "system/Group.rs"]


def _demo_partner(harness: Harness, name: str, org: str) -> Party:
    """A backend client of one of the demo's organisations (found by its name)."""
    key = make_key("ES256")
    client_id = register_client(
        harness.runtime,
        name=f"{name} systeem",
        organization_name=name,
        scopes=DEMO_SCOPES,
        jwks=public_jwks(key),
    )
    caller = Caller(name, "system", grantees=frozenset({org}), scopes=tuple(DEMO_SCOPES))
    return Party(caller, client_id, key=key)


def test_the_demo_family_plan_shows_each_members_grants(harness: Harness) -> None:
    load_demo(harness.runtime)
    fam = f"Group/{DEMO_FAMILY_ID}"
    shared = {f"Goal/demo-gezinsdoel-{k}" for k in ("rust", "geld", "huis")}
    team = _demo_partner(
        harness, "Sociaal Team Voorbeeldstad", "Organization/demo-org-sociaal-team"
    )
    woning = _demo_partner(
        harness, "Woonstichting Voorbeeldstad", "Organization/demo-org-woningcorporatie"
    )
    ggz = _demo_partner(harness, "GGZ Voorbeeldstad", "Organization/demo-org-ggz")

    def plan_with_goals(party: Party) -> tuple[set[str], set[str]]:
        response = harness.fhir(
            party,
            "get",
            "/CarePlan",
            params={"subject": fam, "_include": "CarePlan:goal", "_total": "accurate"},
        )
        assert response.status_code == 200, response.text
        entries = response.json().get("entry", [])
        pick = {
            mode: {
                f"{e['resource']['resourceType']}/{e['resource']['id']}"
                for e in entries
                if e["search"]["mode"] == mode
            }
            for mode in ("match", "include")
        }
        assert response.json()["total"] == len(pick["match"])
        return pick["match"], pick["include"]

    # The sociaal team (Sanne's, Erik's and Daan's grants): the plan, the shared goals and
    # the members' own goals each of them granted; Lotte granted the team nothing.
    plans, goals = plan_with_goals(team)
    assert plans == {"CarePlan/demo-gezinsplan"}
    assert shared <= goals
    assert {
        "Goal/demo-doel-sanne-schulden",
        "Goal/demo-doel-erik-werk",
        "Goal/demo-doel-daan-school",
        "Goal/demo-doel-mila-zwemmen",  # Mila's own grant to the team (her parents signed)
    } <= goals
    assert "Goal/demo-doel-lotte-diploma" not in goals
    assert harness.fhir(team, "get", "/Goal/demo-doel-lotte-diploma").status_code == 404
    # The housing corporation (Sanne's own plan only): nothing of the family.
    assert plan_with_goals(woning) == (set(), set())
    response = harness.fhir(woning, "get", "/Goal", params={"subject": fam})
    assert response.json()["total"] == 0
    # GGZ (Erik's and Lotte's own plans): nothing of the family plan.
    assert plan_with_goals(ggz) == (set(), set())
    assert harness.fhir(ggz, "get", f"/Group/{DEMO_FAMILY_ID}").status_code == 404

    # The data function the page's family view will call: the same decision.
    with harness.runtime.db.read() as conn:
        lotte = family_plan(
            Repository(harness.runtime, inwoner_context("demo-inwoner-lotte"), logged=False),
            conn,
            DEMO_FAMILY_ID,
        )
        seen_by_team = family_plan(
            Repository(
                harness.runtime,
                partner_context(conn, "Organization/demo-org-sociaal-team", account_id="test"),
                logged=False,
            ),
            conn,
            DEMO_FAMILY_ID,
        )
        outsider = family_plan(
            Repository(harness.runtime, inwoner_context("demo-geen-lid"), logged=False),
            conn,
            DEMO_FAMILY_ID,
        )
        assert families_of(conn, "demo-inwoner-lotte") == [DEMO_FAMILY_ID]
    assert lotte.group is not None and len(lotte.group["member"]) == 5
    assert [p["id"] for p in lotte.plans] == ["demo-gezinsplan"]
    assert {f"Goal/{g['id']}" for g in lotte.shared_goals} == shared
    # A member sees her own goal the plan points at, not the others' own goals.
    assert [g["id"] for g in lotte.member_goals] == ["demo-doel-lotte-diploma"]
    (family_team,) = lotte.teams
    assert regisseurs(family_team) == ["Practitioner/demo-regisseur-anouk"]
    assert "demo-doel-lotte-diploma" not in {g["id"] for g in seen_by_team.member_goals}
    assert seen_by_team.visible and not outsider.visible
