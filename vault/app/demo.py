"""A fictional family to show and try the vault with: ``vault demo`` loads it.

The family follows the "1 gezin 1 plan 1 regisseur" way of working of Dutch municipalities
(design.md, sections 1 and 7). Sanne and Erik, and their children Mila (8), Daan (13) and
Lotte (17), each own a Patient compartment with what they want (Goal, in their own words,
per life domain), their plan (CarePlan: what I do myself, what my network does, and the
agreements of the last samenwerkoverleg for the coming month), their network and
professionals (CareTeam, RelatedPerson), their own scores per life domain over time
(Observation) and who may see what (Consent, one per organisation). Four partner
organisations and two professionals are shared by the whole family. The children's Consents
are signed by the age rules of docs/family.md: Mila's by a parent, Daan's by Daan and a
parent, Lotte's by Lotte alone, who also lets her mother see her plan; both parents have
gezag over all three, and each has an account per child to act for them
(``demo_parent_logins``).

The family also has one family plan (docs/family.md section 6): a Group of the five, a
family compartment with the family CarePlan, three shared goals, the agreements of the
samenwerkoverleg and a CareTeam whose regisseur (Anouk, of the sociaal team) the family
chose. Sanne, Erik and Daan (with his mother's signature, by his age) let the sociaal team
see the family plan; Lotte grants nothing of it, so no partner sees her own goal through the
family plan.

Everything is made up: names, the town Voorbeeldstad, the organisations, the identifier
systems for AGB and KvK codes, and BSNs from the 99999xxxx test range (they pass the
11-proef, so they get through validation, but belong to no one).

Over 500 lines: it is the demo's data, one function per person of the demo family.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection

from vault.consent.access import AccessContext
from vault.consent.representation import PARENT, set_role, stage
from vault.fhir.codesystems import LEVENSDOMEIN, LEVENSDOMEINEN
from vault.fhir.repository import Repository
from vault.kernel.errors import Gone, NotFound
from vault.kernel.runtime import now_micros

if TYPE_CHECKING:
    from vault.kernel.runtime import Runtime

__all__ = [
    "DEMO_FAMILY_ID",
    "DEMO_PATIENT_IDS",
    "demo_parent_logins",
    "demo_resources",
    "load_demo",
]

Resource = dict[str, Any]

BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"
DEMO_AGB = "https://regiekluis.nl/fhir/NamingSystem/demo-agb"
DEMO_KVK = "https://regiekluis.nl/fhir/NamingSystem/demo-kvk"
ORGANIZATION_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
GOAL_PRIORITY = "http://terminology.hl7.org/CodeSystem/goal-priority"
GOAL_ACHIEVEMENT = "http://terminology.hl7.org/CodeSystem/goal-achievement"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
RESOURCE_TYPE_SYSTEM = "http://hl7.org/fhir/resource-types"
LOINC = "http://loinc.org"

DOMAINS = LEVENSDOMEINEN
PRIORITIES = {
    "high-priority": "High Priority",
    "medium-priority": "Medium Priority",
    "low-priority": "Low Priority",
}

# Fixed dates, never today's: a second run of load_demo must find nothing to change.
PLAN_START = "2026-09-01"
PLAN_END = "2027-08-31"
SCORE_DATES = ("2026-09-01", "2026-10-06", "2026-11-10")
LAST_MEETING = "2026-11-10"
NEXT_MEETING = "2026-12-08"
CONSENTED_AT = "2026-09-01T10:00:00+02:00"

SOCIAAL_TEAM = "Organization/demo-org-sociaal-team"
GGZ = "Organization/demo-org-ggz"
MEE = "Organization/demo-org-mee"
WONINGCORPORATIE = "Organization/demo-org-woningcorporatie"
REGISSEUR = "Practitioner/demo-regisseur-anouk"
BEHANDELAAR = "Practitioner/demo-behandelaar-joost"
SELF = "ik"


@dataclass(frozen=True, slots=True)
class Partner:
    reference: str
    name: str
    type_code: str
    type_display: str
    type_text: str
    identifier: tuple[str, str]


@dataclass(frozen=True, slots=True)
class Professional:
    reference: str
    given: str
    family: str
    gender: str
    qualification: str
    organization: str
    role: str
    agb: str


@dataclass(frozen=True, slots=True)
class Contact:
    """Someone of the inwoner's network, as a RelatedPerson of that inwoner."""

    key: str
    given: str
    family: str
    gender: str
    role_code: str
    role_display: str
    label: str


@dataclass(frozen=True, slots=True)
class Wish:
    """A Goal: what the inwoner wants, in their own words."""

    key: str
    domain: str
    text: str
    priority: str


@dataclass(frozen=True, slots=True)
class Activity:
    """One line of the plan; ``by`` is SELF, a Contact key, or a reference."""

    text: str
    by: str
    wish: str | None
    status: str


@dataclass(frozen=True, slots=True)
class Inwoner:
    key: str
    given: str
    family: str
    gender: str
    birth_date: str
    bsn: str
    network: tuple[Contact, ...]
    professionals: tuple[tuple[str, str], ...]
    wishes: tuple[Wish, ...]
    scores: tuple[tuple[str, tuple[int, ...]], ...]
    activities: tuple[Activity, ...]
    grants: tuple[tuple[str, tuple[str, ...]], ...]
    note: str
    # A child's parents with gezag (network keys): who signs the child's Consents by age
    # (consent/representation.py, docs/family.md).
    parents: tuple[str, ...] = ()
    # Grants to someone of the network: (network key, resource types).
    network_grants: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def patient(self) -> str:
        return f"Patient/demo-inwoner-{self.key}"


ORGANIZATIONS = (
    Partner(
        SOCIAAL_TEAM,
        "Sociaal Team Voorbeeldstad",
        "govt",
        "Government",
        "Sociaal team van de gemeente",
        (DEMO_KVK, "99990011"),
    ),
    Partner(
        GGZ,
        "GGZ Voorbeeldstad",
        "prov",
        "Healthcare Provider",
        "GGZ-aanbieder",
        (DEMO_AGB, "99990022"),
    ),
    Partner(
        MEE,
        "MEE Voorbeeldregio",
        "prov",
        "Healthcare Provider",
        "Cliëntondersteuning voor mensen met een beperking",
        (DEMO_AGB, "99990033"),
    ),
    Partner(
        WONINGCORPORATIE,
        "Woonstichting Voorbeeldstad",
        "bus",
        "Non-Healthcare Business or Corporation",
        "Woningcorporatie",
        (DEMO_KVK, "99990044"),
    ),
)

PRACTITIONERS = (
    Professional(
        REGISSEUR,
        "Anouk",
        "Smit",
        "female",
        "Maatschappelijk werker",
        SOCIAAL_TEAM,
        "regisseur",
        "99991001",
    ),
    Professional(
        BEHANDELAAR, "Joost", "Hendriks", "male", "GZ-psycholoog", GGZ, "behandelaar", "99991002"
    ),
)

SANNE = Inwoner(
    key="sanne",
    given="Sanne",
    family="Bakker",
    gender="female",
    birth_date="1984-05-12",
    bsn="999990019",
    network=(
        Contact("erik", "Erik", "Visser", "male", "DOMPART", "domestic partner", "partner"),
        Contact("ria", "Ria", "Bakker", "female", "MTH", "mother", "moeder, mantelzorger"),
        Contact("mirjam", "Mirjam", "de Groot", "female", "FRND", "unrelated friend", "vriendin"),
    ),
    professionals=((REGISSEUR, "regisseur"), (WONINGCORPORATIE, "huur en woning")),
    wishes=(
        Wish("schulden", "financien", "Ik wil mijn schulden op een rij hebben.", "high-priority"),
        Wish("huis", "wonen", "Ik wil in ons huis kunnen blijven wonen.", "high-priority"),
        Wish("daan", "opvoeding", "Ik wil minder ruzie met Daan over school.", "medium-priority"),
        Wish("rust", "gezondheid", "Ik wil beter slapen en wat meer rust.", "low-priority"),
    ),
    scores=(
        ("financien", (3, 4, 5)),
        ("wonen", (4, 4, 6)),
        ("opvoeding", (5, 5, 6)),
        ("gezondheid", (5, 4, 4)),
    ),
    activities=(
        Activity(
            "Ik doe alle post in één map en open die elke vrijdag.", SELF, "schulden", "in-progress"
        ),
        Activity(
            "Mirjam helpt mij elke vrijdag met de post en de rekeningen.",
            "mirjam",
            "schulden",
            "in-progress",
        ),
        Activity("Ik betaal de huur elke maand op de eerste dag.", SELF, "huis", "in-progress"),
        Activity(
            "Mijn moeder haalt Daan op dinsdag uit school. Dan kan ik even rusten.",
            "ria",
            "rust",
            "in-progress",
        ),
        Activity(
            "Anouk meldt mij aan bij schuldhulp en gaat mee naar het eerste gesprek.",
            REGISSEUR,
            "schulden",
            "scheduled",
        ),
        Activity(
            "De woningcorporatie maakt met mij een regeling voor de huurachterstand.",
            WONINGCORPORATIE,
            "huis",
            "in-progress",
        ),
        Activity(
            "Erik en ik praten elke zondag over de week van Daan.", "erik", "daan", "not-started"
        ),
    ),
    grants=(
        (SOCIAAL_TEAM, ("Patient", "CarePlan", "Goal", "CareTeam", "RelatedPerson", "Observation")),
        (WONINGCORPORATIE, ("CarePlan",)),
    ),
    note="Ik wil eerst rust in mijn hoofd over geld. Daarna kijk ik verder.",
)

ERIK = Inwoner(
    key="erik",
    given="Erik",
    family="Visser",
    gender="male",
    birth_date="1981-02-03",
    bsn="999990020",
    network=(
        Contact("sanne", "Sanne", "Bakker", "female", "DOMPART", "domestic partner", "partner"),
        Contact("kevin", "Kevin", "Visser", "male", "BRO", "brother", "broer"),
    ),
    professionals=((REGISSEUR, "regisseur"), (BEHANDELAAR, "behandelaar"), (GGZ, "GGZ")),
    wishes=(
        Wish("werk", "dagbesteding", "Ik wil weer werk, het liefst buiten.", "high-priority"),
        Wish("somber", "gezondheid", "Ik wil me minder somber voelen.", "high-priority"),
        Wish("daan", "relaties", "Ik wil dat Daan mij vertrouwt.", "medium-priority"),
    ),
    scores=(
        ("dagbesteding", (3, 3, 4)),
        ("gezondheid", (3, 4, 5)),
        ("relaties", (6, 6, 6)),
    ),
    activities=(
        Activity("Ik ga elke ochtend een half uur wandelen.", SELF, "somber", "in-progress"),
        Activity("Kevin gaat op zaterdag met mij hardlopen.", "kevin", "somber", "in-progress"),
        Activity(
            "Ik ga één keer per week met Daan naar voetbal kijken.", SELF, "daan", "in-progress"
        ),
        Activity(
            "Joost heeft elke twee weken een gesprek met mij.", BEHANDELAAR, "somber", "in-progress"
        ),
        Activity(
            "Anouk zoekt met mij vrijwilligerswerk bij een groenbedrijf.",
            REGISSEUR,
            "werk",
            "scheduled",
        ),
    ),
    grants=(
        (SOCIAAL_TEAM, ("Patient", "CarePlan", "Goal", "CareTeam", "RelatedPerson", "Observation")),
        (GGZ, ("CarePlan", "Goal", "Observation")),
    ),
    note="Als het slecht gaat, bel ik eerst Kevin. Hij weet wat hij dan moet doen.",
)

DAAN = Inwoner(
    key="daan",
    given="Daan",
    family="Bakker",
    gender="male",
    birth_date="2013-03-21",
    bsn="999990032",
    network=(
        Contact("sanne", "Sanne", "Bakker", "female", "MTH", "mother", "moeder, heeft het gezag"),
        Contact("erik", "Erik", "Visser", "male", "FTH", "father", "vader, heeft het gezag"),
        Contact("ria", "Ria", "Bakker", "female", "GRMTH", "grandmother", "oma, mantelzorger"),
        Contact("henk", "Henk", "Mulder", "male", "NBOR", "neighbor", "buurman"),
    ),
    professionals=((REGISSEUR, "regisseur"), (MEE, "begeleiding school en vrije tijd")),
    wishes=(
        Wish("school", "dagbesteding", "Ik wil weer elke dag naar school.", "high-priority"),
        Wish("vrienden", "relaties", "Ik wil vrienden in mijn klas.", "medium-priority"),
        Wish("voetbal", "gezondheid", "Ik wil weer op voetbal.", "low-priority"),
    ),
    scores=(
        ("dagbesteding", (4, 5, 6)),
        ("relaties", (4, 4, 5)),
        ("gezondheid", (6, 6, 7)),
    ),
    activities=(
        Activity(
            "Ik zet elke avond mijn wekker en maak mijn tas klaar.", SELF, "school", "in-progress"
        ),
        Activity(
            "Oma helpt mij op maandag en donderdag met huiswerk.", "ria", "school", "in-progress"
        ),
        Activity(
            "Henk neemt mij op woensdag mee naar de training.", "henk", "voetbal", "scheduled"
        ),
        Activity(
            "MEE praat met mijn mentor over een rustige plek op school.", MEE, "school", "scheduled"
        ),
        Activity(
            "MEE zoekt met mij een training om makkelijker vrienden te maken.",
            MEE,
            "vrienden",
            "not-started",
        ),
    ),
    grants=(
        (SOCIAAL_TEAM, ("Patient", "CarePlan", "Goal", "CareTeam", "RelatedPerson", "Observation")),
        (MEE, ("CarePlan", "Goal", "CareTeam")),
    ),
    note="Ik wil zelf bij het overleg zijn. Mama mag mij helpen met praten.",
    parents=("sanne", "erik"),
)

LOTTE = Inwoner(
    key="lotte",
    given="Lotte",
    family="Bakker",
    gender="female",
    birth_date="2009-08-30",
    bsn="999990044",
    network=(
        Contact("sanne", "Sanne", "Bakker", "female", "MTH", "mother", "moeder, heeft het gezag"),
        Contact("erik", "Erik", "Visser", "male", "FTH", "father", "vader, heeft het gezag"),
        Contact("ria", "Ria", "Bakker", "female", "GRMTH", "grandmother", "oma"),
        Contact("fleur", "Fleur", "Jansen", "female", "FRND", "unrelated friend", "vriendin"),
    ),
    professionals=((REGISSEUR, "regisseur"), (GGZ, "jeugd-GGZ")),
    wishes=(
        Wish("diploma", "dagbesteding", "Ik wil mijn diploma halen.", "high-priority"),
        Wish("kamer", "wonen", "Ik wil later op kamers in de stad.", "medium-priority"),
        Wish(
            "slapen", "gezondheid", "Ik wil minder piekeren voor ik ga slapen.", "medium-priority"
        ),
    ),
    scores=(
        ("dagbesteding", (5, 6, 6)),
        ("wonen", (6, 6, 6)),
        ("gezondheid", (4, 5, 5)),
    ),
    activities=(
        Activity("Ik maak elke zondag een planning voor de week.", SELF, "diploma", "in-progress"),
        Activity("Fleur leert met mij voor de toetsen.", "fleur", "diploma", "in-progress"),
        Activity(
            "De jeugd-GGZ leert mij een manier om minder te piekeren.", GGZ, "slapen", "scheduled"
        ),
    ),
    grants=((GGZ, ("CarePlan", "Goal", "Observation")),),
    note="Ik beslis zelf wie mijn plan ziet. Mama mag mijn plan zien, mijn cijfers niet.",
    parents=("sanne", "erik"),
    network_grants=(("sanne", ("CarePlan", "Goal")),),
)

MILA = Inwoner(
    key="mila",
    given="Mila",
    family="Visser",
    gender="female",
    birth_date="2018-04-15",
    bsn="999990056",
    network=(
        Contact("sanne", "Sanne", "Bakker", "female", "MTH", "mother", "moeder, heeft het gezag"),
        Contact("erik", "Erik", "Visser", "male", "FTH", "father", "vader, heeft het gezag"),
        Contact("ria", "Ria", "Bakker", "female", "GRMTH", "grandmother", "oma, mantelzorger"),
    ),
    professionals=((REGISSEUR, "regisseur"), (MEE, "begeleiding op school")),
    wishes=(
        Wish("zwemmen", "gezondheid", "Ik wil leren zwemmen.", "high-priority"),
        Wish("spelen", "relaties", "Ik wil een vriendje om mee te spelen.", "medium-priority"),
    ),
    scores=(
        ("gezondheid", (3, 4, 5)),
        ("relaties", (5, 5, 6)),
    ),
    activities=(
        Activity(
            "Ik zeg het tegen juf als het te druk is in de klas.", SELF, "spelen", "in-progress"
        ),
        Activity("Oma brengt mij op zaterdag naar zwemles.", "ria", "zwemmen", "in-progress"),
        Activity(
            "MEE zoekt met juf een plek in de klas waar ik rustig kan werken.",
            MEE,
            "spelen",
            "scheduled",
        ),
    ),
    grants=((SOCIAAL_TEAM, ("CarePlan", "Goal")),),
    note="Papa en mama beslissen nu voor mij. Ik mag wel zeggen wat ik wil.",
    parents=("sanne", "erik"),
)

INWONERS = (SANNE, ERIK, DAAN, LOTTE, MILA)
CHILDREN = tuple(i for i in INWONERS if i.parents)
DEMO_PATIENT_IDS: tuple[str, ...] = tuple(i.patient.split("/", 1)[1] for i in INWONERS)


# -- small FHIR datatypes ------------------------------------------------------------------


def _id(reference: str) -> str:
    return reference.split("/", 1)[1]


def _ref(reference: str) -> dict[str, str]:
    return {"reference": reference}


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    coding = {"system": system, "code": code}
    if display is not None:
        coding["display"] = display
    return coding


def _concept(
    system: str, code: str, display: str | None = None, *, text: str | None = None
) -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [_coding(system, code, display)]}
    if text is not None:
        concept["text"] = text
    return concept


def _name(given: str, family: str) -> list[dict[str, Any]]:
    return [{"use": "official", "text": f"{given} {family}", "family": family, "given": [given]}]


def _domain(code: str) -> dict[str, Any]:
    return _concept(LEVENSDOMEIN, code, DOMAINS[code])


# -- shared resources ----------------------------------------------------------------------


def _organization(org: Partner) -> Resource:
    system, value = org.identifier
    return {
        "resourceType": "Organization",
        "id": _id(org.reference),
        "identifier": [{"system": system, "value": value}],
        "active": True,
        "type": [_concept(ORGANIZATION_TYPE, org.type_code, org.type_display, text=org.type_text)],
        "name": org.name,
        "address": [{"use": "work", "city": "Voorbeeldstad", "country": "NL"}],
    }


def _practitioner(person: Professional) -> Resource:
    return {
        "resourceType": "Practitioner",
        "id": _id(person.reference),
        "identifier": [{"system": DEMO_AGB, "value": person.agb}],
        "active": True,
        "name": _name(person.given, person.family),
        "gender": person.gender,
        "qualification": [
            {"code": {"text": person.qualification}, "issuer": _ref(person.organization)}
        ],
    }


# -- one inwoner's compartment -------------------------------------------------------------


def _related_id(inwoner: Inwoner, key: str) -> str:
    if key not in {c.key for c in inwoner.network}:
        raise KeyError(f"{key!r} is not in the network of {inwoner.key}")
    return f"RelatedPerson/demo-netwerk-{inwoner.key}-{key}"


def _goal_ref(inwoner: Inwoner, key: str) -> str:
    return f"Goal/demo-doel-{inwoner.key}-{key}"


def _score_ref(inwoner: Inwoner, domain: str, when: str) -> str:
    return f"Observation/demo-score-{inwoner.key}-{domain}-{when}"


def _team_ref(inwoner: Inwoner) -> str:
    return f"CareTeam/demo-team-{inwoner.key}"


def _performer(inwoner: Inwoner, by: str) -> str:
    if by == SELF:
        return inwoner.patient
    if "/" in by:
        return by
    return _related_id(inwoner, by)


def _patient(inwoner: Inwoner) -> Resource:
    return {
        "resourceType": "Patient",
        "id": _id(inwoner.patient),
        "identifier": [{"use": "official", "system": BSN_SYSTEM, "value": inwoner.bsn}],
        "active": True,
        "name": _name(inwoner.given, inwoner.family),
        "gender": inwoner.gender,
        "birthDate": inwoner.birth_date,
        "address": [
            {
                "use": "home",
                "line": ["Voorbeeldstraat 12"],
                "city": "Voorbeeldstad",
                "country": "NL",
            }
        ],
        "communication": [
            {"language": _concept("urn:ietf:bcp:47", "nl", "Nederlands"), "preferred": True}
        ],
    }


def _related_person(inwoner: Inwoner, contact: Contact) -> Resource:
    return {
        "resourceType": "RelatedPerson",
        "id": _id(_related_id(inwoner, contact.key)),
        "active": True,
        "patient": _ref(inwoner.patient),
        "relationship": [
            _concept(ROLE_CODE, contact.role_code, contact.role_display, text=contact.label)
        ],
        "name": _name(contact.given, contact.family),
        "gender": contact.gender,
    }


def _team_member(reference: str, role: str) -> dict[str, Any]:
    member: dict[str, Any] = {"role": [{"text": role}], "member": _ref(reference)}
    employer = next((p.organization for p in PRACTITIONERS if p.reference == reference), None)
    if employer is not None:
        member["onBehalfOf"] = _ref(employer)
    return member


def _care_team(inwoner: Inwoner) -> Resource:
    network = [_team_member(_related_id(inwoner, c.key), c.label) for c in inwoner.network]
    professionals = [_team_member(ref, role) for ref, role in inwoner.professionals]
    return {
        "resourceType": "CareTeam",
        "id": _id(_team_ref(inwoner)),
        "status": "active",
        "name": f"Netwerk van {inwoner.given}",
        "subject": _ref(inwoner.patient),
        "period": {"start": PLAN_START},
        "participant": network + professionals,
        "managingOrganization": [_ref(SOCIAAL_TEAM)],
    }


def _observations(inwoner: Inwoner) -> Iterator[Resource]:
    for domain, values in inwoner.scores:
        for when, value in zip(SCORE_DATES, values, strict=True):
            yield {
                "resourceType": "Observation",
                "id": _id(_score_ref(inwoner, domain, when)),
                "status": "final",
                "category": [_concept(OBSERVATION_CATEGORY, "survey", "Survey")],
                "code": {
                    "coding": [_coding(LEVENSDOMEIN, domain, DOMAINS[domain])],
                    "text": f"Mijn cijfer voor {DOMAINS[domain].lower()} (1 tot 10)",
                },
                "subject": _ref(inwoner.patient),
                "effectiveDateTime": when,
                "performer": [_ref(inwoner.patient)],
                "valueInteger": value,
            }


def _achievement(values: tuple[int, ...]) -> dict[str, Any]:
    if values[-1] > values[0]:
        return _concept(GOAL_ACHIEVEMENT, "improving", "Improving")
    if values[-1] < values[0]:
        return _concept(GOAL_ACHIEVEMENT, "worsening", "Worsening")
    return _concept(GOAL_ACHIEVEMENT, "no-change", "No Change")


def _goal(inwoner: Inwoner, wish: Wish) -> Resource:
    values = dict(inwoner.scores)[wish.domain]
    return {
        "resourceType": "Goal",
        "id": _id(_goal_ref(inwoner, wish.key)),
        "lifecycleStatus": "active",
        "achievementStatus": _achievement(values),
        "category": [_domain(wish.domain)],
        "priority": _concept(GOAL_PRIORITY, wish.priority, PRIORITIES[wish.priority]),
        "description": {"text": wish.text},
        "subject": _ref(inwoner.patient),
        "startDate": PLAN_START,
        "target": [{"dueDate": PLAN_END}],
        "expressedBy": _ref(inwoner.patient),
        "outcomeReference": [_ref(_score_ref(inwoner, wish.domain, SCORE_DATES[-1]))],
    }


def _activity(inwoner: Inwoner, activity: Activity) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "status": activity.status,
        "scheduledPeriod": {"start": LAST_MEETING, "end": NEXT_MEETING},
        "performer": [_ref(_performer(inwoner, activity.by))],
        "description": activity.text,
    }
    if activity.wish is not None:
        detail["goal"] = [_ref(_goal_ref(inwoner, activity.wish))]
    return {"detail": detail}


def _care_plan(inwoner: Inwoner) -> Resource:
    return {
        "resourceType": "CarePlan",
        "id": f"demo-plan-{inwoner.key}",
        "status": "active",
        "intent": "plan",
        "category": [{"text": "Gezinsplan (1 gezin 1 plan)"}],
        "title": f"Plan van {inwoner.given}",
        "description": "Wat ik wil, wat ik zelf doe en wat ik nodig heb.",
        "subject": _ref(inwoner.patient),
        "period": {"start": PLAN_START, "end": PLAN_END},
        "created": PLAN_START,
        "author": _ref(inwoner.patient),
        "contributor": [_ref(inwoner.patient), _ref(REGISSEUR)],
        "careTeam": [_ref(_team_ref(inwoner))],
        "goal": [_ref(_goal_ref(inwoner, wish.key)) for wish in inwoner.wishes],
        "activity": [_activity(inwoner, activity) for activity in inwoner.activities],
        "note": [
            {
                "authorReference": _ref(REGISSEUR),
                "time": LAST_MEETING,
                "text": "Afspraken van het samenwerkoverleg van 10 november 2026, bij ons thuis. "
                "Het volgende overleg is op 8 december 2026.",
            },
            {"authorReference": _ref(inwoner.patient), "time": LAST_MEETING, "text": inwoner.note},
        ],
    }


def _signers(inwoner: Inwoner, now: int) -> list[dict[str, str]]:
    """Who signs the inwoner's Consents at ``now``, by the age rules: under 12 a parent, 12
    to 15 the child and a parent, from 16 (and for an adult) the inwoner alone."""
    if not inwoner.parents:
        return [_ref(inwoner.patient)]
    when = stage(date.fromisoformat(inwoner.birth_date), now)
    parent = _ref(_related_id(inwoner, inwoner.parents[0]))
    if when == "parents":
        return [parent]
    if when == "together":
        return [_ref(inwoner.patient), parent]
    return [_ref(inwoner.patient)]


def _consent(inwoner: Inwoner, grantee: str, classes: tuple[str, ...], *, now: int) -> Resource:
    short = _id(grantee).removeprefix("demo-org-").removeprefix(f"demo-netwerk-{inwoner.key}-")
    return {
        "resourceType": "Consent",
        "id": f"demo-toestemming-{inwoner.key}-{short}",
        "status": "active",
        "scope": _concept(CONSENT_SCOPE, "patient-privacy", "Privacy Consent"),
        "category": [_concept(LOINC, "59284-0", text="Toestemming")],
        "patient": _ref(inwoner.patient),
        "dateTime": CONSENTED_AT,
        "performer": _signers(inwoner, now),
        "policyRule": _concept(ACT_CODE, "OPTIN", "opt-in"),
        "provision": {
            "type": "permit",
            "period": {"start": PLAN_START, "end": PLAN_END},
            "actor": [
                {
                    "role": _concept(PARTICIPATION_TYPE, "IRCP", "information recipient"),
                    "reference": _ref(grantee),
                }
            ],
            "action": [_concept(CONSENT_ACTION, "access", "Access")],
            "class": [_coding(RESOURCE_TYPE_SYSTEM, name) for name in classes],
        },
    }


def _compartment(inwoner: Inwoner, now: int) -> Iterator[Resource]:
    for contact in inwoner.network:
        yield _related_person(inwoner, contact)
    yield _care_team(inwoner)
    yield from _observations(inwoner)
    for wish in inwoner.wishes:
        yield _goal(inwoner, wish)
    yield _care_plan(inwoner)
    for grantee, classes in inwoner.grants:
        yield _consent(inwoner, grantee, classes, now=now)
    for key, classes in inwoner.network_grants:
        yield _consent(inwoner, _related_id(inwoner, key), classes, now=now)


# -- the family plan (docs/family.md section 6) ---------------------------------------------

DEMO_FAMILY_ID = "demo-gezin-bakker-visser"
FAMILY = f"Group/{DEMO_FAMILY_ID}"
FAMILY_PLAN = "CarePlan/demo-gezinsplan"
FAMILY_TEAM = "CareTeam/demo-gezinsteam"
# (key, life domain, the family's words, priority)
SHARED_WISHES = (
    ("rust", "relaties", "We willen minder ruzie en meer rust in huis.", "high-priority"),
    ("geld", "financien", "We willen samen grip op ons geld.", "high-priority"),
    ("huis", "wonen", "We willen een huis waar iedereen een eigen plek heeft.", "medium-priority"),
)
# (what was agreed at the samenwerkoverleg, who does it, the shared wish it serves)
AGREEMENTS = (
    ("Anouk belt elke maand met Sanne en Erik over hoe het thuis gaat.", REGISSEUR, "rust"),
    (
        "Sanne en Erik maken samen een weekbudget, met hulp van het sociaal team.",
        SOCIAAL_TEAM,
        "geld",
    ),
    (
        "De woonstichting kijkt of er een huis met vier slaapkamers vrijkomt.",
        WONINGCORPORATIE,
        "huis",
    ),
    ("Op zondag eten we samen en praten we over de week.", "Patient/demo-inwoner-sanne", "rust"),
)
# Who lets whom see the family plan: (member, grantee, data of the family, meaning).
FAMILY_GRANTS = (
    ("sanne", SOCIAAL_TEAM, FAMILY_PLAN, "related"),
    ("erik", SOCIAAL_TEAM, FAMILY_PLAN, "related"),
    ("daan", SOCIAAL_TEAM, FAMILY_PLAN, "related"),
)


def _family_group() -> Resource:
    return {
        "resourceType": "Group",
        "id": DEMO_FAMILY_ID,
        "type": "person",
        "actual": True,
        "name": "Gezin Bakker-Visser",
        "member": [{"entity": _ref(inwoner.patient)} for inwoner in INWONERS],
    }


def _family_goal(key: str, domain: str, text: str, priority: str) -> Resource:
    return {
        "resourceType": "Goal",
        "id": f"demo-gezinsdoel-{key}",
        "lifecycleStatus": "active",
        "category": [_domain(domain)],
        "priority": _concept(GOAL_PRIORITY, priority, PRIORITIES[priority]),
        "description": {"text": text},
        "subject": _ref(FAMILY),
        "startDate": PLAN_START,
        "target": [{"dueDate": PLAN_END}],
    }


def _family_team() -> Resource:
    # The role is text, like every role of the demo's teams: the vault serves no CodeSystem
    # of roles (yet); ``family_regisseur`` finds it by this word.
    regisseur = _team_member(REGISSEUR, "regisseur")
    members = [_team_member(inwoner.patient, "gezinslid") for inwoner in INWONERS]
    return {
        "resourceType": "CareTeam",
        "id": _id(FAMILY_TEAM),
        "status": "active",
        "name": "Gezinsteam Bakker-Visser",
        "subject": _ref(FAMILY),
        "period": {"start": PLAN_START},
        "participant": [regisseur, _team_member(SOCIAAL_TEAM, "sociaal team"), *members],
        "managingOrganization": [_ref(SOCIAAL_TEAM)],
    }


def _family_plan() -> Resource:
    own_goals = [_goal_ref(inwoner, inwoner.wishes[0].key) for inwoner in INWONERS]
    return {
        "resourceType": "CarePlan",
        "id": _id(FAMILY_PLAN),
        "status": "active",
        "intent": "plan",
        "category": [{"text": "Gezinsplan (1 gezin 1 plan)"}],
        "title": "Gezinsplan Bakker-Visser",
        "description": "Eén plan voor het hele gezin. Ieders eigen doelen staan in ieders "
        "eigen plan; wie wat mag zien, beslist ieder zelf.",
        "subject": _ref(FAMILY),
        "period": {"start": PLAN_START, "end": PLAN_END},
        "created": PLAN_START,
        "contributor": [_ref(REGISSEUR), *(_ref(i.patient) for i in INWONERS if not i.parents)],
        "careTeam": [_ref(FAMILY_TEAM)],
        "goal": [
            *(_ref(f"Goal/demo-gezinsdoel-{key}") for key, *_ in SHARED_WISHES),
            *(_ref(ref) for ref in own_goals),
        ],
        "supportingInfo": [_ref(f"CarePlan/demo-plan-{inwoner.key}") for inwoner in INWONERS],
        "activity": [
            {
                "detail": {
                    "status": "in-progress",
                    "scheduledPeriod": {"start": LAST_MEETING, "end": NEXT_MEETING},
                    "performer": [_ref(by)],
                    "goal": [_ref(f"Goal/demo-gezinsdoel-{wish}")],
                    "description": text,
                }
            }
            for text, by, wish in AGREEMENTS
        ],
        "note": [
            {
                "authorReference": _ref(REGISSEUR),
                "time": LAST_MEETING,
                "text": "Samenwerkoverleg van 10 november 2026, bij het gezin thuis, met "
                "Sanne, Erik, Lotte, Daan, het sociaal team en de woonstichting. Het gezin "
                "koos Anouk als regisseur. Het volgende overleg is op 8 december 2026.",
            }
        ],
    }


def _family_consent(member: str, grantee: str, data: str, meaning: str, *, now: int) -> Resource:
    inwoner = next(i for i in INWONERS if i.key == member)
    consent = _consent(inwoner, grantee, (), now=now)
    consent["id"] = f"demo-gezinsplan-{member}-{_id(grantee).removeprefix('demo-org-')}"
    provision = consent["provision"]
    del provision["class"]
    provision["data"] = [{"meaning": meaning, "reference": _ref(data)}]
    return consent


def _family(now: int) -> Iterator[Resource]:
    """The family compartment, after every member's own (its plan points at their parts),
    and then the members' grants of it."""
    yield _family_group()
    for wish in SHARED_WISHES:
        yield _family_goal(*wish)
    yield _family_team()
    yield _family_plan()
    for member, grantee, data, meaning in FAMILY_GRANTS:
        yield _family_consent(member, grantee, data, meaning, now=now)


def demo_resources(now: int | None = None) -> list[Resource]:
    """The demo family as FHIR R4 JSON, every resource after the ones it refers to; the
    children's Consents signed as their ages at ``now`` (default: this moment) ask."""
    at = now_micros() if now is None else now
    resources = [_organization(org) for org in ORGANIZATIONS]
    resources += [_practitioner(person) for person in PRACTITIONERS]
    resources += [_patient(inwoner) for inwoner in INWONERS]
    for inwoner in INWONERS:
        resources.extend(_compartment(inwoner, at))
    resources.extend(_family(at))
    return resources


def demo_parent_logins() -> list[tuple[str, str, str]]:
    """(user name, child's patient id, RelatedPerson id) of each parent's account for a
    child: a parent acts for a child as that child's RelatedPerson (``sanne-daan``)."""
    return [
        (f"{parent}-{child.key}", _id(child.patient), _id(_related_id(child, parent)))
        for child in CHILDREN
        for parent in child.parents
    ]


def _parents_with_gezag(conn: Connection, now: int) -> None:
    """The parents' "ouder" role for each child: the one place a right to act comes from."""
    for child in CHILDREN:
        for parent in child.parents:
            set_role(
                conn,
                patient_id=_id(child.patient),
                related_person_id=_id(_related_id(child, parent)),
                legal_basis=PARENT,
                now=now,
            )


def _content(resource: Resource) -> Resource:
    return {key: value for key, value in resource.items() if key != "meta"}


def load_demo(runtime: Runtime) -> int:
    """Write the demo into the vault; returns how many resources were created or changed.

    A resource whose stored content already equals the demo's is left alone, so running it
    again writes no new versions.
    """
    repo = Repository(runtime, AccessContext.full("demo"))
    written = 0
    now = now_micros()
    with runtime.db.write() as conn:
        _parents_with_gezag(conn, now)
        for resource in demo_resources(now):
            kind, resource_id = resource["resourceType"], resource["id"]
            try:
                stored = repo.read(conn, kind, resource_id).body
            except (NotFound, Gone):
                stored = None
            wanted = _content(orjson.loads(orjson.dumps(resource)))
            if stored is not None and _content(orjson.loads(stored)) == wanted:
                continue
            repo.update(conn, kind, resource_id, resource)
            written += 1
    return written
