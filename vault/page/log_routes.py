"""Wie heeft er gekeken: the access log in plain words, a visit a line, paged back in time."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import Connection
from starlette.responses import Response

from vault.consent.family import families_of
from vault.consent.representation import role_at, role_history
from vault.fhir.repository import Repository
from vault.fhir.resources import ID_PATTERN
from vault.kernel.fhirdata import format_instant
from vault.kernel.runtime import now_micros
from vault.oauth.models import OAuthClient, Token
from vault.page import data, sharing_data
from vault.page.catalogue import LANGUAGE_COOKIE, language_of
from vault.page.web import (
    GRANTEE_KINDS,
    ManagerDep,
    Refused,
    read_in,
    render,
    repo_for,
    runtime_of,
)
from vault.page.words import (
    describe_event,
    group_visits,
    preview_actor,
)

router = APIRouter(tags=["consent page"], include_in_schema=False)


# -- wie heeft er gekeken --------------------------------------------------------------------


LOG_LINES = 50  # visits per page of the log
LOG_SCAN = 5000  # records read for one page at most; "Eerder" goes on from there
LOG_KINDS = {
    "bekeken": [("outcome", "0"), ("action", "R,E")],
    "veranderd": [("outcome", "0"), ("action", "C,U,D")],
    "geweigerd": [("outcome", "4")],
}


@router.get("/log")
def access_log(
    request: Request,
    visitor: ManagerDep,
    wie: str = "",
    soort: str = "",
    voor: str = "",
    gezin: str = "",
) -> Response:
    """The inwoner's AuditEvents in plain words, newest first: one line per visit.

    Every record can be reached: paging goes back in time (``voor``: the instant of the
    oldest record on the page), and the filters by party and kind run in the search, so
    a flood of one party never hides another. ``gezin``: the log of a family plan she is
    a member of (its own chain in the family's compartment, docs/family.md section 6).
    """
    # Long on purpose: the log page: its filters, grouping and paging read together.
    repo = repo_for(request, visitor)
    now = now_micros()
    lang = language_of(request.cookies.get(LANGUAGE_COOKIE))
    wie, soort, voor = wie[:200], soort if soort in LOG_KINDS else "", voor[:40]
    if gezin and not ID_PATTERN.match(gezin):
        raise Refused(404, "Niet gevonden", "Dit gezinsplan kennen we niet.")
    subject = f"Group/{gezin}" if gezin else f"Patient/{visitor.patient_id}"
    params: list[tuple[str, str]] = [
        ("entity", subject) if gezin else ("patient", subject),
        ("_sort", "-date"),
        *LOG_KINDS.get(soort, []),
    ]
    kind, _, ident = wie.partition("/")
    if kind in GRANTEE_KINDS:
        if not ID_PATTERN.match(ident):
            raise Refused(404, "Niet gevonden", "Deze organisatie of persoon kennen we niet.")
        params.append(("agent", wie))
    if voor:
        if not _INSTANT.fullmatch(voor):
            raise Refused(400, "Dat klopt niet", "Deze pagina van het logboek bestaat niet.")
        params.append(("date", "lt" + voor))

    def keep(line: Any) -> bool:
        if wie == "iedereen":
            return True
        if wie == "jij":
            return bool(line.own)
        if wie.startswith("app "):
            return bool(line.party == wie)
        if wie:
            return True  # narrowed by the search itself
        return not line.own

    def load(conn: Connection) -> dict[str, Any]:
        families = families_of(conn, visitor.patient_id)
        if gezin and gezin not in families:
            raise Refused(404, "Niet gevonden", "Dit gezinsplan kennen we niet.")
        history = role_history(conn, patient_id=visitor.patient_id)
        apps = _app_names(conn, visitor.patient_id)
        names = _Names(repo, conn, history)
        name = names.of

        lines = []
        last_ms: int | None = None
        done = True
        groups_seen: set[str] = set()
        for scanned, event in enumerate(data.audit_events(repo, conn, params), start=1):
            refs = {preview_actor(event)} | {
                (a.get("who") or {}).get("reference") for a in event.get("agent") or []
            }
            for ref in refs:
                if ref and ref.split("/", 1)[0] in GRANTEE_KINDS:
                    name(ref)
            line = describe_event(
                event,
                names=names.names,
                own_account=visitor.account_id if visitor.is_inwoner else None,
                role_at=lambda person, when: role_at(history, person, when),
                patient_ref=subject,
                apps=apps,
                lang=lang,
                kin=names.kin,
                family=bool(gezin),
            )
            moment = line.when // 1000
            if last_ms is not None and moment != last_ms:
                full = len(groups_seen) >= LOG_LINES and line.party not in groups_seen
                if full or scanned > LOG_SCAN:
                    done = False
                    break
            last_ms = moment
            if keep(line):
                lines.append(line)
                groups_seen.add(line.party)
        groups = group_visits(lines)
        options = [
            (p.reference, p.name) for p in sharing_data.parties(repo, conn, visitor.patient_id)
        ]
        options += [(f"app {cid}", app_name) for cid, app_name in apps.items()]
        return {
            "groups": groups,
            "options": sorted(set(options), key=lambda item: item[1].casefold()),
            "wie": wie,
            "soort": soort,
            "older": None if done or last_ms is None else format_instant(last_ms * 1000),
            "newest_page": not voor,
            "now": now,
            "gezin": gezin,
            "families": families,
        }

    runtime_of(request).audit.settle_for(visitor.context())  # her waiting records, in full
    return render(request, "log.html", read_in(request, load), visitor=visitor)


class _Names:
    """Who a reference was, asked once per page: the name (also of someone since removed),
    and for someone of the network who has ever had a role, "mother" or "father"."""

    def __init__(self, repo: Repository, conn: Connection, history: Mapping[str, Any]) -> None:
        self.repo, self.conn, self.history = repo, conn, history
        self.names: dict[str, str] = {}
        self.kin: dict[str, str] = {}

    def of(self, ref: str) -> str:
        if ref not in self.names:
            self.names[ref] = data.name_then(self.repo, self.conn, ref)
            if ref.startswith("RelatedPerson/") and ref in self.history:
                kinship = data.kinship_of(self.repo, self.conn, ref)
                if kinship:
                    self.kin[ref] = kinship
        return self.names[ref]


_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def _app_names(conn: Connection, patient_id: str) -> dict[str, str]:
    """Every app that ever held a token for this inwoner, by client id."""
    from sqlalchemy import select

    rows = conn.execute(
        select(OAuthClient.client_id, OAuthClient.name).where(
            OAuthClient.kind == "public",
            OAuthClient.client_id.in_(
                select(Token.client_id).where(Token.patient_id == patient_id)
            ),
        )
    )
    return {row.client_id: row.name for row in rows}
