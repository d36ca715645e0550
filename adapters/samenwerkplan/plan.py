"""The samenwerkplan file: Markdown with five fixed headings, read into a ``Plan``.

The format is documented, with a complete example, in ``docs/samenwerkplan.md``. In short::

    ---
    id: plan-2026-11          (optional; else the title names the plan)
    titel: Samenwerkplan van Sanne
    datum: 2026-11-20         (the kitchen-table conversation)
    periode: 2026-11-20 tot 2026-12-20
    ---
    ## Wat wil ik
    1. Ik wil mijn schulden op een rij. | domein: financien
    ## Wat kan ik
    - Ik open elke vrijdag mijn post. | wie: Mirjam de Groot
    ## Wat heb ik nodig
    - Hulp bij schuldhulp. | wie: Sociaal Team Voorbeeldstad | status: gepland
    ## Afspraken
    - Anouk belt de schuldhulp. | wie: Anouk Smit | wanneer: 2026-11-27
    ## Wie doen er mee
    - Mirjam de Groot | relatie: vriendin
    - Sociaal Team Voorbeeldstad | organisatie

Parsing reads no network and writes nothing: every error is found here, before the importer
sends a single request, and names the line (``PlanError``).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

from adapters.samenwerkplan.codes import LEVENSDOMEINEN

__all__ = [
    "SECTIONS",
    "STATUSES",
    "Activity",
    "Participant",
    "Plan",
    "PlanError",
    "Wish",
    "parse_plan",
    "read_plan",
]

Section = Literal["wil", "kan", "nodig", "afspraken", "wie"]

# heading text (lower case, without a trailing "?" or ":") -> section
SECTIONS: dict[str, Section] = {
    "wat wil ik": "wil",
    "wat kan ik": "kan",
    "wat heb ik nodig": "nodig",
    "afspraken": "afspraken",
    "wie doen er mee": "wie",
}
_HEADING_TEXT = {
    "wil": "Wat wil ik",
    "kan": "Wat kan ik",
    "nodig": "Wat heb ik nodig",
    "afspraken": "Afspraken",
    "wie": "Wie doen er mee",
}

# CarePlan.activity.detail.status (FHIR R4 care-plan-activity-status), with Dutch words
STATUSES = {
    "not-started": "not-started",
    "scheduled": "scheduled",
    "in-progress": "in-progress",
    "on-hold": "on-hold",
    "completed": "completed",
    "cancelled": "cancelled",
    "nog niet begonnen": "not-started",
    "gepland": "scheduled",
    "bezig": "in-progress",
    "gepauzeerd": "on-hold",
    "klaar": "completed",
    "gedaan": "completed",
    "gestopt": "cancelled",
}
_DEFAULT_STATUS: dict[Section, str] = {
    "kan": "in-progress",
    "nodig": "not-started",
    "afspraken": "scheduled",
}
# which "| key: value" fields each section allows; a bare word is a flag
_FIELDS: dict[Section, frozenset[str]] = {
    "wil": frozenset({"domein"}),
    "kan": frozenset({"wie", "status", "wanneer"}),
    "nodig": frozenset({"wie", "status", "wanneer"}),
    "afspraken": frozenset({"wie", "status", "wanneer"}),
    "wie": frozenset({"relatie", "rol", "namens", "organisatie"}),
}
_SELF = frozenset({"ik", "mij", "mijzelf", "zelf"})  # "wie: ik" is the inwoner
_FRONT_MATTER_KEYS = frozenset({"id", "titel", "datum", "periode"})

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_ITEM = re.compile(r"^(?:[-*+]|\d{1,3}[.)])\s+(.*)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class PlanError(ValueError):
    """The file is not a samenwerkplan this importer understands; ``line`` says where."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}, line {line}: {message}")
        self.source = source
        self.line = line
        self.message = message


@dataclass(frozen=True, slots=True)
class Wish:
    """One item of *Wat wil ik*: a Goal in the inwoner's own words."""

    text: str
    rank: int  # 1 = listed first = most important to the inwoner
    domain: str | None  # a code of the vault's levensdomein CodeSystem
    line: int

    @property
    def key(self) -> str:
        """Stable across imports while the words stay the same (case and spaces aside)."""
        normal = " ".join(self.text.casefold().split())
        return hashlib.sha256(normal.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Activity:
    """One item of *Wat kan ik*, *Wat heb ik nodig* or *Afspraken*: a CarePlan.activity."""

    section: Section
    text: str
    who: str | None  # a name of *Wie doen er mee*; None: the inwoner
    status: str
    start: str | None
    end: str | None
    line: int


@dataclass(frozen=True, slots=True)
class Participant:
    """One item of *Wie doen er mee*: a member of the CareTeam."""

    name: str
    kind: Literal["netwerk", "professional", "organisatie"]
    relation: str | None
    role: str | None
    on_behalf_of: str | None  # an organisation's name, for a professional
    line: int


@dataclass(frozen=True, slots=True)
class Plan:
    """A parsed samenwerkplan: the words exactly as written, in the order written."""

    key: str  # the plan's identifier value: front matter ``id``, else made from the title
    title: str
    date: str | None
    start: str | None
    end: str | None
    wishes: tuple[Wish, ...]
    activities: tuple[Activity, ...]
    participants: tuple[Participant, ...]
    source: str = field(default="plan")


def read_plan(path: Path) -> Plan:
    """Parse the samenwerkplan in the UTF-8 file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError(path.name, 1, "the file is not UTF-8 text") from exc
    return parse_plan(text, source=path.name)


def parse_plan(text: str, *, source: str = "plan") -> Plan:
    """Parse a samenwerkplan; ``PlanError`` names the first line that is wrong."""
    return _Parser(text, source).parse()


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.lines = text.splitlines()
        self.source = source
        self.meta: dict[str, str] = {}
        self.h1: str | None = None
        self.items: dict[Section, list[tuple[int, str]]] = {}

    def error(self, line: int, message: str) -> PlanError:
        return PlanError(self.source, line, message)

    def parse(self) -> Plan:
        start = self._front_matter()
        self._sections(start)
        missing = [s for s in _HEADING_TEXT if s not in self.items]
        if missing:
            names = ", ".join(f"'## {_HEADING_TEXT[s]}'" for s in missing)
            raise self.error(
                len(self.lines) or 1, f"missing heading {names} (every plan has all five)"
            )
        participants = tuple(self._participant(n, t) for n, t in self.items["wie"])
        known = self._names(participants)
        wishes = tuple(self._wish(rank, n, t) for rank, (n, t) in enumerate(self.items["wil"], 1))
        if not wishes:
            raise self.error(self._heading_line("wil"), "'Wat wil ik' needs at least one item")
        start_date, end_date = self._period()
        activities = tuple(
            self._activity(section, n, t, known, (start_date, end_date))
            for section in ("kan", "nodig", "afspraken")
            for n, t in self.items[section]
        )
        title = self.meta.get("titel") or self.h1 or ""
        key = self.meta.get("id") or _slug(title)
        if not key:
            raise self.error(1, "give the plan a title ('# …') or an 'id:' in the front matter")
        return Plan(
            key=key,
            title=title or key,
            date=self._date_field("datum"),
            start=start_date,
            end=end_date,
            wishes=wishes,
            activities=activities,
            participants=participants,
            source=self.source,
        )

    # -- structure -------------------------------------------------------------------------

    def _front_matter(self) -> int:
        """Read ``key: value`` lines between two ``---`` lines; return the first body line."""
        self.meta_lines: dict[str, int] = {}
        if not self.lines or self.lines[0].strip() != "---":
            return 0
        for index in range(1, len(self.lines)):
            line = self.lines[index].strip()
            number = index + 1
            if line == "---":
                return index + 1
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition(":")
            key = key.strip().lower()
            if not sep or key not in _FRONT_MATTER_KEYS:
                known = ", ".join(sorted(_FRONT_MATTER_KEYS))
                raise self.error(number, f"front matter takes 'key: value' lines ({known})")
            self.meta[key] = value.strip().strip("\"'")
            self.meta_lines[key] = number
        raise self.error(1, "the front matter that starts here is not closed with '---'")

    def _sections(self, start: int) -> None:
        self.heading_lines: dict[Section, int] = {}
        current: Section | None = None
        for index in range(start, len(self.lines)):
            raw = self.lines[index]
            number = index + 1
            stripped = raw.strip()
            if not stripped or (stripped.startswith("<!--") and stripped.endswith("-->")):
                continue
            heading = _HEADING.match(stripped)
            if heading:
                name = heading.group(2).strip().rstrip("?:").strip().lower()
                section = SECTIONS.get(name)
                if section is None:
                    if len(heading.group(1)) == 1 and current is None and self.h1 is None:
                        self.h1 = heading.group(2).strip()
                        continue
                    expected = ", ".join(_HEADING_TEXT.values())
                    raise self.error(
                        number, f"unknown heading '{heading.group(2)}'; expected one of: {expected}"
                    )
                if section in self.items:
                    raise self.error(number, f"'{_HEADING_TEXT[section]}' appears twice")
                current = section
                self.items[section] = []
                self.heading_lines[section] = number
                continue
            if current is None:
                raise self.error(number, "text before the first heading ('## Wat wil ik')")
            item = _ITEM.match(stripped)
            if item:
                self.items[current].append((number, item.group(1).strip()))
            elif raw[:1].isspace() and self.items[current]:
                # an indented line continues the item above it
                first, words = self.items[current][-1]
                self.items[current][-1] = (first, f"{words} {stripped}")
            else:
                raise self.error(number, "expected a list item ('- …' or '1. …')")

    def _heading_line(self, section: Section) -> int:
        return self.heading_lines.get(section, 1)

    # -- items -----------------------------------------------------------------------------

    def _fields(self, section: Section, number: int, text: str) -> tuple[str, dict[str, str]]:
        words, *parts = (part.strip() for part in text.split(" | "))
        if not words:
            raise self.error(number, "an item needs words before its first '|'")
        fields: dict[str, str] = {}
        for part in parts:
            key, sep, value = part.partition(":")
            key = key.strip().lower()
            if key not in _FIELDS[section]:
                allowed = ", ".join(sorted(_FIELDS[section]))
                raise self.error(
                    number,
                    f"unknown field '{key}' under '{_HEADING_TEXT[section]}'; allowed: {allowed}",
                )
            if sep and not value.strip():
                raise self.error(number, f"the field '{key}' is empty")
            fields[key] = value.strip() if sep else ""
        return words, fields

    def _wish(self, rank: int, number: int, text: str) -> Wish:
        words, fields = self._fields("wil", number, text)
        domain = fields.get("domein")
        if domain is not None:
            domain = _slug(domain)
            if domain not in LEVENSDOMEINEN:
                known = ", ".join(LEVENSDOMEINEN)
                raise self.error(number, f"unknown life domain '{fields['domein']}'; use {known}")
        return Wish(text=words, rank=rank, domain=domain, line=number)

    def _participant(self, number: int, text: str) -> Participant:
        name, fields = self._fields("wie", number, text)
        if "organisatie" in fields:
            if fields["organisatie"] or set(fields) - {"organisatie", "rol"}:
                raise self.error(number, "an organisation takes only the fields 'rol'")
            kind: Literal["netwerk", "professional", "organisatie"] = "organisatie"
        elif "namens" in fields:
            kind = "professional"
        else:
            kind = "netwerk"
        return Participant(
            name=name,
            kind=kind,
            relation=fields.get("relatie"),
            role=fields.get("rol"),
            on_behalf_of=fields.get("namens"),
            line=number,
        )

    def _names(self, participants: tuple[Participant, ...]) -> dict[str, str]:
        names: dict[str, str] = {}
        for person in participants:
            folded = person.name.casefold()
            if folded in names:
                raise self.error(person.line, f"'{person.name}' is listed twice")
            names[folded] = person.name
        for person in participants:
            org = person.on_behalf_of
            if org is not None and names.get(org.casefold()) is None:
                raise self.error(
                    person.line, f"'{org}' is not listed under 'Wie doen er mee' as organisatie"
                )
        return names

    def _activity(
        self,
        section: Section,
        number: int,
        text: str,
        names: dict[str, str],
        period: tuple[str | None, str | None],
    ) -> Activity:
        words, fields = self._fields(section, number, text)
        who = fields.get("wie")
        if who is None and section == "afspraken":
            raise self.error(number, "an agreement says who does it: '| wie: …' (or 'wie: ik')")
        if who is not None and who.casefold() in _SELF:
            who = None
        if who is not None:
            if who.casefold() not in names:
                raise self.error(number, f"'{who}' is not listed under 'Wie doen er mee'")
            who = names[who.casefold()]
        status_word = fields.get("status", _DEFAULT_STATUS[section]).lower()
        status = STATUSES.get(status_word)
        if status is None:
            raise self.error(
                number, f"unknown status '{status_word}'; use one of: {', '.join(STATUSES)}"
            )
        start, end = period
        if "wanneer" in fields:
            start, end = self._span(number, fields["wanneer"])
        return Activity(section, words, who, status, start, end, number)

    # -- dates -----------------------------------------------------------------------------

    def _span(self, number: int, text: str) -> tuple[str, str]:
        first, sep, last = text.partition(" tot ")
        start = self._date(number, first.strip())
        end = self._date(number, last.strip()) if sep else start
        if end < start:
            raise self.error(number, f"'{text}' ends before it starts")
        return start, end

    def _date(self, number: int, text: str) -> str:
        if _DATE.match(text):
            try:
                return date.fromisoformat(text).isoformat()
            except ValueError:
                pass
        raise self.error(number, f"'{text}' is not a date like 2026-11-20")

    def _date_field(self, key: str) -> str | None:
        if key not in self.meta:
            return None
        return self._date(self.meta_lines[key], self.meta[key])

    def _period(self) -> tuple[str | None, str | None]:
        if "periode" not in self.meta:
            return None, None
        return self._span(self.meta_lines["periode"], self.meta["periode"])
