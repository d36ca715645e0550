"""Mijn netwerk: people around the inwoner, their invitations and their roles.

Taking someone out ends every way in (Consents, role, sessions, tokens, invitations) in the
route's one transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from vault.consent.models import NetworkLink
from vault.consent.representation import current_roles, end_roles, set_role
from vault.fhir.repository import Repository
from vault.kernel.runtime import now_micros
from vault.oauth.apps import revoke_account_tokens, stop_apps
from vault.oauth.models import WebSession
from vault.page.data import (
    INVITATION_SECONDS,
    LEGAL_BASIS,
    LEGAL_BASIS_WORDS,
    MICROS,
    compartment_search,
    display_name,
    name_of,
    version_of,
    without_meta,
)
from vault.page.models import Invitation
from vault.page.sharing_data import (
    apply_updates,
    revoke_updates,
    stop_updates,
)


@dataclass
class Member:
    reference: str
    name: str
    relation: str
    account: bool
    legal_basis: str | None


def network(repo: Repository, conn: Connection, *, patient_id: str) -> list[Member]:
    links = {
        f"RelatedPerson/{link.related_person_id}": link
        for link in conn.execute(select(NetworkLink).where(NetworkLink.patient_id == patient_id))
    }
    roles = current_roles(conn, patient_id=patient_id)
    members = []
    for person in compartment_search(repo, conn, "RelatedPerson", patient_id):
        ref = f"RelatedPerson/{person['id']}"
        relation = ((person.get("relationship") or [{}])[0]).get("text", "")
        link = links.get(ref)
        members.append(
            Member(
                ref,
                display_name(person),
                relation,
                link is not None,
                roles.get(ref) if link is not None else None,
            )
        )
    members.sort(key=lambda m: m.name.casefold())
    return members


def add_person(
    repo: Repository, conn: Connection, *, patient_id: str, name: str, relation: str
) -> str:
    stored, _ = repo.create(
        conn,
        "RelatedPerson",
        {
            "resourceType": "RelatedPerson",
            "active": True,
            "patient": {"reference": f"Patient/{patient_id}"},
            "relationship": [{"text": relation}] if relation else [],
            "name": [{"text": name}],
        },
    )
    return stored.resource_id


def invite(conn: Connection, *, patient_id: str, related_person_id: str) -> str:
    """A one-time link secret; only its hash is kept."""
    token = secrets.token_urlsafe(32)
    now = now_micros()
    conn.execute(
        insert(Invitation).values(
            token_hash=hashlib.sha256(token.encode()).hexdigest(),
            patient_id=patient_id,
            related_person_id=related_person_id,
            created_at=now,
            expires_at=now + INVITATION_SECONDS * MICROS,
            used_at=None,
        )
    )
    return token


def open_invitation(conn: Connection, token: str, *, now: int) -> Any:
    """The open invitation row for this link secret, or None."""
    return conn.execute(
        select(Invitation).where(
            Invitation.token_hash == hashlib.sha256(token.encode()).hexdigest(),
            Invitation.used_at.is_(None),
            Invitation.expires_at > now,
        )
    ).first()


def redeem_invitation(conn: Connection, invitation: Any, *, account_id: str) -> bool:
    """Use the link; False if another request used it first."""
    now = now_micros()
    result = conn.execute(
        update(Invitation)
        .where(Invitation.token_hash == invitation.token_hash, Invitation.used_at.is_(None))
        .values(used_at=now)
    )
    if result.rowcount != 1:
        return False
    conn.execute(
        insert(NetworkLink).values(
            account_id=account_id,
            patient_id=invitation.patient_id,
            related_person_id=invitation.related_person_id,
            legal_basis=None,
            created_at=now,
        )
    )
    return True


def set_representative(
    repo: Repository,
    conn: Connection,
    *,
    patient_id: str,
    person: dict[str, Any],
    legal_basis: str | None,
) -> bool:
    """Name a representative (or undo it), in FHIR and in the role table, in one go.

    The RelatedPerson carries the legal basis as a relationship coding, so partners and the
    inwoner's download see it; the right itself comes only from ``web_representation``
    (``consent/representation.py``), which a partner's write cannot touch. False when the
    person has no account yet.
    """
    linked = conn.execute(
        select(NetworkLink.account_id).where(
            NetworkLink.patient_id == patient_id,
            NetworkLink.related_person_id == str(person["id"]),
        )
    ).first()
    if linked is None:
        return False
    set_role(
        conn,
        patient_id=patient_id,
        related_person_id=str(person["id"]),
        legal_basis=legal_basis,
        now=now_micros(),
    )
    body = without_meta(person)
    relationships = [
        concept
        for concept in body.get("relationship") or []
        if not any(c.get("system") == LEGAL_BASIS for c in concept.get("coding") or [])
    ]
    if legal_basis is not None:
        relationships.append(
            {
                "coding": [
                    {
                        "system": LEGAL_BASIS,
                        "code": legal_basis,
                        "display": LEGAL_BASIS_WORDS[legal_basis],
                    }
                ],
                "text": f"vertegenwoordiger ({LEGAL_BASIS_WORDS[legal_basis]})",
            }
        )
    body["relationship"] = relationships
    repo.update(conn, "RelatedPerson", str(person["id"]), body, if_match=version_of(person))
    return True


def representatives(conn: Connection, *, patient_id: str) -> dict[str, str]:
    return current_roles(conn, patient_id=patient_id)


def remove_person(
    repo: Repository,
    conn: Connection,
    *,
    patient_id: str,
    person: dict[str, Any],
    consents: Iterable[dict[str, Any]],
) -> None:
    """Take someone out of the network: every way in ends in this one transaction.

    Their Consents stop naming them, their role ends, their RelatedPerson is deleted (its
    history stays), and their account's sessions, link, invitations and tokens go.
    ``consents`` were read before the write began (If-Match guards them).
    """
    ident = str(person["id"])
    reference = f"RelatedPerson/{ident}"
    apply_updates(repo, conn, revoke_updates(consents, reference))
    end_roles(conn, patient_id=patient_id, related_person_id=ident, now=now_micros())
    accounts = list(
        conn.scalars(
            select(NetworkLink.account_id).where(
                NetworkLink.patient_id == patient_id, NetworkLink.related_person_id == ident
            )
        )
    )
    for account_id in accounts:
        conn.execute(delete(WebSession).where(WebSession.account_id == account_id))
        revoke_account_tokens(conn, account_id=account_id)
    conn.execute(
        delete(NetworkLink).where(
            NetworkLink.patient_id == patient_id, NetworkLink.related_person_id == ident
        )
    )
    conn.execute(
        delete(Invitation).where(
            Invitation.patient_id == patient_id, Invitation.related_person_id == ident
        )
    )
    repo.delete(conn, "RelatedPerson", ident)


def stop_everything(
    repo: Repository, conn: Connection, *, patient_id: str, consents: Iterable[dict[str, Any]]
) -> None:
    """ "Stop met alles delen": every Consent, every app, every role the inwoner may end."""
    apply_updates(repo, conn, stop_updates(consents))
    stop_apps(conn, patient_id=patient_id)
    end_roles(conn, patient_id=patient_id, now=now_micros(), voluntary_only=True)


@dataclass
class Remaining:
    """Someone who still may act for the inwoner after she stopped everything."""

    name: str
    legal_basis: str


def remaining_roles(repo: Repository, conn: Connection, *, patient_id: str) -> list[Remaining]:
    """The roles that hold now, by name: after "stop", only those she cannot end herself."""
    found = [
        Remaining(name_of(repo, conn, ref), basis)
        for ref, basis in current_roles(conn, patient_id=patient_id).items()
    ]
    return sorted(found, key=lambda r: r.name.casefold())
