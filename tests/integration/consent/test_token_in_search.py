"""A one-inwoner search with a token this process knows: the token's check inside the search.

Like a read by id (``test_token_in_read.py``), the first page of ``Goal?patient=…`` sends the
token's check inside its own statement (``Searches.search_provisionally``) once the process
has looked the token up. These tests hold that search to the promises of the checked way: a
revoked or expired token, or one whose client was removed, is refused (401) at its very next
search with nothing logged; a search with no matches, a later page, another kind of search
and a type the scopes do not allow all answer as before, each logged once. They run through
the vault's real app, bearer-token check included (``tests/support/harness.py``).
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
from vault.fhir.repository import search as searches
from vault.kernel.db import Database
from vault.oauth.models import OAuthClient, Token
from vault.oauth.server import hash_token

NOT_VALID = 'Bearer realm="regiekluis", error="invalid_token"'


@pytest.fixture
def inwoner(harness: Harness) -> Iterator[tuple[str, Party]]:
    """A new inwoner with two Goals, and her app with a live token (a fresh one per test:
    these tests revoke it, expire it and remove its client)."""
    patient_id = harness.create(patient(), patient_id=None).resource_id
    for _ in range(2):
        harness.create(goal(patient_id=patient_id), patient_id=patient_id)
    app = harness.app("Zoekapp", patient_id=patient_id, scopes=["patient/Goal.rs"])
    yield patient_id, app


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """What the app sends: the token's lookups, and the one-inwoner first pages."""
    statements: dict[str, list[str]] = {"lookups": [], "pages": []}
    awaited = Database.fetch_one_async
    fetched = searches.fetch_all

    async def lookup(self: Database, sql: str, params: Any) -> Any:
        statements["lookups"].append(sql)
        return await awaited(self, sql, params)

    def page(conn: Any, sql: str, params: Any) -> Any:
        statements["pages"].append(sql)
        return fetched(conn, sql, params)

    monkeypatch.setattr(Database, "fetch_one_async", lookup)
    monkeypatch.setattr(searches, "fetch_all", page)
    return statements


def _search(harness: Harness, token: str, query: str) -> httpx.Response:
    return harness.http.get(f"/fhir/{query}", headers={"authorization": f"Bearer {token}"})


def _links(harness: Harness, patient_id: str | None = None) -> int:
    """The access log's records: of one chain, or (None) of all."""
    query = select(func.count()).select_from(AuditChain)
    if patient_id is not None:
        query = query.where(AuditChain.chain == patient_id)
    with harness.runtime.db.read() as conn:
        count: int = conn.scalar(query)
    return count


def _ids(response: httpx.Response) -> list[str]:
    return [e["resource"]["id"] for e in response.json().get("entry", [])]


def _token_row(harness: Harness, token: str, **values: Any) -> None:
    with harness.runtime.db.write() as conn:
        conn.execute(update(Token).where(Token.token_hash == hash_token(token)).values(**values))


def test_a_known_token_searches_with_one_statement(
    harness: Harness, inwoner: tuple[str, Party], sent: dict[str, list[str]]
) -> None:
    patient_id, app = inwoner
    token = harness.token_of(app)
    query = f"Goal?patient=Patient/{patient_id}"
    first = _search(harness, token, query)
    assert first.status_code == 200, first.text
    assert len(sent["lookups"]) == 1  # the checked way: the token's lookup first
    assert not any("oauth_token" in sql for sql in sent["pages"])
    sent["lookups"].clear()
    sent["pages"].clear()
    before = _links(harness, patient_id)
    again = _search(harness, token, query)
    assert again.status_code == 200, again.text
    assert again.json()["total"] == first.json()["total"] == 2
    assert _ids(again) == _ids(first)
    assert sent["lookups"] == []
    assert len(sent["pages"]) == 1 and "oauth_token" in sent["pages"][0]
    assert _links(harness, patient_id) == before + 1  # logged as any search


@pytest.mark.parametrize(
    "change", [{"revoked": True}, {"expires_at": 1}], ids=["revoked", "expired"]
)
def test_a_token_no_longer_valid_is_refused_at_its_next_search(
    harness: Harness,
    inwoner: tuple[str, Party],
    sent: dict[str, list[str]],
    change: dict[str, Any],
) -> None:
    patient_id, app = inwoner
    token = harness.token_of(app)
    query = f"Goal?patient=Patient/{patient_id}"
    assert _search(harness, token, query).status_code == 200
    _token_row(harness, token, **change)
    before = _links(harness, patient_id)
    sent["lookups"].clear()
    refused = _search(harness, token, query)
    assert refused.status_code == 401, refused.text
    assert refused.headers["www-authenticate"] == NOT_VALID
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert _links(harness, patient_id) == before  # nothing logged of a refused token
    assert len(sent["lookups"]) == 1  # the check found no row; the checked way refused
    assert _search(harness, token, query).status_code == 401


def test_a_removed_client_is_refused_at_its_next_search(
    harness: Harness, inwoner: tuple[str, Party]
) -> None:
    patient_id, app = inwoner
    token = harness.token_of(app)
    query = f"Goal?patient=Patient/{patient_id}"
    assert _search(harness, token, query).status_code == 200
    with harness.runtime.db.write() as conn:
        conn.execute(
            update(OAuthClient).where(OAuthClient.client_id == app.client_id).values(removed_at=1)
        )
    refused = _search(harness, token, query)
    assert refused.status_code == 401, refused.text
    assert refused.headers["www-authenticate"] == NOT_VALID


def test_no_matches_and_later_pages_answer_as_on_the_checked_way(
    harness: Harness, inwoner: tuple[str, Party], sent: dict[str, list[str]]
) -> None:
    patient_id, app = inwoner
    token = harness.token_of(app)
    assert _search(harness, token, f"Goal?patient=Patient/{patient_id}").status_code == 200
    other = harness.create(patient(), patient_id=None).resource_id
    harness.create(goal(patient_id=other), patient_id=other)

    # Another inwoner's Goals: the check's statement finds no row, the checked way answers
    # an empty page (never a count of what is hidden), and logs it once.
    sent["lookups"].clear()
    before = _links(harness, patient_id), _links(harness, other)
    empty = _search(harness, token, f"Goal?patient=Patient/{other}")
    assert empty.status_code == 200, empty.text
    assert empty.json()["total"] == 0 and _ids(empty) == []
    assert len(sent["lookups"]) == 1
    assert (_links(harness, patient_id), _links(harness, other)) == (before[0], before[1] + 1)

    # A page of one: its total counted, and the next page (a cursor) goes the checked way.
    sent["lookups"].clear()
    first = _search(harness, token, f"Goal?patient=Patient/{patient_id}&_count=1")
    assert first.status_code == 200, first.text
    assert first.json()["total"] == 2 and len(_ids(first)) == 1
    assert sent["lookups"] == []
    following = next(li["url"] for li in first.json()["link"] if li["relation"] == "next")
    second = harness.http.get(following, headers={"authorization": f"Bearer {token}"})
    assert second.status_code == 200, second.text
    assert len(sent["lookups"]) == 1
    assert len(_ids(second)) == 1 and _ids(second) != _ids(first)


def test_other_searches_and_refusals_go_the_checked_way_once(
    harness: Harness, inwoner: tuple[str, Party], sent: dict[str, list[str]]
) -> None:
    patient_id, app = inwoner
    token = harness.token_of(app)
    assert _search(harness, token, f"Goal?patient=Patient/{patient_id}").status_code == 200
    sent["lookups"].clear()
    sorted_ = _search(harness, token, f"Goal?patient=Patient/{patient_id}&_sort=-_lastUpdated")
    assert sorted_.status_code == 200, sorted_.text
    assert sorted_.json()["total"] == 2
    assert len(sent["lookups"]) == 1

    # A type her scopes do not allow: refused and logged once, by the checked way.
    before = _links(harness)
    refused = _search(harness, token, f"CarePlan?patient=Patient/{patient_id}")
    assert refused.status_code == 403, refused.text
    assert _links(harness) == before + 1

    # A bad request: the checked way's 400, nothing found or counted.
    bad = _search(harness, token, f"Goal?patient=Patient/{patient_id}&nonsense=1")
    assert bad.status_code == 400, bad.text
    assert bad.json()["resourceType"] == "OperationOutcome"
