"""The FastAPI dependency for a ``Repository`` bound to the caller's ``AccessContext``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from vault.consent.caller import AccessDep, get_access
from vault.fhir.repository import Repository
from vault.kernel.runtime import Runtime
from vault.kernel.web import RuntimeDep, get_runtime

__all__ = ["RepositoryDep", "get_repository", "request_repository"]


async def get_repository(runtime: RuntimeDep, ctx: AccessDep) -> Repository:
    return Repository(runtime, ctx)


RepositoryDep = Annotated[Repository, Depends(get_repository)]


async def request_repository(request: Request) -> tuple[Runtime, Repository]:
    """The runtime and repository without FastAPI's dependency solver, for the hottest routes.

    Solving the dependencies costs a read about a quarter of its CPU time
    (docs/performance.md); this gives the same objects from the same functions.
    """
    runtime = await get_runtime(request)
    return runtime, Repository(runtime, await get_access(request))
