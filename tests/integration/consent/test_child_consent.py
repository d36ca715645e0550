"""A child's consent by age, through the real HTTP API and the page (issue 17, docs/family.md).

Every check is a real caller's next request: a partner with a client-credentials token, the
child's own app (authorization code + PKCE), a parent logged in on the page. The boundaries
are crossed by moving the clock the vault reads (``time.time`` and ``time.time_ns``, the
only clocks ``now_micros`` and the token checks read) to just before and exactly at the
birthday, 00:00 in Europe/Amsterdam, while the token or the session stays the same:

    11 -> 12   a parent's lone grant ends at the 12th birthday; the child's "ja" brings it
               back (born tomorrow, and born on 29 February of a leap year)
    12 to 15   a parent's proposal gives nothing; the child's "nee" stops it, "ja" opens it;
               the child's app cannot sign for a parent, nor share alone; either revokes
    15 -> 16   the parent's "ouder" role stops letting them act on the birthday itself; what
               both signed holds; the page says what changes and when
    17         the child revokes what her parent may see; the parent's next page has nothing
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from tests.factories import goal, patient, related_person
from tests.support.harness import Harness, PageVisitor, Party, network_account, page_login
from tests.support.reference import Record
from tests.support.smart import inwoner_account
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.runtime import Runtime, now_micros

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
SECOND = 1_000_000
IRCP = {"coding": [{"code": "IRCP"}]}
PARTNER_SCOPES = ("system/Goal.rs", "system/Consent.rs", "system/Patient.rs")
APP_SCOPES = ("patient/*.rs", "patient/Consent.cruds", "patient/Patient.cruds")


class Clock:
    """The vault's clock, moved: ``at(instant)`` makes now read ``instant`` (microseconds)
    from here on, running on in real time."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._offset = 0
        real_ns, real = time.time_ns, time.time
        monkeypatch.setattr(time, "time_ns", lambda: real_ns() + self._offset)
        monkeypatch.setattr(time, "time", lambda: real() + self._offset / 1e9)
        self._real_ns = real_ns

    def at(self, instant: int) -> None:
        self._offset = instant * 1000 - self._real_ns()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    yield Clock(monkeypatch)


def _midnight(day: date) -> int:
    """00:00 in Amsterdam on ``day``, in microseconds."""
    return int(datetime(day.year, day.month, day.day, tzinfo=AMSTERDAM).timestamp()) * SECOND


def _tomorrow() -> date:
    """The next day in Amsterdam, far enough ahead that the clock only moves forward."""
    return (datetime.now(AMSTERDAM) + timedelta(hours=1)).date() + timedelta(days=1)


def _years_before(day: date, years: int) -> date:
    return day.replace(year=day.year - years)


@dataclass
class Family:
    child: str  # the child's patient id
    goals: list[Record]
    mama: Record  # her RelatedPerson in the child's compartment
    mama_login: tuple[str, str]
    partner: Party


@pytest.fixture(scope="module")
def partner(harness: Harness) -> Party:
    """One partner for the module: each test's child grants it anew."""
    return harness.partner("MEE", scopes=PARTNER_SCOPES)


def _family(harness: Harness, partner: Party, born: date, *, goals: int = 1) -> Family:
    child = harness.create(patient(birthDate=born.isoformat()), patient_id=None).resource_id
    made = [
        harness.create(
            goal(patient_id=child, text=f"Ik wil {uuid.uuid4().hex[:6]}"), patient_id=child
        )
        for _ in range(goals)
    ]
    mama = harness.create(related_person(patient_id=child), patient_id=child)
    login = network_account(
        harness.runtime, patient_id=child, related_person=mama.resource_id, legal_basis="ouder"
    )
    partner.token = ""  # a token of the clock's time: the clock may have moved since the last
    return Family(child, made, mama, login, partner)


def _org(party: Party) -> str:
    (grantee,) = party.caller.grantees
    return grantee


def _share_on_page(visitor: PageVisitor, grantee: str, parts: tuple[str, ...] = ("doelen",)) -> str:
    kind, ident = grantee.split("/")
    done = visitor.http.post(
        f"/delen/{kind}/{ident}/opslaan",
        data={"csrf_token": visitor.csrf, "part": list(parts), "until": ""},
    )
    assert done.status_code == 303, done.text
    return str(done.headers["location"])


def _answer_on_page(visitor: PageVisitor, consent_id: str, answer: str) -> None:
    done = visitor.http.post(f"/voorstel/{consent_id}/{answer}", data={"csrf_token": visitor.csrf})
    assert done.status_code == 303, done.text


def _consents(runtime: Runtime, child: str) -> list[dict[str, Any]]:
    """The child's Consents as stored (the operator's read, not a caller's)."""
    repo = Repository(runtime, AccessContext.full("test"))
    with runtime.db.read() as conn:
        found = repo.search(
            conn,
            repo.parse(
                "Consent", [("patient", f"Patient/{child}"), ("_count", "100")], lenient=False
            ),
        )
    return [orjson.loads(m.body or b"{}") for m in found.matches]


def _signers(consent: dict[str, Any]) -> list[str]:
    return sorted(p["reference"] for p in consent.get("performer") or [])


def _sees_goal(harness: Harness, party: Party, goal_id: str) -> bool:
    response = harness.fhir(party, "get", f"/Goal/{goal_id}")
    assert response.status_code in (200, 404), response.text
    return response.status_code == 200


def _total(harness: Harness, party: Party, child: str) -> int:
    response = harness.fhir(
        party, "get", "/Goal", params={"patient": f"Patient/{child}", "_total": "accurate"}
    )
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


# -- 11 -> 12 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "twelfth",
    [
        pytest.param(None, id="born-tomorrow-12-years-ago"),
        # Born 29 February 2016: the 12th birthday is 29 February 2028, a leap year, which
        # begins at 23:00 UTC on the 28th.
        pytest.param(date(2028, 2, 29), id="born-on-29-february"),
    ],
)
def test_a_parents_grant_ends_at_the_12th_birthday_on_the_partners_next_request(
    harness: Harness, page_app: Any, partner: Party, clock: Clock, twelfth: date | None
) -> None:
    birthday = twelfth or _tomorrow()
    born = date(2016, 2, 29) if twelfth else _years_before(birthday, 12)
    at = _midnight(birthday)
    clock.at(at - 120 * SECOND)
    family = _family(harness, partner, born)
    mama = page_login(page_app, *family.mama_login)
    home = mama.http.get("/")
    assert "is nog geen 12" in home.text, home.text
    # The child herself, 11: her parents decide, and the page says so instead of sharing.
    child = page_login(page_app, *inwoner_account(harness.runtime, family.child))
    kind, ident = _org(family.partner).split("/")
    refused = child.http.post(
        f"/delen/{kind}/{ident}/opslaan",
        data={"csrf_token": child.csrf, "part": ["doelen"], "until": ""},
    )
    assert refused.status_code == 403 and "Je ouders beslissen" in refused.text
    assert f"{birthday.day} " in home.text  # the day it changes, on Amsterdam's calendar
    assert _share_on_page(mama, _org(family.partner)) == "/?opgeslagen=1"
    (grant,) = [c for c in _consents(harness.runtime, family.child) if c["status"] == "active"]
    assert _signers(grant) == [family.mama.ref]  # a parent alone, active at once
    goal_id = family.goals[0].resource_id

    assert _sees_goal(harness, family.partner, goal_id)
    token = harness._token(family.partner)
    clock.at(at - 2 * SECOND)
    assert _sees_goal(harness, family.partner, goal_id)
    assert _total(harness, family.partner, family.child) == 1
    clock.at(at)
    assert harness._token(family.partner) == token  # the same token's next request
    # In UTC it is still the day before the birthday: a day taken in UTC would be late.
    assert datetime.fromtimestamp(now_micros() / SECOND, UTC).date() < birthday
    assert not _sees_goal(harness, family.partner, goal_id)
    assert _total(harness, family.partner, family.child) == 0

    # Now 12: the child says what she wants; it counts once a parent says "ja" as well.
    assert _share_on_page(child, _org(family.partner)) == "/?voorgesteld=1"
    assert not _sees_goal(harness, family.partner, goal_id)
    (proposal,) = [c for c in _consents(harness.runtime, family.child) if c["status"] == "proposed"]
    assert _signers(proposal) == [f"Patient/{family.child}"]
    assert "Wacht op een ja" in mama.http.get("/").text
    _answer_on_page(mama, proposal["id"], "ja")
    agreed = next(c for c in _consents(harness.runtime, family.child) if c["id"] == proposal["id"])
    assert agreed["status"] == "active"
    assert _signers(agreed) == sorted([f"Patient/{family.child}", family.mama.ref])
    assert _sees_goal(harness, family.partner, goal_id)
    for visitor in (mama, child):
        visitor.http.close()


def test_under_12_either_parent_shares_and_the_other_may_stop_it(
    harness: Harness, page_app: Any, partner: Party
) -> None:
    born = _years_before(date.today(), 8)
    family = _family(harness, partner, born)
    goal_id = family.goals[0].resource_id
    papa = harness.create(related_person(patient_id=family.child), patient_id=family.child)
    papa_login = network_account(
        harness.runtime,
        patient_id=family.child,
        related_person=papa.resource_id,
        legal_basis="ouder",
    )
    mama = page_login(page_app, *family.mama_login)
    _share_on_page(mama, _org(family.partner))
    assert _sees_goal(harness, family.partner, goal_id)
    # The other parent stops what the first one shared, on the partner's next request.
    other = page_login(page_app, *papa_login)
    kind, ident = _org(family.partner).split("/")
    done = other.http.post(
        f"/delen/{kind}/{ident}/opslaan", data={"csrf_token": other.csrf, "until": ""}
    )
    assert done.status_code == 303, done.text
    assert not _sees_goal(harness, family.partner, goal_id)
    (stopped,) = _consents(harness.runtime, family.child)
    assert stopped["status"] == "inactive" and _signers(stopped) == [family.mama.ref]
    for visitor in (mama, other):
        visitor.http.close()


# -- 12 to 15 ----------------------------------------------------------------------------------


def test_from_12_a_grant_needs_the_child_and_a_parent_and_either_revokes(
    harness: Harness, page_app: Any, partner: Party
) -> None:
    born = _years_before(date.today(), 13) - timedelta(days=100)
    family = _family(harness, partner, born)
    goal_id = family.goals[0].resource_id
    mama = page_login(page_app, *family.mama_login)
    child_login = inwoner_account(harness.runtime, family.child)
    child = page_login(page_app, *child_login)
    app = harness.app("kind", patient_id=family.child, scopes=APP_SCOPES)
    assert (
        "Vanaf je 16e verjaardag beslis jij alleen wie je plan mag zien."
        in child.http.get("/").text
    )

    # A parent's proposal gives nothing; the 13-year-old's "nee" stops it.
    assert _share_on_page(mama, _org(family.partner)) == "/?voorgesteld=1"
    (first,) = [c for c in _consents(harness.runtime, family.child) if c["status"] == "proposed"]
    assert _signers(first) == [family.mama.ref]
    assert not _sees_goal(harness, family.partner, goal_id)
    assert "stelt dit voor" in child.http.get("/").text
    _answer_on_page(child, first["id"], "nee")
    refused = next(c for c in _consents(harness.runtime, family.child) if c["id"] == first["id"])
    assert refused["status"] == "rejected"
    assert not _sees_goal(harness, family.partner, goal_id)

    # The child's app can neither share alone nor sign for her mother.
    body = {k: v for k, v in refused.items() if k != "meta"}
    alone = {**body, "id": "eigen-" + uuid.uuid4().hex[:8], "status": "active"}
    alone["performer"] = [{"reference": f"Patient/{family.child}"}]
    made = harness.fhir(app, "put", f"/Consent/{alone['id']}", json=alone)
    assert made.status_code in (404, 422), made.text
    made = harness.fhir(app, "post", "/Consent", json={k: v for k, v in alone.items() if k != "id"})
    assert made.status_code == 422, made.text
    assert "both agree" in made.text
    forged = {k: v for k, v in alone.items() if k != "id"}
    forged["performer"] = [{"reference": f"Patient/{family.child}"}, {"reference": family.mama.ref}]
    made = harness.fhir(app, "post", "/Consent", json=forged)
    assert made.status_code == 422, made.text
    assert "their own agreement" in made.text
    assert not _sees_goal(harness, family.partner, goal_id)

    # A second proposal, and the child says "ja" on the page: now the partner sees.
    _share_on_page(mama, _org(family.partner))
    (second,) = [c for c in _consents(harness.runtime, family.child) if c["status"] == "proposed"]
    _answer_on_page(child, second["id"], "ja")
    assert _sees_goal(harness, family.partner, goal_id)

    # Either revokes: the child, with her own app, on the partner's very next request.
    active = next(c for c in _consents(harness.runtime, family.child) if c["id"] == second["id"])
    stopped = {**{k: v for k, v in active.items() if k != "meta"}, "status": "inactive"}
    done = harness.fhir(app, "put", f"/Consent/{second['id']}", json=stopped)
    assert done.status_code == 200, done.text
    assert not _sees_goal(harness, family.partner, goal_id)

    # And the mother, on the page: a third grant both agreed to, stopped by her.
    _share_on_page(child, _org(family.partner))
    (third,) = [c for c in _consents(harness.runtime, family.child) if c["status"] == "proposed"]
    _answer_on_page(mama, third["id"], "ja")
    assert _sees_goal(harness, family.partner, goal_id)
    kind, ident = _org(family.partner).split("/")
    done_page = mama.http.post(
        f"/delen/{kind}/{ident}/opslaan", data={"csrf_token": mama.csrf, "until": ""}
    )
    assert done_page.status_code == 303, done_page.text
    assert not _sees_goal(harness, family.partner, goal_id)

    # The birth date decides all this: the child's app cannot change it.
    me = harness.fhir(app, "get", f"/Patient/{family.child}").json()
    older = {**{k: v for k, v in me.items() if k != "meta"}, "birthDate": "2000-01-01"}
    changed = harness.fhir(app, "put", f"/Patient/{family.child}", json=older)
    assert changed.status_code == 422, changed.text
    for visitor in (mama, child):
        visitor.http.close()


# -- 15 -> 16 ----------------------------------------------------------------------------------


def _signed_by_both(harness: Harness, family: Family, grantee: str, goal: Record) -> None:
    """A Consent the child and her mother both signed (as the operator's import writes it)."""
    harness.create(
        {
            "resourceType": "Consent",
            "status": "active",
            "scope": {"coding": [{"code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{family.child}"},
            "performer": [
                {"reference": f"Patient/{family.child}"},
                {"reference": family.mama.ref},
            ],
            "provision": {
                "type": "permit",
                "actor": [{"role": IRCP, "reference": {"reference": grantee}}],
                "action": [{"coding": [{"code": "access"}]}],
                "data": [{"meaning": "instance", "reference": {"reference": goal.ref}}],
            },
        },
        patient_id=family.child,
    )


@pytest.mark.parametrize(
    "sixteenth",
    [
        pytest.param(None, id="born-tomorrow-16-years-ago"),
        # Born 29 February 2012: the 16th birthday is 29 February 2028.
        pytest.param(date(2028, 2, 29), id="born-on-29-february"),
    ],
)
def test_on_the_16th_birthday_the_parent_sees_only_what_the_child_granted(
    harness: Harness, page_app: Any, partner: Party, clock: Clock, sixteenth: date | None
) -> None:
    birthday = sixteenth or _tomorrow()
    born = date(2012, 2, 29) if sixteenth else _years_before(birthday, 16)
    at = _midnight(birthday)
    clock.at(at - 120 * SECOND)
    family = _family(harness, partner, born, goals=2)
    shown, kept = family.goals
    _signed_by_both(harness, family, _org(family.partner), shown)
    _signed_by_both(harness, family, family.mama.ref, shown)
    texts = [g.current["description"]["text"] for g in family.goals]  # type: ignore[index]

    mama = page_login(page_app, *family.mama_login)
    child = page_login(page_app, *inwoner_account(harness.runtime, family.child))
    day = f"{birthday.day} "
    notice = child.http.get("/").text
    assert "Vanaf je 16e verjaardag beslis jij alleen wie je plan mag zien. Dat is op" in notice
    assert day in notice
    plan = mama.http.get("/plan")
    assert plan.status_code == 200 and all(t in plan.text for t in texts), plan.text
    assert "Vanaf de 16e verjaardag van" in mama.http.get("/").text
    assert _sees_goal(harness, family.partner, shown.resource_id)

    clock.at(at - 2 * SECOND)
    assert mama.http.get("/plan").status_code == 200
    clock.at(at)
    assert datetime.fromtimestamp(now_micros() / SECOND, UTC).date() < birthday
    # The same session's next request: no longer acting for her, only what she granted.
    assert mama.http.get("/plan").status_code in (303, 403)
    home = mama.http.get("/")
    assert home.status_code == 200, home.text
    # She shares a goal, not her name: the notice speaks of "je kind".
    assert "Je kind is 16 of ouder en beslist nu alleen" in home.text
    assert texts[0] in home.text and texts[1] not in home.text
    kind, ident = _org(family.partner).split("/")
    refused = mama.http.post(
        f"/delen/{kind}/{ident}/opslaan", data={"csrf_token": mama.csrf, "until": ""}
    )
    assert refused.status_code in (303, 403)
    # What both signed holds: the partner still sees the goal the grant names.
    assert _sees_goal(harness, family.partner, shown.resource_id)
    assert not _sees_goal(harness, family.partner, kept.resource_id)
    assert "Vanaf je 16e verjaardag beslis jij alleen wie je plan mag zien." in (
        child.http.get("/").text
    )
    for visitor in (mama, child):
        visitor.http.close()


# -- 17 ----------------------------------------------------------------------------------------


def test_a_17_year_old_revokes_what_her_parent_may_see(
    harness: Harness, page_app: Any, partner: Party
) -> None:
    born = _years_before(date.today(), 17) - timedelta(days=30)
    family = _family(harness, partner, born)
    (only,) = family.goals
    text = only.current["description"]["text"]  # type: ignore[index]
    app = harness.app("kind", patient_id=family.child, scopes=APP_SCOPES)
    grant = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{family.child}"},
        "performer": [{"reference": f"Patient/{family.child}"}],
        "provision": {
            "type": "permit",
            "actor": [{"role": IRCP, "reference": {"reference": family.mama.ref}}],
            "action": [{"coding": [{"code": "access"}]}],
            "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Goal"}],
        },
    }
    made = harness.fhir(app, "post", "/Consent", json=grant)  # she alone decides
    assert made.status_code == 201, made.text
    mama = page_login(page_app, *family.mama_login)
    home = mama.http.get("/")
    assert text in home.text and "Je kind is 16 of ouder" in home.text, home.text
    assert mama.http.get("/plan").status_code in (303, 403)

    stored = made.json()
    stopped = {**{k: v for k, v in stored.items() if k != "meta"}, "status": "inactive"}
    done = harness.fhir(app, "put", f"/Consent/{stored['id']}", json=stopped)
    assert done.status_code == 200, done.text
    after = mama.http.get("/")
    assert after.status_code == 200 and text not in after.text
    # Only the Consent that names her is left to see (as stopped): no goal of the child.
    assert 'data-type="Goal"' not in after.text and "Toestemming (gestopt)" in after.text
    mama.http.close()


# -- the birth date itself ---------------------------------------------------------------------


def test_the_birth_date_that_decides_is_changed_by_the_operator_only(
    harness: Harness, partner: Party
) -> None:
    """A 13-year-old's own app must not make her 16 by editing her birthDate, and no one but
    the operator moves the date the rules are decided by (docs/family.md)."""
    born = _years_before(date.today(), 13) - timedelta(days=30)
    family = _family(harness, partner, born)
    app = harness.app("kind-datum", patient_id=family.child, scopes=APP_SCOPES)
    current = harness.fhir(app, "get", f"/Patient/{family.child}")
    assert current.status_code == 200, current.text
    body = {k: v for k, v in current.json().items() if k != "meta"}
    older = {**body, "birthDate": _years_before(date.today(), 16).isoformat()}
    refused = harness.fhir(app, "put", f"/Patient/{family.child}", json=older)
    assert refused.status_code == 422, refused.text
    outcome = refused.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["Patient.birthDate"]
    without = {k: v for k, v in body.items() if k != "birthDate"}
    assert harness.fhir(app, "put", f"/Patient/{family.child}", json=without).status_code == 422
    # Nothing changed: the stored Patient keeps its date, and the rules still see 13.
    again = harness.fhir(app, "get", f"/Patient/{family.child}")
    assert again.json()["birthDate"] == born.isoformat()
    assert again.json()["meta"]["versionId"] == current.json()["meta"]["versionId"]
    # The operator corrects it.
    operator = Repository(harness.runtime, AccessContext.full("test"))
    corrected = (born - timedelta(days=1)).isoformat()
    with harness.runtime.db.write() as conn:
        operator.update(conn, "Patient", family.child, {**body, "birthDate": corrected})
    assert harness.fhir(app, "get", f"/Patient/{family.child}").json()["birthDate"] == corrected
