"""The FastAPI dependency for the process's one ``Runtime`` (on ``app.state``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from vault.kernel.runtime import Runtime

__all__ = ["RuntimeDep", "get_runtime"]


# Async because it never blocks: a sync dependency would cost a thread-pool hop per
# request, about as much as the rest of a read.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
