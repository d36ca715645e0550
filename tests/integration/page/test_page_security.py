"""Security of the consent page over plain HTTP: CSRF, cookie flags, headers, throttling."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select, update
from starlette.requests import Request

from tests.integration.page.conftest import Vault, http_log_in, page_csrf
from tests.support.smart import set_account
from vault.kernel.config import Settings
from vault.kernel.runtime import now_micros
from vault.oauth.models import WebSession
from vault.oauth.sessions import MICROS, cookie_is_secure, hash_secret

pytestmark = pytest.mark.slow


def _cookie(response: httpx.Response, name: str) -> str:
    return next(v for v in response.headers.get_list("set-cookie") if v.startswith(name + "="))


def test_session_cookie_is_httponly_lax_and_secure_only_behind_https(
    vault: Vault, http: httpx.Client
) -> None:
    plain = http_log_in(http, "sanne", vault.passwords["sanne"])
    assert plain.status_code == 303
    cookie = _cookie(plain, "rk_session").lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie

    with httpx.Client(
        base_url=vault.url, headers={"x-forwarded-proto": "https"}, follow_redirects=False
    ) as proxied:
        form = proxied.get("/inloggen")
        assert "; secure" in _cookie(form, "rk_login_csrf").lower()
        token = form.cookies["rk_login_csrf"]
        # httpx keeps Secure cookies to itself over http: send the login cookie by hand.
        behind = proxied.post(
            "/inloggen",
            data={"csrf_token": token, "username": "sanne", "password": vault.passwords["sanne"]},
            headers={"cookie": f"rk_login_csrf={token}"},
        )
        assert behind.status_code == 303
    cookie = _cookie(behind, "rk_session").lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "; secure" in cookie


def _request(scheme: str, forwarded: str | None) -> Request:
    headers = [(b"x-forwarded-proto", forwarded.encode())] if forwarded else []
    return Request(
        {"type": "http", "scheme": scheme, "server": ("x", 80), "path": "/", "headers": headers}
    )


def test_forwarded_proto_is_believed_only_when_configured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    settings = Settings(data_dir=tmp_path, database_url="sqlite://")  # type: ignore[arg-type]
    monkeypatch.delenv("VAULT_TRUST_FORWARDED_PROTO", raising=False)
    assert cookie_is_secure(_request("https", None), settings)
    assert not cookie_is_secure(_request("http", "https"), settings)
    monkeypatch.setenv("VAULT_TRUST_FORWARDED_PROTO", "1")
    assert cookie_is_secure(_request("http", "https"), settings)
    assert not cookie_is_secure(_request("http", "http"), settings)


def test_a_form_without_or_with_a_wrong_csrf_token_is_refused(
    vault: Vault, http: httpx.Client
) -> None:
    assert http_log_in(http, "sanne", vault.passwords["sanne"]).status_code == 303
    target = "/delen/Organization/demo-org-ggz/opslaan"
    form = {"part": ["doelen", "plan", "scores"], "until": ""}
    missing = http.post(target, data=form)
    wrong = http.post(target, data={**form, "csrf_token": "x" * 43})
    for refused in (missing, wrong):
        assert refused.status_code == 403
        assert 'lang="nl"' in refused.text and "niet geldig" in refused.text
    overview = http.get("/").text
    assert "GGZ Voorbeeldstad mag" not in overview  # nothing was granted
    good = http.post(target, data={**form, "csrf_token": page_csrf(http)})
    assert good.status_code == 303
    assert "GGZ Voorbeeldstad mag je doelen, je plan en je cijfers zien" in http.get("/").text
    # The login form has its own token too.
    assert http.post("/inloggen", data={"username": "sanne", "password": "x"}).status_code == 403


def test_every_page_sends_a_strict_csp_and_the_other_headers(
    vault: Vault, http: httpx.Client
) -> None:
    assert http_log_in(http, "sanne", vault.passwords["sanne"]).status_code == 303
    for path in ("/inloggen", "/", "/plan", "/netwerk", "/log", "/gegevens"):
        response = http.get(path)
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert "style-src 'self'" in csp and "unsafe-inline" not in csp
        assert "form-action 'self'" in csp and "script-src" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "<script" not in response.text and "style=" not in response.text
    assert http.get("/static/page.css").headers["content-type"].startswith("text/css")


def test_failed_logins_are_throttled_per_account_in_the_database(
    vault: Vault, http: httpx.Client
) -> None:
    set_account(
        vault.runtime,
        username="geduld",
        patient_id="demo-inwoner-erik",
        display_name="Geduld",
        password="het-goede-wachtwoord",
    )
    for _ in range(5):
        assert http_log_in(http, "geduld", "verkeerd-wachtwoord").status_code == 400
    throttled = http_log_in(http, "geduld", "het-goede-wachtwoord")
    assert throttled.status_code == 429
    assert "Wacht een kwartier" in throttled.text
    assert "rk_session" not in throttled.headers.get("set-cookie", "")
    # Other accounts are not affected.
    assert http_log_in(http, "erik", vault.passwords["erik"]).status_code == 303


def test_logout_ends_the_session_in_the_database(vault: Vault, http: httpx.Client) -> None:
    assert http_log_in(http, "sanne", vault.passwords["sanne"]).status_code == 303
    session = http.cookies["rk_session"]
    assert http.post("/uitloggen", data={"csrf_token": page_csrf(http)}).status_code == 303
    with httpx.Client(base_url=vault.url, follow_redirects=False) as replay:
        replay.cookies.set("rk_session", session)
        assert replay.get("/").headers["location"] == "/inloggen"


def _session_row(vault: Vault, session_id: str) -> tuple[int, int]:
    with vault.runtime.db.read() as conn:
        row = conn.execute(
            select(WebSession.created_at, WebSession.expires_at).where(
                WebSession.id_hash == hash_secret(session_id)
            )
        ).one()
    return row.created_at, row.expires_at


def _move_session(vault: Vault, session_id: str, **values: int) -> None:
    with vault.runtime.db.write() as conn:
        conn.execute(
            update(WebSession).where(WebSession.id_hash == hash_secret(session_id)).values(**values)
        )


def test_a_session_ends_after_15_idle_minutes_and_activity_keeps_it_alive(
    vault: Vault, http: httpx.Client
) -> None:
    assert http_log_in(http, "sanne", vault.passwords["sanne"]).status_code == 303
    session = http.cookies["rk_session"]
    created, expires = _session_row(vault, session)
    assert expires - created == 15 * 60 * MICROS  # the default idle time
    # Last activity 10 minutes ago: still in, and this request moves the deadline on.
    _move_session(vault, session, expires_at=expires - 10 * 60 * MICROS)
    assert http.get("/").status_code == 200
    assert _session_row(vault, session)[1] >= expires
    # Last activity 15 minutes ago: the session has ended.
    _move_session(vault, session, expires_at=now_micros() - 1)
    assert http.get("/").headers["location"] == "/inloggen"
    assert http.get("/plan").headers["location"] == "/inloggen"


def test_a_session_ends_after_its_absolute_maximum_however_active(
    vault: Vault, http: httpx.Client
) -> None:
    assert http_log_in(http, "sanne", vault.passwords["sanne"]).status_code == 303
    session = http.cookies["rk_session"]
    now = now_micros()
    # Begun 8 hours ago (the default maximum), active a moment ago.
    _move_session(vault, session, created_at=now - 8 * 3600 * MICROS, expires_at=now + 60 * MICROS)
    assert http.get("/").headers["location"] == "/inloggen"
    # Begun 7 hours and 59 minutes ago: the deadline slides, but not past the maximum.
    _move_session(
        vault, session, created_at=now - (8 * 60 - 1) * 60 * MICROS, expires_at=now + MICROS
    )
    assert http.get("/").status_code == 200
    created, expires = _session_row(vault, session)
    assert expires == created + 8 * 3600 * MICROS


def test_without_oidc_settings_the_login_page_has_only_the_password_form(
    http: httpx.Client,
) -> None:
    page = http.get("/inloggen").text
    assert "DigiD" not in page and 'name="password"' in page
    assert http.get("/inloggen/oidc").status_code == 404
    assert http.get("/inloggen/oidc/terug?code=x&state=y").status_code == 404


def test_the_new_forms_refuse_a_post_without_or_with_a_wrong_csrf_token(
    vault: Vault, http: httpx.Client
) -> None:
    assert http_log_in(http, "sanne", vault.passwords["sanne"]).status_code == 303
    forms = {
        "/plan/doel/volgorde": {"goal_id": "demo-doel-sanne-rust", "richting": "omhoog"},
        "/netwerk/vertegenwoordiger": {"person": "RelatedPerson/x", "basis": "mentor"},
    }
    for path, form in forms.items():
        assert http.post(path, data=form).status_code == 403, path
        assert http.post(path, data={**form, "csrf_token": "x" * 43}).status_code == 403, path


def test_the_language_switch_only_sends_back_to_this_site(http: httpx.Client) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        switched = http.get("/taal/en", params={"terug": target})
        assert switched.status_code == 303
        assert switched.headers["location"] == "/"
    switched = http.get("/taal/en", params={"terug": "/plan"})
    assert switched.headers["location"] == "/plan"
    assert 'lang="en"' in http.get("/inloggen").text
    http.get("/taal/xx")
    assert 'lang="nl"' in http.get("/inloggen").text


def test_an_invitation_link_names_the_vault_whatever_host_the_browser_sent(
    vault: Vault, http: httpx.Client
) -> None:
    """A forged Host header must not put another site into the link the inwoner sends on."""
    assert http_log_in(http, "sanne", vault.passwords["sanne"]).status_code == 303
    form = {"name": "Buurvrouw Els", "relation": "buurvrouw", "csrf_token": page_csrf(http)}
    answer = http.post("/netwerk/uitnodigen", data=form, headers={"host": "evil.example"})
    assert answer.status_code == 200, answer.text
    links = re.findall(r'id="invite-link"[^>]*>([^<]+)</textarea>', answer.text)
    assert links and links[0].startswith(vault.url + "/uitnodiging/")
    assert "evil.example" not in answer.text
