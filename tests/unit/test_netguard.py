"""The address check of vault/kernel/netguard.py, and that a request goes to the checked address."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from vault.kernel.netguard import Refused, Target, check_url, forbidden_address, pinned_request

FORBIDDEN = [
    "127.0.0.1",
    "127.255.0.9",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "100.64.0.1",
    "169.254.169.254",
    "0.0.0.0",
    "224.0.0.251",
    "239.1.1.1",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.10",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "64:ff9b::7f00:1",
    "2002:7f00:1::",
    "2001:db8::1",
]
PUBLIC = ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"]


@pytest.mark.parametrize("text", FORBIDDEN)
def test_non_public_addresses_are_forbidden(text: str) -> None:
    assert forbidden_address(ipaddress.ip_address(text))


@pytest.mark.parametrize("text", PUBLIC)
def test_public_unicast_addresses_are_allowed(text: str) -> None:
    assert not forbidden_address(ipaddress.ip_address(text))


@pytest.mark.parametrize(
    "url",
    [
        "https://127.1/",
        "https://2130706433/",
        "https://0x7f000001/",
        "https://localhost/",
        "http://127.0.0.1.evil.example/",
        "http://localhost@evil.example/",
        "https://169.254.169.254/",
        "ftp://93.184.215.14/",
        "https://93.184.215.14:99999/",
        "https://93.184.215.14/#x",
    ],
)
def test_check_url_refuses(url: str) -> None:
    with pytest.raises(Refused):
        check_url(url, allow_local_dev=True)


def test_the_development_switch_allows_exactly_127_0_0_1() -> None:
    assert check_url("http://127.0.0.1:8080/x", allow_local_dev=True).address == "127.0.0.1"
    with pytest.raises(Refused):
        check_url("http://127.0.0.1:8080/x", allow_local_dev=False)


@pytest.fixture
def listener() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            seen.append({"host": self.headers.get("host"), "body": self.rfile.read(length)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_pinned_request_connects_to_the_checked_address_and_keeps_the_name(
    listener: tuple[int, list[dict[str, Any]]],
) -> None:
    port, seen = listener
    # The name does not resolve anywhere: only the pinned address can have been used.
    target = Target(
        url=f"http://hooks.partner.invalid:{port}/hook",
        scheme="http",
        host="hooks.partner.invalid",
        port=port,
        address="127.0.0.1",
    )
    with httpx.Client(trust_env=False) as http:
        response = pinned_request(
            http, target, method="POST", headers={"HOST": "evil.example"}, content=b"{}"
        )
    assert response.status_code == 204
    assert seen == [{"host": f"hooks.partner.invalid:{port}", "body": b"{}"}]
