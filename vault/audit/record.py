"""One record of the access log: the access decision, its AuditEvent, its chain link.

``AuditRecord`` is what the vault knows of a decision (who, what, how it ended); ``to_fhir``
makes it the FHIR R4 AuditEvent (https://hl7.org/fhir/R4/auditevent.html) the inwoner reads.
Each record is a link in its inwoner's hash chain: ``link_hash`` over the record's JSON and
the link before it, under ``chain_key``, a key only the master key opens. The writing is in
``audit/log.py``, the checking in ``audit/verify.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vault.kernel.fhirdata import format_instant
from vault.store.models import SHARED_OWNER

if TYPE_CHECKING:
    from vault.kernel.runtime import Runtime

__all__ = [
    "GENESIS",
    "VAULT_CHAIN",
    "AuditRecord",
    "chain_key",
    "link_hash",
    "owner_of",
    "record_id",
]

VAULT_CHAIN = "_vault"  # the chain of records that concern no inwoner
GENESIS = "0" * 64  # what the first link of a chain follows

_ACTIONS = {
    "read": "R",
    "vread": "R",
    "search-type": "E",
    "history-instance": "R",
    "history-type": "R",
    "create": "C",
    "update": "U",
    "delete": "D",
    "export": "E",
}


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One access decision. ``patient_id`` None: it concerns no known inwoner."""

    patient_id: str | None
    interaction: str  # restful-interaction code: read, search-type, update, ...
    permitted: bool
    client_id: str | None
    organization: str | None  # "Organization/x"
    account_id: str | None
    entities: Sequence[str] = ()  # "Type/id" the decision was about
    query: str | None = None  # the search, as sent
    purposes: Sequence[str] = ()
    representative: str | None = None  # "RelatedPerson/x" acting on behalf of the inwoner
    recorded: int = 0

    def to_fhir(self, *, resource_id: str, owner_type: str = "Patient") -> dict[str, Any]:
        """The AuditEvent; ``owner_type`` is what owns the compartment: an inwoner's
        ``Patient``, or a family's ``Group`` (the family plan, docs/family.md section 6)."""
        # Long on purpose: one AuditEvent document, element by element, as FHIR R4 lays it out.
        owner = f"{owner_type}/{self.patient_id}" if self.patient_id else None
        agent: dict[str, Any] = {
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                        "code": "IRCP" if self.organization else "AUT",
                    }
                ]
            },
            "requestor": True,
        }
        if self.organization:
            agent["who"] = {"reference": self.organization}
        elif self.patient_id and owner_type == "Patient":
            # The inwoner herself, her app or someone acting for her. In a family's
            # compartment the member is known by her account only (``name`` below).
            agent["who"] = {"reference": f"Patient/{self.patient_id}"}
        if self.client_id:
            agent["altId"] = self.client_id
        if self.account_id:
            agent["name"] = f"account {self.account_id}"
        agents = [agent]
        if self.representative:
            agents.append(
                {
                    "who": {"reference": self.representative},
                    "requestor": True,
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-RoleClass",
                                "code": "AGNT",
                            }
                        ]
                    },
                }
            )
        entities: list[dict[str, Any]] = []
        if owner is not None:
            entities.append(
                {
                    "what": {"reference": owner},
                    "type": {
                        "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                        "code": "1",
                    },
                }
            )
        entities += [{"what": {"reference": ref}} for ref in self.entities if ref != owner]
        if self.query:
            entities.append({"query": base64.b64encode(self.query.encode()).decode("ascii")})
        event: dict[str, Any] = {
            "resourceType": "AuditEvent",
            "id": resource_id,
            "type": {
                "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                "code": "rest",
                "display": "RESTful Operation",
            },
            "subtype": [
                {"system": "http://hl7.org/fhir/restful-interaction", "code": self.interaction}
            ],
            "action": _ACTIONS.get(self.interaction, "E"),
            "recorded": format_instant(self.recorded),
            "outcome": "0" if self.permitted else "4",
            "agent": agents,
            "source": {"observer": {"display": "Regiekluis"}},
        }
        if not self.permitted:
            event["outcomeDesc"] = "denied: outside the inwoner's consent"
        if self.purposes:
            event["purposeOfEvent"] = [
                {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": p}
                    ]
                }
                for p in self.purposes
            ]
        if entities:
            event["entity"] = entities
        return event


def record_id() -> str:
    """A new AuditEvent's id: a UUID version 7 (RFC 9562 5.7), 48 bits of Unix milliseconds
    then 74 random bits, so a group commit's records share the right-hand page of the id
    index instead of dirtying a random page each (docs/performance.md). The id tells when
    the record was written, as the record does; only its inwoner can read either."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    version, variant = 0x7 << 76, 0b10 << 62
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | version | (rand >> 68) << 64 | variant
    # Written out directly: ``str(uuid.UUID(int=…))`` cost twice as much (a test holds the
    # text to ``uuid``'s own form).
    text = f"{value | (rand & ((1 << 62) - 1)):032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def chain_key(runtime: Runtime) -> bytes:
    return runtime.blind.derive(b"regiekluis/audit-chain")


def link_hash(key: bytes, prev_hash: str, body: bytes) -> str:
    return hmac.new(key, prev_hash.encode("ascii") + body, hashlib.sha256).hexdigest()


def owner_of(chain: str) -> str:
    return SHARED_OWNER if chain == VAULT_CHAIN else chain
