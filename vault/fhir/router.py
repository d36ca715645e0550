"""The FHIR R4 REST API at ``/fhir`` (https://hl7.org/fhir/R4/http.html).

Thin: each route checks the HTTP envelope (content type, size, ETag headers), opens the
request's transaction and hands over to the repository, which was built with the
caller's AccessContext. Errors become OperationOutcome in ``fhir/outcomes.py``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from vault.fhir.bundles import complete_searchset, history_bundle, search_bundle
from vault.fhir.capability import capability_statement
from vault.fhir.deps import RepositoryDep, provisional_read, request_repository
from vault.fhir.outcomes import FHIR_JSON, error_response
from vault.fhir.repository import SearchPage
from vault.fhir.search import Cursor, SearchQuery, cursor_secret, whole_number
from vault.fhir.subsetting import Subset, from_params
from vault.kernel.errors import BadRequest, NotAcceptable, PayloadTooLarge, UnsupportedMediaType
from vault.kernel.fhirdata import parse_date_range
from vault.kernel.runtime import Runtime
from vault.kernel.urls import fhir_base
from vault.kernel.web import RuntimeDep
from vault.store.registry import RESOURCE_TYPES
from vault.store.writes import Stored

__all__ = ["plain_read", "router", "serve_plain_read"]


router = APIRouter(prefix="/fhir", tags=["fhir"])

# A plain read: GET of a stored type and a FHIR id, no query. Nothing else the app serves
# has this shape (an id has no ``_`` or ``$``; Subscription is not a stored type).
_PLAIN_READ = re.compile(
    r"/fhir/(" + "|".join(sorted(RESOURCE_TYPES)) + r")/([A-Za-z0-9.-]{1,64})", re.ASCII
)

# A search by GET of a stored type, ``/fhir/{type}``, answered before the router too.
_PLAIN_SEARCH = re.compile(r"/fhir/(" + "|".join(sorted(RESOURCE_TYPES)) + r")", re.ASCII)

_JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
_STARTED = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def base_url(request: Request, runtime: Runtime) -> str:
    return fhir_base(request, runtime.settings)


def _check_accept(request: Request) -> None:
    fmt = request.query_params.get("_format") if request.scope["query_string"] else None
    if fmt is not None and "json" not in fmt:
        raise NotAcceptable("This server speaks FHIR JSON only")
    accept = request.headers.get("accept", "")
    if accept and "json" not in accept and "*/*" not in accept and "application/*" not in accept:
        raise NotAcceptable("This server speaks FHIR JSON only (application/fhir+json)")


async def _read_json(request: Request, runtime: Runtime) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES:
        raise UnsupportedMediaType("Send the resource as application/fhir+json")
    limit = runtime.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The body is larger than {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body is larger than {limit} bytes")
        chunks.append(chunk)
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        raise BadRequest("The body is not valid JSON") from None


def _resource_response(
    stored: Stored, *, status: int = 200, location: str | None = None, minimal: bool = False
) -> Response:
    headers = {
        "ETag": stored.etag,
        "Last-Modified": format_datetime(
            datetime.fromtimestamp(stored.last_updated / 1e6, UTC), usegmt=True
        ),
    }
    if location is not None:
        headers["Location"] = location
    body = b"" if minimal else (stored.body or b"")
    return Response(
        body, status_code=status, media_type=None if minimal else FHIR_JSON, headers=headers
    )


def _written(request: Request, runtime: Runtime, stored: Stored, *, created: bool) -> Response:
    """The answer to a create or update: 201 or 200, Location, and the body unless minimal."""
    base = base_url(request, runtime)
    location = f"{base}/{stored.resource_type}/{stored.resource_id}/_history/{stored.version_id}"
    return _resource_response(
        stored,
        status=201 if created else 200,
        location=location,
        minimal=_prefers(request, "return", "minimal"),
    )


def _prefers(request: Request, key: str, value: str) -> bool:
    prefer = request.headers.get("prefer", "")
    return any(part.strip() == f"{key}={value}" for part in prefer.split(","))


@router.get("/metadata")
def metadata(request: Request, runtime: RuntimeDep) -> Response:
    """The CapabilityStatement: what this server really does."""
    _check_accept(request)
    statement = capability_statement(
        base=base_url(request, runtime),
        software_date=_STARTED,
        security=getattr(request.app.state, "capability_security", None),
        more_resources=getattr(request.app.state, "capability_resources", ()),
    )
    return Response(orjson.dumps(statement), media_type=FHIR_JSON)


def _searched(
    request: Request, runtime: Runtime, repo: RepositoryDep, query: SearchQuery
) -> Response:
    with runtime.db.read() as conn:
        page = repo.search(conn, query)
    return _bundled(request, runtime, page)


def _bundled(request: Request, runtime: Runtime, page: SearchPage) -> Response:
    body = search_bundle(
        page,
        base=base_url(request, runtime),
        count=page.query.count,
        secret=cursor_secret(runtime.blind),
    )
    return Response(body, media_type=FHIR_JSON)


@router.get("/Patient/{patient_id}/$everything")
def patient_everything(
    request: Request, runtime: RuntimeDep, repo: RepositoryDep, patient_id: str
) -> Response:
    """Everything of one inwoner the caller may see, as one searchset Bundle."""
    _check_accept(request)
    since = None
    for name, value in request.query_params.multi_items():
        if name == "_since":
            try:
                since = parse_date_range(value)[0]
            except ValueError:
                raise BadRequest("_since must be a FHIR instant", expression=["_since"]) from None
        elif name not in ("_format", "_pretty"):
            raise BadRequest(f"Unknown $everything parameter '{name}'", expression=[name])
    with runtime.db.read() as conn:
        found = repo.everything(conn, patient_id, since=since)
    base = base_url(request, runtime)
    bundle = complete_searchset(
        f"{base}/Patient/{patient_id}/$everything",
        [
            (f"{base}/{s.resource_type}/{s.resource_id}", orjson.Fragment(s.body or b"{}"))
            for s in found
        ],
    )
    return Response(bundle, media_type=FHIR_JSON)


@router.get("/{resource_type}/_history")
def type_history(
    request: Request, runtime: RuntimeDep, repo: RepositoryDep, resource_type: str
) -> Response:
    """All versions of every resource of one type, newest first."""
    return _history(request, runtime, repo, resource_type, None)


@router.get("/{resource_type}/{resource_id}/_history")
def instance_history(
    request: Request, runtime: RuntimeDep, repo: RepositoryDep, resource_type: str, resource_id: str
) -> Response:
    """All versions of one resource, newest first."""
    return _history(request, runtime, repo, resource_type, resource_id)


def _history(
    request: Request,
    runtime: Runtime,
    repo: RepositoryDep,
    resource_type: str,
    resource_id: str | None,
) -> Response:
    _check_accept(request)
    since = count = cursor = None
    applied: list[tuple[str, str]] = []
    for name, value in request.query_params.multi_items():
        if name == "_since":
            try:
                since = parse_date_range(value)[0]
            except ValueError:
                raise BadRequest("_since must be a FHIR instant", expression=["_since"]) from None
            applied.append((name, value))
        elif name == "_count":
            count = min(whole_number(value, "_count"), runtime.settings.max_page_size)
            applied.append((name, value))
        elif name == "_cursor":
            cursor = Cursor.decode(value, secret=cursor_secret(runtime.blind))
        elif name not in ("_format", "_pretty"):
            raise BadRequest(f"Unknown _history parameter '{name}'", expression=[name])
    with runtime.db.read() as conn:
        page = repo.history(
            conn,
            resource_type,
            resource_id,
            since=since,
            count=count if count is not None else runtime.settings.default_page_size,
            cursor=cursor,
        )
    path = (
        f"{resource_type}/_history"
        if resource_id is None
        else (f"{resource_type}/{resource_id}/_history")
    )
    return Response(
        history_bundle(
            page,
            base=base_url(request, runtime),
            path=path,
            params=applied,
            secret=cursor_secret(runtime.blind),
            cursor=cursor,
        ),
        media_type=FHIR_JSON,
    )


# Read and vread are one indexed statement and a decrypt: tens of microseconds of
# blocking work, far less than the thread-pool hop a sync route costs (and the garbage the
# hop leaves behind drives the p99; docs/performance.md). So they run on the event loop,
# and only the access log's group commit is awaited.


@router.get("/{resource_type}/{resource_id}/_history/{version_id}")
async def vread(
    request: Request,
    runtime: RuntimeDep,
    repo: RepositoryDep,
    resource_type: str,
    resource_id: str,
    version_id: str,
) -> Response:
    """One version of a resource."""
    _check_accept(request)
    async with repo.audited():
        with runtime.db.read(snapshot=False) as conn:
            stored = repo.vread(conn, resource_type, resource_id, version_id)
    return _resource_response(stored)


@router.get("/{resource_type}/{resource_id}")
async def read(request: Request) -> Response:
    """The current version of a resource."""
    # Only the Request is declared: each declared parameter costs FastAPI's solver a pass.
    resource_type: str = request.path_params["resource_type"]
    resource_id: str = request.path_params["resource_id"]
    _check_accept(request)
    subset = _read_subset(request, resource_type) if request.scope["query_string"] else None
    if subset is None:
        # A token this process knows: its check goes inside the read (``provisional_read``).
        known = await provisional_read(request, resource_type, resource_id)
        if known is not None:
            return _resource_response(known)
    _runtime, repo = await request_repository(request)
    async with repo.audited():
        stored = await repo.read_async(resource_type, resource_id)
    if subset is not None and subset.active and stored.body is not None:
        stored = replace(stored, body=subset.apply_bytes(stored.body))
    return _resource_response(stored)


_READ_PARAMS = frozenset({"_format", "_pretty", "_summary", "_elements"})


def _read_subset(request: Request, resource_type: str) -> Subset | None:
    """``_summary`` / ``_elements`` of a read (fhir/subsetting.py); any other parameter is
    refused, or ignored under ``Prefer: handling=lenient`` (R4 search.html, 3.1.1.4)."""
    if resource_type not in RESOURCE_TYPES:
        return None  # the read answers 404 for the type
    params = request.query_params.multi_items()
    unknown = [name for name, _ in params if name not in _READ_PARAMS]
    if unknown and not _prefers(request, "handling", "lenient"):
        raise BadRequest(f"Unknown parameter '{unknown[0]}' for a read", expression=[unknown[0]])
    return from_params(params, type_name=resource_type)


def plain_read(scope: Scope) -> tuple[str, str] | None:
    """The type and id when ``scope`` is a plain read (GET, no query), else None."""
    if scope["type"] != "http" or scope["method"] != "GET" or scope["query_string"]:
        return None
    found = _PLAIN_READ.fullmatch(_app_path(scope))
    return None if found is None else (found[1], found[2])


def plain_search(scope: Scope) -> str | None:
    """The type when ``scope`` is a search by GET of a stored type, else None."""
    if scope["type"] != "http" or scope["method"] != "GET":
        return None
    found = _PLAIN_SEARCH.fullmatch(_app_path(scope))
    return None if found is None else found[1]


def _app_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path


async def serve_plain_read(
    scope: Scope, receive: Receive, send: Send, resource_type: str, resource_id: str
) -> None:
    """:func:`read`, without routing and dependency solving in between.

    The most frequent request there is: routing and dependency solving cost about as much
    as the read itself (docs/performance.md). The same function answers, with the same
    access decision and the same error mapping as every other route.
    """
    scope["path_params"] = {"resource_type": resource_type, "resource_id": resource_id}
    await _answer(read, scope, receive, send)


async def _answer(
    endpoint: Callable[[Request], Awaitable[Response]], scope: Scope, receive: Receive, send: Send
) -> None:
    """``endpoint``'s response, or the one error mapping's, sent: a route's work without the
    router."""
    try:
        response = await endpoint(Request(scope, receive))
    except Exception as exc:
        response = error_response(scope, exc)
    await response(scope, receive, send)


@router.get("/{resource_type}")
async def search_get(request: Request) -> Response:
    """Search by GET."""
    # A one-inwoner search whose first page holds every match is one statement: awaited
    # here (``whole_first_page_async``), without a worker thread, a pooled connection or a
    # transaction around it. Any other search runs in a worker thread: its statements block,
    # and the event loop must stay free. A few threads only (``Database.run_search``): more
    # cost CPU without more searches. Either way its access-log records are awaited on the
    # loop (``audited``), durable before the answer.
    runtime, repo = await request_repository(request)
    async with repo.audited():
        _check_accept(request)
        query = repo.parse(
            request.path_params["resource_type"],
            request.query_params.multi_items(),
            lenient=_prefers(request, "handling", "lenient"),
        )
        page = await repo.whole_first_page_async(query)
        if page is not None:
            return _bundled(request, runtime, page)
        return await runtime.db.run_search(partial(_searched, request, runtime, repo, query))


# The route the router would have matched: the request metrics label by its template.
_SEARCH_ROUTE = next(r for r in router.routes if getattr(r, "endpoint", None) is search_get)


async def serve_plain_search(
    scope: Scope, receive: Receive, send: Send, resource_type: str
) -> None:
    """:func:`search_get`, without routing in between (a sixth of a search's time on the
    event loop went to matching it against every route before it: docs/performance.md)."""
    scope["path_params"] = {"resource_type": resource_type}
    scope["route"] = _SEARCH_ROUTE
    await _answer(search_get, scope, receive, send)


@router.post("/{resource_type}/_search")
async def search_post(
    request: Request, runtime: RuntimeDep, repo: RepositoryDep, resource_type: str
) -> Response:
    """Search by POST: parameters in the form body and the URL."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/x-www-form-urlencoded", ""):
        raise UnsupportedMediaType("POST _search takes application/x-www-form-urlencoded")
    raw = await request.body()
    if len(raw) > runtime.settings.max_body_bytes:
        raise PayloadTooLarge("The search form is too large")
    params = request.query_params.multi_items() + parse_qsl(
        raw.decode("utf-8", "replace"), keep_blank_values=True
    )

    def search() -> Response:
        _check_accept(request)
        lenient = _prefers(request, "handling", "lenient")
        return _searched(request, runtime, repo, repo.parse(resource_type, params, lenient=lenient))

    return await runtime.db.run_search(search)


@router.post("/{resource_type}")
async def create(
    request: Request, runtime: RuntimeDep, repo: RepositoryDep, resource_type: str
) -> Response:
    """Create; with If-None-Exist, only when nothing matches."""
    body = await _read_json(request, runtime)

    def work() -> tuple[Stored, bool]:
        try:
            with runtime.db.write() as conn:
                return repo.create(
                    conn, resource_type, body, if_none_exist=request.headers.get("if-none-exist")
                )
        finally:
            repo.flush_denials()

    stored, created = await run_in_threadpool(work)
    return _written(request, runtime, stored, created=created)


@router.put("/{resource_type}/{resource_id}")
async def update(
    request: Request, runtime: RuntimeDep, repo: RepositoryDep, resource_type: str, resource_id: str
) -> Response:
    """Update (or create with this id); If-Match guards against lost updates."""
    body = await _read_json(request, runtime)

    def work() -> tuple[Stored, bool]:
        try:
            with runtime.db.write() as conn:
                return repo.update(
                    conn, resource_type, resource_id, body, if_match=request.headers.get("if-match")
                )
        finally:
            repo.flush_denials()

    stored, created = await run_in_threadpool(work)
    return _written(request, runtime, stored, created=created)


@router.delete("/{resource_type}/{resource_id}")
def delete(
    runtime: RuntimeDep, repo: RepositoryDep, resource_type: str, resource_id: str
) -> Response:
    """Delete: a new version that is a tombstone; history stays."""
    try:
        with runtime.db.write() as conn:
            repo.delete(conn, resource_type, resource_id)
    finally:
        repo.flush_denials()
    return Response(status_code=204)


class PlainReadMiddleware:
    """A pure ASGI middleware that answers ``GET /fhir/{stored type}/{id}`` (no query) with
    :func:`serve_plain_read` and ``GET /fhir/{stored type}`` with :func:`serve_plain_search`;
    everything else goes on to the router.

    It sits inside the app's middleware stack, below the last-resort error handling and the
    request metrics, so whatever wraps the app wraps the plain read too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = plain_read(scope)
        if target is not None:
            await serve_plain_read(scope, receive, send, *target)
            return
        searched = plain_search(scope)
        if searched is not None:
            await serve_plain_search(scope, receive, send, searched)
            return
        await self.app(scope, receive, send)
