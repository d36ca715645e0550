"""Plain Dutch (B1, "je") for the consent page: parts of the plan, grants, the access log.

Every sentence about who may see what is generated from compiled grants
(``consent/compile.py``), never from the form that produced them: what the inwoner reads
back is what the vault will enforce.

Over 500 lines: most of it is the page's Dutch sentences, kept together so they read as one
text.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from vault.consent.compile import Grant
from vault.oauth.router import describe_scope
from vault.oauth.scopes import InvalidScope, ResourceScope, parse_scope
from vault.store.registry import RESOURCE_TYPES

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
MONTHS_EN = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
# The page's languages: Dutch is its own; English is the switch the issue asked for.
LANGUAGES = ("nl", "en")


@dataclass(frozen=True, slots=True)
class Part:
    """A part of the plan the inwoner can share, and the resource types it is made of."""

    key: str
    words: str
    classes: tuple[str, ...]
    english: str = ""

    def words_in(self, lang: str) -> str:
        return self.english if lang == "en" else self.words


PARTS = (
    Part("over", "je naam en adres", ("Patient",), "your name and address"),
    Part("doelen", "je doelen", ("Goal",), "your goals"),
    Part("plan", "je plan", ("CarePlan",), "your plan"),
    Part("netwerk", "je netwerk", ("CareTeam", "RelatedPerson"), "your network"),
    Part("scores", "je cijfers", ("Observation",), "your scores"),
)
PART_BY_KEY = {p.key: p for p in PARTS}

TYPE_WORDS = {
    "Patient": "je naam en adres",
    "Goal": "je doelen",
    "CarePlan": "je plan",
    "CareTeam": "je netwerk",
    "RelatedPerson": "je netwerk",
    "Observation": "je cijfers",
    "Consent": "wie wat mag zien",
    "Organization": "de organisaties",
    "Practitioner": "de hulpverleners",
    "Provenance": "wie iets veranderde",
    "AuditEvent": "het logboek",  # not "wie er keek": "Jij hebt wie er keek bekeken"
    "Group": "je gezin",
    # The family compartment, on the family's log (``describe_event(family=True)``).
    "GezinCarePlan": "het plan van jullie gezin",
    "GezinGoal": "de doelen van jullie gezin",
    "GezinCareTeam": "het team van jullie gezin",
    "GezinGroup": "wie er bij jullie gezin horen",
    "GezinAuditEvent": "het logboek van jullie gezin",
    "GezinProvenance": "wie iets veranderde in het plan van jullie gezin",
}
TYPE_WORDS_EN = {
    "Patient": "your name and address",
    "Goal": "your goals",
    "CarePlan": "your plan",
    "CareTeam": "your network",
    "RelatedPerson": "your network",
    "Observation": "your scores",
    "Consent": "who may see what",
    "Organization": "the organisations",
    "Practitioner": "the professionals",
    "Provenance": "who changed something",
    "AuditEvent": "the log",
    "Group": "your family",
    "GezinCarePlan": "your family's plan",
    "GezinGoal": "your family's goals",
    "GezinCareTeam": "your family's team",
    "GezinGroup": "who belongs to your family",
    "GezinAuditEvent": "your family's log",
    "GezinProvenance": "who changed something in your family's plan",
}
FAMILY_PREFIX = "Gezin"  # a family compartment's types, told apart from the inwoner's own


def join_words(words: Sequence[str], lang: str = "nl") -> str:
    items = list(dict.fromkeys(words))
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + (" and " if lang == "en" else " en ") + items[-1]


def format_day(micros: int, lang: str = "nl") -> str:
    return format_date(datetime.fromtimestamp(micros / 1_000_000, UTC).date(), lang)


def format_date(day: date, lang: str = "nl") -> str:
    """A day of the calendar: "5 december 2026"."""
    months = MONTHS_EN if lang == "en" else MONTHS
    return f"{day.day} {months[day.month - 1]} {day.year}"


def format_moment(micros: int, *, now: int | None = None, lang: str = "nl") -> str:
    moment = datetime.fromtimestamp(micros / 1_000_000, LOCAL)
    months = MONTHS_EN if lang == "en" else MONTHS
    text = f"{moment.day} {months[moment.month - 1]}"
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
    name: str

    @property
    def nothing(self) -> bool:
        return not self.seen and not self.changed

    @property
    def sentence(self) -> str:
        return self.text("nl")

    def text(self, lang: str) -> str:
        """Short sentences, e.g. "MEE mag je doelen zien. Dit mag tot en met 1 maart 2027.
        MEE mag niet zien: je plan." (or its English), from the compiled grants, never from
        a form."""
        en = lang == "en"
        if self.nothing:
            if en:
                return f"{self.name} may see nothing of your plan."
            return f"{self.name} mag niets zien van je plan."
        # Short sentences, one thing each (issue 18: one sentence of 24 to 27 words).
        first = format_day(self.since, lang) if self.since is not None else None
        # The grant ends at the start of the next day: the last day it holds is one earlier.
        last = format_day(self.until - 1, lang) if self.until is not None else None
        seen = join_words(_words(self.seen, lang), lang)
        changed = join_words(_words(self.changed, lang), lang)
        rest = join_words(
            [
                p.words_in(lang)
                for p in PARTS
                if p.key not in self.seen and p.key not in self.changed
            ],
            lang,
        )
        if en:
            sentences = [
                seen and f"{self.name} may see {seen}.",
                changed and f"{self.name} may change {changed}.",
                _period_en(first, last),
                rest and f"{self.name} may not see {rest}.",
            ]
        else:
            sentences = [
                seen and f"{self.name} mag {seen} zien.",
                changed and f"{self.name} mag {changed} veranderen.",
                _period_nl(first, last),
                rest and f"{self.name} mag niet zien: {rest}.",
            ]
        return " ".join(s for s in sentences if s)


def _period_nl(first: str | None, last: str | None) -> str:
    if first and last:
        return f"Dit mag van {first} tot en met {last}."
    if last:
        return f"Dit mag tot en met {last}."
    return f"Dit mag vanaf {first}." if first else ""


def _period_en(first: str | None, last: str | None) -> str:
    if first and last:
        return f"This holds from {first} until {last} (inclusive)."
    if last:
        return f"This holds until {last} (inclusive)."
    return f"This holds from {first}." if first else ""


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


def _words(levels: Mapping[str, str], lang: str) -> list[str]:
    words = []
    for part in PARTS:
        level = levels.get(part.key)
        if level == "whole":
            words.append(part.words_in(lang))
        elif level == "some":
            some = "part of" if lang == "en" else "een deel van"
            words.append(f"{some} {part.words_in(lang)}")
    return words


def summarize(name: str, grants: Sequence[Grant], *, now: int) -> Summary:
    """What one grantee may do, from compiled grants; ``Summary.text`` says it in short
    sentences. Grants that already ended count as none."""
    live = [g for g in grants if g.valid_until is None or g.valid_until > now]
    seen = {p.key: lvl for p in PARTS if (lvl := _part_level(live, p, "access"))}
    changed = {p.key: lvl for p in PARTS if (lvl := _part_level(live, p, "correct"))}
    permits = [g for g in live if g.effect == "permit"]
    ends = {g.valid_until for g in permits}
    starts = {g.valid_from for g in permits if g.valid_from is not None and g.valid_from > now}
    until = None if None in ends or not ends else max(e for e in ends if e is not None)
    since = min(starts) if starts else None
    if not seen and not changed:
        return Summary(seen, changed, None, None, name)
    return Summary(seen, changed, until, since, name)


_VERBS = {
    "read": "viewed",
    "vread": "viewed",
    "search-type": "viewed",
    "history-instance": "viewed",
    "history-type": "viewed",
    "export": "fetched",
    "create": "added",
    "update": "changed",
    "delete": "removed",
}
# The access log's words; the English ones are the keys used in describe_event.
LOG_WORDS = {
    "nl": {
        "viewed": "bekeken",
        "fetched": "opgehaald",
        "added": "toegevoegd",
        "changed": "veranderd",
        "removed": "weggehaald",
        "used": "gebruikt",
        "you": "Jij",
        "someone": "Iemand",
        "an organisation": "Een organisatie",
        "an organisation or person": "een organisatie of persoon",
        "someone of your network": "Iemand uit je netwerk",
        "someone of your family": "Iemand van jullie gezin",
        "your data": "je gegevens",
        "your family's data": "de gegevens van jullie gezin",
        "your name and address": "je naam en adres",
        "{person} for you": "{person}",
        " for you": " namens jou",
        "mother": "Mama",
        "father": "Papa",
        "{kin} ({person})": "{kin} ({person})",
        "an app of {who}": "Een app van {who}",
        "you (looking at what {org} sees)": "Jij (bekeek wat {org} ziet)",
        "{who} looked at what {seen} sees": "{who} heeft{behalf} bekeken wat {seen} ziet",
        "you looked at what {seen} sees": "Jij hebt bekeken wat {seen} ziet",
        "{who} changed who may see what": "{who} {has}{behalf} veranderd wie wat mag zien",
        "{who} searched and found nothing": (
            "{who} {has}{behalf} gezocht in je gegevens en niets gevonden"
        ),
        "{who} searched the family's data and found nothing": (
            "{who} {has}{behalf} gezocht in de gegevens van jullie gezin en niets gevonden"
        ),
        "{who} {verb} {what}": "{who} {has}{behalf} {what} {verb}",
        "{who} was refused {what}": "{who} wilde{behalf} {what} zien, maar mocht dat niet",
        "an app": "Een app",
        "{who} stopped {seen}": "{who} heeft{behalf} {seen} gestopt",
        "you stopped {seen}": "Jij hebt {seen} gestopt",
        "{who} tried {n} times to see something not allowed": (
            "{who} probeerde{behalf} {n} keer iets te zien wat niet mocht"
        ),
        "{who} looked {n} times and saw nothing": "{who} keek{behalf} {n} keer, maar zag niets",
        "{who} looked and saw nothing": "{who} keek{behalf}, maar zag niets",
        "{who} {changes}": "{who} {has}{behalf} {changes}",
        "{count} {noun} {verb}": "{count} {noun} {verb}",
        "({n} times)": "({n} keer)",
        "{who} counted you in figures without names": (
            "{who} heeft je meegeteld in cijfers zonder namen (je plan zelf is niet bekeken)"
        ),
    },
    "en": {
        "you": "You",
        "someone": "Someone",
        "an organisation": "An organisation",
        "someone of your network": "Someone of your network",
        "someone of your family": "Someone of your family",
        "{person} for you": "{person} on your behalf",
        " for you": "",
        "mother": "Mum",
        "father": "Dad",
        "{kin} ({person})": "{kin} ({person})",
        "an app of {who}": "An app of {who}",
        "you (looking at what {org} sees)": "You (looking at what {org} sees)",
        "{who} looked at what {seen} sees": "{who} looked at what {seen} sees",
        "you looked at what {seen} sees": "You looked at what {seen} sees",
        "{who} changed who may see what": "{who} changed who may see what",
        "{who} searched and found nothing": "{who} searched your data and found nothing",
        "{who} searched the family's data and found nothing": (
            "{who} searched your family's data and found nothing"
        ),
        "{who} {verb} {what}": "{who} {verb} {what}",
        "{who} was refused {what}": "{who} wanted to see {what}, but was not allowed to",
        "an app": "An app",
        "{who} stopped {seen}": "{who} stopped {seen}",
        "you stopped {seen}": "You stopped {seen}",
        "{who} tried {n} times to see something not allowed": (
            "{who} tried {n} times to see something that was not allowed"
        ),
        "{who} looked {n} times and saw nothing": "{who} looked {n} times, but saw nothing",
        "{who} looked and saw nothing": "{who} looked, but saw nothing",
        "{who} {changes}": "{who} {changes}",
        "{count} {noun} {verb}": "{verb} {count} {noun}",
        "({n} times)": "({n} times)",
        "{who} counted you in figures without names": (
            "{who} counted you in figures without names (your plan itself was not viewed)"
        ),
    },
}


@dataclass(frozen=True, slots=True)
class LogLine:
    when: int
    who: str
    sentence: str
    organization: str | None
    permitted: bool
    own: bool
    # How lines are grouped into visits: who (as they were then), and what kind of access.
    party: str = ""
    kind: str = "viewed"  # viewed, empty, changed, denied, consent, counted, preview, stop
    types: tuple[str, ...] = ()
    verb: str = "viewed"
    entities: tuple[str, ...] = ()
    has: str = "heeft"
    # " namens jou" after the finite verb when someone acted for the inwoner (Dutch word
    # order: "Mama (Sanne Bakker) heeft namens jou ...", never "... namens jou heeft ...").
    behalf: str = ""


PREVIEW_QUERY = "$preview?actor="
# The inwoner (or her representative) stopped an app: logged like a preview, by query.
STOP_APP_QUERY = "$stop-app?client="


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


def _what(event: Mapping[str, Any], lang: str = "nl") -> str:
    types: list[str] = []
    for entity in event.get("entity") or []:
        ref = (entity.get("what") or {}).get("reference", "")
        kind = ref.split("/", 1)[0]
        if ref and (entity.get("type") or {}).get("code") != "1":
            types.append(kind)
    for query in _queries(event):
        kind = query.split("?", 1)[0].split("/", 1)[0]
        if kind in TYPE_WORDS:
            types.append(kind)
    if not types:
        return ""
    words = TYPE_WORDS_EN if lang == "en" else TYPE_WORDS
    return join_words([words.get(t, _data_words(t, lang)) for t in types if t], lang)


def _data_words(kind: str, lang: str) -> str:
    """A thing without words of its own: the inwoner's data, or the family's."""
    family = kind.startswith(FAMILY_PREFIX)
    if lang == "en":
        return "your family's data" if family else "your data"
    return "de gegevens van jullie gezin" if family else "je gegevens"


def describe_event(
    event: Mapping[str, Any],
    *,
    names: Mapping[str, str],
    own_account: str | None,
    role_at: Callable[[str, int], str | None],
    patient_ref: str,
    apps: Mapping[str, str] | None = None,
    lang: str = "nl",
    kin: Mapping[str, str] | None = None,
    family: bool = False,
) -> LogLine:
    """ "MEE heeft je doelen bekeken" for one AuditEvent; ``names`` maps references to names.

    The line tells the access as it was when it happened: ``role_at(person, instant)`` is
    the role someone had at that instant, never the one they have now (issue 18). An app
    the inwoner approved is named, never "Jij" (``apps``: client id -> name). A parent who
    acted with gezag is named as the child says it, "Mama (Sanne Bakker)" (``kin``:
    reference -> "mother" or "father", from the RelatedPerson's relationship).
    """
    # Long on purpose: one table-like walk from an access-log record to its plain-Dutch sentence.
    table = LOG_WORDS["en" if lang == "en" else "nl"]
    if family:
        # A family compartment's record (``family``): its things are the family's ("het
        # plan van jullie gezin"), and a member other than the visitor is "Iemand van
        # jullie gezin" (the record names her account only, audit/log.py).
        event = as_family_event(event)

    def w(key: str, **fields: str) -> str:
        return table.get(key, key).format(**{"behalf": "", **fields})

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
    role = role_at(agent_of, recorded) if agent_of is not None else None
    acting = role is not None
    behalf = w(" for you") if acting else ""

    def person_of(ref: str) -> str:
        person = names.get(ref, w("someone of your network"))
        kinship = (kin or {}).get(ref)
        if role == "ouder" and kinship:
            person = w("{kin} ({person})", kin=w(kinship), person=person)
        return w("{person} for you", person=person) if acting else person

    previewed = preview_actor(event)
    stopped = _stopped_app(event)
    if previewed is not None or stopped is not None:
        if previewed is not None:
            seen = names.get(previewed, w("an organisation or person"))
            sentence_key = "{who} looked at what {seen} sees"
            party, kind = f"preview {previewed}", "preview"
        else:
            seen = (apps or {}).get(stopped or "", w("an app"))
            sentence_key = "{who} stopped {seen}"
            party, kind = f"stop {stopped}", "stop"
        if agent_of is not None:
            who = person_of(agent_of)
            sentence = w(sentence_key, who=who, seen=seen, has="heeft", behalf=behalf)
            return LogLine(
                recorded,
                who,
                sentence,
                None,
                True,
                False,
                f"{party} {agent_of}",
                kind,
                behalf=behalf,
            )
        you_key = "you looked at what {seen} sees" if kind == "preview" else "you stopped {seen}"
        sentence = w(you_key, seen=seen)
        return LogLine(recorded, w("you"), sentence, None, True, own, party, kind)
    you = False
    app = first.get("altId")
    party = who_ref or ""
    if organization and own and not app:
        who = w(
            "you (looking at what {org} sees)", org=names.get(organization, w("an organisation"))
        )
        you = True
    elif organization:
        who = names.get(organization, w("an organisation"))
        if app and who_ref == organization and account_name:
            who = w("an app of {who}", who=who)
            party = f"{organization} app {app}"
    elif agent_of is not None:
        who = person_of(agent_of)
        party = f"{agent_of} {'for' if acting else 'own'}"
        own = False
    elif who_ref == patient_ref and app:
        # The inwoner's own app acts for her, but it is not her: it has a name.
        who = (apps or {}).get(str(app), w("an app"))
        party, own = f"app {app}", False
    elif who_ref == patient_ref:
        who, you = w("you"), True
        party = "you"
    elif family and own:
        who, you, party = w("you"), True, "you"
    elif family:
        who, party = w("someone of your family"), "family"
    else:
        who = w("someone")
    if agent_of is None or organization:
        behalf = ""
    subtype = ((event.get("subtype") or [{}])[0]).get("code", "read")
    verb = _VERBS.get(subtype, "used")
    what = _what(event, lang)
    searched = subtype == "search-type"
    if not what:
        what = w("your data") if searched else w("your name and address")
        what = w("your family's data") if family else what
    permitted = event.get("outcome", "0") == "0"
    has = "hebt" if you else "heeft"
    about_consent = any(t == "Consent" for t in _types(event))
    counted = any(
        c.get("code") == "HRESCH"
        for concept in event.get("purposeOfEvent") or []
        for c in concept.get("coding") or []
    )
    if permitted and counted:
        # vault/reports: a report run counted her; it is no read of her plan.
        sentence = w("{who} counted you in figures without names", who=who)
        kind = "counted"
    elif permitted and about_consent and verb in ("added", "changed"):
        sentence = w("{who} changed who may see what", who=who, has=has, behalf=behalf)
        kind = "consent"
    elif permitted and searched and not _what(event):
        key = "{who} searched the family's data and found nothing" if family else None
        sentence = w(key or "{who} searched and found nothing", who=who, has=has, behalf=behalf)
        kind = "empty"
    elif permitted:
        sentence = w(
            "{who} {verb} {what}", who=who, has=has, verb=w(verb), what=what, behalf=behalf
        )
        kind = "viewed" if verb in ("viewed", "fetched", "used") else "changed"
    else:
        sentence = w("{who} was refused {what}", who=who, what=what, behalf=behalf)
        kind = "denied"
    entities = tuple(
        str((e.get("what") or {}).get("reference"))
        for e in event.get("entity") or []
        if (e.get("what") or {}).get("reference") and (e.get("type") or {}).get("code") != "1"
    )
    return LogLine(
        recorded,
        who,
        sentence,
        organization,
        permitted,
        own,
        party,
        kind,
        tuple(_types(event)),
        verb,
        entities,
        has,
        behalf,
    )


def _stopped_app(event: Mapping[str, Any]) -> str | None:
    for query in _queries(event):
        if query.startswith(STOP_APP_QUERY):
            return query[len(STOP_APP_QUERY) :]
    return None


def as_family_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """The record with each thing it is about named as the family's ("GezinGoal/x"), and
    no one acting for the visitor: in a family's compartment nobody acts *for her*."""
    entities = []
    for entity in event.get("entity") or []:
        ref = (entity.get("what") or {}).get("reference")
        if ref and (entity.get("type") or {}).get("code") != "1":
            entity = {**entity, "what": {"reference": FAMILY_PREFIX + ref}}
        elif entity.get("query"):
            query = base64.b64decode(entity["query"]).decode("utf-8", "replace")
            family_query = (FAMILY_PREFIX + query).encode()
            entity = {**entity, "query": base64.b64encode(family_query).decode("ascii")}
        entities.append(entity)
    agents = [a for a in event.get("agent") or [] if not _is_agent(a)]
    return {**event, "entity": entities, "agent": agents}


def _is_agent(agent: Mapping[str, Any]) -> bool:
    return any(c.get("code") == "AGNT" for c in (agent.get("type") or {}).get("coding") or [])


def _types(event: Mapping[str, Any]) -> list[str]:
    """The resource types an event is about (not the inwoner it concerns)."""
    found = [
        (entity.get("what") or {}).get("reference", "").split("/", 1)[0]
        for entity in event.get("entity") or []
        if (entity.get("what") or {}).get("reference")
        and (entity.get("type") or {}).get("code") != "1"
    ]
    return found + [q.split("?", 1)[0].split("/", 1)[0] for q in _queries(event)]


def _parse_instant(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


# -- one visit, one line -------------------------------------------------------------------

# Records of one party less than this far apart are one visit (issue 11 item 5, issue 18).
VISIT_GAP = 30 * 60 * 1_000_000
NOUNS = {
    "nl": {
        "Goal": ("doel", "doelen"),
        "CarePlan": ("plan", "plannen"),
        "Observation": ("cijfer", "cijfers"),
        "RelatedPerson": ("persoon uit je netwerk", "personen uit je netwerk"),
        "CareTeam": ("netwerk", "netwerken"),
        "Consent": ("keuze wie wat mag zien", "keuzes wie wat mag zien"),
        "Patient": ("keer je naam en adres", "keer je naam en adres"),
        "GezinCarePlan": ("gezinsplan", "gezinsplannen"),
        "GezinGoal": ("doel van jullie gezin", "doelen van jullie gezin"),
        "GezinCareTeam": ("team van jullie gezin", "teams van jullie gezin"),
        "GezinGroup": ("keer wie er bij jullie gezin horen", "keer wie er bij jullie gezin horen"),
    },
    "en": {
        "Goal": ("goal", "goals"),
        "CarePlan": ("plan", "plans"),
        "Observation": ("score", "scores"),
        "RelatedPerson": ("person of your network", "people of your network"),
        "CareTeam": ("network", "networks"),
        "Consent": ("choice of who may see what", "choices of who may see what"),
        "Patient": ("time your name and address", "times your name and address"),
        "GezinCarePlan": ("family plan", "family plans"),
        "GezinGoal": ("goal of your family", "goals of your family"),
        "GezinCareTeam": ("team of your family", "teams of your family"),
        "GezinGroup": ("time who belongs to your family", "times who belongs to your family"),
    },
}


@dataclass
class LogGroup:
    """What one party did in one visit: one line of the log, with its records as details."""

    lines: list[LogLine]

    @property
    def newest(self) -> int:
        return self.lines[0].when

    @property
    def oldest(self) -> int:
        return self.lines[-1].when

    @property
    def count(self) -> int:
        return len(self.lines)

    @property
    def permitted(self) -> bool:
        return any(line.permitted for line in self.lines)

    @property
    def own(self) -> bool:
        return all(line.own for line in self.lines)

    def sentence(self, lang: str = "nl") -> str:
        return visit_sentence(self.lines, lang)


def group_visits(lines: Iterable[LogLine], *, gap: int = VISIT_GAP) -> list[LogGroup]:
    """Lines (newest first) of one party close together in time become one group.

    Parties interleave (a flood of denials during a partner's real reads): each party
    has its own open visit, so neither breaks the other's into pieces.
    """
    groups: list[LogGroup] = []
    open_visit: dict[str, LogGroup] = {}
    for line in lines:
        visit = open_visit.get(line.party)
        if visit is not None and visit.oldest - line.when <= gap:
            visit.lines.append(line)
            continue
        visit = LogGroup([line])
        open_visit[line.party] = visit
        groups.append(visit)
    return groups


def _times(n: int, table: Mapping[str, str]) -> str:
    return "" if n <= 1 else " " + table["({n} times)"].format(n=n)


def visit_sentence(lines: Sequence[LogLine], lang: str = "nl") -> str:
    """One sentence (or two) for one visit, the same rule for reads, searches and denials."""
    table = LOG_WORDS["en" if lang == "en" else "nl"]
    first = lines[0]
    who, has, behalf = first.who, first.has, first.behalf
    by_kind: dict[str, list[LogLine]] = {}
    for line in lines:
        by_kind.setdefault(line.kind, []).append(line)
    clauses: list[str] = []
    for kind in ("preview", "stop", "consent", "counted"):
        if kind in by_kind:
            clauses.append(by_kind[kind][0].sentence + _times(len(by_kind[kind]), table))
    viewed = by_kind.get("viewed", [])
    empty = by_kind.get("empty", [])
    if viewed:
        what = _what_of(viewed, lang)
        verb = table.get("viewed", "viewed")
        text = table["{who} {verb} {what}"].format(
            who=who, has=has, verb=verb, what=what, behalf=behalf
        )
        clauses.append(text + _times(len(viewed) + len(empty), table))
    elif empty:
        if len(empty) == 1:
            clauses.append(table["{who} looked and saw nothing"].format(who=who, behalf=behalf))
        else:
            key = "{who} looked {n} times and saw nothing"
            clauses.append(table[key].format(who=who, n=len(empty), behalf=behalf))
    changed = by_kind.get("changed", [])
    if changed:
        clauses.append(_changes(changed, who=who, has=has, behalf=behalf, lang=lang))
    denied = by_kind.get("denied", [])
    if len(denied) == 1:
        clauses.append(denied[0].sentence)
    elif denied:
        key = "{who} tried {n} times to see something not allowed"
        clauses.append(table[key].format(who=who, n=len(denied), behalf=behalf))
    return ". ".join(clauses)


def _what_of(lines: Sequence[LogLine], lang: str) -> str:
    words = TYPE_WORDS_EN if lang == "en" else TYPE_WORDS
    kinds = [t for line in lines for t in line.types if t in words]
    if not kinds:
        family = any(t.startswith(FAMILY_PREFIX) for line in lines for t in line.types)
        return _data_words(FAMILY_PREFIX if family else "", lang)
    return join_words([words[t] for t in kinds], lang)


def _changes(lines: Sequence[LogLine], *, who: str, has: str, behalf: str, lang: str) -> str:
    """ "Samenwerkplan-import heeft 7 doelen toegevoegd": counted per thing and per change."""
    table = LOG_WORDS["en" if lang == "en" else "nl"]
    nouns = NOUNS["en" if lang == "en" else "nl"]
    counts: dict[tuple[str, str], set[str]] = {}
    for line in lines:
        for ref in line.entities or tuple(f"{t}/?{line.when}" for t in line.types):
            kind = ref.split("/", 1)[0]
            counts.setdefault((line.verb, kind), set()).add(ref)
    parts = []
    for (verb, kind), refs in counts.items():
        one, many = nouns.get(kind, (TYPE_WORDS.get(kind, kind), TYPE_WORDS.get(kind, kind)))
        noun = one if len(refs) == 1 else many
        verb_words = table.get(verb, verb)
        parts.append(
            table["{count} {noun} {verb}"].format(count=len(refs), noun=noun, verb=verb_words)
        )
    changes = join_words(parts, lang)
    return table["{who} {changes}"].format(who=who, has=has, changes=changes, behalf=behalf)


# -- apps ---------------------------------------------------------------------------------

# The approval page's words (``oauth/router.py`` describe_scope), in English.
SCOPE_WORDS_EN = {
    "Patient": "your name and details",
    "CarePlan": "your plan",
    "Goal": "your goals",
    "CareTeam": "who helps you",
    "RelatedPerson": "the people around you",
    "Organization": "the organisations",
    "Practitioner": "the professionals",
    "Consent": "who may see what",
    "Observation": "your scores",
    "Provenance": "who changed something",
    "AuditEvent": "who has looked",
    "Group": "who is in your family",
    "*": "all your data",
}


def app_may(scopes: Iterable[str], lang: str = "nl") -> list[str]:
    """What an app may do, in the same plain sentences as the page where she said yes."""

    lines: list[str] = []
    for text in scopes:
        if lang != "en":
            line = describe_scope(text)
        else:
            try:
                scope = parse_scope(text, known_types=RESOURCE_TYPES)
            except InvalidScope:
                continue
            if isinstance(scope, str):
                line = {
                    "openid": "know who you are",
                    "offline_access": "use your data later too, when you are not logged in",
                }.get(scope)
            else:
                assert isinstance(scope, ResourceScope)
                verbs = [
                    verb
                    for letters, verb in (
                        ({"r", "s"}, "see"),
                        ({"c"}, "add"),
                        ({"u"}, "change"),
                        ({"d"}, "remove"),
                    )
                    if scope.permissions & letters
                ]
                what = SCOPE_WORDS_EN.get(scope.resource_type, scope.resource_type)
                limit = " (part of it)" if scope.query else ""
                line = f"{join_words(verbs, 'en')} {what}{limit}" if verbs else None
        if line and line not in lines:
            lines.append(line)
    return lines
