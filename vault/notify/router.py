"""``/fhir/Subscription``: a partner's own Subscriptions (create, read, search, update, delete).

Thin, like ``fhir/router.py``: the envelope is checked here, the rules are
``notify/subscriptions.py``'s. Registered before ``fhir/router.py``, whose
``/{resource_type}`` routes would otherwise take these paths.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from vault.consent.access import AccessContext
from vault.consent.caller import AccessDep
from vault.fhir.bundles import complete_searchset
from vault.fhir.outcomes import FHIR_JSON
from vault.kernel.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from vault.kernel.runtime import Runtime, now_micros
from vault.kernel.urls import fhir_base
from vault.kernel.web import RuntimeDep
from vault.notify.subscriptions import SubscriptionStore

__all__ = ["router"]

router = APIRouter(prefix="/fhir/Subscription", tags=["notifications"])

_JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")


async def _body(request: Request, runtime: Runtime) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES:
        raise UnsupportedMediaType("Send the Subscription as application/fhir+json")
    raw = await request.body()
    if len(raw) > runtime.settings.max_body_bytes:
        raise PayloadTooLarge(f"The body is larger than {runtime.settings.max_body_bytes} bytes")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("The body is not valid JSON") from None


def _if_match(request: Request) -> int | None:
    value = request.headers.get("if-match")
    if value is None:
        return None
    tag = value.strip().removeprefix("W/").strip('"')
    if not (tag.isascii() and tag.isdigit()) or len(tag) > 9:
        raise BadRequest('If-Match must be an ETag such as W/"3"')
    return int(tag)


def _answer(data: dict[str, Any], *, base: str, status: int = 200) -> Response:
    version = data["meta"]["versionId"]
    return Response(
        orjson.dumps(data),
        status_code=status,
        media_type=FHIR_JSON,
        headers={
            "ETag": f'W/"{version}"',
            "Location": f"{base}/Subscription/{data['id']}/_history/{version}",
        },
    )


@router.post("")
async def create_subscription(request: Request, runtime: RuntimeDep, ctx: AccessDep) -> Response:
    """Subscribe to changes of what inwoners granted this client."""
    body = await _body(request, runtime)
    base = fhir_base(request, runtime.settings)

    def work() -> dict[str, Any]:
        with runtime.db.write() as conn:
            return SubscriptionStore(runtime, ctx).create(conn, body, fhir_base=base)

    return _answer(await run_in_threadpool(work), base=base, status=201)


@router.get("")
def search_subscriptions(request: Request, runtime: RuntimeDep, ctx: AccessDep) -> Response:
    """This client's own Subscriptions (no search parameters)."""
    return _search(request, runtime, ctx, list(request.query_params))


@router.post("/_search")
async def search_subscriptions_post(
    request: Request, runtime: RuntimeDep, ctx: AccessDep
) -> Response:
    """The same search by POST; only an empty form is understood."""
    form = await request.form()
    names = [*request.query_params, *form.keys()]
    return await run_in_threadpool(_search, request, runtime, ctx, names)


def _search(request: Request, runtime: Runtime, ctx: AccessContext, names: list[str]) -> Response:
    unknown = [n for n in names if n not in ("_format", "_pretty", "_count")]
    if unknown:
        raise BadRequest(f"Unknown Subscription search parameter '{unknown[0][:40]}'")
    base = fhir_base(request, runtime.settings)
    with runtime.db.read() as conn:
        found = SubscriptionStore(runtime, ctx).search(conn)
    bundle = complete_searchset(
        f"{base}/Subscription",
        [(f"{base}/Subscription/{s['id']}", s) for s in found],
        timestamp=now_micros(),
    )
    return Response(bundle, media_type=FHIR_JSON)


@router.get("/{subscription_id}")
def read_subscription(
    request: Request, runtime: RuntimeDep, ctx: AccessDep, subscription_id: str
) -> Response:
    """One of this client's Subscriptions, with the vault's status of it."""
    with runtime.db.read() as conn:
        data = SubscriptionStore(runtime, ctx).read(conn, subscription_id)
    return _answer(data, base=fhir_base(request, runtime.settings))


@router.put("/{subscription_id}")
async def update_subscription(
    request: Request, runtime: RuntimeDep, ctx: AccessDep, subscription_id: str
) -> Response:
    """Change a Subscription; status active again after error resumes delivery."""
    body = await _body(request, runtime)
    if_match = _if_match(request)

    def work() -> dict[str, Any]:
        with runtime.db.write() as conn:
            return SubscriptionStore(runtime, ctx).update(
                conn, subscription_id, body, if_match=if_match
            )

    return _answer(await run_in_threadpool(work), base=fhir_base(request, runtime.settings))


@router.delete("/{subscription_id}")
def delete_subscription(runtime: RuntimeDep, ctx: AccessDep, subscription_id: str) -> Response:
    """Stop and remove a Subscription, with whatever it had not yet delivered."""
    with runtime.db.write() as conn:
        SubscriptionStore(runtime, ctx).delete(conn, subscription_id)
    return Response(status_code=204)
