"""Who is asking: the immutable context every FHIR request carries.

One FastAPI dependency (``vault.deps.AccessDep``) builds an ``AccessContext`` per request;
the repository is constructed with it and applies it inside every query. The context says
who is asking, on behalf of which organisation or inwoner, and which resource types the
credentials cover; the consent engine narrows that further per inwoner.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AccessContext"]


@dataclass(frozen=True, slots=True)
class AccessContext:
    # Who: "operator", "client:<client_id>", "inwoner:<patient id>", ...
    subject: str
    # Restricts every read and write to one Patient compartment (patient/ tokens, inwoner).
    patient_id: str | None = None
    # The Organization reference the caller acts for, e.g. "Organization/mee".
    organization: str | None = None
    # Resource types the credentials cover for reading / writing; None means all.
    read_types: frozenset[str] | None = None
    write_types: frozenset[str] | None = frozenset()

    @classmethod
    def full(cls, subject: str = "operator") -> AccessContext:
        """Unrestricted access: the operator's tools and tests of the store itself."""
        return cls(subject=subject, read_types=None, write_types=None)

    def may_read(self, resource_type: str) -> bool:
        return self.read_types is None or resource_type in self.read_types

    def may_write(self, resource_type: str) -> bool:
        return self.write_types is None or resource_type in self.write_types
