"""``VaultClient``: a partner system's connection to one Regiekluis vault.

What it does, and the spec behind each part:

- **Auth**: SMART Backend Services (``auth.py``) for a partner system, or any
  ``TokenSource`` given as ``auth=`` — ``AppLaunchAuth`` (``app_launch.py``) for a tool
  that acts for one inwoner, on the inwoner's own authority. The endpoints come from
  ``/.well-known/smart-configuration`` (SMART App Launch 2.x, "Conformance"). The token is
  cached, renewed shortly before it expires, and renewed once when the vault answers 401
  (the operator may have revoked it).
- **Typed resources**: every resource comes back as its ``fhir.resources.R4B`` model.
- **Paging**: searches are iterators that follow the Bundle's ``next`` link
  (https://hl7.org/fhir/R4/http.html#paging).
- **Retries**: 429, 502, 503, 504 (and 500) and connection errors are retried with
  exponential backoff and full jitter, honouring ``Retry-After`` (RFC 9110 section 10.2.3),
  a bounded number of times; then ``VaultUnavailable``.
- **Revocation**: a read that answers 404 or 410 raises ``AccessRevoked``.

The HTTP client is injected (``http=``), so tests hand in an ``httpx.MockTransport`` and a
partner can set proxies, certificates and timeouts once, in their own ``httpx.Client``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urljoin

import httpx
import orjson
from fhir.resources.R4B import get_fhir_model_class
from joserfc.jwk import Key

from adapters.sdk.auth import ClientAssertionSigner, TokenCache
from adapters.sdk.errors import (
    AccessRevoked,
    AuthenticationFailed,
    ExportFailed,
    RequestRejected,
    VaultUnavailable,
)

__all__ = [
    "FHIR_JSON",
    "ExportManifest",
    "RetryPolicy",
    "TokenSource",
    "VaultClient",
    "to_model",
]

FHIR_JSON = "application/fhir+json"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
Params = Mapping[str, str] | Sequence[tuple[str, str]]


def to_model(data: Mapping[str, Any]) -> Any:
    """A FHIR JSON resource as its ``fhir.resources.R4B`` model (validated)."""
    model = get_fhir_model_class(str(data["resourceType"]))
    return model.model_validate(dict(data))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to wait: ``attempts`` retries after the first try."""

    attempts: int = 4
    base: float = 0.5  # seconds before the first retry (before jitter)
    cap: float = 30.0  # no single wait is longer, not even when Retry-After asks for more

    def delay(self, attempt: int, retry_after: float | None, rng: Callable[[], float]) -> float:
        """Seconds to wait before retry number ``attempt`` (0 first); ``retry_after`` is the
        vault's ``Retry-After`` in seconds, if it sent one; ``rng`` gives 0.0 to 1.0."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap)
        # Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): many
        # partners retrying after the same outage must not come back in lock-step.
        return min(self.cap, self.base * 2.0**attempt) * rng()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _outcome_text(response: httpx.Response) -> tuple[str, dict[str, Any] | None]:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200], None
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        issues = body.get("issue") or [{}]
        return str(issues[0].get("diagnostics") or issues[0].get("code") or ""), body
    if isinstance(body, dict) and "error" in body:
        return f"{body['error']}: {body.get('error_description', '')}", None
    return response.text[:200], None


class TokenSource(Protocol):
    """Where a ``VaultClient`` gets bearer tokens when it is not a Backend Services client."""

    def access_token(self, client: VaultClient) -> str:
        """A valid bearer token; may use ``client`` to reach the token endpoint."""
        ...

    def invalidate(self) -> None:
        """Forget the current access token: the vault refused it."""
        ...


class VaultClient:
    """A client of one vault: a partner system's, or a tool acting for one inwoner.

    ``base_url`` is the vault's address (``https://vault.example.nl``); FHIR lives at
    ``base_url + "/fhir"``. A partner system (SMART Backend Services) gives its
    ``private_key``, and ``scopes`` are the SMART ``system/`` scopes to ask for (at most
    what the client was registered with). A tool acting for an inwoner gives ``auth=``
    instead (``AppLaunchAuth``), whose token carries the inwoner's ``patient/`` scopes.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        private_key: Key | None = None,
        *,
        auth: TokenSource | None = None,
        http: httpx.Client | None = None,
        scopes: Sequence[str] = ("system/*.rs",),
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.fhir_base = self.base_url + "/fhir"
        self.client_id = client_id
        self.scopes = tuple(scopes)
        if (private_key is None) == (auth is None):
            raise ValueError("give either private_key (Backend Services) or auth, not both")
        self._auth = auth
        self._signer = (
            ClientAssertionSigner(client_id, private_key) if private_key is not None else None
        )
        self._tokens = TokenCache(monotonic=monotonic)
        self._own_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng
        self._configuration: dict[str, Any] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP client, if this client made it."""
        if self._own_http:
            self._http.close()

    def __enter__(self) -> VaultClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- auth ------------------------------------------------------------------------------

    def smart_configuration(self) -> dict[str, Any]:
        """The vault's ``/.well-known/smart-configuration``, fetched once."""
        if self._configuration is None:
            response = self._send(
                "GET", f"{self.base_url}/.well-known/smart-configuration", authorize=False
            )
            self._raise_for_status(response)
            self._configuration = dict(response.json())
        return self._configuration

    @property
    def token_url(self) -> str:
        """The token endpoint, as the vault's SMART configuration names it."""
        return str(self.smart_configuration()["token_endpoint"])

    def access_token(self) -> str:
        """A bearer token: the cached one, or a new one from the token endpoint."""
        if self._auth is not None:
            return self._auth.access_token(self)
        cached = self._tokens.current()
        if cached is not None:
            return cached
        token_url = self.token_url
        signer = self._signer
        assert signer is not None  # __init__ makes one unless auth is given
        response = self._send(
            "POST",
            token_url,
            authorize=False,
            # A new assertion per attempt: a retried request must not reuse a spent jti.
            form=lambda: signer.form(token_url, self.scopes),
        )
        if response.status_code != 200:
            try:
                body = response.json()
            except ValueError:
                body = {}
            raise AuthenticationFailed(
                str(body.get("error", response.status_code)), str(body.get("error_description", ""))
            )
        return self._tokens.store(response.json()).access_token

    # -- HTTP ------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        form: Callable[[], dict[str, str]] | None = None,
        json: Any = None,
        authorize: bool = True,
        retry_statuses: frozenset[int] = RETRY_STATUSES,
    ) -> httpx.Response:
        """One request with retries (429/5xx/connection) and one token renewal on 401."""
        attempt = 0
        renewed = False
        while True:
            request_headers = {"accept": FHIR_JSON, **(headers or {})}
            if authorize:
                request_headers["authorization"] = f"Bearer {self.access_token()}"
            try:
                response = self._http.request(
                    method,
                    url,
                    params=tuple(_pairs(params)) if params is not None else None,
                    headers=request_headers,
                    data=form() if form is not None else None,
                    json=json,
                )
            except httpx.TransportError as exc:
                if attempt >= self._retry.attempts:
                    raise VaultUnavailable(f"{method} {url}: {exc}") from exc
                self._sleep(self._retry.delay(attempt, None, self._rng))
                attempt += 1
                continue
            if response.status_code == 401 and authorize and not renewed:
                self._tokens.invalidate()
                if self._auth is not None:
                    self._auth.invalidate()
                renewed = True
                continue
            if response.status_code in retry_statuses:
                if attempt >= self._retry.attempts:
                    raise VaultUnavailable(
                        f"{method} {url}: {response.status_code} after {attempt + 1} tries"
                    )
                self._sleep(self._retry.delay(attempt, _retry_after(response), self._rng))
                attempt += 1
                continue
            return response

    def _raise_for_status(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        message, outcome = _outcome_text(response)
        raise RequestRejected(response.status_code, message, outcome)

    def _url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return urljoin(self.fhir_base + "/", path_or_url.lstrip("/"))

    def get_json(self, path_or_url: str, params: Params | None = None) -> dict[str, Any]:
        """GET a FHIR URL (relative to ``/fhir``, or absolute) and return its JSON."""
        response = self._send("GET", self._url(path_or_url), params=params)
        self._raise_for_status(response)
        body: dict[str, Any] = response.json()
        return body

    # -- FHIR ------------------------------------------------------------------------------

    def read_json(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """The current version as JSON; ``AccessRevoked`` when it is no longer readable."""
        response = self._send("GET", self._url(f"{resource_type}/{resource_id}"))
        if response.status_code in (404, 410):
            raise AccessRevoked([f"{resource_type}/{resource_id}"], response.status_code)
        self._raise_for_status(response)
        body: dict[str, Any] = response.json()
        return body

    def read(self, resource_type: str, resource_id: str) -> Any:
        """The current version as its ``fhir.resources.R4B`` model."""
        return to_model(self.read_json(resource_type, resource_id))

    def create(self, resource: Mapping[str, Any], *, if_none_exist: str | None = None) -> Any:
        """POST a new resource; with ``if_none_exist`` (search criteria such as
        ``identifier=sys|value``) the vault creates it only when nothing matches, and
        otherwise answers with the match (FHIR R4 conditional create)."""
        headers = {"content-type": FHIR_JSON, "prefer": "return=representation"}
        if if_none_exist is not None:
            headers["if-none-exist"] = if_none_exist
        url = self._url(str(resource["resourceType"]))
        response = self._send("POST", url, headers=headers, json=dict(resource))
        self._raise_for_status(response)
        return to_model(response.json())

    def update(self, resource: Mapping[str, Any], *, if_match: str | None = None) -> Any:
        """PUT a resource (a partner with a ``correct`` grant; an inwoner's app)."""
        headers = {"content-type": FHIR_JSON}
        if if_match is not None:
            headers["if-match"] = if_match
        url = self._url(f"{resource['resourceType']}/{resource['id']}")
        response = self._send("PUT", url, headers=headers, json=dict(resource))
        self._raise_for_status(response)
        return to_model(response.json())

    def subscribe(self, subscription: Mapping[str, Any]) -> dict[str, Any]:
        """POST a Subscription (see ``notifications.subscription_resource``); the stored one."""
        response = self._send(
            "POST",
            self._url("Subscription"),
            headers={"content-type": FHIR_JSON},
            json=dict(subscription),
        )
        self._raise_for_status(response)
        body: dict[str, Any] = response.json()
        return body

    def unsubscribe(self, subscription_id: str) -> None:
        """Delete one of this client's Subscriptions, with what it had not yet delivered."""
        response = self._send("DELETE", self._url(f"Subscription/{subscription_id}"))
        self._raise_for_status(response)

    def bundles(self, resource_type: str, params: Params | None = None) -> Iterator[dict[str, Any]]:
        """Every page of a search, as Bundle JSON, following ``next`` links."""
        url: str | None = self._url(resource_type)
        query: Params | None = params
        while url is not None:
            bundle = self.get_json(url, query)
            query = None  # a next link carries the whole query, cursor included
            yield bundle
            url = next(
                (
                    link["url"]
                    for link in bundle.get("link", [])
                    if link.get("relation") == "next" and link.get("url")
                ),
                None,
            )

    def search_json(
        self, resource_type: str, params: Params | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every match of a search (no includes), as JSON, page after page."""
        for bundle in self.bundles(resource_type, params):
            for entry in bundle.get("entry", []):
                if entry.get("search", {}).get("mode", "match") == "match" and "resource" in entry:
                    yield entry["resource"]

    def search(self, resource_type: str, params: Params | None = None) -> Iterator[Any]:
        """Every match of a search as ``fhir.resources.R4B`` models, page after page."""
        for data in self.search_json(resource_type, params):
            yield to_model(data)

    def bulk_export(
        self,
        *,
        level: str = "system",
        types: Sequence[str] = (),
        since: str | None = None,
        timeout: float = 600.0,
        delete: bool = True,
    ) -> Iterator[Any]:
        """Kick off a Bulk Data export, poll until it is done, and yield every exported
        resource as its R4B model, file after file. ``level`` is ``system`` (``$export``)
        or ``patient`` (``Patient/$export``); ``delete`` removes the files afterwards."""
        bulk = _BulkExport(self)
        status_url = bulk.kick_off(level=level, types=types, since=since)
        try:
            found = bulk.wait(status_url, timeout=timeout)
            for _type, url, _count in found.outputs:
                for data in bulk.download(url):
                    yield to_model(data)
        finally:
            if delete:
                bulk.delete(status_url)

    def bulk_export_manifest(
        self,
        *,
        level: str = "system",
        types: Sequence[str] = (),
        since: str | None = None,
        timeout: float = 600.0,
    ) -> ExportManifest:
        """Kick off an export and wait for its manifest, without downloading."""
        bulk = _BulkExport(self)
        return bulk.wait(bulk.kick_off(level=level, types=types, since=since), timeout=timeout)

    def bulk_download(self, url: str) -> Iterator[dict[str, Any]]:
        """The resources of one export output file, as JSON."""
        return _BulkExport(self).download(url)

    def count(self, resource_type: str, params: Params | None = None) -> int:
        """How many resources a search matches (``_summary=count``)."""
        query = [*_pairs(params), ("_summary", "count")]
        return int(self.get_json(resource_type, query).get("total", 0))


NDJSON = "application/fhir+ndjson"


@dataclass(frozen=True, slots=True)
class ExportManifest:
    """The complete-status body of a Bulk Data export."""

    status_url: str
    transaction_time: str
    outputs: tuple[tuple[str, str, int], ...]  # (resource type, url, count)


class _BulkExport:
    """FHIR Bulk Data Access 2.0, the client side: kick-off, poll, download, delete."""

    def __init__(self, client: VaultClient) -> None:
        self._client = client

    def kick_off(self, *, level: str, types: Sequence[str], since: str | None) -> str:
        client = self._client
        path = {"system": "$export", "patient": "Patient/$export"}[level]
        params: list[tuple[str, str]] = [("_outputFormat", NDJSON)]
        if types:
            params.append(("_type", ",".join(types)))
        if since is not None:
            params.append(("_since", since))
        response = client._send(
            "GET", client._url(path), params=params, headers={"prefer": "respond-async"}
        )
        client._raise_for_status(response)
        if response.status_code != 202 or "content-location" not in response.headers:
            raise ExportFailed(f"the kick-off answered {response.status_code}, not 202")
        return response.headers["content-location"]

    def wait(self, status_url: str, *, timeout: float) -> ExportManifest:
        client = self._client
        waited = 0.0
        while True:
            # A 500 here is the export's own failure, not a server hiccup worth retrying.
            response = client._send("GET", status_url, retry_statuses=RETRY_STATUSES - {500})
            if response.status_code == 200:
                body = response.json()
                outputs = tuple(
                    (str(o["type"]), str(o["url"]), int(o.get("count", 0)))
                    for o in body.get("output", [])
                )
                return ExportManifest(status_url, str(body.get("transactionTime", "")), outputs)
            if response.status_code != 202:
                message, _ = _outcome_text(response)
                raise ExportFailed(f"the export ended with {response.status_code}: {message}")
            delay = client._retry.delay(0, _retry_after(response) or 1.0, client._rng)
            if waited + delay > timeout:
                raise ExportFailed(f"the export did not finish within {timeout} seconds")
            client._sleep(delay)
            waited += delay

    def download(self, url: str) -> Iterator[dict[str, Any]]:
        client = self._client
        response = client._send("GET", url, headers={"accept": NDJSON})
        client._raise_for_status(response)
        for line in response.text.splitlines():
            if line.strip():
                yield orjson.loads(line)

    def delete(self, status_url: str) -> None:
        client = self._client
        response = client._send("DELETE", status_url)
        if response.status_code not in (202, 404):
            client._raise_for_status(response)


def _pairs(params: Params | None) -> list[tuple[str, str]]:
    if params is None:
        return []
    if isinstance(params, Mapping):
        return list(params.items())
    return list(params)
