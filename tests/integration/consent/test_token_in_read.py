"""A read by id with a token this process knows: the token's check inside the read itself.

``oauth/protector.py`` remembers the tokens it looked up; a plain read by id then sends the
token's check inside its own statement (``consent/caller.ProvisionalAccess``) instead of a
statement of its own first. These tests hold that read to the promises of the checked way:
a revoked or expired token, or one whose client was removed, is refused (401) at its very
next read, with nothing logged for it; a hidden id and a missing one still answer alike; a
deleted resource is still gone; a client that changed is read with what it is now. They run
through the vault's real app, bearer-token check included (``tests/support/harness.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from tests.factories import goal, patient
from tests.support.harness import Harness, Party
from vault.audit.models import AuditChain
from vault.kernel.db import Database
from vault.oauth.models import OAuthClient, Token
from vault.oauth.server import hash_token

NOT_VALID = 'Bearer realm="regiekluis", error="invalid_token"'


@pytest.fixture
def inwoner(harness: Harness) -> Iterator[tuple[str, str, Party]]:
    """A new inwoner, her Goal, and her app with a live token (a fresh one per test: these
    tests revoke it, expire it and remove its client)."""
    patient_id = harness.create(patient(), patient_id=None).resource_id
    goal_id = harness.create(goal(patient_id=patient_id), patient_id=patient_id).resource_id
    app = harness.app("Leesapp", patient_id=patient_id, scopes=["patient/*.rs"])
    yield patient_id, goal_id, app


@pytest.fixture
def statements(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The single-statement reads the app awaits (the token's lookup, a read by id)."""
    sent: list[str] = []
    awaited = Database.fetch_one_async

    async def counted(self: Database, sql: str, params: Any) -> Any:
        sent.append(sql)
        return await awaited(self, sql, params)

    monkeypatch.setattr(Database, "fetch_one_async", counted)
    return sent


def _read(harness: Harness, token: str, path: str) -> httpx.Response:
    return harness.http.get(path, headers={"authorization": f"Bearer {token}"})


def _links(harness: Harness, patient_id: str | None = None) -> int:
    """The access log's records: of one chain, or (None) of all."""
    query = select(func.count()).select_from(AuditChain)
    if patient_id is not None:
        query = query.where(AuditChain.chain == patient_id)
    with harness.runtime.db.read() as conn:
        count: int = conn.scalar(query)
    return count


def _token_row(harness: Harness, token: str, **values: Any) -> None:
    with harness.runtime.db.write() as conn:
        conn.execute(update(Token).where(Token.token_hash == hash_token(token)).values(**values))


def test_a_known_token_reads_with_one_statement(
    harness: Harness, inwoner: tuple[str, str, Party], statements: list[str]
) -> None:
    patient_id, goal_id, app = inwoner
    token = harness.token_of(app)
    first = _read(harness, token, f"/fhir/Goal/{goal_id}")
    assert first.status_code == 200, first.text
    assert len(statements) == 2  # the token's lookup, then the read
    statements.clear()
    before = _links(harness, patient_id)
    again = _read(harness, token, f"/fhir/Goal/{goal_id}")
    assert again.status_code == 200, again.text
    assert again.content == first.content
    assert len(statements) == 1 and "oauth_token" in statements[0]
    assert _links(harness, patient_id) == before + 1  # the read is logged as any read


@pytest.mark.parametrize(
    "change",
    [
        {"revoked": True},
        {"expires_at": 1},  # long past
    ],
    ids=["revoked", "expired"],
)
def test_a_token_no_longer_valid_is_refused_at_its_next_read(
    harness: Harness,
    inwoner: tuple[str, str, Party],
    statements: list[str],
    change: dict[str, Any],
) -> None:
    patient_id, goal_id, app = inwoner
    token = harness.token_of(app)
    assert _read(harness, token, f"/fhir/Goal/{goal_id}").status_code == 200
    _token_row(harness, token, **change)
    before = _links(harness, patient_id)
    statements.clear()
    refused = _read(harness, token, f"/fhir/Goal/{goal_id}")
    assert refused.status_code == 401, refused.text
    assert refused.headers["www-authenticate"] == NOT_VALID
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert _links(harness, patient_id) == before  # nothing logged of a refused token
    # The read with the check found nothing; the checked way looked the token up and refused.
    assert len(statements) == 2
    assert _read(harness, token, f"/fhir/Goal/{goal_id}").status_code == 401


def test_a_removed_client_is_refused_at_its_next_read(
    harness: Harness, inwoner: tuple[str, str, Party]
) -> None:
    _, goal_id, app = inwoner
    token = harness.token_of(app)
    assert _read(harness, token, f"/fhir/Goal/{goal_id}").status_code == 200
    with harness.runtime.db.write() as conn:
        conn.execute(
            update(OAuthClient).where(OAuthClient.client_id == app.client_id).values(removed_at=1)
        )
    refused = _read(harness, token, f"/fhir/Goal/{goal_id}")
    assert refused.status_code == 401, refused.text
    assert refused.headers["www-authenticate"] == NOT_VALID


def test_a_changed_client_is_read_with_what_it_is_now(
    harness: Harness, inwoner: tuple[str, str, Party], statements: list[str]
) -> None:
    """The token's context is made of its client too: once the client changes, the check
    inside the read fails, the checked way answers, and the context it made is kept."""
    _, goal_id, app = inwoner
    token = harness.token_of(app)
    assert _read(harness, token, f"/fhir/Goal/{goal_id}").status_code == 200
    with harness.runtime.db.write() as conn:
        conn.execute(
            update(OAuthClient)
            .where(OAuthClient.client_id == app.client_id)
            .values(purpose="TREAT")
        )
    statements.clear()
    assert _read(harness, token, f"/fhir/Goal/{goal_id}").status_code == 200
    assert len(statements) == 3  # the read with the stale check, the lookup, the read
    statements.clear()
    assert _read(harness, token, f"/fhir/Goal/{goal_id}").status_code == 200
    assert len(statements) == 1


def test_hidden_missing_and_deleted_answer_as_on_the_checked_way(
    harness: Harness, inwoner: tuple[str, str, Party]
) -> None:
    patient_id, goal_id, app = inwoner
    other = harness.create(patient(), patient_id=None).resource_id
    hidden = harness.create(goal(patient_id=other), patient_id=other).resource_id
    token = harness.token_of(app)
    assert _read(harness, token, f"/fhir/Goal/{goal_id}").status_code == 200  # now known
    before = _links(harness)
    answers = [_read(harness, token, f"/fhir/Goal/{ident}") for ident in (hidden, "t-never")]
    assert [a.status_code for a in answers] == [404, 404]
    codes = [[i["code"] for i in a.json()["issue"]] for a in answers]
    assert codes[0] == codes[1]
    # Both refusals are logged, as on the checked way (in the chains of whom they concern).
    assert _links(harness) == before + 2
    made = harness.create(goal(patient_id=patient_id), patient_id=patient_id)
    assert _read(harness, token, f"/fhir/Goal/{made.resource_id}").status_code == 200
    harness.delete(made)
    gone = _read(harness, token, f"/fhir/Goal/{made.resource_id}")
    assert gone.status_code == 410, gone.text
