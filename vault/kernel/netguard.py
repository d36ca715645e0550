"""The one check before the vault connects to an address a partner chose (SSRF guard).

Two places make the vault open a connection to a URL someone else wrote down: the
delivery worker POSTs notifications to a Subscription's ``channel.endpoint``
(vault/notify), and the authorization server fetches a client's ``jwks_uri`` (vault/oauth).
Both would let a partner make the vault knock on doors inside its own network (OWASP
"Server-Side Request Forgery Prevention Cheat Sheet"), so both go through :func:`check_url`.

Why it decides by the *resolved* address, not by the text of the URL:

- ``https://127.1``, ``https://2130706433``, ``https://0x7f000001`` and ``https://localhost.``
  all reach 127.0.0.1 (the C resolver, ``inet_aton``, reads all of them), and ``localhost``
  or any DNS name can point anywhere; a list of forbidden host *spellings* never ends.
- A name that resolved to a public address at registration may resolve to 127.0.0.1 later
  (DNS rebinding). So the check runs at registration *and* again right before each
  connection, and :func:`pinned_request` connects to exactly the address that was checked
  (the name still goes into ``Host`` and into TLS SNI and certificate verification).

Refused: every address that is not globally routable unicast (RFC 6890 special-purpose
registries, as Python's ``ipaddress`` knows them): loopback, private (RFC 1918, ULA
``fc00::/7``), shared (``100.64/10``), link-local (``169.254/16``, ``fe80::/10``: cloud
metadata), multicast, unspecified, reserved and documentation ranges. IPv6 forms that carry
an IPv4 address (IPv4-mapped ``::ffff:0:0/96``, NAT64 ``64:ff9b::/96``, 6to4, Teredo) are
judged by that IPv4 address too. A URL with userinfo (``http://localhost@evil.example``) is
refused outright: it only ever serves to make a URL read as another host.

The operator's development switch (``VAULT_NOTIFY_ALLOW_LOCAL_HTTP=1``) allows exactly one
more thing: the literal host ``127.0.0.1`` (plain http or https), so a developer's receiver
on this machine works. Names that resolve to it stay refused.

Resolution is outside the machine's control, so tests may swap the resolver
(:func:`use_resolver`); the check and the connection are the real ones.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

__all__ = [
    "Refused",
    "Resolver",
    "Target",
    "build_pinned_request",
    "check_url",
    "forbidden_address",
    "pinned_request",
    "use_resolver",
]

# host, port -> the addresses a connection would go to (as text).
Resolver = Callable[[str, int], list[str]]
LOCAL_DEV_HOST = "127.0.0.1"
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(ValueError):
    """The URL may not be connected to; the message says why, for the caller."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL and the one address a connection to it must go to."""

    url: str
    scheme: str
    host: str  # as in the URL (a name or an address), lowercase, without brackets
    port: int
    address: str  # checked; connect here and nowhere else


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


_resolver: Resolver = _system_resolver


@contextmanager
def use_resolver(resolver: Resolver) -> Iterator[None]:
    """Resolve with ``resolver`` inside the block (tests: DNS is outside this machine)."""
    global _resolver
    previous, _resolver = _resolver, resolver
    try:
        yield
    finally:
        _resolver = previous


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden_address(address: IPAddress) -> bool:
    """Whether ``address`` is anything but a globally routable unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None and forbidden_address(inner):
            return True
        if address.scope_id:
            return True  # an interface-scoped address is local by definition
    return (
        not address.is_global
        or address.is_multicast
        or address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    )


def check_url(url: str, *, allow_local_dev: bool, what: str = "The URL") -> Target:
    """Check ``url`` and resolve its host now; raise :class:`Refused` when it may not be used.

    ``allow_local_dev`` is the operator's development switch: it allows the literal host
    127.0.0.1, over plain http too. Everything else must be https to a public address.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused(f"{what} is not a valid URL") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise Refused(f"{what} must be an absolute https URL")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise Refused(f"{what} may not contain a user name or password")
    if parts.fragment:
        raise Refused(f"{what} may not contain a fragment")
    port = port if port is not None else (443 if parts.scheme == "https" else 80)
    local_dev = allow_local_dev and host == LOCAL_DEV_HOST
    if parts.scheme != "https" and not local_dev:
        raise Refused(f"{what} must use https")
    if local_dev:
        return Target(url, parts.scheme, host, port, LOCAL_DEV_HOST)
    try:
        resolved = _resolver(host, port)
    except (OSError, UnicodeError, ValueError):
        raise Refused(f"{what}: the host name does not resolve") from None
    addresses: list[IPAddress] = []
    for text in resolved:
        try:
            addresses.append(ipaddress.ip_address(text))
        except ValueError:
            raise Refused(f"{what}: the host resolves to something that is no address") from None
    if not addresses:
        raise Refused(f"{what}: the host name does not resolve")
    # Every address, not only the first: the connection could go to any of them.
    if any(forbidden_address(address) for address in addresses):
        raise Refused(f"{what} may not point at a private, local or otherwise non-public address")
    return Target(url, parts.scheme, host, port, str(addresses[0]))


def pinned_request(
    http: httpx.Client, target: Target, *, method: str, headers: dict[str, str], content: bytes
) -> httpx.Response:
    """Send to the checked address of ``target`` only, never to a fresh resolution."""
    return http.send(
        build_pinned_request(http, target, method=method, headers=headers, content=content)
    )


def build_pinned_request(
    http: httpx.Client, target: Target, *, method: str, headers: dict[str, str], content: bytes
) -> httpx.Request:
    """A request to the checked address of ``target`` (send it with ``stream=True`` to cap
    what is read).

    The URL's host is replaced by the address; ``Host`` and the TLS server name (SNI, and
    so the certificate check) keep the name the partner registered.
    """
    parts = urlsplit(target.url)
    literal = f"[{target.address}]" if ":" in target.address else target.address
    netloc = f"{literal}:{target.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    default_port = 443 if target.scheme == "https" else 80
    host_header = f"[{target.host}]" if ":" in target.host else target.host
    if target.port != default_port:
        host_header = f"{host_header}:{target.port}"
    # Header names are case-insensitive: a partner's own "host" line must not survive.
    sent = {k: v for k, v in headers.items() if k.lower() != "host"}
    sent["Host"] = host_header
    try:
        ipaddress.ip_address(target.host)
        named = False  # an address literal is no server name (RFC 6066, section 3)
    except ValueError:
        named = True
    extensions = {"sni_hostname": target.host} if target.scheme == "https" and named else {}
    return http.build_request(method, url, headers=sent, content=content, extensions=extensions)
