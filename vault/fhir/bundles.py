"""Bundles for search and history (https://hl7.org/fhir/R4/bundle.html).

Entries embed the stored JSON bytes as they are (``orjson.Fragment``): a stored resource is
validated once on write and never parsed again on the way out.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson

from vault.fhir.repository import HistoryPage, SearchPage
from vault.fhir.search import Cursor
from vault.fhir.subsetting import Subset
from vault.kernel.fhirdata import format_instant
from vault.store.writes import Stored

__all__ = ["complete_searchset", "history_bundle", "search_bundle"]


def _link(relation: str, url: str) -> dict[str, str]:
    return {"relation": relation, "url": url}


def _page_url(
    base: str, path: str, params: list[tuple[str, str]], cursor: Cursor | None, secret: bytes
) -> str:
    items = list(params)
    if cursor is not None:
        items.append(("_cursor", cursor.encode(secret=secret)))
    query = urlencode(items)
    return f"{base}/{path}" + (f"?{query}" if query else "")


def search_bundle(page: SearchPage, *, base: str, count: int, secret: bytes) -> bytes:
    query = page.query
    params = [(k, v) for k, v in query.applied if k != "_count"] + [("_count", str(count))]
    path = query.spec.name
    links = [_link("self", _page_url(base, path, params, query.cursor, secret))]
    if page.next_cursor is not None:
        links.append(_link("next", _page_url(base, path, params, page.next_cursor, secret)))
    if page.previous_cursor is not None:
        links.append(_link("previous", _page_url(base, path, params, page.previous_cursor, secret)))
    subset = query.subset
    entries: list[dict[str, Any]] = [_entry(s, base, "match", subset) for s in page.matches]
    entries.extend(_entry(s, base, "include", subset) for s in page.includes)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = links
    if entries:
        bundle["entry"] = entries
    if query.ignored:
        bundle["entry"] = [
            *entries,
            {
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {
                            "severity": "warning",
                            "code": "not-supported",
                            "diagnostics": "Ignored search parameters: "
                            + ", ".join(query.ignored[:20]),
                        }
                    ],
                },
                "search": {"mode": "outcome"},
            },
        ]
    return orjson.dumps(bundle)


def complete_searchset(
    self_url: str, entries: list[tuple[str, Any]], *, timestamp: int | None = None
) -> bytes:
    """A searchset that holds every match on one page: (fullUrl, resource) per entry."""
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if timestamp is not None:
        bundle["timestamp"] = format_instant(timestamp)
    bundle["total"] = len(entries)
    bundle["link"] = [_link("self", self_url)]
    bundle["entry"] = [
        {"fullUrl": url, "resource": resource, "search": {"mode": "match"}}
        for url, resource in entries
    ]
    return orjson.dumps(bundle)


def _entry(stored: Stored, base: str, mode: str, subset: Subset | None = None) -> dict[str, Any]:
    assert stored.body is not None
    body = (
        stored.body if subset is None else subset.apply_bytes(stored.body, included=mode != "match")
    )
    return {
        "fullUrl": f"{base}/{stored.resource_type}/{stored.resource_id}",
        "resource": orjson.Fragment(body),
        "search": {"mode": mode},
    }


def history_bundle(
    page: HistoryPage,
    *,
    base: str,
    path: str,
    params: list[tuple[str, str]],
    secret: bytes,
    cursor: Cursor | None = None,
) -> bytes:
    links = [_link("self", _page_url(base, path, params, cursor, secret))]
    if page.next_cursor is not None:
        links.append(_link("next", _page_url(base, path, params, page.next_cursor, secret)))
    entries = []
    for stored in page.entries:
        url = f"{stored.resource_type}/{stored.resource_id}"
        entry: dict[str, Any] = {"fullUrl": f"{base}/{url}"}
        if stored.deleted:
            entry["request"] = {"method": "DELETE", "url": url}
            entry["response"] = {
                "status": "204",
                "lastModified": format_instant(stored.last_updated),
            }
        else:
            assert stored.body is not None
            entry["resource"] = orjson.Fragment(stored.body)
            method = "POST" if stored.version_id == 1 else "PUT"
            entry["request"] = {
                "method": method,
                "url": url if method == "PUT" else stored.resource_type,
            }
            entry["response"] = {
                "status": "201" if stored.version_id == 1 else "200",
                "etag": stored.etag,
                "lastModified": format_instant(stored.last_updated),
            }
        entries.append(entry)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "history", "link": links}
    if entries:
        bundle["entry"] = entries
    return orjson.dumps(bundle)
