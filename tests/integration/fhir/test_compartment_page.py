"""The first page of a one-inwoner search (``Goal?patient=…``) runs a statement compiled
once (``Searches._compartment_page``, or awaited on the event loop by
``Searches.whole_first_page_async`` when the page holds every match): it must answer
exactly as the generic search does, for every caller, and take no other search."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import create
from tests.factories import goal
from tests.factories import patient as patient_resource
from tests.support import inwoner_context, organization_context
from vault.consent.decision import decision_params
from vault.fhir.repository.search import _COMPARTMENT, _LIMIT, Searches


@pytest.fixture
def family(client: httpx.Client) -> tuple[str, str, list[str]]:
    """Two inwoners; three Goals of the first, one of the second."""
    anna = str(create(client, patient_resource())["id"])
    bram = str(create(client, patient_resource())["id"])
    goals = [str(create(client, goal(patient_id=anna))["id"]) for _ in range(3)]
    create(client, goal(patient_id=bram))
    return anna, bram, goals


def both(
    http: httpx.Client, monkeypatch: pytest.MonkeyPatch, params: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """The search as the vault answers it, the same with the precompiled page switched off,
    and which way the precompiled page answered: 1 when its statement was awaited on the
    event loop (``whole_first_page_async``: every match on the page), 2 in a worker thread
    (``_compartment_page``: a next page, so a total counted in the same snapshot), 0 not."""
    taken = 0
    awaited, page = Searches.whole_first_page_async, Searches._compartment_page

    async def counted_awaited(self: Searches, *args: Any) -> Any:
        nonlocal taken
        answer = await awaited(self, *args)
        taken += answer is not None
        return answer

    def counted(self: Searches, *args: Any) -> Any:
        nonlocal taken
        answer = page(self, *args)
        taken += 2 * (answer is not None)
        return answer

    with monkeypatch.context() as patched:
        patched.setattr(Searches, "whole_first_page_async", counted_awaited)
        patched.setattr(Searches, "_compartment_page", counted)
        fast = http.get("/Goal", params=params)
    with monkeypatch.context() as patched:
        patched.setattr(Searches, "_compartment_statement", lambda *_args: None)
        generic = http.get("/Goal", params=params)
    assert fast.status_code == generic.status_code == 200, (fast.text, generic.text)
    return fast.json(), generic.json(), taken


def same(fast: dict[str, Any], generic: dict[str, Any]) -> None:
    for bundle in (fast, generic):
        bundle.pop("meta", None)  # the instant it was made
        bundle.pop("id", None)
    assert fast == generic


def test_a_first_page_answers_as_the_generic_search_for_every_caller(
    client: httpx.Client,
    server: Any,
    monkeypatch: pytest.MonkeyPatch,
    family: tuple[str, str, list[str]],
) -> None:
    anna, bram, goals = family
    callers = {
        "full": client,
        "anna": httpx.Client(
            base_url=server.url + "/fhir", headers={"x-test-access": f"patient:{anna}"}
        ),
        "bram": httpx.Client(
            base_url=server.url + "/fhir", headers={"x-test-access": f"patient:{bram}"}
        ),
    }
    for who, http in callers.items():
        for params, way in (
            ({"patient": anna}, 1),
            ({"patient": f"Patient/{anna}"}, 1),
            ({"patient": anna, "_count": "2"}, 2),  # a next page: the total is counted
            ({"patient": anna, "_count": "3"}, 1),
            ({"patient": anna, "_total": "none"}, 1),
            ({"patient": "no-such-inwoner"}, 1),
        ):
            fast, generic, taken = both(http, monkeypatch, params)
            same(fast, generic)
            # Anna's three Goals are all on a page of two for no caller but the full one
            # and Anna herself.
            expected = 1 if who == "bram" and params.get("_count") == "2" else way
            assert taken == expected, (who, params)
    # Another inwoner's Goals stay hidden, counts included; her own are all there, in order.
    hidden, _, _ = both(callers["bram"], monkeypatch, {"patient": anna})
    assert (hidden.get("entry"), hidden["total"]) == (None, 0)
    own, _, _ = both(callers["anna"], monkeypatch, {"patient": anna})
    assert ([e["resource"]["id"] for e in own["entry"]], own["total"]) == (goals, 3)
    for http in (callers["anna"], callers["bram"]):
        http.close()


def test_other_searches_take_the_generic_statement(
    client: httpx.Client, monkeypatch: pytest.MonkeyPatch, family: tuple[str, str, list[str]]
) -> None:
    anna, bram, _ = family
    for params in (
        {"patient": f"{anna},{bram}"},
        {"subject": f"Patient/{anna}"},  # a subject may be a family too: the owner is checked
        {"patient": anna, "_sort": "_lastUpdated"},
        {"patient": anna, "_id": "x"},
        {"patient": anna, "lifecycle-status": "active"},
        {"patient": anna, "_summary": "count"},
        {"patient": anna, "_count": "0"},
        {"patient": anna, "_revinclude": "CarePlan:goal"},
        {"lifecycle-status": "active"},
    ):
        fast, generic, taken = both(client, monkeypatch, params)
        same(fast, generic)
        assert taken == 0, params


def test_the_pages_parameters_never_name_the_decisions() -> None:
    # A shared name would bind the access decision to the searched inwoner, not the caller.
    for ctx in (inwoner_context("anna"), organization_context("Organization/mee")):
        assert not set(decision_params(ctx, 0)) & {_COMPARTMENT, _LIMIT}
