"""SMART App Launch, standalone, for a public client: the whole flow and every refusal.

The inwoner's app runs against a real server with the real bearer-token resolver: it
opens the approval page, the inwoner logs in with a real account, the code is exchanged
with PKCE S256, and the tokens are used on /fhir.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from joserfc import jwk, jwt

from tests.conftest import FHIR_JSON, ServerThread, create
from tests.factories import goal, observation
from tests.factories import patient as patient_resource
from tests.support.smart import App, inwoner_account, pkce, register_app
from vault.kernel.runtime import Runtime
from vault.oauth.router import describe_scope


@dataclass
class Login:
    username: str
    password: str


@pytest.fixture
def app(runtime: Runtime, vault: ServerThread) -> App:
    return register_app(runtime, vault.url)


@pytest.fixture
def login(runtime: Runtime, inwoner: str) -> Login:
    username, password = inwoner_account(runtime, inwoner)
    return Login(username, password)


@pytest.fixture
def other_inwoner(client: httpx.Client) -> str:
    return str(create(client, patient_resource(family="de Boer", given="Erik"))["id"])


def redirect_query(response: httpx.Response) -> tuple[str, dict[str, str]]:
    """Where a 302 goes (without its query) and its query parameters."""
    assert response.status_code == 302, response.text
    location = urlparse(response.headers["location"])
    base = f"{location.scheme}://{location.netloc}{location.path}"
    return base, {k: v[0] for k, v in parse_qs(location.query).items()}


def approve(
    app: App, http: httpx.Client, login: Login, *, scope: str | None = None, **extra: str
) -> tuple[str, str]:
    """Log in and approve; the authorization code and the PKCE verifier."""
    verifier, challenge = pkce()
    params = app.authorize_params(challenge=challenge, scope=scope, **extra)
    response = app.login_and_approve(http, params, username=login.username, password=login.password)
    return app.code_from(response), verifier


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def token_error(response: httpx.Response) -> str:
    assert response.status_code in (400, 401), response.text
    assert "access_token" not in response.text
    return str(response.json()["error"])


# -- the happy path ----------------------------------------------------------------------------


def test_approval_redirects_to_the_app_with_a_code_and_the_same_state(
    app: App, http: httpx.Client, login: Login
) -> None:
    _, challenge = pkce()
    params = app.authorize_params(challenge=challenge, state="keep-me-9f3")
    response = app.login_and_approve(http, params, username=login.username, password=login.password)
    where, query = redirect_query(response)
    assert where == app.redirect_uri
    assert query["state"] == "keep-me-9f3"
    assert query["code"]
    assert "error" not in query


def test_token_response_carries_patient_scope_and_a_refresh_token(
    app: App, http: httpx.Client, login: Login, inwoner: str
) -> None:
    code, verifier = approve(app, http, login)
    response = app.exchange(http, code, verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["patient"] == inwoner
    assert body["scope"].split() == app.scopes
    assert 0 < body["expires_in"] <= 3600
    assert body["refresh_token"] and body["refresh_token"] != body["access_token"]


def test_id_token_verifies_with_the_published_keys_and_names_the_inwoner(
    app: App, vault: ServerThread, http: httpx.Client, login: Login, inwoner: str
) -> None:
    code, verifier = approve(app, http, login, nonce="n-0S6_WzA2Mj")
    body = app.exchange(http, code, verifier).json()
    keys = jwk.KeySet.import_key_set(http.get(f"{vault.url}/oauth/jwks").json())

    token = jwt.decode(body["id_token"], keys)

    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": vault.url},
        aud={"essential": True, "value": app.client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": "n-0S6_WzA2Mj"},
    ).validate(token.claims)
    assert token.claims["fhirUser"] == f"{vault.url}/fhir/Patient/{inwoner}"
    assert token.header["kid"] in {k.kid for k in keys}


def test_id_token_names_the_fhir_user_only_when_fhiruser_is_asked_for(
    app: App, vault: ServerThread, http: httpx.Client, login: Login
) -> None:
    token = app.full_flow(
        http, username=login.username, password=login.password, scope="openid launch/patient"
    )
    keys = jwk.KeySet.import_key_set(http.get(f"{vault.url}/oauth/jwks").json())
    claims = jwt.decode(token["id_token"], keys).claims
    assert claims["aud"] == app.client_id
    assert "fhirUser" not in claims


def test_no_id_token_without_openid(app: App, http: httpx.Client, login: Login) -> None:
    token = app.full_flow(
        http, username=login.username, password=login.password, scope="launch/patient fhirUser"
    )
    assert "id_token" not in token


def test_app_token_reads_the_inwoners_own_patient_and_goals_only(
    app: App,
    vault: ServerThread,
    http: httpx.Client,
    login: Login,
    inwoner: str,
    other_inwoner: str,
    client: httpx.Client,
) -> None:
    own = create(client, goal(patient_id=inwoner, text="Ik wil weer sporten"))
    foreign = create(client, goal(patient_id=other_inwoner, text="Niet van jou"))
    token = app.full_flow(http, username=login.username, password=login.password)
    headers = bearer(token["access_token"])

    patient = http.get(f"{vault.url}/fhir/Patient/{inwoner}", headers=headers)
    assert patient.status_code == 200, patient.text
    assert patient.json()["id"] == inwoner
    goals = http.get(f"{vault.url}/fhir/Goal", headers=headers)
    assert goals.status_code == 200
    ids = {e["resource"]["id"] for e in goals.json().get("entry", [])}
    assert own["id"] in ids
    assert foreign["id"] not in ids

    hidden = http.get(f"{vault.url}/fhir/Goal/{foreign['id']}", headers=headers)
    assert hidden.status_code == 404
    assert http.get(f"{vault.url}/fhir/Patient/{other_inwoner}", headers=headers).status_code == 404
    by_patient = http.get(
        f"{vault.url}/fhir/Goal", params={"patient": other_inwoner}, headers=headers
    )
    assert by_patient.status_code == 200
    assert by_patient.json()["total"] == 0


def test_goal_cruds_scope_creates_in_the_own_compartment_but_not_in_anothers(
    app: App,
    vault: ServerThread,
    http: httpx.Client,
    login: Login,
    inwoner: str,
    other_inwoner: str,
    client: httpx.Client,
) -> None:
    token = app.full_flow(http, username=login.username, password=login.password)
    headers = {**bearer(token["access_token"]), **FHIR_JSON}

    mine = http.post(
        f"{vault.url}/fhir/Goal", json=goal(patient_id=inwoner, text="Mijn doel"), headers=headers
    )
    assert mine.status_code == 201, mine.text
    assert mine.json()["subject"]["reference"] == f"Patient/{inwoner}"

    theirs = http.post(
        f"{vault.url}/fhir/Goal",
        json=goal(patient_id=other_inwoner, text="Stiekem"),
        headers=headers,
    )
    unknown = http.post(
        f"{vault.url}/fhir/Goal",
        json=goal(patient_id=f"nobody-{uuid.uuid4().hex[:8]}", text="Stiekem"),
        headers=headers,
    )
    assert theirs.status_code == unknown.status_code
    assert theirs.status_code in (404, 422)
    # The other inwoner's existence is not given away by the answer either.
    assert theirs.json()["issue"][0]["code"] == unknown.json()["issue"][0]["code"]
    stored = client.get("/Goal", params={"patient": other_inwoner}).json()
    assert stored["total"] == 0


def test_read_only_scope_cannot_create(
    runtime: Runtime, vault: ServerThread, http: httpx.Client, login: Login, inwoner: str
) -> None:
    reader = register_app(runtime, vault.url, scopes=["launch/patient", "patient/Goal.rs"])
    token = reader.full_flow(http, username=login.username, password=login.password)
    response = http.post(
        f"{vault.url}/fhir/Goal",
        json=goal(patient_id=inwoner),
        headers={**bearer(token["access_token"]), **FHIR_JSON},
    )
    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"


def test_granular_scope_shows_only_observations_of_that_category(
    runtime: Runtime,
    vault: ServerThread,
    http: httpx.Client,
    login: Login,
    inwoner: str,
    client: httpx.Client,
) -> None:
    survey = create(client, observation(patient_id=inwoner))
    vital = create(
        client,
        observation(
            patient_id=inwoner,
            category=[
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "vital-signs",
                        }
                    ]
                }
            ],
        ),
    )
    scoped = register_app(
        runtime, vault.url, scopes=["launch/patient", "patient/Observation.rs?category=survey"]
    )
    token = scoped.full_flow(http, username=login.username, password=login.password)
    assert token["scope"] == "launch/patient patient/Observation.rs?category=survey"
    headers = bearer(token["access_token"])

    assert http.get(f"{vault.url}/fhir/Observation/{survey['id']}", headers=headers).is_success
    assert (
        http.get(f"{vault.url}/fhir/Observation/{vital['id']}", headers=headers).status_code == 404
    )
    search = http.get(f"{vault.url}/fhir/Observation", headers=headers)
    assert search.status_code == 200
    ids = {e["resource"]["id"] for e in search.json().get("entry", [])}
    assert survey["id"] in ids
    assert vital["id"] not in ids
    asked = http.get(
        f"{vault.url}/fhir/Observation", params={"category": "vital-signs"}, headers=headers
    )
    assert asked.json()["total"] == 0


# -- refusals at the authorization endpoint ----------------------------------------------------


def test_authorization_without_a_pkce_challenge_is_refused(
    app: App, vault: ServerThread, http: httpx.Client
) -> None:
    params = app.authorize_params(challenge="x", state="s-no-pkce")
    del params["code_challenge"], params["code_challenge_method"]
    where, query = redirect_query(http.get(f"{vault.url}/oauth/authorize", params=params))
    assert where == app.redirect_uri
    assert query["error"] == "invalid_request"
    assert query["state"] == "s-no-pkce"
    assert "code" not in query


def test_plain_pkce_method_is_refused(app: App, vault: ServerThread, http: httpx.Client) -> None:
    verifier, _ = pkce()
    params = app.authorize_params(challenge=verifier, code_challenge_method="plain")
    _, query = redirect_query(http.get(f"{vault.url}/oauth/authorize", params=params))
    assert query["error"] == "invalid_request"
    assert "code" not in query


def test_pkce_challenge_without_a_method_is_refused(
    app: App, vault: ServerThread, http: httpx.Client
) -> None:
    # RFC 7636 defaults a missing method to plain, which SMART forbids.
    _, challenge = pkce()
    params = app.authorize_params(challenge=challenge)
    del params["code_challenge_method"]
    _, query = redirect_query(http.get(f"{vault.url}/oauth/authorize", params=params))
    assert query["error"] == "invalid_request"


def test_unregistered_redirect_uri_shows_an_error_page_and_never_redirects(
    app: App, vault: ServerThread, http: httpx.Client
) -> None:
    _, challenge = pkce()
    params = app.authorize_params(challenge=challenge, redirect_uri="https://evil.example/cb")
    response = http.get(f"{vault.url}/oauth/authorize", params=params)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert "evil.example" not in response.text
    assert "Dit lukt niet" in response.text


def test_redirect_uri_differing_only_by_a_trailing_slash_is_refused(
    app: App, vault: ServerThread, http: httpx.Client
) -> None:
    _, challenge = pkce()
    params = app.authorize_params(challenge=challenge, redirect_uri=app.redirect_uri + "/")
    response = http.get(f"{vault.url}/oauth/authorize", params=params)
    assert response.status_code == 400
    assert "location" not in response.headers


def test_unknown_client_shows_an_error_page(
    app: App, vault: ServerThread, http: httpx.Client
) -> None:
    _, challenge = pkce()
    params = app.authorize_params(challenge=challenge, client_id=str(uuid.uuid4()))
    response = http.get(f"{vault.url}/oauth/authorize", params=params)
    assert response.status_code == 400
    assert "location" not in response.headers


def test_wrong_aud_is_refused_with_the_state(
    app: App, vault: ServerThread, http: httpx.Client
) -> None:
    _, challenge = pkce()
    params = app.authorize_params(
        challenge=challenge, state="s-aud", aud="https://other-fhir.example/fhir"
    )
    where, query = redirect_query(http.get(f"{vault.url}/oauth/authorize", params=params))
    assert where == app.redirect_uri
    assert query["error"] == "invalid_request"
    assert query["state"] == "s-aud"
    assert "code" not in query


def test_wrong_aud_without_a_redirect_uri_goes_back_to_the_registered_one(
    app: App, vault: ServerThread, http: httpx.Client
) -> None:
    # With one registered redirect URI, the request may leave redirect_uri out (RFC 6749).
    _, challenge = pkce()
    params = app.authorize_params(challenge=challenge, state="s-default", aud="https://x.example")
    del params["redirect_uri"]
    where, query = redirect_query(http.get(f"{vault.url}/oauth/authorize", params=params))
    assert where == app.redirect_uri
    assert query["error"] == "invalid_request"
    assert query["state"] == "s-default"


def test_wrong_aud_keeps_the_query_of_the_registered_redirect_uri(
    runtime: Runtime, vault: ServerThread, http: httpx.Client
) -> None:
    tenant_app = register_app(
        runtime, vault.url, redirect_uri="https://app.example/callback?tenant=7"
    )
    _, challenge = pkce()
    params = tenant_app.authorize_params(challenge=challenge, aud="https://x.example")
    where, query = redirect_query(http.get(f"{vault.url}/oauth/authorize", params=params))
    assert where == "https://app.example/callback"
    assert query["tenant"] == "7"
    assert query["error"] == "invalid_request"


def test_wrong_aud_is_refused_when_the_form_is_posted(
    app: App, vault: ServerThread, http: httpx.Client, login: Login
) -> None:
    _, challenge = pkce()
    params = app.authorize_params(challenge=challenge)
    page = http.get(f"{vault.url}/oauth/authorize", params=params)
    form = {
        **params,
        "aud": "https://other-fhir.example/fhir",
        "csrf_token": csrf_of(page),
        "username": login.username,
        "password": login.password,
        "decision": "approve",
    }
    _, query = redirect_query(http.post(f"{vault.url}/oauth/authorize", data=form))
    assert query["error"] == "invalid_request"
    assert "code" not in query


def test_scope_wider_than_registered_is_refused(
    runtime: Runtime, vault: ServerThread, http: httpx.Client
) -> None:
    narrow = register_app(runtime, vault.url, scopes=["launch/patient", "patient/Goal.rs"])
    _, challenge = pkce()
    for scope in ("launch/patient patient/Goal.cruds", "launch/patient patient/*.rs"):
        params = narrow.authorize_params(challenge=challenge, scope=scope, state="s-wide")
        _, query = redirect_query(http.get(f"{vault.url}/oauth/authorize", params=params))
        assert query["error"] == "invalid_scope"
        assert query["state"] == "s-wide"


def test_inwoner_who_denies_is_sent_back_with_access_denied(
    app: App, http: httpx.Client, login: Login
) -> None:
    _, challenge = pkce()
    params = app.authorize_params(challenge=challenge, state="s-deny")
    response = app.login_and_approve(http, params, username="", password="", decision="deny")
    where, query = redirect_query(response)
    assert where == app.redirect_uri
    assert query["error"] == "access_denied"
    assert query["state"] == "s-deny"
    assert "code" not in query


def test_wrong_password_shows_the_page_again_without_a_code(
    app: App, http: httpx.Client, login: Login
) -> None:
    _, challenge = pkce()
    params = app.authorize_params(challenge=challenge)
    response = app.login_and_approve(
        http, params, username=login.username, password=login.password + "x"
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "wachtwoord klopt niet" in response.text
    assert f'value="{login.username}"' in response.text
    assert login.password not in response.text
    assert csrf_of(response)


def test_repeated_wrong_passwords_lock_the_user_name_for_a_while(
    app: App, http: httpx.Client, login: Login
) -> None:
    _, challenge = pkce()
    params = app.authorize_params(challenge=challenge)
    for _ in range(5):
        wrong = app.login_and_approve(
            http, params, username=login.username, password="not-it-at-all"
        )
        assert wrong.status_code == 400
    locked = app.login_and_approve(http, params, username=login.username, password=login.password)
    assert locked.status_code == 429
    assert "location" not in locked.headers
    assert "Wacht een kwartier" in locked.text


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(
    app: App, http: httpx.Client, login: Login
) -> None:
    _, challenge = pkce()
    params = app.authorize_params(challenge=challenge)
    wrong = app.login_and_approve(http, params, username=login.username, password="not-it-at-all")
    unknown = app.login_and_approve(http, params, username="nobody-here", password="not-it-at-all")
    assert wrong.status_code == unknown.status_code == 400
    assert "wachtwoord klopt niet" in unknown.text


@pytest.mark.parametrize("tamper", ["no form token", "wrong form token", "no cookie"])
def test_post_without_a_matching_csrf_token_is_forbidden(
    app: App, vault: ServerThread, http: httpx.Client, login: Login, tamper: str
) -> None:
    _, challenge = pkce()
    params = app.authorize_params(challenge=challenge)
    page = http.get(f"{vault.url}/oauth/authorize", params=params)
    form = {
        **params,
        "csrf_token": csrf_of(page),
        "username": login.username,
        "password": login.password,
        "decision": "approve",
    }
    if tamper == "no form token":
        del form["csrf_token"]
    elif tamper == "wrong form token":
        token = form["csrf_token"]  # a token may start with "x" itself: always change it
        form["csrf_token"] = ("y" if token.startswith("x") else "x") + token[1:]
    else:
        http.cookies.clear()
    response = http.post(f"{vault.url}/oauth/authorize", data=form)
    assert response.status_code == 403
    assert "location" not in response.headers


# -- refusals at the token endpoint ------------------------------------------------------------


def test_token_exchange_without_a_verifier_is_refused(
    app: App, http: httpx.Client, login: Login
) -> None:
    code, _ = approve(app, http, login)
    assert token_error(app.exchange(http, code, None)) == "invalid_request"


def test_token_exchange_with_a_wrong_verifier_is_refused(
    app: App, http: httpx.Client, login: Login
) -> None:
    code, _ = approve(app, http, login)
    other_verifier, _ = pkce()
    assert token_error(app.exchange(http, code, other_verifier)) == "invalid_grant"


def test_code_used_twice_is_refused_and_revokes_what_the_first_use_gave(
    app: App, vault: ServerThread, http: httpx.Client, login: Login
) -> None:
    code, verifier = approve(app, http, login)
    first = app.exchange(http, code, verifier)
    assert first.status_code == 200, first.text
    tokens = first.json()
    headers = bearer(tokens["access_token"])
    assert http.get(f"{vault.url}/fhir/Goal", headers=headers).status_code == 200

    assert token_error(app.exchange(http, code, verifier)) == "invalid_grant"

    after = http.get(f"{vault.url}/fhir/Goal", headers=headers)
    assert after.status_code == 401
    assert token_error(app.refresh(http, tokens["refresh_token"])) == "invalid_grant"


def test_redirect_uri_mismatch_at_the_token_endpoint_is_refused(
    app: App, http: httpx.Client, login: Login
) -> None:
    code, verifier = approve(app, http, login)
    response = app.exchange(http, code, verifier, redirect_uri="https://app.example/other")
    assert token_error(response) == "invalid_grant"


def test_code_of_another_app_is_refused(
    app: App, runtime: Runtime, vault: ServerThread, http: httpx.Client, login: Login
) -> None:
    code, verifier = approve(app, http, login)
    thief = register_app(runtime, vault.url)
    assert token_error(thief.exchange(http, code, verifier)) == "invalid_grant"


# -- refresh tokens ----------------------------------------------------------------------------


def test_no_refresh_token_without_offline_access(
    app: App, vault: ServerThread, http: httpx.Client, login: Login
) -> None:
    token = app.full_flow(
        http, username=login.username, password=login.password, scope="launch/patient patient/*.rs"
    )
    assert "refresh_token" not in token
    assert token["scope"] == "launch/patient patient/*.rs"
    assert http.get(f"{vault.url}/fhir/Goal", headers=bearer(token["access_token"])).is_success


def test_refresh_rotates_and_the_used_refresh_token_is_refused(
    app: App, vault: ServerThread, http: httpx.Client, login: Login, inwoner: str
) -> None:
    first = app.full_flow(http, username=login.username, password=login.password)
    refreshed = app.refresh(http, first["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["patient"] == inwoner
    assert second["scope"] == first["scope"]
    assert http.get(f"{vault.url}/fhir/Goal", headers=bearer(second["access_token"])).is_success

    assert token_error(app.refresh(http, first["refresh_token"])) == "invalid_grant"


def test_reuse_of_a_rotated_refresh_token_revokes_the_whole_family(
    app: App, vault: ServerThread, http: httpx.Client, login: Login
) -> None:
    first = app.full_flow(http, username=login.username, password=login.password)
    second = app.refresh(http, first["refresh_token"]).json()
    third = app.refresh(http, second["refresh_token"]).json()
    headers = bearer(third["access_token"])
    assert http.get(f"{vault.url}/fhir/Goal", headers=headers).status_code == 200

    # The first refresh token comes back: someone kept a copy.
    assert token_error(app.refresh(http, first["refresh_token"])) == "invalid_grant"

    assert token_error(app.refresh(http, third["refresh_token"])) == "invalid_grant"
    for access in (first, second, third):
        stale = http.get(f"{vault.url}/fhir/Goal", headers=bearer(access["access_token"]))
        assert stale.status_code == 401


def test_refresh_cannot_widen_the_scope(app: App, http: httpx.Client, login: Login) -> None:
    first = app.full_flow(
        http,
        username=login.username,
        password=login.password,
        scope="launch/patient offline_access patient/Goal.rs",
    )
    response = http.post(
        f"{app.base_url}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": app.client_id,
            "scope": "launch/patient offline_access patient/Goal.cruds",
        },
    )
    assert token_error(response) == "invalid_scope"


def test_refresh_token_of_another_app_is_refused(
    app: App, runtime: Runtime, vault: ServerThread, http: httpx.Client, login: Login
) -> None:
    first = app.full_flow(http, username=login.username, password=login.password)
    thief = register_app(runtime, vault.url)
    assert token_error(thief.refresh(http, first["refresh_token"])) == "invalid_grant"


# -- revocation --------------------------------------------------------------------------------


def revoke(app: App, http: httpx.Client, token: str, hint: str | None = None) -> httpx.Response:
    data = {"token": token, "client_id": app.client_id}
    if hint is not None:
        data["token_type_hint"] = hint
    return http.post(f"{app.base_url}/oauth/revoke", data=data)


def test_public_app_revokes_its_access_token(
    app: App, vault: ServerThread, http: httpx.Client, login: Login
) -> None:
    token = app.full_flow(http, username=login.username, password=login.password)
    headers = bearer(token["access_token"])
    assert http.get(f"{vault.url}/fhir/Goal", headers=headers).status_code == 200

    response = revoke(app, http, token["access_token"], "access_token")

    assert response.status_code == 200, response.text
    assert http.get(f"{vault.url}/fhir/Goal", headers=headers).status_code == 401


def test_revoking_the_refresh_token_ends_the_whole_authorization(
    app: App, vault: ServerThread, http: httpx.Client, login: Login
) -> None:
    token = app.full_flow(http, username=login.username, password=login.password)

    assert revoke(app, http, token["refresh_token"]).status_code == 200

    assert token_error(app.refresh(http, token["refresh_token"])) == "invalid_grant"
    stale = http.get(f"{vault.url}/fhir/Goal", headers=bearer(token["access_token"]))
    assert stale.status_code == 401


def test_an_app_cannot_revoke_another_apps_token(
    app: App, runtime: Runtime, vault: ServerThread, http: httpx.Client, login: Login
) -> None:
    token = app.full_flow(http, username=login.username, password=login.password)
    stranger = register_app(runtime, vault.url)

    revoke(stranger, http, token["access_token"])

    assert http.get(f"{vault.url}/fhir/Goal", headers=bearer(token["access_token"])).is_success


# -- the approval page -------------------------------------------------------------------------


def test_approval_page_says_in_dutch_what_the_app_asks(
    app: App, vault: ServerThread, http: httpx.Client
) -> None:
    _, challenge = pkce()
    page = http.get(
        f"{vault.url}/oauth/authorize", params=app.authorize_params(challenge=challenge)
    )
    assert page.status_code == 200
    assert '<html lang="nl">' in page.text
    assert "Mijn Plan app wil je gegevens gebruiken" in page.text
    for scope in app.scopes:
        line = describe_scope(scope)
        if line is not None:
            assert f"<li>{line}</li>" in page.text
    assert "<li>je doelen bekijken, toevoegen, veranderen en weghalen</li>" in page.text
    assert "Ja, dat mag" in page.text
    assert "Nee, liever niet" in page.text
    assert "patient/" not in re.sub(r"<input[^>]*>", "", page.text)


def test_approval_page_has_security_headers_and_a_strict_csrf_cookie(
    app: App, vault: ServerThread, http: httpx.Client
) -> None:
    _, challenge = pkce()
    page = http.get(
        f"{vault.url}/oauth/authorize", params=app.authorize_params(challenge=challenge)
    )
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "default-src 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie


def test_error_pages_have_the_security_headers_too(
    app: App, vault: ServerThread, http: httpx.Client
) -> None:
    _, challenge = pkce()
    params = app.authorize_params(challenge=challenge, redirect_uri="https://evil.example/cb")
    page = http.get(f"{vault.url}/oauth/authorize", params=params)
    assert page.status_code == 400
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"


def test_approval_page_escapes_what_the_app_sends(
    app: App, vault: ServerThread, http: httpx.Client
) -> None:
    _, challenge = pkce()
    params = app.authorize_params(challenge=challenge, state='"><script>alert(1)</script>')
    page = http.get(f"{vault.url}/oauth/authorize", params=params)
    assert page.status_code == 200
    assert "<script>" not in page.text
