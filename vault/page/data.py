"""What every part of the consent page shares: reading through the Repository, names, days.

Every function takes the caller's ``Repository`` (built with their own ``AccessContext``)
and a connection inside a transaction the route opened; nothing here commits. The reads
and writes of each part of the page live beside its routes: ``sharing_data`` (who may see
what, and what a partner sees), ``plan_data`` (mijn plan), ``network_data`` (mijn netwerk)
and ``mydata`` (download and erase).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, select

from vault.fhir.codesystems import LEVENSDOMEINEN
from vault.fhir.repository import Repository
from vault.kernel.errors import FhirError, KeyUnavailable
from vault.kernel.fhirdata import split_reference
from vault.page.words import PARTS
from vault.store.models import ResourceRow
from vault.store.writes import Stored

CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
RESOURCE_TYPE_SYSTEM = "http://hl7.org/fhir/resource-types"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
GOAL_PRIORITY = "http://terminology.hl7.org/CodeSystem/goal-priority"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
DOMAINS = LEVENSDOMEINEN
PRIORITIES = {
    "high-priority": "Heel belangrijk",
    "medium-priority": "Belangrijk",
    "low-priority": "Minder belangrijk",
}
PRIORITY_ORDER = {"high-priority": 0, "medium-priority": 1, "low-priority": 2}
# The inwoner's own order of goals. Goal.priority has three codes, so it cannot say "this
# one first, then that one"; the exact place is this extension (1 = at the top). Goals
# without it (new ones, or written by a partner) follow the ranked ones, by priority.
# A representative's legal basis (design section 7), as a RelatedPerson.relationship coding.
LEGAL_BASIS = "https://regiekluis.nl/fhir/CodeSystem/wettelijke-grondslag"
LEGAL_BASIS_WORDS = {
    "machtiging": "machtiging",
    "mentor": "mentor",
    "curator": "curator",
    "ouder": "ouder met gezag",
}
GOAL_RANK = "https://regiekluis.nl/fhir/StructureDefinition/goal-rank"
# The types of an inwoner's compartment, in the order the page shows and exports them.
COMPARTMENT_TYPES = (
    "Patient",
    "CarePlan",
    "Goal",
    "Observation",
    "CareTeam",
    "RelatedPerson",
    "Consent",
    "Provenance",
    "AuditEvent",
)
INVITATION_SECONDS = 7 * 24 * 3600
MICROS = 1_000_000


def load(stored: Stored) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(stored.body or b"{}")
    return data


def search_all(
    repo: Repository, conn: Connection, resource_type: str, params: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Every match of a search, page by page, as the caller's access decision allows."""
    query = repo.parse(resource_type, [*params, ("_count", "200")], lenient=False)
    found: list[dict[str, Any]] = []
    while True:
        page = repo.search(conn, query)
        found.extend(load(s) for s in page.matches)
        if page.next_cursor is None or len(found) >= 5000:
            return found
        query.cursor = page.next_cursor


def audit_events(
    repo: Repository, conn: Connection, params: Sequence[tuple[str, str]]
) -> Iterator[dict[str, Any]]:
    """AuditEvents of a search, newest first, read page by page only as far as needed."""
    query = repo.parse("AuditEvent", [*params, ("_count", "500")], lenient=False)
    while True:
        page = repo.search(conn, query)
        yield from (load(s) for s in page.matches)
        if page.next_cursor is None:
            return
        query.cursor = page.next_cursor


def compartment_search(
    repo: Repository, conn: Connection, resource_type: str, patient_id: str
) -> list[dict[str, Any]]:
    if resource_type == "Patient":
        return search_all(repo, conn, "Patient", [("_id", patient_id)])
    return search_all(repo, conn, resource_type, [("patient", f"Patient/{patient_id}")])


def display_name(resource: dict[str, Any]) -> str:
    name = resource.get("name")
    if isinstance(name, str):
        return name
    if isinstance(name, list) and name:
        first = name[0]
        if first.get("text"):
            return str(first["text"])
        return " ".join([*first.get("given", []), first.get("family", "")]).strip() or "Iemand"
    return "Iemand"


def name_of(repo: Repository, conn: Connection, reference: str) -> str:
    parsed = split_reference(reference)
    if parsed is None:
        return reference
    try:
        return display_name(load(repo.read(conn, parsed[0], parsed[1])))
    except (FhirError, KeyUnavailable):
        return "Onbekend"


def name_then(repo: Repository, conn: Connection, reference: str) -> str:
    """The name, also of someone since removed: the log tells who it was (the last version
    before the delete), never "Onbekend" for a person the inwoner knew."""
    name = name_of(repo, conn, reference)
    parsed = split_reference(reference)
    if name != "Onbekend" or parsed is None:
        return name
    row = conn.execute(
        select(ResourceRow.version_id, ResourceRow.deleted).where(
            ResourceRow.resource_type == parsed[0], ResourceRow.resource_id == parsed[1]
        )
    ).first()
    if row is None or not row.deleted or row.version_id < 2:
        return name
    try:
        return display_name(load(repo.vread(conn, parsed[0], parsed[1], str(row.version_id - 1))))
    except (FhirError, KeyUnavailable):
        return name


# RelatedPerson.relationship codes (v3 RoleCode) a child calls "Mama" or "Papa" in the log.
_KINSHIP = {
    "MTH": "mother",
    "NMTH": "mother",
    "STPMTH": "mother",
    "FTH": "father",
    "NFTH": "father",
    "STPFTH": "father",
}


def kinship_of(repo: Repository, conn: Connection, reference: str) -> str | None:
    """ "mother" or "father" when the RelatedPerson's relationship says so, else None."""
    parsed = split_reference(reference)
    if parsed is None:
        return None
    try:
        person = load(repo.read(conn, parsed[0], parsed[1]))
    except (FhirError, KeyUnavailable):
        return None
    for concept in person.get("relationship") or []:
        for coding in concept.get("coding") or []:
            if coding.get("system") == ROLE_CODE and coding.get("code") in _KINSHIP:
                return _KINSHIP[coding["code"]]
    return None


def version_of(resource: dict[str, Any]) -> str | None:
    version = (resource.get("meta") or {}).get("versionId")
    return f'W/"{version}"' if version else None


def without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "meta"}


_DUTCH_DAY = re.compile(r"(\d{1,2})[-/. ]+(\d{1,2})[-/. ]+(\d{4})")


def parse_day(text: str) -> date | None:
    """A day as people in the Netherlands write it: day, month, year ("31-12-2026",
    "31/12/2026", "31.12.2026", "1-3-2027", or the eight digits "31122026"); also the
    ISO form "2026-12-31". None when empty. Raises ValueError for anything else."""
    text = text.strip()
    if not text:
        return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return date.fromisoformat(text)
    if re.fullmatch(r"\d{8}", text):
        return date(int(text[4:]), int(text[2:4]), int(text[:2]))
    found = _DUTCH_DAY.fullmatch(text)
    if found is None:
        raise ValueError(text)
    day, month, year = (int(g) for g in found.groups())
    return date(year, month, day)


def dutch_day(day: date) -> str:
    """The form the date field shows and reads back: "31-12-2026"."""
    return f"{day.day:02d}-{day.month:02d}-{day.year}"


def default_until() -> date:
    return date.today() + timedelta(days=365)


PART_KEYS = tuple(p.key for p in PARTS)
