"""FHIR search over real HTTP: parameters, modifiers, prefixes, result parameters, includes.

The database is shared by every test of a session, so each test makes its own Patient and
scopes its searches to it (``patient=``) or to codes nobody else uses.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import FHIR_JSON, create
from tests.factories import (
    BSN_SYSTEM,
    DOMAIN_SYSTEM,
    bsn,
    careplan,
    careteam,
    consent,
    goal,
    new_id,
    observation,
    organization,
    practitioner,
    provenance,
    related_person,
)
from tests.factories import patient as patient_resource
from vault.kernel.runtime import Runtime
from vault.store.models import ResourceRow, SearchToken

Params = Sequence[tuple[str, str]] | dict[str, str]


def search(client: httpx.Client, path: str, params: Params = ()) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle: dict[str, Any] = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    return bundle


def ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def found(client: httpx.Client, path: str, params: Params = ()) -> set[str]:
    return set(ids(search(client, path, params)))


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((x["url"] for x in bundle["link"] if x["relation"] == relation), None)


def new_patient(client: httpx.Client, **kw: Any) -> str:
    return str(create(client, patient_resource(**kw))["id"])


def new(client: httpx.Client, resource: dict[str, Any]) -> str:
    return str(create(client, resource)["id"])


@pytest.fixture
def pid(client: httpx.Client) -> str:
    return new_patient(client)


@pytest.fixture
def base(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/")


# -- _id and _lastUpdated -------------------------------------------------------------------


def test_id_finds_exactly_the_listed_ids(client: httpx.Client, pid: str) -> None:
    a, b, c = (new(client, goal(patient_id=pid)) for _ in range(3))
    assert found(client, "/Goal", {"_id": a}) == {a}
    assert found(client, "/Goal", {"_id": f"{a},{c}"}) == {a, c}
    assert found(client, "/Goal", [("_id", f"{a},{b}"), ("_id", f"{b},{c}")]) == {b}
    assert found(client, "/Goal", {"_id": new_id()}) == set()
    assert found(client, "/CarePlan", {"_id": a}) == set()
    assert found(client, "/Patient", {"_id": pid}) == {pid}


def test_last_updated_prefixes(client: httpx.Client, pid: str) -> None:
    domain = new_id("d")
    stamps: dict[str, str] = {}
    for _ in range(3):
        stored = create(client, goal(patient_id=pid, domain=domain))
        stamps[str(stored["id"])] = stored["meta"]["lastUpdated"]  # type: ignore[index]
        time.sleep(0.002)  # distinct milliseconds: lastUpdated is shown to the millisecond
    middle = sorted(stamps.values())[1]
    expected = {
        "eq": {i for i, s in stamps.items() if s == middle},
        "gt": {i for i, s in stamps.items() if s > middle},
        "lt": {i for i, s in stamps.items() if s < middle},
        "ge": {i for i, s in stamps.items() if s >= middle},
        "le": {i for i, s in stamps.items() if s <= middle},
        "ne": {i for i, s in stamps.items() if s != middle},
    }
    assert [len(expected[p]) for p in ("eq", "gt", "lt")] == [1, 1, 1]
    for prefix, want in expected.items():
        params = {"category": domain, "_lastUpdated": f"{prefix}{middle}"}
        assert found(client, "/Goal", params) == want, prefix
    assert found(client, "/Goal", {"category": domain, "_lastUpdated": middle}) == expected["eq"]
    # A whole day contains all three; the day before and after none.
    day = middle[:10]
    assert found(client, "/Goal", {"category": domain, "_lastUpdated": day}) == set(stamps)
    assert found(client, "/Goal", {"category": domain, "_lastUpdated": f"lt{day}"}) == set()
    assert found(client, "/Goal", {"category": domain, "_lastUpdated": f"gt{day}"}) == set()


def test_last_updated_range_with_two_prefixes(client: httpx.Client, pid: str) -> None:
    domain = new_id("d")
    stamps = []
    for _ in range(3):
        stored = create(client, goal(patient_id=pid, domain=domain))
        stamps.append((stored["meta"]["lastUpdated"], stored["id"]))  # type: ignore[index]
        time.sleep(0.002)
    (first, _), (_, b), (last, _) = sorted(stamps)
    params = [("category", domain), ("_lastUpdated", f"gt{first}"), ("_lastUpdated", f"lt{last}")]
    assert found(client, "/Goal", params) == {b}


# -- references ---------------------------------------------------------------------------


def test_patient_and_subject_take_every_reference_form(
    client: httpx.Client, pid: str, base: str
) -> None:
    other = new_patient(client)
    mine = {new(client, goal(patient_id=pid)) for _ in range(2)}
    new(client, goal(patient_id=other))
    forms = [pid, f"Patient/{pid}", f"{base}/Patient/{pid}", f"Patient/{pid}/_history/1"]
    for name in ("patient", "subject", "patient:Patient", "subject:Patient"):
        for value in forms:
            assert found(client, "/Goal", {name: value}) == mine, (name, value)
    assert found(client, "/Goal", {"patient": f"{pid},{other}"}) != mine
    assert len(found(client, "/Goal", {"patient": f"{pid},{other}"})) == 3
    # A reference of another type never matches, whatever its id.
    assert found(client, "/Goal", {"patient": f"Organization/{pid}"}) == set()


def test_patient_on_every_compartment_type(client: httpx.Client, pid: str) -> None:
    org = new(client, organization())
    g = new(client, goal(patient_id=pid))
    made = {
        "Goal": g,
        "CarePlan": new(client, careplan(patient_id=pid)),
        "CareTeam": new(client, careteam(patient_id=pid)),
        "RelatedPerson": new(client, related_person(patient_id=pid)),
        "Consent": new(client, consent(patient_id=pid, actors=[f"Organization/{org}"])),
        "Observation": new(client, observation(patient_id=pid)),
        "Provenance": new(client, provenance(targets=[f"Goal/{g}"])),
    }
    for type_name, resource_id in made.items():
        assert found(client, f"/{type_name}", {"patient": pid}) == {resource_id}, type_name


def test_type_modifier_must_agree_with_the_reference(client: httpx.Client, pid: str) -> None:
    response = client.get("/CarePlan", params={"care-team:CareTeam": f"Goal/{pid}"})
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    assert client.get("/CarePlan", params={"subject:Practitioner": pid}).status_code == 400
    # A family plan's subject is a Group (docs/family.md): a Patient's id there finds nothing.
    plan = new(client, careplan(patient_id=pid))
    assert plan in found(client, "/CarePlan", {"subject:Patient": pid})
    assert found(client, "/CarePlan", {"subject:Group": pid}) == set()
    assert found(client, "/CarePlan", {"subject": f"Group/{pid}"}) == set()


def test_care_team_and_goal_on_careplan(client: httpx.Client, pid: str, base: str) -> None:
    team_a, team_b = (new(client, careteam(patient_id=pid)) for _ in range(2))
    goal_a, goal_b = (new(client, goal(patient_id=pid)) for _ in range(2))
    plan_a = new(client, careplan(patient_id=pid, careteams=[team_a], goals=[goal_a]))
    plan_b = new(client, careplan(patient_id=pid, careteams=[team_b], goals=[goal_a, goal_b]))
    for name in ("care-team", "careteam"):
        for value in (team_a, f"CareTeam/{team_a}", f"{base}/CareTeam/{team_a}"):
            assert found(client, "/CarePlan", {name: value}) == {plan_a}, (name, value)
        assert found(client, "/CarePlan", {f"{name}:CareTeam": team_b}) == {plan_b}
    assert found(client, "/CarePlan", {"goal": goal_a}) == {plan_a, plan_b}
    assert found(client, "/CarePlan", {"goal": f"Goal/{goal_b}"}) == {plan_b}
    assert found(client, "/CarePlan", {"goal:Goal": f"{base}/Goal/{goal_b}"}) == {plan_b}
    assert found(client, "/CarePlan", [("goal", goal_a), ("goal", goal_b)]) == {plan_b}
    assert found(client, "/CarePlan", {"goal": f"CareTeam/{goal_a}"}) == set()
    # Each parameter answers from its own element only.
    assert found(client, "/CarePlan", {"goal": team_a}) == set()
    assert found(client, "/CarePlan", {"care-team": goal_a}) == set()


def test_actor_on_consent(client: httpx.Client, pid: str, base: str) -> None:
    mee, ggz = new(client, organization(name="MEE")), new(client, organization(name="GGZ"))
    doc = new(client, practitioner())
    to_mee = new(client, consent(patient_id=pid, actors=[f"Organization/{mee}"]))
    to_both = new(
        client,
        consent(patient_id=pid, actors=[f"Organization/{ggz}", f"Practitioner/{doc}"]),
    )
    for value in (mee, f"Organization/{mee}", f"{base}/Organization/{mee}"):
        assert found(client, "/Consent", {"actor": value}) == {to_mee}, value
    assert found(client, "/Consent", {"actor:Organization": mee}) == {to_mee}
    assert found(client, "/Consent", {"actor:Practitioner": mee}) == set()
    assert found(client, "/Consent", {"actor": f"Practitioner/{doc}"}) == {to_both}
    assert found(client, "/Consent", {"actor": f"{mee},{ggz}"}) == {to_mee, to_both}


def test_member_and_participant_on_careteam(client: httpx.Client, pid: str, base: str) -> None:
    org = new(client, organization())
    neighbour = new(client, related_person(patient_id=pid))
    team = new(
        client,
        careteam(patient_id=pid, members=[f"Organization/{org}", f"RelatedPerson/{neighbour}"]),
    )
    other_team = new(client, careteam(patient_id=pid, members=[f"Organization/{org}"]))
    for name in ("member", "participant"):
        assert found(client, "/CareTeam", {name: neighbour}) == {team}
        assert found(client, "/CareTeam", {name: f"RelatedPerson/{neighbour}"}) == {team}
        assert found(client, "/CareTeam", {name: f"{base}/Organization/{org}"}) == {
            team,
            other_team,
        }
        assert found(client, "/CareTeam", {f"{name}:RelatedPerson": neighbour}) == {team}
        assert found(client, "/CareTeam", {f"{name}:Practitioner": org}) == set()


# -- tokens --------------------------------------------------------------------------------


def test_status_with_or(client: httpx.Client, pid: str) -> None:
    active = new(client, careplan(patient_id=pid, status="active"))
    draft = new(client, careplan(patient_id=pid, status="draft"))
    new(client, careplan(patient_id=pid, status="completed"))
    assert found(client, "/CarePlan", {"patient": pid, "status": "active"}) == {active}
    assert found(client, "/CarePlan", {"patient": pid, "status": "active,draft"}) == {active, draft}
    assert found(client, "/CarePlan", {"patient": pid, "status": "revoked"}) == set()


def test_category_code_system_and_no_system(client: httpx.Client, pid: str) -> None:
    code = new_id("c")
    with_system = new(client, goal(patient_id=pid, domain=code))
    without_system = new(client, goal(patient_id=pid, category=[{"coding": [{"code": code}]}]))
    elsewhere = new(
        client, goal(patient_id=pid, category=[{"coding": [{"system": "urn:x", "code": code}]}])
    )
    assert found(client, "/Goal", {"category": code}) == {with_system, without_system, elsewhere}
    assert found(client, "/Goal", {"category": f"{DOMAIN_SYSTEM}|{code}"}) == {with_system}
    assert found(client, "/Goal", {"category": f"|{code}"}) == {without_system}
    assert found(client, "/Goal", {"category": f"urn:x|{code}"}) == {elsewhere}
    assert found(client, "/Goal", {"category": f"urn:y|{code}"}) == set()
    in_system = found(client, "/Goal", {"patient": pid, "category": f"{DOMAIN_SYSTEM}|"})
    assert in_system == {with_system}


def test_or_with_commas_and_with_repeats(client: httpx.Client, pid: str) -> None:
    a, b = new_id("c"), new_id("c")

    def both(first: str, second: str) -> dict[str, Any]:
        return goal(
            patient_id=pid,
            category=[
                {"coding": [{"system": DOMAIN_SYSTEM, "code": first}]},
                {"coding": [{"system": DOMAIN_SYSTEM, "code": second}]},
            ],
        )

    only_a = new(client, goal(patient_id=pid, domain=a))
    only_b = new(client, goal(patient_id=pid, domain=b))
    a_and_b = new(client, both(a, b))
    assert found(client, "/Goal", {"category": f"{a},{b}"}) == {only_a, only_b, a_and_b}
    assert found(client, "/Goal", [("category", a), ("category", b)]) == {a_and_b}
    assert found(client, "/Goal", [("category", f"{a},{b}"), ("category", b)]) == {only_b, a_and_b}
    assert found(client, "/Goal", [("category", a), ("lifecycle-status", "active")]) == {
        only_a,
        a_and_b,
    }


def test_escaped_comma_and_pipe_are_part_of_the_value(client: httpx.Client, pid: str) -> None:
    code = new_id("c")
    comma = new(client, goal(patient_id=pid, domain=f"{code},x"))
    pipe = new(client, goal(patient_id=pid, domain=f"{code}|x"))
    assert found(client, "/Goal", {"category": f"{code}\\,x"}) == {comma}
    assert found(client, "/Goal", {"category": f"{DOMAIN_SYSTEM}|{code}\\,x"}) == {comma}
    assert found(client, "/Goal", {"category": f"{code}\\|x"}) == {pipe}
    assert found(client, "/Goal", {"category": f"{DOMAIN_SYSTEM}|{code}\\|x,{code}\\,x"}) == {
        pipe,
        comma,
    }


def test_identifier_finds_a_patient_by_bsn_through_the_blind_index(
    client: httpx.Client, runtime: Runtime
) -> None:
    value = bsn()
    pid = new_patient(client, bsn_value=value)
    for query in (f"{BSN_SYSTEM}|{value}", value):
        bundle = search(client, "/Patient", {"identifier": query})
        assert pid in ids(bundle)
        for entry in bundle["entry"]:
            assert {"system": BSN_SYSTEM, "value": value} in entry["resource"]["identifier"]
    assert pid not in found(client, "/Patient", {"identifier": f"urn:other|{value}"})
    assert pid not in found(client, "/Patient", {"identifier": f"|{value}"})
    assert pid not in found(client, "/Patient", {"identifier": value[:-1]})
    # The index holds a keyed hash of the BSN, never the number itself.
    with runtime.db.read() as conn:
        stored = set(
            conn.scalars(select(SearchToken.code_hash).where(SearchToken.param == "identifier"))
        )
    assert value not in stored
    assert runtime.blind.token(value) in stored


def test_identifier_on_other_types(client: httpx.Client, pid: str) -> None:
    value = new_id("zaak")
    plan = new(
        client, careplan(patient_id=pid, identifier=[{"system": "urn:zaak", "value": value}])
    )
    assert found(client, "/CarePlan", {"identifier": f"urn:zaak|{value}"}) == {plan}
    assert found(client, "/CarePlan", {"identifier": "urn:zaak|"}) >= {plan}


# -- dates ---------------------------------------------------------------------------------


@pytest.fixture
def plans(client: httpx.Client, pid: str) -> dict[str, str]:
    """Four plans of one inwoner with periods that test every prefix."""
    return {
        "november": new(client, careplan(patient_id=pid, start="2026-11-01", end="2026-11-15")),
        "march": new(client, careplan(patient_id=pid, start="2026-03-01", end="2026-03-31")),
        "new_year": new(client, careplan(patient_id=pid, start="2025-12-20", end="2026-01-10")),
        "open": new(client, careplan(patient_id=pid, start="2027-02-01")),
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026", {"november", "march"}),
        ("2026-11", {"november"}),
        ("eq2026-03", {"march"}),
        ("2026-11-01", set()),  # the period is longer than the day
        ("ne2026", {"new_year", "open"}),
        ("ge2026-11-01", {"november", "open"}),
        ("gt2026-11-10", {"november", "open"}),
        ("le2026-01-05", {"new_year"}),
        ("lt2026", {"new_year"}),
        ("sa2026", {"open"}),
        ("sa2026-03-31", {"november", "open"}),
        ("eb2026-11", {"march", "new_year"}),
        ("eb2026", set()),
        ("ap2026-01", {"new_year"}),
        ("2026-03,2026-11", {"march", "november"}),
    ],
)
def test_careplan_date_prefixes_and_partial_dates(
    client: httpx.Client, pid: str, plans: dict[str, str], value: str, expected: set[str]
) -> None:
    names = {v: k for k, v in plans.items()}
    result = found(client, "/CarePlan", {"patient": pid, "date": value})
    assert {names[i] for i in result} == expected


def test_careplan_date_range_with_two_prefixes(
    client: httpx.Client, pid: str, plans: dict[str, str]
) -> None:
    params = [("patient", pid), ("date", "ge2026-01-01"), ("date", "le2026-12-31")]
    assert found(client, "/CarePlan", params) == {
        plans["november"],
        plans["march"],
        plans["new_year"],
    }


def test_observation_date_in_utc(client: httpx.Client, pid: str) -> None:
    morning = new(client, observation(patient_id=pid, when="2026-11-01T10:00:00+01:00"))
    late = new(client, observation(patient_id=pid, when="2026-11-02T23:30:00-02:00"))
    period = observation(
        patient_id=pid, effectivePeriod={"start": "2026-10-01", "end": "2026-10-31"}
    )
    del period["effectiveDateTime"]
    october = new(client, period)
    cases = {
        "2026-11-01": {morning},
        "2026-11-03": {late},  # 23:30 at -02:00 is the next day in UTC
        "2026-11-02": set(),
        "2026-10": {october},
        "2026": {morning, late, october},
        "2026-11-01T09:00:00Z": {morning},
        "ge2026-11-01T09:00:00Z": {morning, late},
        "gt2026-11-01T09:00:00Z": {late},
        "lt2026-11-01": {october},
        "eb2026-11-01T09:00:00Z": {october},
        "sa2026-11-01T09:00:00Z": {late},
        "le2026-11-01T09:00:00Z": {morning, october},
    }
    for value, expected in cases.items():
        assert found(client, "/Observation", {"patient": pid, "date": value}) == expected, value


def test_each_date_parameter_answers_from_its_own_element(client: httpx.Client, pid: str) -> None:
    g = new(
        client, goal(patient_id=pid, startDate="2026-01-01", target=[{"dueDate": "2027-06-01"}])
    )
    assert found(client, "/Goal", {"patient": pid, "start-date": "2026"}) == {g}
    assert found(client, "/Goal", {"patient": pid, "target-date": "2027-06"}) == {g}
    assert found(client, "/Goal", {"patient": pid, "start-date": "2027"}) == set()
    assert found(client, "/Goal", {"patient": pid, "target-date": "2026"}) == set()


def test_last_updated_is_exact_to_the_microsecond(
    client: httpx.Client, pid: str, runtime: Runtime
) -> None:
    gid = new(client, goal(patient_id=pid))
    with runtime.db.read() as conn:
        micros = conn.scalars(
            select(ResourceRow.last_updated).where(ResourceRow.resource_id == gid)
        ).one()

    def instant(offset: int) -> str:
        moment = datetime.fromtimestamp(0, UTC) + timedelta(microseconds=micros + offset)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    cases = {
        f"eq{instant(0)}": True,
        f"eq{instant(1)}": False,
        f"gt{instant(-1)}": True,
        f"gt{instant(0)}": False,
        f"ge{instant(0)}": True,
        f"lt{instant(1)}": True,
        f"lt{instant(0)}": False,
        f"le{instant(0)}": True,
        f"sa{instant(-1)}": True,
        f"eb{instant(1)}": True,
        f"eb{instant(0)}": False,
    }
    for value, expected in cases.items():
        result = found(client, "/Goal", {"_id": gid, "_lastUpdated": value})
        assert result == ({gid} if expected else set()), value


def test_dates_at_the_edges_of_fhir_are_stored_and_found(client: httpx.Client, pid: str) -> None:
    far = new(client, goal(patient_id=pid, startDate="9999-12-31"))
    leap = new(client, observation(patient_id=pid, when="2016-12-31T23:59:60Z"))
    precise = new(client, observation(patient_id=pid, when="2026-11-01T10:00:00.1234567891Z"))
    assert found(client, "/Goal", {"patient": pid, "start-date": "9999"}) == {far}
    assert found(client, "/Goal", {"patient": pid, "start-date": "sa9999-12-30"}) == {far}
    assert found(client, "/Observation", {"patient": pid, "date": "2016-12-31"}) == {leap}
    assert found(client, "/Observation", {"patient": pid, "date": "2026-11-01T10:00:00Z"}) == {
        precise
    }


# -- result parameters -------------------------------------------------------------------------


def test_count_limits_the_page_not_the_total(client: httpx.Client, pid: str) -> None:
    made = [new(client, goal(patient_id=pid)) for _ in range(3)]
    bundle = search(client, "/Goal", {"patient": pid, "_count": "2"})
    assert ids(bundle) == made[:2]
    assert bundle["total"] == 3
    assert link(bundle, "next") is not None
    assert "_count=2" in str(link(bundle, "self"))
    empty = search(client, "/Goal", {"patient": pid, "_count": "0"})
    assert "entry" not in empty
    assert empty["total"] == 3


@pytest.mark.parametrize(
    ("sort", "reverse"), [(None, False), ("_lastUpdated", False), ("-_lastUpdated", True)]
)
def test_sort_by_last_updated(
    client: httpx.Client, pid: str, sort: str | None, reverse: bool
) -> None:
    made = [new(client, goal(patient_id=pid)) for _ in range(4)]
    # An update moves a resource to the end of the _lastUpdated order.
    first = client.get(f"/Goal/{made[0]}").json()
    assert client.put(f"/Goal/{made[0]}", json=first, headers=FHIR_JSON).status_code == 200
    by_update = [*made[1:], made[0]]
    params = {"patient": pid, **({"_sort": sort} if sort else {})}
    expected = made if sort is None else (by_update[::-1] if reverse else by_update)
    assert ids(search(client, "/Goal", params)) == expected


def test_sort_by_date(client: httpx.Client, pid: str) -> None:
    starts = ["2026-05-01", "2024-01-01", "2026-01-01", "2025-06-15"]
    made = {new(client, careplan(patient_id=pid, start=s, end=s)): s for s in starts}
    no_period = careplan(patient_id=pid)
    del no_period["period"]
    undated = new(client, no_period)
    ascending = sorted(made, key=made.__getitem__)
    assert ids(search(client, "/CarePlan", {"patient": pid, "_sort": "date"})) == [
        *ascending,
        undated,
    ]
    assert ids(search(client, "/CarePlan", {"patient": pid, "_sort": "-date"})) == [
        *ascending[::-1],
        undated,
    ]


def test_sort_by_date_descending_uses_the_end_of_the_period(client: httpx.Client, pid: str) -> None:
    long = new(client, careplan(patient_id=pid, start="2020-01-01", end="2030-01-01"))
    short = new(client, careplan(patient_id=pid, start="2026-01-01", end="2026-02-01"))
    assert ids(search(client, "/CarePlan", {"patient": pid, "_sort": "date"})) == [long, short]
    assert ids(search(client, "/CarePlan", {"patient": pid, "_sort": "-date"})) == [long, short]


def test_summary_count_gives_the_total_without_entries(client: httpx.Client, pid: str) -> None:
    for _ in range(3):
        new(client, goal(patient_id=pid))
    bundle = search(client, "/Goal", {"patient": pid, "_summary": "count"})
    assert bundle["total"] == 3
    assert "entry" not in bundle
    assert link(bundle, "next") is None
    assert search(client, "/Goal", {"patient": new_id(), "_summary": "count"})["total"] == 0


def test_total_none_leaves_the_total_out(client: httpx.Client, pid: str) -> None:
    made = [new(client, goal(patient_id=pid)) for _ in range(2)]
    bundle = search(client, "/Goal", {"patient": pid, "_total": "none"})
    assert "total" not in bundle
    assert ids(bundle) == made
    assert search(client, "/Goal", {"patient": pid, "_total": "accurate"})["total"] == 2


# -- includes ------------------------------------------------------------------------------


def test_include_careplan_goal(client: httpx.Client, pid: str) -> None:
    goals = [new(client, goal(patient_id=pid)) for _ in range(2)]
    unrelated = new(client, goal(patient_id=pid))
    plan = new(client, careplan(patient_id=pid, goals=goals))
    bundle = search(client, "/CarePlan", {"_id": plan, "_include": "CarePlan:goal"})
    assert ids(bundle) == [plan]
    assert set(ids(bundle, "include")) == set(goals)
    assert unrelated not in ids(bundle, "include")
    assert bundle["total"] == 1
    typed = search(client, "/CarePlan", {"_id": plan, "_include": "CarePlan:goal:Goal"})
    assert set(ids(typed, "include")) == set(goals)
    assert ids(search(client, "/CarePlan", {"_id": plan}), "include") == []


def test_include_careplan_care_team(client: httpx.Client, pid: str) -> None:
    team = new(client, careteam(patient_id=pid))
    plan = new(client, careplan(patient_id=pid, careteams=[team]))
    for name in ("CarePlan:care-team", "CarePlan:careteam"):
        bundle = search(client, "/CarePlan", {"_id": plan, "_include": name})
        assert ids(bundle) == [plan]
        assert ids(bundle, "include") == [team]


def test_include_careteam_participant(client: httpx.Client, pid: str) -> None:
    org = new(client, organization())
    doc = new(client, practitioner())
    neighbour = new(client, related_person(patient_id=pid))
    team = new(
        client,
        careteam(
            patient_id=pid,
            members=[f"Organization/{org}", f"Practitioner/{doc}", f"RelatedPerson/{neighbour}"],
        ),
    )
    bundle = search(client, "/CareTeam", {"_id": team, "_include": "CareTeam:participant"})
    assert set(ids(bundle, "include")) == {org, doc, neighbour}
    only = search(
        client, "/CareTeam", {"_id": team, "_include": "CareTeam:participant:Practitioner"}
    )
    assert ids(only, "include") == [doc]


def test_includes_appear_once_and_not_twice_as_match(client: httpx.Client, pid: str) -> None:
    shared = new(client, goal(patient_id=pid))
    plans = {new(client, careplan(patient_id=pid, goals=[shared])) for _ in range(2)}
    bundle = search(client, "/CarePlan", {"patient": pid, "_include": "CarePlan:goal"})
    assert set(ids(bundle)) == plans
    assert ids(bundle, "include") == [shared]
    entries = [e["fullUrl"] for e in bundle["entry"]]
    assert len(entries) == len(set(entries))


def test_deleted_targets_are_not_included(client: httpx.Client, pid: str) -> None:
    kept, gone = new(client, goal(patient_id=pid)), new(client, goal(patient_id=pid))
    plan = new(client, careplan(patient_id=pid, goals=[kept, gone]))
    assert client.delete(f"/Goal/{gone}").status_code == 204
    bundle = search(client, "/CarePlan", {"_id": plan, "_include": "CarePlan:goal"})
    assert ids(bundle, "include") == [kept]


def test_revinclude_provenance_target(client: httpx.Client, pid: str) -> None:
    g = new(client, goal(patient_id=pid))
    other = new(client, goal(patient_id=pid))
    prov = new(client, provenance(targets=[f"Goal/{g}"]))
    new(client, provenance(targets=[f"Goal/{other}"]))
    bundle = search(client, "/Goal", {"_id": g, "_revinclude": "Provenance:target"})
    assert ids(bundle) == [g]
    assert ids(bundle, "include") == [prov]


def test_revinclude_follows_references_to_the_searched_type_only(
    client: httpx.Client, pid: str
) -> None:
    shared_id = new_id("same")
    g = goal(patient_id=pid, id=shared_id)
    assert client.put(f"/Goal/{shared_id}", json=g, headers=FHIR_JSON).status_code == 201
    plan = careplan(patient_id=pid, id=shared_id)
    assert client.put(f"/CarePlan/{shared_id}", json=plan, headers=FHIR_JSON).status_code == 201
    about_plan = new(client, provenance(targets=[f"CarePlan/{shared_id}"]))
    about_goal = new(client, provenance(targets=[f"Goal/{shared_id}"]))
    params = {"_id": shared_id, "_revinclude": "Provenance:target"}
    assert ids(search(client, "/Goal", params), "include") == [about_goal]
    assert ids(search(client, "/CarePlan", params), "include") == [about_plan]


def test_include_provenance_patient_brings_only_patients(client: httpx.Client, pid: str) -> None:
    g = new(client, goal(patient_id=pid))
    prov = new(client, provenance(targets=[f"Goal/{g}", f"Patient/{pid}"]))
    bundle = search(client, "/Provenance", {"_id": prov, "_include": "Provenance:patient"})
    assert ids(bundle, "include") == [pid]
    targets = search(client, "/Provenance", {"_id": prov, "_include": "Provenance:target"})
    assert set(ids(targets, "include")) == {g, pid}


# -- POST _search and unknown parameters ------------------------------------------------------


def test_post_search_gives_the_same_result_as_get(client: httpx.Client, pid: str) -> None:
    code = new_id("c")
    goals = [new(client, goal(patient_id=pid, domain=code)) for _ in range(3)]
    plan = new(client, careplan(patient_id=pid, goals=goals[:1]))
    for type_name, params in [
        (
            "Goal",
            [("patient", pid), ("category", code), ("_count", "2"), ("_sort", "-_lastUpdated")],
        ),
        ("CarePlan", [("patient", pid), ("_include", "CarePlan:goal")]),
    ]:
        by_get = search(client, f"/{type_name}", params)
        response = client.post(f"/{type_name}/_search", data=dict(params))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/fhir+json")
        assert response.json() == by_get
    assert ids(by_get) == [plan]


def test_post_search_joins_url_and_body_parameters(client: httpx.Client, pid: str) -> None:
    code = new_id("c")
    wanted = new(client, goal(patient_id=pid, domain=code))
    new(client, goal(patient_id=pid))
    new(client, goal(patient_id=new_patient(client), domain=code))
    response = client.post("/Goal/_search", params={"patient": pid}, data={"category": code})
    assert response.status_code == 200
    assert ids(response.json()) == [wanted]


def test_post_search_needs_a_form(client: httpx.Client, pid: str) -> None:
    response = client.post("/Goal/_search", json={"patient": pid})
    assert response.status_code == 415
    assert response.json()["resourceType"] == "OperationOutcome"


def test_unknown_parameter_is_refused(client: httpx.Client, pid: str) -> None:
    for response in (
        client.get("/Goal", params={"patient": pid, "colour": "blue"}),
        client.post("/Goal/_search", data={"patient": pid, "colour": "blue"}),
    ):
        assert response.status_code == 400
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["expression"] == ["colour"]


def test_lenient_handling_ignores_unknown_parameters_and_says_so(
    client: httpx.Client, pid: str
) -> None:
    made = new(client, goal(patient_id=pid))
    response = client.get(
        "/Goal",
        params={"patient": pid, "colour": "blue"},
        headers={"prefer": "handling=lenient"},
    )
    assert response.status_code == 200
    bundle = response.json()
    assert ids(bundle) == [made]
    self_link = str(link(bundle, "self"))
    assert "colour" not in self_link
    assert f"patient={pid}" in self_link
    outcomes = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcomes) == 1
    issue = outcomes[0]["resource"]["issue"][0]
    assert outcomes[0]["resource"]["resourceType"] == "OperationOutcome"
    assert issue["severity"] == "warning"
    assert "colour" in issue["diagnostics"]
    assert bundle["total"] == 1
    # Strict handling is the default, also when asked for explicitly.
    strict = client.get(
        "/Goal", params={"patient": pid, "colour": "blue"}, headers={"prefer": "handling=strict"}
    )
    assert strict.status_code == 400


def test_lenient_handling_still_refuses_bad_values(client: httpx.Client, pid: str) -> None:
    response = client.get(
        "/CarePlan",
        params={"patient": pid, "date": "gisteren"},
        headers={"prefer": "handling=lenient"},
    )
    assert response.status_code == 400


def test_a_resource_reached_by_two_includes_appears_once(client: httpx.Client, pid: str) -> None:
    team = new(client, careteam(patient_id=pid))
    plan = new(client, careplan(patient_id=pid, careteams=[team]))
    params = [("_id", plan), ("_include", "CarePlan:care-team"), ("_include", "CarePlan:careteam")]
    assert ids(search(client, "/CarePlan", params), "include") == [team]


def test_a_match_is_not_repeated_as_an_include(client: httpx.Client, pid: str) -> None:
    g = new(client, goal(patient_id=pid))
    first = new(client, provenance(targets=[f"Goal/{g}"]))
    second = new(client, provenance(targets=[f"Provenance/{first}"]))
    params = {"_id": f"{first},{second}", "_include": "Provenance:target"}
    bundle = search(client, "/Provenance", params)
    assert set(ids(bundle)) == {first, second}
    assert ids(bundle, "include") == [g]


def test_id_with_a_modifier_is_refused_not_read_as_plain_id(client: httpx.Client, pid: str) -> None:
    gid = new(client, goal(patient_id=pid))
    response = client.get("/Goal", params={"patient": pid, "_id:not": gid})
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["_id"]


def test_boolean_tokens(client: httpx.Client) -> None:
    value = new_id("kvk")
    org = new(
        client,
        organization(active=False, identifier=[{"system": "urn:kvk", "value": value}]),
    )
    assert found(client, "/Organization", {"identifier": value, "active": "false"}) == {org}
    assert found(client, "/Organization", {"identifier": value, "active": "true"}) == set()
