"""Keys of ``jwks_uri`` clients: a failing or slow key server costs the vault little.

Each key server here is a real HTTP server on 127.0.0.1 that counts the requests it gets.
Forged assertions name a registered client but are signed with the attacker's own key.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwk
from joserfc.errors import SecurityWarning

from tests.conftest import ServerThread
from tests.support.smart import BackendClient, client_assertion, make_key, register_backend
from vault.kernel import netguard
from vault.kernel.runtime import Runtime


class KeyServer:
    """A client's key server on 127.0.0.1: serves ``keys``, or fails the way ``mode`` says.

    ``mode``: "ok", "error" (HTTP 500), "garbage" (200 with a body that is no JWKS) or
    "slow" (answers only after ``release`` is set, or after 20 s).
    """

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.mode = "ok"
        self.hits = 0
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                if outer.mode == "slow":
                    outer.release.wait(20)
                if outer.mode == "error":
                    self.send_error(500)
                    return
                body = (
                    b"<html>not a key set</html>"
                    if outer.mode == "garbage"
                    else json.dumps({"keys": outer.keys}).encode()
                )
                try:
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the vault gave up waiting

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    server = KeyServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.httpd.shutdown()
        server.httpd.server_close()


def uri_client(runtime: Runtime, vault: ServerThread, key_server: KeyServer) -> BackendClient:
    """A backend client registered with ``key_server``'s address; its real key is served."""
    key = make_key("ES384")
    key_server.keys = [key.as_dict(private=False)]
    return register_backend(
        runtime, vault.url, scopes=["system/Organization.rs"], jwks_uri=key_server.url, key=key
    )


def forged(client: BackendClient, **claims: Any) -> str:
    """An assertion naming ``client``, signed with a key the attacker made."""
    return client_assertion(
        client_id=client.client_id, key=make_key("ES384"), token_url=client.token_url, **claims
    )


def refused(response: httpx.Response) -> str:
    assert response.status_code in (400, 401), response.text
    assert "access_token" not in response.text
    return str(response.json()["error"])


@pytest.mark.parametrize("mode", ["error", "garbage"])
def test_a_failing_key_server_gives_invalid_client_and_is_asked_once(
    runtime: Runtime, vault: ServerThread, http: httpx.Client, key_server: KeyServer, mode: str
) -> None:
    client = uri_client(runtime, vault, key_server)
    key_server.mode = mode
    for _ in range(4):
        assert refused(client.token_request(http, assertion=forged(client))) == "invalid_client"
    # The client's own, correctly signed assertion cannot be checked either: no token.
    assert refused(client.token_request(http)) == "invalid_client"
    assert key_server.hits == 1  # then the vault backs off


def test_an_unreachable_key_server_gives_invalid_client(
    runtime: Runtime, vault: ServerThread, http: httpx.Client, key_server: KeyServer
) -> None:
    client = uri_client(runtime, vault, key_server)
    key_server.httpd.shutdown()
    key_server.httpd.server_close()  # nothing listens on the port any more
    for _ in range(3):
        assert refused(client.token_request(http, assertion=forged(client))) == "invalid_client"


def test_a_slow_key_server_is_asked_once_for_many_concurrent_assertions(
    runtime: Runtime, vault: ServerThread, key_server: KeyServer
) -> None:
    client = uri_client(runtime, vault, key_server)
    key_server.mode = "slow"

    def attempt(_: int) -> httpx.Response:
        with httpx.Client(timeout=60) as http:
            return client.token_request(http, assertion=forged(client))

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(attempt, range(6)))
    assert [refused(a) for a in answers] == ["invalid_client"] * 6
    with httpx.Client(timeout=60) as http:
        for _ in range(3):
            assert refused(client.token_request(http, assertion=forged(client))) == "invalid_client"
    assert key_server.hits == 1


# Each case's claims, made when its test runs: an instant taken when the module was
# collected was no longer "in the future" once a slow run reached the test (seen at 21
# minutes for the suite), and the assertion then passed the cheap checks.
CHEAP_REFUSALS: dict[str, Callable[[], dict[str, Any]]] = {
    "expired": lambda: {"lifetime": -120},
    "living too long": lambda: {"lifetime": 3600},
    "another audience": lambda: {"aud": "https://elsewhere.example/oauth/token"},
    "issued by someone else": lambda: {"iss": "someone-else"},
    "not valid yet": lambda: {"nbf": int(time.time()) + 600},
    "issued in the future": lambda: {"iat": int(time.time()) + 600},
    "issued long ago": lambda: {"iat": int(time.time()) - 3600},
    "with a jti too long to keep": lambda: {"jti": "j" * 300},
}


@pytest.mark.parametrize("case", sorted(CHEAP_REFUSALS))
def test_an_assertion_that_fails_a_cheaper_check_fetches_no_keys(
    runtime: Runtime,
    vault: ServerThread,
    http: httpx.Client,
    key_server: KeyServer,
    case: str,
) -> None:
    client = uri_client(runtime, vault, key_server)
    assert refused(client.token_request(http, assertion=forged(client, **CHEAP_REFUSALS[case]())))
    assert key_server.hits == 0


def test_hmac_and_alg_none_fetch_no_keys(
    runtime: Runtime, vault: ServerThread, http: httpx.Client, key_server: KeyServer
) -> None:
    client = uri_client(runtime, vault, key_server)
    header = {"alg": "none", "typ": "JWT"}
    claims = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": client.token_url,
        "exp": int(time.time()) + 120,
        "jti": uuid.uuid4().hex,
    }

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    unsigned = f"{b64(header)}.{b64(claims)}."
    hmac = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}.c2lnbmF0dXJl"
    for assertion in (unsigned, hmac):
        assert refused(client.token_request(http, assertion=assertion)) == "invalid_client"
    assert key_server.hits == 0


def test_a_replayed_or_unknown_kid_assertion_fetches_no_more_keys(
    runtime: Runtime, vault: ServerThread, http: httpx.Client, key_server: KeyServer
) -> None:
    client = uri_client(runtime, vault, key_server)
    jti = uuid.uuid4().hex
    first = client_assertion(
        client_id=client.client_id, key=client.key, token_url=client.token_url, jti=jti
    )
    assert client.token_request(http, assertion=first).status_code == 200
    assert key_server.hits == 1
    assert refused(client.token_request(http, assertion=first)) == "invalid_client"
    # Unknown kids were just looked for: no refetch for a while, however many come.
    for _ in range(5):
        assert refused(client.token_request(http, assertion=forged(client))) == "invalid_client"
    assert key_server.hits == 1
    assert client.token_request(http).status_code == 200


def small_rsa_key() -> jwk.RSAKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # joserfc warns; the vault refuses
        return jwk.RSAKey.import_key(
            private, parameters={"kid": uuid.uuid4().hex[:16], "alg": "RS384", "use": "sig"}
        )


def test_an_rsa_key_under_2048_bits_from_a_jwks_uri_is_refused(
    runtime: Runtime, vault: ServerThread, http: httpx.Client, key_server: KeyServer
) -> None:
    weak = small_rsa_key()
    key_server.keys = [weak.as_dict(private=False)]
    client = register_backend(
        runtime, vault.url, scopes=["system/Organization.rs"], jwks_uri=key_server.url, key=weak
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        assertion = client_assertion(
            client_id=client.client_id, key=weak, token_url=client.token_url
        )
    response = client.token_request(http, assertion=assertion)
    assert refused(response) == "invalid_client"
    assert "2048" in response.json()["error_description"]


def test_a_jwks_uri_that_now_points_inside_is_never_fetched(
    runtime: Runtime, vault: ServerThread, http: httpx.Client
) -> None:
    """DNS rebinding: the name resolved to a public address at registration and to the
    vault's own loopback at the assertion; the vault checks again and never connects."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    connections = 0
    stop = threading.Event()

    def accept() -> None:
        nonlocal connections
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            connections += 1
            conn.close()

    watcher = threading.Thread(target=accept, daemon=True)
    watcher.start()
    # "localhost" resolves to loopback for real, so an unchecked fetch would connect.
    uri = f"https://localhost:{listener.getsockname()[1]}/jwks.json"
    try:
        with netguard.use_resolver(lambda host, port: ["93.184.216.34"]):
            client = register_backend(
                runtime, vault.url, scopes=["system/Organization.rs"], jwks_uri=uri
            )
        with netguard.use_resolver(lambda host, port: ["127.0.0.1"]):
            assert refused(client.token_request(http)) == "invalid_client"
    finally:
        stop.set()
        watcher.join()
        listener.close()
    assert connections == 0
