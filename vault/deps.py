"""FastAPI dependency aliases: the runtime, the caller's AccessContext, the repository."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from inspect import isawaitable
from typing import Annotated

from fastapi import Depends, Request

from vault.access import AccessContext
from vault.errors import Unauthorized
from vault.fhir.repository import Repository
from vault.runtime import Runtime

__all__ = [
    "AccessDep",
    "AccessResolver",
    "RepositoryDep",
    "RuntimeDep",
    "deny_all",
    "get_access",
    "get_repository",
    "get_runtime",
    "request_repository",
]

# Plain or async: a resolver that asks the database awaits it (``oauth/protector.py``).
AccessResolver = Callable[[Request], AccessContext | Awaitable[AccessContext]]


def deny_all(_request: Request) -> AccessContext:
    """The resolver until credentials are plugged in: nobody gets in."""
    raise Unauthorized(
        "This request needs a bearer token issued by this vault",
        headers={"WWW-Authenticate": 'Bearer realm="regiekluis"'},
    )


# The dependencies are async because they never block: a sync dependency would cost a
# thread-pool hop per request, about as much as the rest of a read.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_access(request: Request) -> AccessContext:
    resolver: AccessResolver = request.app.state.access_resolver
    found = resolver(request)
    return await found if isawaitable(found) else found


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
AccessDep = Annotated[AccessContext, Depends(get_access)]


async def get_repository(runtime: RuntimeDep, ctx: AccessDep) -> Repository:
    return Repository(runtime, ctx)


RepositoryDep = Annotated[Repository, Depends(get_repository)]


async def request_repository(request: Request) -> tuple[Runtime, Repository]:
    """The runtime and repository without FastAPI's dependency solver, for the hottest routes.

    Solving the three dependencies above costs a read about a quarter of its CPU time
    (docs/performance.md); this gives the same objects from the same functions.
    """
    runtime = await get_runtime(request)
    return runtime, Repository(runtime, await get_access(request))
