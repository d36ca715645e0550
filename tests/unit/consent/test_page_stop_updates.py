"""What "stop" writes on the page (``vault/page/sharing_data.py``): stop means stop, for
what is shared now and for what waits for a "ja" (a child of 12 to 15 and a parent).

After "Stop met delen met …" or "Stop met alles delen" no earlier proposal may become
active by the other's later "ja", so each proposal naming the party is rejected.
"""

from __future__ import annotations

from typing import Any

from vault.page.sharing_data import revoke_updates, stop_updates


def _consent(cid: str, status: str, *actors: str, by: str = "Patient/kind") -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": cid,
        "meta": {"versionId": "3"},
        "status": status,
        "performer": [{"reference": by}],
        "provision": {
            "type": "permit",
            "actor": [{"reference": {"reference": a}} for a in actors],
        },
    }


GGZ, MEE = "Organization/ggz", "Organization/mee"


def test_stop_all_ends_what_is_shared_and_rejects_what_waits() -> None:
    consents = [
        _consent("a", "active", GGZ),
        _consent("p", "proposed", MEE),
        _consent("r", "rejected", MEE),
        _consent("i", "inactive", GGZ),
    ]
    updates = {cid: (body["status"], match) for cid, body, match in stop_updates(consents)}
    assert updates == {"a": ("inactive", 'W/"3"'), "p": ("rejected", 'W/"3"')}
    assert all("meta" not in body for _, body, _ in stop_updates(consents))


def test_stopping_one_party_rejects_its_proposals_and_leaves_the_others() -> None:
    consents = [
        _consent("a", "active", GGZ, MEE),  # the inwoner's own: GGZ is taken out
        _consent("p", "proposed", GGZ),
        _consent("q", "proposed", MEE),
        _consent("s", "active", GGZ, by="RelatedPerson/mama"),  # signed by a parent: stops
    ]
    updates = {cid: body for cid, body, _ in revoke_updates(consents, GGZ)}
    assert set(updates) == {"a", "p", "s"}
    assert updates["p"]["status"] == "rejected"
    assert updates["s"]["status"] == "inactive"
    assert updates["a"]["status"] == "active"
    assert [a["reference"]["reference"] for a in updates["a"]["provision"]["actor"]] == [MEE]
