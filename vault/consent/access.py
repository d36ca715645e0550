"""Who is asking: the immutable context every FHIR request carries.

One FastAPI dependency (``vault.consent.caller.AccessDep``) builds an ``AccessContext`` per request
(from the bearer token, in ``oauth/protector.py``); the repository is constructed with it
and applies it inside every query. The context says who is asking, on behalf of which
organisation or inwoner, and what the token's scopes allow; the consent engine narrows a
partner's view further, per inwoner, from the inwoner's Consents.

    kind      whose view                          compartment rows visible
    full      the operator's tools, tests         all
    patient   the inwoner's app (patient/ scopes) the inwoner's own (plus shared rows)
    system    a partner system (system/ scopes)   only what Consents grant (plus shared)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["AccessContext", "Interaction", "Permissions", "registered_purposes"]

# SMART v2 permission letters: create, read, update, delete, search.
Interaction = Literal["c", "r", "u", "d", "s"]


# The statistics purpose (vault/reports/codes.py) is the vault's own: a Consent permitting
# it lets the vault count the inwoner, never lets a client read her plan.
_VAULT_PURPOSES = frozenset({"HRESCH"})


def registered_purposes(text: str | None) -> frozenset[str]:
    """The purposes of use a client may act under: its registration, minus the vault's."""
    return frozenset((text or "").split()) - _VAULT_PURPOSES


@dataclass(frozen=True, slots=True)
class Permissions:
    """What a token's resource scopes allow, per resource type.

    ``letters`` maps a type (or ``*``) to the interactions of ``cruds`` it allows;
    ``queries`` holds the granular v2 restrictions: a type whose reads are allowed only
    where one of the listed searches matches (an empty list: no restriction).
    """

    letters: dict[str, frozenset[str]]
    queries: dict[str, tuple[tuple[tuple[str, str], ...], ...]]

    def allows(self, letter: str, resource_type: str) -> bool:
        return letter in self.letters.get(resource_type, frozenset()) or letter in (
            self.letters.get("*", frozenset())
        )

    def types_with(self, letter: str) -> frozenset[str] | None:
        """The types on which ``letter`` is allowed; None when every type is."""
        if letter in self.letters.get("*", frozenset()):
            return None
        return frozenset(t for t, ls in self.letters.items() if letter in ls)

    @classmethod
    def everything(cls) -> Permissions:
        """Every interaction on every type: the operator, and the inwoner on her own page
        (what she sees is still bounded by the context's kind: her own compartment)."""
        return cls({"*": frozenset("cruds")}, {})


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessContext:
    """No field has a default: whoever builds a context says what every part of it is, so
    a context can never be the operator's by omission. ``full`` builds the operator's."""

    subject: str  # "operator", "client:<client_id>", ...
    kind: Literal["full", "patient", "system"]
    patient_id: str | None  # the compartment of a patient-context token
    organization: str | None  # "Organization/<id>" the client acts for
    client_id: str | None
    account_id: str | None  # the person who logged in, for app tokens
    permissions: Permissions  # what the scopes allow (``Permissions.everything()``: all)
    purposes: frozenset[str]  # purposes of use the client is registered for
    practitioner: str | None  # "Practitioner/<id>" when the person is known
    representative: str | None  # "RelatedPerson/<id>" acting for the inwoner

    @property
    def grantees(self) -> frozenset[str]:
        """The actors a Consent may name to let this caller in."""
        return frozenset(
            a for a in (self.organization, self.practitioner, self.representative) if a
        )

    @property
    def signer(self) -> str | None:
        """Who signs a Consent this caller writes (``Consent.performer``, docs/family.md):
        the operator's tools sign nothing of their own, a representative signs as their
        RelatedPerson, the inwoner (her page, her app) as her Patient."""
        if self.kind == "full":
            return None
        if self.representative is not None:
            return self.representative
        return f"Patient/{self.patient_id}"

    @classmethod
    def full(cls, subject: str = "operator") -> AccessContext:
        """Unrestricted access: the operator's tools and tests of the store itself."""
        return cls(
            subject=subject,
            kind="full",
            patient_id=None,
            organization=None,
            client_id=None,
            account_id=None,
            permissions=Permissions.everything(),
            purposes=frozenset(),
            practitioner=None,
            representative=None,
        )

    def allows(self, interaction: Interaction, resource_type: str) -> bool:
        return self.permissions.allows(interaction, resource_type)

    def may_read(self, resource_type: str) -> bool:
        return self.allows("r", resource_type) or self.allows("s", resource_type)

    def may_write(self, resource_type: str) -> bool:
        return any(self.allows(letter, resource_type) for letter in ("c", "u", "d"))

    def query_restrictions(self, resource_type: str) -> tuple[tuple[tuple[str, str], ...], ...]:
        """Granular SMART v2 scopes: a read must match one of these searches (none: free)."""
        return self.permissions.queries.get(resource_type, ())
