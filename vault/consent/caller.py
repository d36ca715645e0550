"""Who is calling: the FastAPI dependency that gives every route its ``AccessContext``.

The app registers one resolver on ``app.state.access_resolver`` (the bearer-token check of
``vault/oauth/protector.py`` in the served app); until it does, nobody gets in. Routes of
every layer ask for ``AccessDep`` and never see how the caller was identified.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from inspect import isawaitable
from typing import Annotated

from fastapi import Depends, Request

from vault.consent.access import AccessContext
from vault.kernel.errors import Unauthorized

__all__ = ["AccessDep", "AccessResolver", "deny_all", "get_access"]

# Plain or async: a resolver that asks the database awaits it (``oauth/protector.py``).
AccessResolver = Callable[[Request], AccessContext | Awaitable[AccessContext]]


def deny_all(_request: Request) -> AccessContext:
    """The resolver until credentials are plugged in: nobody gets in."""
    raise Unauthorized(
        "This request needs a bearer token issued by this vault",
        headers={"WWW-Authenticate": 'Bearer realm="regiekluis"'},
    )


async def get_access(request: Request) -> AccessContext:
    resolver: AccessResolver = request.app.state.access_resolver
    found = resolver(request)
    return await found if isawaitable(found) else found


AccessDep = Annotated[AccessContext, Depends(get_access)]
