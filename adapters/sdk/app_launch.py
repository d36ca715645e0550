"""SMART App Launch (standalone), the client side: a tool that acts for one inwoner.

https://hl7.org/fhir/smart-app-launch/app-launch.html, "Launch App: Standalone Launch":
the tool is a *public* client (no secret, nothing to sign). It sends the inwoner's browser to
the vault's ``authorization_endpoint`` with a PKCE S256 challenge (RFC 7636) and a ``state``;
the inwoner logs in there and approves; the vault redirects to the tool's ``redirect_uri``
with a one-time ``code``, which the tool trades, with the PKCE verifier, for a token scoped
``patient/…`` to the inwoner's own compartment. The vault's answer names the inwoner
(``patient``). With ``offline_access`` the answer carries a refresh token, rotated on every
use; ``TokenFile`` keeps it (mode 0600), so the next run needs no login.

A command-line tool receives the redirect on a loopback address, as RFC 8252 section 7.3
describes: ``LoopbackReceiver`` listens on the ``http://127.0.0.1:<port>/…`` redirect URI the
client was registered with, for one request.

The tool never holds more authority than the inwoner gave it: there is no backend client
behind it, and every write it makes is the inwoner's own.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from adapters.sdk.auth import TokenCache
from adapters.sdk.errors import AuthenticationFailed

if TYPE_CHECKING:
    from adapters.sdk.client import VaultClient

__all__ = [
    "AppLaunchAuth",
    "LoopbackReceiver",
    "TokenFile",
    "pkce_pair",
]


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636 sections 4.1 and 4.2)."""
    verifier = secrets.token_urlsafe(48)  # 64 characters, inside RFC 7636's 43..128
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


@dataclass(slots=True)
class TokenFile:
    """Where the refresh token and the inwoner's id are kept between runs (mode 0600).

    The file holds a credential to the inwoner's vault: keep it as you keep a password.
    """

    path: Path

    def load(self) -> dict[str, str]:
        """What the last run stored, or nothing."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def save(self, data: dict[str, str]) -> None:
        """Replace the stored values; the file is created readable by its owner only."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(partial, self.path)  # a crash never leaves half a token file

    def clear(self) -> None:
        """Forget the stored token (log out on this machine)."""
        self.path.unlink(missing_ok=True)


class LoopbackReceiver:
    """Receives one authorization redirect on ``http://127.0.0.1:<port>/<path>``.

    Use it as a context manager: it listens from ``__enter__`` on, so the browser may be sent
    to the vault right after, and ``wait`` returns the redirect's query parameters.
    """

    def __init__(self, redirect_uri: str) -> None:
        parts = urlsplit(redirect_uri)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError("a loopback redirect URI is http://127.0.0.1:<port>/<path>")
        if parts.port is None:
            raise ValueError("the loopback redirect URI needs the port it was registered with")
        self._host = "127.0.0.1"
        self._port = parts.port
        self._path = parts.path or "/"
        self._result: dict[str, str] | None = None
        self._done = threading.Event()
        self._server: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LoopbackReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != receiver._path or receiver._done.is_set():
                    self.send_error(404)
                    return
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                ok = "code" in query
                text = (
                    "Gelukt. Je kunt dit venster sluiten."
                    if ok
                    else "Het is niet gelukt: " + query.get("error", "onbekende fout")
                )
                body = (
                    '<!doctype html><html lang="nl"><meta charset="utf-8">'
                    f"<title>Regiekluis</title><p>{html.escape(text)}</p></html>"
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                receiver._result = query
                receiver._done.set()

            def log_message(self, format: str, *args: Any) -> None:
                # The query holds a one-time code: it stays out of every log.
                return

        try:
            self._server = HTTPServer((self._host, self._port), Handler)
        except OSError as exc:
            raise AuthenticationFailed(
                "redirect_unavailable", f"cannot listen on port {self._port}: {exc.strerror}"
            ) from exc
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float) -> dict[str, str]:
        """The redirect's query parameters; ``AuthenticationFailed`` after ``timeout`` s."""
        if not self._done.wait(timeout):
            raise AuthenticationFailed("timeout", "no answer from the vault's login page")
        assert self._result is not None
        return self._result

    def __exit__(self, *_exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class AppLaunchAuth:
    """Tokens for one inwoner, by SMART App Launch: a ``TokenSource`` for ``VaultClient``.

    ``login`` runs the authorization-code flow once; afterwards ``access_token`` renews the
    token with the stored refresh token (``offline_access``) until the inwoner or the vault
    ends it. ``patient_id`` is the inwoner the vault named in the token response.
    """

    def __init__(
        self,
        client_id: str,
        redirect_uri: str,
        scopes: Sequence[str],
        *,
        store: TokenFile | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self.scopes = tuple(scopes)
        self._store = store
        self._tokens = TokenCache(monotonic=monotonic)
        saved = store.load() if store is not None else {}
        # A stored token is used only by the client it was issued to.
        if saved.get("client_id") not in (None, client_id):
            saved = {}
        self._refresh_token: str | None = saved.get("refresh_token")
        self.patient_id: str | None = saved.get("patient")

    @property
    def logged_in(self) -> bool:
        """True when a token (or a refresh token to get one) is at hand."""
        return self._tokens.current() is not None or self._refresh_token is not None

    def authorize_url(self, client: VaultClient, *, state: str, challenge: str) -> str:
        """Where to send the inwoner's browser (SMART App Launch, step "authorize")."""
        endpoint = str(client.smart_configuration()["authorization_endpoint"])
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(self.scopes),
            "state": state,
            "aud": client.fhir_base,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        return f"{endpoint}?{urlencode(query)}"

    def login(
        self, client: VaultClient, browser: Callable[[str], None], *, timeout: float = 300.0
    ) -> str:
        """Let the inwoner log in and approve; returns the inwoner's Patient id.

        ``browser(url)`` shows the inwoner the vault's approval page: print the URL, open
        a browser (``webbrowser.open``), or, in a test, post the form. The redirect comes
        back to ``redirect_uri``, which must be a loopback address.
        """
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        with LoopbackReceiver(self.redirect_uri) as receiver:
            browser(self.authorize_url(client, state=state, challenge=challenge))
            answer = receiver.wait(timeout)
        if answer.get("state") != state:
            raise AuthenticationFailed("invalid_state", "the answer is not for this login")
        if "code" not in answer:
            raise AuthenticationFailed(
                answer.get("error", "access_denied"), answer.get("error_description", "")
            )
        self.patient_id = None  # whoever logs in now is the inwoner from here on
        self._refresh_token = None
        self._token_request(
            client,
            {
                "grant_type": "authorization_code",
                "code": answer["code"],
                "redirect_uri": self.redirect_uri,
                "client_id": self.client_id,
                "code_verifier": verifier,
            },
        )
        assert self.patient_id is not None
        return self.patient_id

    def access_token(self, client: VaultClient) -> str:
        """The current token, renewed with the refresh token when it runs out."""
        cached = self._tokens.current()
        if cached is not None:
            return cached
        if self._refresh_token is None:
            raise AuthenticationFailed("login_required", "log in first (AppLaunchAuth.login)")
        return self._token_request(
            client,
            {
                "grant_type": "refresh_token",
                "refresh_token": self._refresh_token,
                "client_id": self.client_id,
            },
        )

    def invalidate(self) -> None:
        """Forget the access token; the next request refreshes it."""
        self._tokens.invalidate()

    def _token_request(self, client: VaultClient, form: dict[str, str]) -> str:
        # No retries on 5xx here: a code or a refresh token is spent by the first attempt
        # that reached the vault, and sending it again would revoke the whole grant.
        response = client._send(
            "POST", client.token_url, authorize=False, form=lambda: form, retry_statuses=frozenset()
        )
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or "access_token" not in body:
            if form["grant_type"] == "refresh_token" and self._store is not None:
                self._store.clear()  # a refused refresh token never works again
                self._refresh_token = None
            raise AuthenticationFailed(
                str(body.get("error", response.status_code)), str(body.get("error_description", ""))
            )
        patient = body.get("patient")
        if not isinstance(patient, str) or not patient:
            raise AuthenticationFailed(
                "invalid_scope", "the token names no inwoner: ask for launch/patient"
            )
        if self.patient_id is not None and patient != self.patient_id:
            raise AuthenticationFailed("invalid_grant", "the token is for another inwoner")
        self.patient_id = patient
        self._refresh_token = body.get("refresh_token") or self._refresh_token
        if self._store is not None and self._refresh_token is not None:
            self._store.save(
                {
                    "client_id": self.client_id,
                    "patient": patient,
                    "refresh_token": self._refresh_token,
                }
            )
        return self._tokens.store(body).access_token
