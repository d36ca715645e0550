"""Every POST route of the consent page, from the router itself: refused without a valid CSRF
token, and refused to a visitor without the right to it (issue 16, "tables instead of spot
checks").

OWASP CSRF cheat sheet, synchronizer token pattern: every state-changing form of a session
echoes the session's token; the login and invitation forms, before there is a session, a
double-submit cookie (``vault/oauth/sessions.py``). Who may post what is written
out below by hand: a new route fails :func:`test_the_table_names_every_post_route` until
someone decides who may use it. Every refusal changes nothing: no version is written and
the visitor's session still works.

The app runs in process (``tests/support/harness.py``) against the session's real
database, so ``make mutate`` can run these against the page's session checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import func, select

from tests.factories import organization, patient, related_person
from tests.support.harness import Harness, InProcess, PageVisitor, network_account, page_login
from tests.support.smart import inwoner_account
from vault.app.main import create_app
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime
from vault.page.router import router
from vault.store.models import VersionRow

# Who may post to each route once the form is valid.
ANYONE = "anyone"  # a form shown before there is a session (double-submit cookie)
VISITOR = "visitor"  # any logged-in visitor
MANAGER = "manager"  # the inwoner or a representative
INWONER = "inwoner"  # the inwoner alone
POST_ROUTES = {
    "/inloggen": ANYONE,
    "/uitnodiging/{token}": ANYONE,
    "/uitloggen": VISITOR,
    "/delen/nieuw": MANAGER,
    "/delen/{kind}/{ident}/controleer": MANAGER,
    "/delen/{kind}/{ident}/opslaan": MANAGER,
    "/stoppen": MANAGER,
    "/stoppen/zeker": MANAGER,
    "/voorstel/{consent_id}/{answer}": MANAGER,  # a child's proposal, 12 to 15 (issue 17)
    # who may see the family plan (issue 17): the member, or whoever acts for her
    "/gezin/{family_id}/delen/controleer": MANAGER,
    "/gezin/{family_id}/delen/opslaan": MANAGER,
    "/gezin/{family_id}/delen/stoppen": MANAGER,
    "/plan/doel": MANAGER,
    "/plan/doel/volgorde": MANAGER,
    "/plan/activiteit": MANAGER,
    "/plan/cijfer": MANAGER,
    "/plan/fase": MANAGER,
    "/plan/werkwijze": MANAGER,
    "/plan/meetellen": MANAGER,
    "/apps/{client_id}/stoppen": MANAGER,
    "/gegevens/wissen": INWONER,
    "/gegevens/wissen/zeker": INWONER,
    "/netwerk/uitnodigen": INWONER,
    "/netwerk/vertegenwoordiger": INWONER,
    "/netwerk/weghalen": INWONER,
}
MAY_POST = {
    "inwoner": {VISITOR, MANAGER, INWONER},
    "representative": {VISITOR, MANAGER},
    "network": {VISITOR},
}
CSRF_REFUSED = "niet geldig"
RIGHT_REFUSED = "Dat mag niet"


def _post_routes() -> list[str]:
    return sorted(
        route.path
        for route in router.routes
        if isinstance(route, APIRoute) and "POST" in route.methods
    )


@dataclass
class Page:
    runtime: Runtime
    org: str
    visitors: dict[str, PageVisitor]
    anonymous: InProcess


@pytest.fixture(scope="module")
def page(settings: Settings, runtime: Runtime) -> Iterator[Page]:
    harness = Harness(runtime, settings)
    app = create_app(settings, runtime=runtime)
    pid = harness.create(patient(), patient_id=None).resource_id
    org = harness.create(organization(name="Buurtteam"), patient_id=None).resource_id
    logins = {"inwoner": inwoner_account(runtime, pid)}
    for name, legal in (("representative", "mentor"), ("network", None)):
        rp = harness.create(related_person(patient_id=pid), patient_id=pid).resource_id
        logins[name] = network_account(
            runtime, patient_id=pid, related_person=rp, legal_basis=legal
        )
    visitors = {name: page_login(app, *login) for name, login in logins.items()}
    yield Page(runtime, org, visitors, InProcess(app))
    for visitor in visitors.values():
        visitor.http.close()
    harness.close()


def _path(template: str, page: Page) -> str:
    return template.format(
        kind="Organization",
        ident=page.org,
        token="t" * 32,
        client_id="app-" + "c" * 8,
        consent_id="c" * 8,
        answer="ja",
        family_id="gezin-" + "f" * 8,
    )


def _versions(runtime: Runtime) -> int:
    """Versions of everything but the access log, whose records are stored in full when
    the log is idle (``AuditLog.settle``), whatever the page did."""
    with runtime.db.read() as conn:
        return int(
            conn.scalar(
                select(func.count())
                .select_from(VersionRow)
                .where(VersionRow.resource_type != "AuditEvent")
            )
            or 0
        )


def _still_logged_in(visitor: PageVisitor) -> None:
    home = visitor.http.get("/")
    assert home.status_code == 200 and 'name="csrf_token"' in home.text


def test_the_table_names_every_post_route() -> None:
    assert _post_routes() == sorted(POST_ROUTES)


@pytest.mark.parametrize("route", sorted(POST_ROUTES))
@pytest.mark.parametrize("token", ["missing", "wrong", "other-visitors"])
def test_a_post_without_this_sessions_csrf_token_is_refused(
    page: Page, route: str, token: str
) -> None:
    visitor = page.visitors["inwoner"]
    form = {"text": "iets", "grantee": f"Organization/{page.org}", "bevestig": "WISSEN"}
    if token == "wrong":
        form["csrf_token"] = "x" * 43
    elif token == "other-visitors":
        form["csrf_token"] = page.visitors["representative"].csrf
    before = _versions(page.runtime)
    answer = visitor.http.post(_path(route, page), data=form)
    assert answer.status_code == 403, (route, answer.status_code, answer.text[:300])
    assert _versions(page.runtime) == before
    _still_logged_in(visitor)


@pytest.mark.parametrize("route", sorted(r for r, who in POST_ROUTES.items() if who != ANYONE))
def test_a_post_without_a_session_changes_nothing(page: Page, route: str) -> None:
    before = _versions(page.runtime)
    answer = page.anonymous.post(_path(route, page), data={"csrf_token": "x" * 43})
    # To the login page (303), or refused outright: never carried out.
    assert answer.status_code in (303, 403), (route, answer.status_code)
    if answer.status_code == 303:
        assert answer.headers["location"].endswith("/inloggen")
    assert _versions(page.runtime) == before


REFUSED_PAIRS = sorted(
    (who, route)
    for who, rights in MAY_POST.items()
    for route, need in POST_ROUTES.items()
    if need != ANYONE and need not in rights
)


@pytest.mark.parametrize(("who", "route"), REFUSED_PAIRS)
def test_a_visitor_without_the_right_is_refused_with_a_valid_token(
    page: Page, who: str, route: str
) -> None:
    visitor = page.visitors[who]
    before = _versions(page.runtime)
    answer = visitor.http.post(
        _path(route, page),
        data={"csrf_token": visitor.csrf, "text": "iets", "bevestig": "WISSEN"},
    )
    assert answer.status_code == 403, (who, route, answer.status_code)
    assert RIGHT_REFUSED in answer.text
    assert _versions(page.runtime) == before
    _still_logged_in(visitor)
