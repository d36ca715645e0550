"""Who is calling: the FastAPI dependency that gives every route its ``AccessContext``.

The app registers one resolver on ``app.state.access_resolver`` (the bearer-token check of
``vault/oauth/protector.py`` in the served app); until it does, nobody gets in. Routes of
every layer ask for ``AccessDep`` and never see how the caller was identified.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from inspect import isawaitable
from typing import Annotated, Any

from fastapi import Depends, Request

from vault.consent.access import AccessContext
from vault.kernel.errors import Unauthorized

__all__ = [
    "AccessDep",
    "AccessResolver",
    "ProvisionalAccess",
    "deny_all",
    "get_access",
    "provisional_access",
]

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


@dataclass(frozen=True, slots=True)
class ProvisionalAccess:
    """An access context the resolver has seen before, not yet checked for this request.

    ``condition`` is SQL (in the database's parameter style, with ``params``) that holds
    only while the context still does: the caller's token is still valid and says what it
    said. A request may act on ``ctx`` only through a statement that carries the condition
    (:meth:`around`) and has returned a row: then the check and the read were one statement.
    Without a row, the request starts again on the checked path (``get_access``), which tells
    an invalid token (401) from an answer about the data. Nothing may be logged, answered or
    refused on ``ctx`` alone.
    """

    ctx: AccessContext
    condition: str
    params: tuple[Any, ...] | dict[str, Any]

    def around(self, sql: str, params: Any) -> tuple[str, Any]:
        """``sql`` (a SELECT) returning its rows only while the condition holds."""
        # Both texts are the vault's own statements; every value is a parameter.
        text = f"SELECT * FROM ({sql}) AS rk_checked WHERE {self.condition}"  # noqa: S608
        # Named parameters (PostgreSQL's reads) or positional ones (SQLite's), as the
        # resolver wrote the condition for the same database.
        if isinstance(params, dict) and isinstance(self.params, dict):
            return text, {**params, **self.params}
        if not isinstance(params, dict) and not isinstance(self.params, dict):
            return text, [*params, *self.params]
        raise TypeError("the condition's parameters are not in the read's style")


def provisional_access(request: Request) -> ProvisionalAccess | None:
    """The resolver's :class:`ProvisionalAccess` for this request, if it offers one (the
    bearer-token check does, for a token it looked up before); no database is asked."""
    provisional = getattr(request.app.state.access_resolver, "provisional", None)
    found: ProvisionalAccess | None = None if provisional is None else provisional(request)
    return found
