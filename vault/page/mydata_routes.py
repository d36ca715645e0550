"""Mijn gegevens: downloading everything, and erasing the vault (crypto-shredding)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from sqlalchemy import Connection
from starlette.responses import Response

from vault.audit.log import AuditRecord
from vault.kernel.runtime import now_micros
from vault.oauth.sessions import (
    SESSION_COOKIE,
)
from vault.page import mydata
from vault.page.web import (
    FormDep,
    InwonerDep,
    read_in,
    render,
    repo_for,
    runtime_of,
    secure_headers,
    text_of,
    write_in,
)

router = APIRouter(tags=["consent page"], include_in_schema=False)


# -- mijn gegevens ---------------------------------------------------------------------------


@router.get("/gegevens")
def my_data(request: Request, visitor: InwonerDep) -> Response:
    """Download everything, or erase the vault."""
    return render(request, "data.html", {}, visitor=visitor)


@router.get("/gegevens/download")
def download(request: Request, visitor: InwonerDep) -> Response:
    """Everything of the inwoner as one FHIR Bundle (JSON)."""
    repo = repo_for(request, visitor)
    runtime_of(request).audit.settle_for(visitor.context())  # her log in full, in the Bundle
    bundle = read_in(
        request, lambda conn: mydata.export_bundle(repo, conn, patient_id=visitor.patient_id)
    )
    response = Response(
        orjson.dumps(bundle, option=orjson.OPT_INDENT_2),
        media_type="application/fhir+json",
        headers={"content-disposition": 'attachment; filename="mijn-gegevens.json"'},
    )
    return secure_headers(response)


@router.post("/gegevens/wissen")
def erase_check(request: Request, visitor: InwonerDep, _form: FormDep) -> Response:
    """First question: are you sure?"""
    return render(request, "erase.html", {"error": None}, visitor=visitor)


@router.post("/gegevens/wissen/zeker")
def erase(request: Request, visitor: InwonerDep, form: FormDep) -> Response:
    """Second question answered: destroy the data key and every way in."""
    if text_of(form, "bevestig").casefold() != "wissen":
        return render(
            request,
            "erase.html",
            {"error": "Typ het woord WISSEN om te laten zien dat je het zeker weet."},
            visitor=visitor,
            status=400,
        )
    runtime = runtime_of(request)

    def erase_and_log(conn: Connection) -> None:
        mydata.erase_vault(conn, patient_id=visitor.patient_id)
        # In the same transaction: no erasure without its record. Her key is gone, so the
        # access log keeps it in the vault's own chain, naming her Patient.
        runtime.audit.append(
            conn,
            [
                AuditRecord(
                    patient_id=visitor.patient_id,
                    interaction="delete",
                    permitted=True,
                    client_id=None,
                    organization=None,
                    account_id=visitor.account_id,
                    entities=[f"Patient/{visitor.patient_id}"],
                    recorded=now_micros(),
                )
            ],
        )

    write_in(request, erase_and_log)
    runtime.keys.clear()
    response = render(request, "erased.html", {}, visitor=None)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
