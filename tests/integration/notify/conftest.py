"""A vault whose delivery worker runs fast and may call http://127.0.0.1, partners that may
subscribe, and a real HTTP receiver on 127.0.0.1 that records what the vault sends."""

from __future__ import annotations

import dataclasses
import queue
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest

from tests.factories import patient, subscription
from tests.support import fresh_database
from vault.testing import DEMO_SCOPES, RegisteredClient, ThrowawayVault

SUBSCRIBER_SCOPES = (*DEMO_SCOPES, "system/Subscription.cruds")
MAX_ATTEMPTS = 3
WAIT = 30.0  # seconds a test waits for a notification before it fails


@pytest.fixture(scope="module")
def notify_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayVault]:
    directory = tmp_path_factory.mktemp("notify")
    with fresh_database(directory) as url:
        vault = ThrowawayVault(directory, database_url=url)
        vault.settings = dataclasses.replace(
            vault.settings,
            notify_allow_local_http=True,
            notify_poll_seconds=0.05,
            notify_retry_seconds=0.05,
            notify_max_attempts=MAX_ATTEMPTS,
            notify_timeout_seconds=5.0,
        )
        with vault:
            yield vault


def register(
    vault: ThrowawayVault, *, scopes: tuple[str, ...] = SUBSCRIBER_SCOPES
) -> RegisteredClient:
    """A partner organisation of its own, so no other test's Consent reaches it."""
    return vault.register_client(organization=f"Partner {uuid.uuid4().hex[:10]}", scopes=scopes)


@pytest.fixture
def partner(notify_vault: ThrowawayVault) -> RegisteredClient:
    return register(notify_vault)


@pytest.fixture
def inwoner(notify_vault: ThrowawayVault) -> str:
    return str(notify_vault.write(patient())["id"])


@dataclass
class Received:
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def parameters(self) -> dict[str, Any]:
        status = self.body["entry"][0]["resource"]
        return {p["name"]: p for p in status["parameter"]}

    @property
    def focus(self) -> str:
        parts = {p["name"]: p for p in self.parameters["notification-event"]["part"]}
        return str(parts["focus"]["valueReference"]["reference"])

    @property
    def event_number(self) -> int:
        parts = {p["name"]: p for p in self.parameters["notification-event"]["part"]}
        return int(parts["event-number"]["valueString"])


@dataclass
class Receiver:
    """Records every POST; answers with ``statuses`` in turn, then 200."""

    url: str
    received: queue.Queue[Received] = field(default_factory=queue.Queue)
    statuses: list[int] = field(default_factory=list)

    def next(self) -> Received:
        return self.received.get(timeout=WAIT)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = orjson.loads(self.rfile.read(length))
            owner = box["receiver"]
            status = owner.statuses.pop(0) if owner.statuses else 200
            owner.received.put(Received(dict(self.headers.items()), body))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box["receiver"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box["receiver"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def fhir(vault: ThrowawayVault, partner: RegisteredClient) -> httpx.Client:
    """Plain HTTP to /fhir with the partner's own bearer token."""
    with vault.client(partner) as client:
        token = client.access_token()
    return httpx.Client(
        base_url=vault.url + "/fhir",
        headers={"authorization": f"Bearer {token}", "accept": "application/fhir+json"},
        timeout=30,
    )


def subscribe(http: httpx.Client, endpoint: str, **options: Any) -> dict[str, Any]:
    response = http.post(
        "/Subscription",
        content=orjson.dumps(subscription(endpoint=endpoint, **options)),
        headers={"content-type": "application/fhir+json"},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def partner_http(notify_vault: ThrowawayVault, partner: RegisteredClient) -> Iterator[httpx.Client]:
    with fhir(notify_vault, partner) as http:
        yield http
        # Switch this test's subscriptions off, so later tests' fan-out does not call them.
        for entry in http.get("/Subscription").json().get("entry", []):
            http.delete(f"/Subscription/{entry['resource']['id']}")
