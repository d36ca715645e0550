"""Starlette requests as authlib OAuth 2 requests.

authlib ships no Starlette server integration, so this is the counterpart of its
``integrations/flask_oauth2/requests.py``: the body is read (async) before authlib's
synchronous endpoints run, then handed over as plain data.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cached_property
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from starlette.datastructures import FormData, QueryParams
from starlette.requests import Request

__all__ = ["StarletteOAuth2Request", "oauth2_request"]


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, values: list[tuple[str, str]]) -> None:
        self._values = values

    @property
    def data(self) -> dict[str, str]:
        # Like Flask's request.values: the first value of each name, query before form.
        merged: dict[str, str] = {}
        for key, value in self._values:
            merged.setdefault(key, value)
        return merged

    @cached_property
    def datalist(self) -> defaultdict[str, list[str]]:
        values: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in self._values:
            values[key].append(value)
        return values


class StarletteOAuth2Request(OAuth2Request):  # type: ignore[misc]
    def __init__(
        self,
        *,
        method: str,
        uri: str,
        headers: Any,
        args: QueryParams,
        form: dict[str, str],
        form_items: list[tuple[str, str]],
    ) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self._args = args
        self._form = form
        self.payload = _Payload(list(args.multi_items()) + form_items)

    @property
    def args(self) -> dict[str, str]:
        return dict(self._args)

    @property
    def form(self) -> dict[str, str]:
        return self._form


async def oauth2_request(request: Request, *, origin: str) -> StarletteOAuth2Request:
    """Read the form body (if any) and wrap the request for authlib.

    The URI authlib sees is the vault's configured ``origin`` plus the path, never the
    request's Host header (``vault/kernel/urls.py``). authlib refuses a URI that is neither https
    nor loopback http with ``InsecureTransportError``.
    """
    items: list[tuple[str, str]] = []
    if request.method == "POST":
        form: FormData = await request.form()
        items = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    first: dict[str, str] = {}
    for key, value in items:
        first.setdefault(key, value)
    root = str(request.scope.get("root_path", ""))
    path = request.url.path.removeprefix(root) if root else request.url.path
    query = request.url.query
    return StarletteOAuth2Request(
        method=request.method,
        uri=f"{origin}{path}" + (f"?{query}" if query else ""),
        headers=request.headers,
        args=request.query_params,
        form=first,
        form_items=items,
    )
