"""Plain Dutch (B1, "je") for the consent page: parts of the plan, grants, the access log.

Every sentence about who may see what is generated from compiled grants
(``consent/compile.py``), never from the form that produced them: what the inwoner reads
back is what the vault will enforce.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from vault.consent.compile import Grant

__all__ = [
    "PARTS",
    "Part",
    "Summary",
    "describe_event",
    "format_day",
    "format_moment",
    "join_words",
    "summarize",
]

MONTHS = (
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
)


def _local_zone() -> tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("Europe/Amsterdam")
    except Exception:  # no time zone database: UTC is still a correct time
        return UTC


LOCAL = _local_zone()


@dataclass(frozen=True, slots=True)
class Part:
    """A part of the plan the inwoner can share, and the resource types it is made of."""

    key: str
    words: str
    classes: tuple[str, ...]


PARTS = (
    Part("over", "je naam en adres", ("Patient",)),
    Part("doelen", "je doelen", ("Goal",)),
    Part("plan", "je plan", ("CarePlan",)),
    Part("netwerk", "je netwerk", ("CareTeam", "RelatedPerson")),
    Part("scores", "je evaluatie", ("Observation",)),
)
PART_BY_KEY = {p.key: p for p in PARTS}

TYPE_WORDS = {
    "Patient": "je naam en adres",
    "Goal": "je doelen",
    "CarePlan": "je plan",
    "CareTeam": "je netwerk",
    "RelatedPerson": "je netwerk",
    "Observation": "je evaluatie",
    "Consent": "wie wat mag zien",
    "Organization": "de organisaties",
    "Practitioner": "de hulpverleners",
    "Provenance": "wie iets veranderde",
    "AuditEvent": "wie er keek",
}


def join_words(words: Sequence[str]) -> str:
    items = list(dict.fromkeys(words))
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " en " + items[-1]


def format_day(micros: int) -> str:
    day = datetime.fromtimestamp(micros / 1_000_000, UTC).date()
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def format_moment(micros: int, *, now: int | None = None) -> str:
    moment = datetime.fromtimestamp(micros / 1_000_000, LOCAL)
    text = f"{moment.day} {MONTHS[moment.month - 1]}"
    if now is not None and datetime.fromtimestamp(now / 1_000_000, LOCAL).year != moment.year:
        text += f" {moment.year}"
    return f"{text} {moment:%H:%M}"


@dataclass(frozen=True, slots=True)
class Summary:
    """What one grantee may do, per part: ``whole``, ``some`` (a part of it) or absent."""

    seen: dict[str, str]
    changed: dict[str, str]
    until: int | None  # microseconds; exclusive end
    since: int | None
    sentence: str

    @property
    def nothing(self) -> bool:
        return not self.seen and not self.changed


def _covers(grants: Iterable[Grant], cls: str, action: str) -> str | None:
    found = None
    for g in grants:
        if g.effect != "permit" or g.action != action or g.resource_type not in (cls, "*"):
            continue
        partial = g.data_type is not None or g.label_code is not None or g.purpose is not None
        found = "some" if partial and found is None else (found or "whole")
        if not partial:
            found = "whole"
    if found is None:
        return None
    denies = [
        g
        for g in grants
        if g.effect == "deny" and g.resource_type in (cls, "*") and g.action in (None, action)
    ]
    if any(g.data_type is None and g.label_code is None and g.purpose is None for g in denies):
        return None  # a deny of the whole type cuts it out completely
    return "some" if denies else found


def _part_level(grants: Sequence[Grant], part: Part, action: str) -> str | None:
    levels = [_covers(grants, cls, action) for cls in part.classes]
    if all(level is None for level in levels):
        return None
    return "whole" if all(level == "whole" for level in levels) else "some"


def _words(levels: Mapping[str, str]) -> list[str]:
    words = []
    for part in PARTS:
        level = levels.get(part.key)
        if level == "whole":
            words.append(part.words)
        elif level == "some":
            words.append(f"een deel van {part.words}")
    return words


def summarize(name: str, grants: Sequence[Grant], *, now: int) -> Summary:
    """One sentence from compiled grants, e.g. "MEE mag tot 1 maart 2027 je doelen zien,
    niet je plan, je netwerk en je evaluatie." Grants that already ended count as none."""
    live = [g for g in grants if g.valid_until is None or g.valid_until > now]
    seen = {p.key: lvl for p in PARTS if (lvl := _part_level(live, p, "access"))}
    changed = {p.key: lvl for p in PARTS if (lvl := _part_level(live, p, "correct"))}
    permits = [g for g in live if g.effect == "permit"]
    ends = {g.valid_until for g in permits}
    starts = {g.valid_from for g in permits if g.valid_from is not None and g.valid_from > now}
    until = None if None in ends or not ends else max(e for e in ends if e is not None)
    since = min(starts) if starts else None
    if not seen and not changed:
        return Summary(seen, changed, None, None, f"{name} mag niets zien van je plan.")
    when = ""
    if since is not None:
        when += f" vanaf {format_day(since)}"
    if until is not None:
        # The grant ends at the start of the next day: the last day it holds is one earlier.
        when += f" tot en met {format_day(until - 1)}"
    clauses = []
    if seen:
        clauses.append(f"{join_words(_words(seen))} zien")
    if changed:
        clauses.append(f"{join_words(_words(changed))} veranderen")
    text = f"{name} mag{when} " + " en ".join(clauses)
    rest = [p.words for p in PARTS if p.key not in seen and p.key not in changed]
    if rest:
        text += f", niet {join_words(rest)}"
    return Summary(seen, changed, until, since, text + ".")


_VERBS = {
    "read": "bekeken",
    "vread": "bekeken",
    "search-type": "bekeken",
    "history-instance": "bekeken",
    "history-type": "bekeken",
    "export": "opgehaald",
    "create": "toegevoegd",
    "update": "veranderd",
    "delete": "weggehaald",
}


@dataclass(frozen=True, slots=True)
class LogLine:
    when: int
    who: str
    sentence: str
    organization: str | None
    permitted: bool
    own: bool


PREVIEW_QUERY = "$preview?actor="


def _queries(event: Mapping[str, Any]) -> list[str]:
    found = []
    for entity in event.get("entity") or []:
        if entity.get("query"):
            try:
                found.append(base64.b64decode(entity["query"]).decode("utf-8", "replace"))
            except ValueError:
                continue
    return found


def preview_actor(event: Mapping[str, Any]) -> str | None:
    """The organisation or person whose view was previewed ("Bekijk wat … ziet"), if any."""
    for query in _queries(event):
        if query.startswith(PREVIEW_QUERY):
            return query[len(PREVIEW_QUERY) :]
    return None


def _what(event: Mapping[str, Any]) -> str:
    types: list[str] = []
    for entity in event.get("entity") or []:
        ref = (entity.get("what") or {}).get("reference", "")
        kind = ref.split("/", 1)[0]
        if ref and (entity.get("type") or {}).get("code") != "1":
            types.append(kind)
        if entity.get("query"):
            try:
                query = base64.b64decode(entity["query"]).decode("utf-8", "replace")
            except ValueError:
                query = ""
            kind = query.split("?", 1)[0].split("/", 1)[0]
            if kind in TYPE_WORDS:
                types.append(kind)
    if not types:
        return ""
    return join_words([TYPE_WORDS.get(t, "je gegevens") for t in types if t])


def describe_event(
    event: Mapping[str, Any],
    *,
    names: Mapping[str, str],
    own_account: str | None,
    representatives: Mapping[str, str],
    patient_ref: str,
) -> LogLine:
    """ "MEE heeft je doelen bekeken" for one AuditEvent; ``names`` maps references to names."""
    agents = event.get("agent") or []
    first = agents[0] if agents else {}
    who_ref = (first.get("who") or {}).get("reference")
    agent_of = next(
        (
            (a.get("who") or {}).get("reference")
            for a in agents[1:]
            if any(c.get("code") == "AGNT" for c in (a.get("type") or {}).get("coding") or [])
        ),
        None,
    )
    organization = who_ref if who_ref and who_ref.startswith("Organization/") else None
    account_name = first.get("name", "")
    own = bool(own_account) and account_name == f"account {own_account}" and agent_of is None
    recorded = _parse_instant(str(event.get("recorded", "")))
    previewed = preview_actor(event)
    if previewed is not None:
        seen_as = names.get(previewed, "een organisatie of persoon")
        if agent_of is not None:
            person = names.get(agent_of, "Iemand uit je netwerk")
            return LogLine(
                recorded,
                person,
                f"{person} namens jou heeft bekeken wat {seen_as} ziet",
                None,
                True,
                False,
            )
        return LogLine(recorded, "Jij", f"Jij hebt bekeken wat {seen_as} ziet", None, True, own)
    if organization and own and not first.get("altId"):
        who = f"Jij (bekeek wat {names.get(organization, 'een organisatie')} ziet)"
    elif organization:
        who = names.get(organization, "Een organisatie")
        if first.get("altId") and who_ref == organization and account_name:
            who = f"Een app van {who}"
    elif agent_of is not None:
        person = names.get(agent_of, "Iemand uit je netwerk")
        who = f"{person} namens jou" if agent_of in representatives else person
        own = False
    elif who_ref == patient_ref:
        who = "Jij"
    else:
        who = "Iemand"
    subtype = ((event.get("subtype") or [{}])[0]).get("code", "read")
    verb = _VERBS.get(subtype, "gebruikt")
    what = _what(event)
    searched = subtype == "search-type"
    if not what:
        what = "je gegevens" if searched else "je naam en adres"
    permitted = event.get("outcome", "0") == "0"
    has = "hebt" if who.startswith("Jij") else "heeft"
    if permitted and what == "wie wat mag zien" and verb in ("toegevoegd", "veranderd"):
        sentence = f"{who} {has} veranderd wie wat mag zien"
    elif permitted and searched and not _what(event):
        sentence = f"{who} {has} gezocht in je gegevens en niets gevonden"
    elif permitted:
        sentence = f"{who} {has} {what} {verb}"
    else:
        sentence = f"{who} wilde {what} zien, maar mocht dat niet"
    return LogLine(recorded, who, sentence, organization, permitted, own)


def _parse_instant(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)
