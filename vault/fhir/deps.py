"""The FastAPI dependency for a ``Repository`` bound to the caller's ``AccessContext``."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import unquote_to_bytes

from anyio import to_thread
from fastapi import Depends, Request

from vault.consent.access import AccessContext
from vault.consent.caller import AccessDep, get_access, provisional_access
from vault.fhir.repository import Repository
from vault.kernel.runtime import Runtime
from vault.kernel.web import RuntimeDep, get_runtime
from vault.store.writes import Stored

__all__ = [
    "RepositoryDep",
    "get_repository",
    "provisional_read",
    "request_repository",
    "settle_log",
]


async def get_repository(request: Request, runtime: RuntimeDep, ctx: AccessDep) -> Repository:
    await settle_log(request, runtime, ctx)
    return Repository(runtime, ctx)


RepositoryDep = Annotated[Repository, Depends(get_repository)]


async def request_repository(request: Request) -> tuple[Runtime, Repository]:
    """The runtime and repository without FastAPI's dependency solver, for the hottest routes.

    Solving the dependencies costs a read about a quarter of its CPU time
    (docs/performance.md); this gives the same objects from the same functions.
    """
    runtime = await get_runtime(request)
    ctx = await get_access(request)
    await settle_log(request, runtime, ctx)
    return runtime, Repository(runtime, ctx)


async def provisional_read(request: Request, resource_type: str, resource_id: str) -> Stored | None:
    """A read by id for a caller whose token this process knows, the token's check inside
    the read's own statement (``ProvisionalAccess``), its record logged before the answer
    like any read's; None when the checked way must answer (``request_repository``, then
    ``read_async``): an unknown token, or any answer but the resource."""
    provisional = provisional_access(request)
    if provisional is None:
        return None
    repo = Repository(await get_runtime(request), provisional.ctx)
    async with repo.audited():
        return await repo.read_provisionally(resource_type, resource_id, provisional)


# Interactions on one named type that can answer nothing of the access log unless the
# type is AuditEvent or the query names it (``_revinclude=AuditEvent:entity``, ``_has``).
_ONE_TYPE = frozenset({"read", "vread", "search_get", "create", "update", "delete"})


async def settle_log(request: Request, runtime: Runtime, ctx: AccessContext) -> None:
    """The access log's waiting records (``audit/log.py``) become AuditEvents before a
    caller who may read the log reads anything that can hold one: AuditEvent itself,
    ``$everything``, history, a query naming AuditEvent or a wildcard. A partner never
    may (``settle_for`` returns at once), nor does a read of another type."""
    if ctx.kind == "system":
        return
    # The plain read (``PlainReadMiddleware``) comes without an endpoint: a read by id.
    endpoint = getattr(request.scope.get("endpoint"), "__name__", "read")
    query = unquote_to_bytes(request.scope.get("query_string", b""))  # %41uditEvent too
    if (
        endpoint in _ONE_TYPE
        and request.path_params.get("resource_type") != "AuditEvent"
        and b"AuditEvent" not in query
        and b"*" not in query
    ):
        return
    await to_thread.run_sync(runtime.audit.settle_for, ctx)
