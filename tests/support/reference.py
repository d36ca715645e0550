"""An independent reference for the access decision: who may see what, read from the
resources themselves.

Design section 3, ``allowed = token scopes ∩ grants from active Consents ∩ the Patient
compartment``, restated from FHIR R4 Consent (https://hl7.org/fhir/R4/consent.html) and
SMART App Launch 2 scopes, for the tests to compare every answer of the vault with. It reads
the Consent resources as the inwoner wrote them (provisions and their one level of
nesting, actors, actions, classes, data with ``instance`` or ``related`` meaning, security
labels, periods, purposes) and the other resources' own JSON (their references and
``meta.security``). It shares no code with ``vault/consent/compile.py``,
``vault/consent/enforce.py`` or the repository's SQL: a bug there cannot hide here.

It only knows the Consents the vault accepted (the harness writes nothing the vault
refused), so it does not repeat the compiler's refusals.

The rules the vault keeps, written out once:

- The shared directory (Organization, Practitioner) is visible to any caller whose scopes
  cover the type.
- An inwoner's app and a representative with a legal basis see the inwoner's own
  compartment, AuditEvents included.
- A partner (or someone of the network) sees a compartment resource when an active
  Consent of that inwoner has a permit provision that matches and no deny provision of
  that same Consent matches. Deny by default. AuditEvent and Consent are never granted.
- A partner also sees every live Consent that names it as an actor, in any provision,
  whatever its status: it may know its own grant.
- ``related`` data: the named resource (while it exists) and the resources it refers to,
  read twice: when the Consent was written and now. A permit needs both (a later write,
  a partner's ``correct`` above all, never widens it); a deny takes either.
- A deleted resource keeps its labels for the decision; what it referred to no longer
  counts, and it is answered 410 to whoever may see it, 404 to everyone else.
- Versions and history are decided by the resource as it is now.
- A child's Consent (issue 17, docs/family.md): one written while its inwoner was under 18
  (``meta.lastUpdated`` against her ``Patient.birthDate``) and signed (``performer``) by a
  RelatedPerson but not by the child holds only while she is under 12, on the calendar of
  Amsterdam. Here the age is read by comparing ISO dates as text; born on 29 February, the
  anniversary "YYYY-02-29" is past once the day is "YYYY-03-01" in a common year.
- A family plan (issue 17, docs/family.md section 6): a Group heads a family compartment
  (its resources carry the Group's id where others carry a Patient's). Its members are the
  Patients its current ``member.entity`` names (a member marked ``inactive`` is none, an
  erased inwoner is none). A member's app or representative sees the family compartment.
  A partner sees a family resource when an active Consent of a member grants it by a
  permit whose matching ``data`` item is itself a resource of that family (a grant by
  class alone, or by data of her own compartment, never reaches the family); a deny of
  that Consent cuts into it as into any permit of it. ``$everything`` of a Patient is her
  own compartment only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

__all__ = [
    "Caller",
    "Record",
    "World",
    "references_in",
    "scope_letters",
]

SHARED = frozenset({"Organization", "Practitioner"})
HOME = ZoneInfo("Europe/Amsterdam")
NEVER_GRANTED = frozenset({"AuditEvent", "Consent"})
V1 = {"read": "rs", "write": "cud", "*": "cruds"}


def references_in(value: Any) -> Iterator[tuple[str, str]]:
    """Every literal ``Type/id`` reference anywhere in a resource."""
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str) and ref.count("/") == 1:
            kind, ident = ref.split("/")
            yield kind, ident
        for item in value.values():
            yield from references_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from references_in(item)


def scope_letters(scopes: list[str], *, context: str) -> dict[str, tuple[str, str | None]]:
    """``type -> (letters, query)`` from SMART scope strings of one context.

    A granular scope keeps its query (``param=system|code``); several scopes for one type
    add up their letters; a plain scope for the type wins over a granular one.
    """
    result: dict[str, tuple[str, str | None]] = {}
    for scope in scopes:
        head, _, query = scope.partition("?")
        ctx, _, rest = head.partition("/")
        if ctx != context or "." not in rest:
            continue
        kind, _, perm = rest.partition(".")
        letters = V1.get(perm, perm)
        old_letters, old_query = result.get(kind, ("", None))
        new_query = None if (kind in result and old_query is None) or not query else query
        result[kind] = ("".join(sorted(set(old_letters + letters))), new_query)
    return result


@dataclass(frozen=True)
class Caller:
    """Whoever asks: ``patient`` (an inwoner's app, a representative) or ``system``."""

    name: str
    kind: str  # "patient" | "system"
    grantees: frozenset[str] = frozenset()
    patient_id: str | None = None
    purposes: frozenset[str] = frozenset()
    scopes: tuple[str, ...] = ()  # None of them: every interaction (the page's network view)
    unrestricted: bool = False

    def letters(self, resource_type: str) -> tuple[str, str | None]:
        if self.unrestricted:
            return "cruds", None
        found = scope_letters(list(self.scopes), context=self.kind)
        own = found.get(resource_type)
        every = found.get("*")
        if own is None and every is None:
            return "", None
        if own is None:
            assert every is not None
            return every
        if every is None:
            return own
        letters = "".join(sorted(set(own[0] + every[0])))
        return letters, None if every[1] is None or own[1] is None else own[1]

    def may(self, letter: str, resource_type: str) -> bool:
        return letter in self.letters(resource_type)[0]


@dataclass
class Record:
    """One resource as the harness wrote it: every version's JSON (None for a deletion)."""

    resource_type: str
    resource_id: str
    patient_id: str | None
    versions: list[dict[str, Any] | None] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"

    @property
    def current(self) -> dict[str, Any] | None:
        return self.versions[-1] if self.versions else None

    @property
    def deleted(self) -> bool:
        return self.current is None

    def last_live(self) -> dict[str, Any]:
        for body in reversed(self.versions):
            if body is not None:
                return body
        return {}


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _bound(text: str, *, upper: bool) -> int:
    """A FHIR date or dateTime as an instant; an end covers the whole day or second given."""
    if len(text) == 10:
        day = datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
        return _micros(day + timedelta(days=1) if upper else day)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return _micros(moment) + (1_000_000 if upper else 0)


def _codes(items: list[Any]) -> set[str]:
    codes: set[str] = set()
    for item in items:
        for coding in item.get("coding", [item]) if isinstance(item, dict) else []:
            if coding.get("code"):
                codes.add(str(coding["code"]))
    return codes


@dataclass(frozen=True)
class _Rule:
    """A provision with what it inherited from its parent."""

    effect: str
    actors: frozenset[str] | None
    actions: frozenset[str] | None
    classes: frozenset[str] | None
    data: tuple[tuple[str, str, str], ...] | None
    label: tuple[str | None, str] | None
    purposes: frozenset[str] | None
    start: int | None
    end: int | None


def _inherit(node: Mapping[str, Any], parent: _Rule | None, effect: str) -> _Rule:
    def narrowed(own: set[str] | None, above: frozenset[str] | None) -> frozenset[str] | None:
        if own is None:
            return above
        return frozenset(own) if above is None else frozenset(own) & above

    actors = {a["reference"]["reference"] for a in node["actor"]} if "actor" in node else None
    data = (
        tuple(
            (*item["reference"]["reference"].split("/"), item["meaning"]) for item in node["data"]
        )
        if "data" in node
        else None
    )
    label = (
        (node["securityLabel"][0].get("system"), node["securityLabel"][0]["code"])
        if "securityLabel" in node
        else None
    )
    period = node.get("period") or {}
    start = _bound(period["start"], upper=False) if period.get("start") else None
    end = _bound(period["end"], upper=True) if period.get("end") else None
    up = parent
    return _Rule(
        effect=effect,
        actors=narrowed(actors, up.actors if up else None),
        actions=narrowed(
            _codes(node["action"]) if "action" in node else None, up.actions if up else None
        ),
        classes=narrowed(
            _codes(node["class"]) if "class" in node else None, up.classes if up else None
        ),
        data=data if data is not None else (up.data if up else None),
        label=label if label is not None else (up.label if up else None),
        purposes=narrowed(
            _codes(node["purpose"]) if "purpose" in node else None, up.purposes if up else None
        ),
        start=max([x for x in (start, up.start if up else None) if x is not None], default=None),
        end=min([x for x in (end, up.end if up else None) if x is not None], default=None),
    )


def _rules(consent: Mapping[str, Any]) -> list[_Rule]:
    root = consent["provision"]
    top = _inherit(root, None, root.get("type", "permit"))
    rules = [top] if top.effect == "permit" else []
    for child in root.get("provision", []):
        if top.effect == "deny" and child.get("type") == "deny":
            continue  # a deny inside a deny: deny by default already says it
        rules.append(_inherit(child, top, child["type"]))
    return rules


class World:
    """What the vault holds, as the harness wrote it, and the decision over it."""

    def __init__(self) -> None:
        self.records: dict[str, Record] = {}
        self._by_type: dict[str, dict[str, Record]] = {}
        # Consent ref -> named ref -> what the named resource referred to when that Consent
        # was last written (see ``written``).
        self._then: dict[str, dict[str, frozenset[tuple[str, str]]]] = {}
        # Inwoners who erased their vault: nothing of theirs is anyone's to see any more.
        self.erased: set[str] = set()

    def add(self, record: Record) -> Record:
        self.records[record.ref] = record
        self._by_type.setdefault(record.resource_type, {})[record.ref] = record
        self.written(record)
        return record

    def written(self, record: Record) -> None:
        """``record`` has a new version: a Consent fixes what its ``related`` data reach."""
        body = record.current
        if record.resource_type != "Consent" or body is None:
            return
        provisions = [body["provision"], *body["provision"].get("provision", [])]
        named = {
            item["reference"]["reference"]
            for node in provisions
            for item in node.get("data", [])
            if item.get("meaning") == "related"
        }
        self._then[record.ref] = {ref: self._references_of(ref) for ref in named}

    def _references_of(self, ref: str) -> frozenset[tuple[str, str]]:
        source = self.records.get(ref)
        if source is None or source.deleted:
            return frozenset()
        return frozenset(references_in(source.current))

    def drop(self, ref: str) -> None:
        record = self.records.pop(ref, None)
        if record is not None:
            self._by_type[record.resource_type].pop(ref, None)

    def get(self, ref: str) -> Record | None:
        return self.records.get(ref)

    def of_type(self, resource_type: str) -> list[Record]:
        return list(self._by_type.get(resource_type, {}).values())

    # -- the decision -------------------------------------------------------------------

    def _refers_to(
        self, named: tuple[str, str], target: Record, *, effect: str, consent: str
    ) -> bool:
        ref = f"{named[0]}/{named[1]}"
        wanted = (target.resource_type, target.resource_id)
        now = wanted in self._references_of(ref)
        snapshot = self._then.get(consent)
        then = now if snapshot is None else wanted in snapshot.get(ref, frozenset())
        return (now and then) if effect == "permit" else (now or then)

    def _matches(
        self,
        rule: _Rule,
        record: Record,
        caller: Caller,
        *,
        action: str,
        now: int,
        consent: str = "",
        family: str | None = None,
    ) -> bool:
        if family is not None and rule.data is None:
            return False  # only a data item of the family's own reaches the family
        if rule.actors is not None and not rule.actors & caller.grantees:
            return False
        if rule.actions is not None and action not in rule.actions:
            return False
        if record.resource_type in NEVER_GRANTED:
            return False
        if rule.classes is not None and record.resource_type not in rule.classes:
            return False
        if rule.data is not None and not any(
            (family is None or self._home_of(f"{kind}/{ident}") == family)
            and (
                (kind, ident) == (record.resource_type, record.resource_id)
                or (
                    meaning == "related"
                    and self._refers_to((kind, ident), record, effect=rule.effect, consent=consent)
                )
            )
            for kind, ident, meaning in rule.data
        ):
            return False
        if rule.label is not None:
            system, code = rule.label
            labels = record.last_live().get("meta", {}).get("security", [])
            if not any(
                tag.get("code") == code and system in (None, tag.get("system")) for tag in labels
            ):
                return False
        if rule.purposes is not None and not rule.purposes & caller.purposes:
            return False
        if rule.start is not None and now < rule.start:
            return False
        return not (rule.end is not None and now >= rule.end)

    def _names(self, consent: Record, caller: Caller) -> bool:
        body = consent.current
        if body is None:
            return False
        provisions = [body["provision"], *body["provision"].get("provision", [])]
        actors = {
            actor["reference"]["reference"] for p in provisions for actor in p.get("actor", [])
        }
        return bool(actors & caller.grantees)

    def _age(self, birth: str, instant: int) -> int:
        """Whole years on Amsterdam's calendar at ``instant``: ISO dates compared as text."""
        today = datetime.fromtimestamp(instant / 1_000_000, HOME).date().isoformat()
        years = int(today[:4]) - int(birth[:4])
        return years if today[4:] >= birth[4:] else years - 1

    def _in_force(self, consent: Record, now: int) -> bool:
        """A child's Consent signed by a parent alone: only while she is under 12."""
        body = consent.current or {}
        owner = self.records.get(f"Patient/{consent.patient_id}")
        birth = (owner.current or {}).get("birthDate") if owner is not None else None
        if not isinstance(birth, str) or len(birth) != 10:
            return True
        written = _micros(
            datetime.fromisoformat(body["meta"]["lastUpdated"].replace("Z", "+00:00"))
        )
        if self._age(birth, written) >= 18:
            return True
        signers = [p["reference"] for p in body.get("performer") or []]
        by_parent = any(s.startswith("RelatedPerson/") for s in signers)
        by_child = any(s.startswith("Patient/") for s in signers) or not signers
        return not (by_parent and not by_child) or self._age(birth, now) < 12

    def _home_of(self, ref: str) -> str | None:
        found = self.records.get(ref)
        return found.patient_id if found is not None else None

    def members(self, family: str | None) -> set[str]:
        """The Patients the family's Group names now (none if it is no family)."""
        group = self.records.get(f"Group/{family}")
        if group is None or group.current is None:
            return set()
        found = set()
        for member in group.current.get("member", []):
            ref = (member.get("entity") or {}).get("reference", "")
            if not member.get("inactive") and ref.startswith("Patient/"):
                found.add(ref.split("/", 1)[1])
        return found - self.erased

    def decides(self, caller: Caller, record: Record, *, now: int, action: str = "access") -> bool:
        """The row decision, scopes aside: may ``caller`` see this resource (deleted or not)?"""
        if record.patient_id is None:
            return record.resource_type in SHARED
        if record.patient_id in self.erased:
            return False
        members = self.members(record.patient_id)
        if caller.kind == "patient":
            return record.patient_id == caller.patient_id or caller.patient_id in members
        if action == "access" and record.resource_type == "Consent" and self._names(record, caller):
            return True
        for consent in self.of_type("Consent"):
            body = consent.current
            if body is None or body.get("status") != "active":
                continue
            if consent.patient_id != record.patient_id and consent.patient_id not in members:
                continue
            family = record.patient_id if consent.patient_id != record.patient_id else None
            if not self._in_force(consent, now):
                continue
            rules = _rules(body)
            ref = consent.ref
            if any(
                r.effect == "deny"
                and self._matches(r, record, caller, action=action, now=now, consent=ref)
                for r in rules
            ):
                continue
            if any(
                r.effect == "permit"
                and self._matches(
                    r, record, caller, action=action, now=now, consent=ref, family=family
                )
                for r in rules
            ):
                return True
        return False

    def restricted_out(self, caller: Caller, record: Record) -> bool:
        """A granular scope (``Goal.rs?category=system|code``) that this resource fails."""
        query = caller.letters(record.resource_type)[1]
        if query is None:
            return False
        if record.deleted:
            return True  # a deleted resource has no search index left to match
        param, _, value = query.partition("=")
        system, _, code = value.rpartition("|")
        element = {"category": "category"}[param]
        return not any(
            coding.get("code") == code and (not system or coding.get("system") == system)
            for concept in record.current.get(element, [])  # type: ignore[union-attr]
            for coding in concept.get("coding", [])
        )

    def sees(self, caller: Caller, record: Record, *, now: int, letter: str = "r") -> bool:
        """Scopes, the row decision and granular restrictions together."""
        return (
            caller.may(letter, record.resource_type)
            and self.decides(caller, record, now=now)
            and not self.restricted_out(caller, record)
        )

    def search(
        self, caller: Caller, resource_type: str, *, patient: str | None, now: int
    ) -> set[str]:
        """What ``Type?patient=…`` (or the whole type) returns: live, visible resources."""
        return {
            r.ref
            for r in self.of_type(resource_type)
            if not r.deleted
            and (patient is None or r.patient_id == patient)
            and self.sees(caller, r, now=now, letter="s")
        }
