"""``vault audit verify``: every chain of the access log checked, link by link.

A link holds the HMAC of its record's JSON and the link before it (``audit/record.py``).
The JSON is the AuditEvent's, or, while the record waits to be settled, the sealed body in
the link itself (``audit/log.py``): either way a changed, removed or reordered record is
found.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from vault.audit.models import AuditChain, AuditChainHead
from vault.audit.record import GENESIS, VAULT_CHAIN, chain_key, link_hash, owner_of
from vault.kernel.fhirdata import format_instant
from vault.store.models import DataKey, ResourceRow
from vault.store.reads import open_sealed, open_version

if TYPE_CHECKING:
    from vault.kernel.runtime import Runtime

__all__ = ["verify_chains"]


def verify_chains(runtime: Runtime, *, notes: list[str] | None = None) -> list[str]:
    """Check every chain; returns one message per broken chain (empty: all intact).

    The chain of an erased inwoner cannot be opened any more (its data key is destroyed):
    it is reported in ``notes`` as erased, not as broken, and what can still be checked is
    checked: the erasure record (the destroyed key's row) is in place, every link is there
    in order, each follows the one before it, and the head is the last link.
    """
    # Long on purpose: one pass over every chain; each check needs the state of the one before.
    secret = chain_key(runtime)
    problems: list[str] = []
    with runtime.db.read() as conn:
        keys = {row.owner: row for row in conn.execute(select(DataKey.__table__))}
        heads = {row.chain: row for row in conn.execute(select(AuditChainHead))}
        chains = sorted({row[0] for row in conn.execute(select(AuditChain.chain))} | set(heads))
        shredded = {
            row.owner: row.destroyed_at
            for row in conn.execute(
                select(DataKey.owner, DataKey.destroyed_at).where(DataKey.wrapped.is_(None))
            )
        }
        for chain in chains:
            erased = chain in shredded
            prev, expected_seq = GENESIS, 1
            links = conn.execute(
                select(
                    AuditChain.seq,
                    AuditChain.prev_hash,
                    AuditChain.hash,
                    AuditChain.resource_pk,
                    AuditChain.body,
                    func.coalesce(AuditChain.resource_id, ResourceRow.resource_id).label("rid"),
                )
                .outerjoin(ResourceRow, ResourceRow.pk == AuditChain.resource_pk)
                .where(AuditChain.chain == chain)
                .order_by(AuditChain.seq)
            ).all()
            key = keys.get(owner_of(chain))
            broken = None
            if erased and shredded[chain] is None:
                broken = f"chain {chain}: its data key is gone without a record of the erasure"
            for link in links if broken is None else ():
                where = f"chain {chain}, record {link.seq} (AuditEvent/{link.rid})"
                if link.seq != expected_seq:
                    broken = f"{where}: record {expected_seq} is missing"
                    break
                if link.prev_hash != prev:
                    broken = f"{where}: does not follow the record before it"
                    break
                if not erased:
                    try:
                        body = _open_link(runtime, conn, chain, link, key)
                    except Exception:
                        broken = f"{where}: the record cannot be opened"
                        break
                    if not hmac.compare_digest(link_hash(secret, prev, body), link.hash):
                        broken = f"{where}: the record was changed"
                        break
                prev, expected_seq = link.hash, expected_seq + 1
            head = heads.get(chain)
            if (
                broken is None
                and head is not None
                and (head.seq != expected_seq - 1 or head.hash != prev)
            ):
                broken = f"chain {chain}: records after {expected_seq - 1} are missing"
            if broken is not None:
                problems.append(broken)
            elif erased and notes is not None:
                when = format_instant(shredded[chain] or 0)
                notes.append(
                    f"chain {chain}: erased at {when}; its {expected_seq - 1} records can no "
                    "longer be opened, their links are in place and in order"
                )
    return problems


def _open_link(runtime: Runtime, conn: Connection, chain: str, link: Any, key: Any) -> bytes:
    """The JSON a link was chained over: its AuditEvent's, or its own sealed body while the
    record waits to be settled."""
    if link.resource_pk is not None:
        return open_version(runtime, conn, link.resource_pk, 1)
    return open_sealed(
        runtime,
        resource_type="AuditEvent",
        resource_id=link.rid,
        version=1,
        patient_id=None if chain == VAULT_CHAIN else chain,
        sealed=link.body,
        wrapped=key.wrapped,
        key_id=key.master_key_id,
    )
