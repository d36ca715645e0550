"""Nothing of a plan is stored in clear, and a ciphertext only opens on its own row.

Design section 4: bodies are sealed under the inwoner's data key with type, id and version
bound in; identifiers are kept as keyed hashes only. The raw database (SQLite's file and
WAL, or every text and binary column of every PostgreSQL table) must not contain a goal's
words, a name or a BSN, in UTF-8 or UTF-16.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import MetaData, Table, inspect, select, update
from sqlalchemy.engine import make_url

from tests.conftest import FHIR_JSON, ServerThread, create, initialise, make_settings
from tests.conftest import test_access as access_from_header
from tests.factories import bsn, careplan, goal
from tests.factories import patient as patient_resource
from tests.support import fresh_database
from vault.app.main import create_app
from vault.audit.runtime import open_runtime
from vault.kernel.runtime import Runtime
from vault.store.models import ResourceRow, SearchToken, VersionRow

FAMILY = "Wiersma-Tjoelker"
GIVEN = "Sjoukje-Marrit"
GOAL_WORDS = "schuldhulpverlening-Zwaluwstraat"
OTHER_GOAL_WORDS = "woonbegeleiding-Kievitshoeve"
NOTE_WORDS = "budgetcoach-Reigersbroek"
R = ResourceRow.__table__.c
V = VersionRow.__table__.c


@dataclass
class Vault:
    runtime: Runtime
    http: httpx.Client
    database_url: str


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    """A vault of its own for each test: these tests read and damage raw rows."""
    with fresh_database(tmp_path) as url:
        settings = make_settings(tmp_path / "vault", url)
        initialise(settings)
        runtime = open_runtime(settings)
        try:
            app = create_app(settings, access_resolver=access_from_header, runtime=runtime)
            with (
                ServerThread(app) as server,
                httpx.Client(
                    base_url=server.url + "/fhir", headers={"x-test-access": "full"}, timeout=30
                ) as http,
            ):
                yield Vault(runtime, http, url)
        finally:
            runtime.close()


def store_plan(http: httpx.Client, *, bsn_value: str) -> dict[str, str]:
    """One inwoner's plan: Patient (name, BSN), two Goals in her words, a CarePlan with a note."""
    person = patient_resource(family=FAMILY, given=GIVEN, bsn_value=bsn_value)
    pid = str(create(http, person)["id"])
    first = str(create(http, goal(patient_id=pid, text=f"Ik wil {GOAL_WORDS} regelen"))["id"])
    second = str(create(http, goal(patient_id=pid, text=f"Hulp bij {OTHER_GOAL_WORDS}"))["id"])
    plan = careplan(
        patient_id=pid, goals=[first, second], note=[{"text": f"Afspraak met {NOTE_WORDS}"}]
    )
    plan_id = str(create(http, plan)["id"])
    return {"patient": pid, "goal": first, "other_goal": second, "careplan": plan_id}


def assert_not_in(blob: bytes, secrets: list[str], *, where: str) -> None:
    for secret in secrets:
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            assert secret.encode(encoding) not in blob, (
                f"{secret!r} in clear ({encoding}) in {where}"
            )


def every_stored_value(runtime: Runtime) -> bytes:
    """Every text and binary value of every table, as SQL hands it out."""
    chunks: list[bytes] = []
    with runtime.db.read() as conn:
        names = inspect(conn).get_table_names()
        assert {"fhir_resource", "fhir_version", "search_token", "data_key"} <= set(names)
        for name in names:
            table = Table(name, MetaData(), autoload_with=conn)
            for row in conn.execute(select(table)):
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        chunks.append(bytes(value))
                    elif isinstance(value, str):
                        chunks.append(value.encode("utf-8"))
    return b"\n".join(chunks)


def sqlite_files(url: str) -> dict[str, bytes]:
    database = Path(make_url(url).database or "")
    return {p.name: p.read_bytes() for p in database.parent.glob(database.name + "*")}


def test_a_stored_plan_is_nowhere_in_clear(vault: Vault) -> None:
    bsn_value = bsn()
    ids = store_plan(vault.http, bsn_value=bsn_value)
    secrets = [FAMILY, GIVEN, GOAL_WORDS, OTHER_GOAL_WORDS, NOTE_WORDS, bsn_value]
    read_back = vault.http.get(f"/Goal/{ids['goal']}").text
    assert GOAL_WORDS in read_back  # the words are really stored, only not in clear

    stored = every_stored_value(vault.runtime)
    assert ids["goal"].encode() in stored  # ids are in clear, so this dump reached the rows
    assert_not_in(stored, secrets, where="the database's tables")

    if vault.runtime.db.is_sqlite:
        files = sqlite_files(vault.database_url)
        assert {"vault.db", "vault.db-wal"} <= set(files)
        for name, content in files.items():
            assert_not_in(content, secrets, where=name)
        assert any(ids["goal"].encode() in content for content in files.values())


def test_a_bsn_is_kept_as_a_blind_index_token_only(vault: Vault) -> None:
    bsn_value = bsn()
    ids = store_plan(vault.http, bsn_value=bsn_value)
    token = vault.runtime.blind.token(bsn_value)
    t = SearchToken.__table__.c
    with vault.runtime.db.read() as conn:
        rows = conn.execute(
            select(t.code_hash, t.system)
            .join(ResourceRow.__table__, R.pk == t.resource_pk)
            .where(R.resource_id == ids["patient"], t.param == "identifier")
        ).all()
    assert [row.code_hash for row in rows] == [token]
    assert all(bsn_value not in (row.system or "") for row in rows)
    found = vault.http.get("/Patient", params={"identifier": bsn_value}).json()
    assert [entry["resource"]["id"] for entry in found["entry"]] == [ids["patient"]]


def version_pk(vault: Vault, resource_type: str, resource_id: str) -> int:
    with vault.runtime.db.read() as conn:
        pk: int = conn.execute(
            select(R.pk).where(R.resource_type == resource_type, R.resource_id == resource_id)
        ).scalar_one()
    return pk


def copy_body(vault: Vault, source: tuple[str, int], target: tuple[str, int]) -> None:
    """Copy a Goal version's ciphertext onto another version row, as someone with SQL could."""
    source_pk, target_pk = (
        version_pk(vault, "Goal", source[0]),
        version_pk(vault, "Goal", target[0]),
    )
    with vault.runtime.db.write() as conn:
        body = conn.execute(
            select(V.body).where(V.resource_pk == source_pk, V.version_id == source[1])
        ).scalar_one()
        changed = conn.execute(
            update(VersionRow)
            .where(V.resource_pk == target_pk, V.version_id == target[1])
            .values(body=body)
        )
        assert changed.rowcount == 1


def assert_refused_without_content(response: httpx.Response, secrets: list[str]) -> None:
    assert response.status_code == 500
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "exception"
    assert_not_in(response.content, secrets, where="the error response")


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def test_a_ciphertext_copied_onto_another_row_does_not_open(
    vault: Vault, logs: pytest.LogCaptureFixture
) -> None:
    ids = store_plan(vault.http, bsn_value=bsn())
    other = str(create(vault.http, patient_resource(family="Hoekstra"))["id"])
    strangers_goal = str(create(vault.http, goal(patient_id=other, text="Ander leven"))["id"])
    secrets = [GOAL_WORDS, OTHER_GOAL_WORDS, "Ander leven", FAMILY]

    # Another Goal of the same inwoner: same data key, other id.
    copy_body(vault, (ids["goal"], 1), (ids["other_goal"], 1))
    assert_refused_without_content(vault.http.get(f"/Goal/{ids['other_goal']}"), secrets)
    assert_refused_without_content(vault.http.get(f"/Goal/{ids['other_goal']}/_history/1"), secrets)

    # Another inwoner's Goal: other data key.
    copy_body(vault, (ids["goal"], 1), (strangers_goal, 1))
    assert_refused_without_content(vault.http.get(f"/Goal/{strangers_goal}"), secrets)

    # A search that meets a damaged row fails as a whole instead of serving wrong content.
    assert_refused_without_content(
        vault.http.get("/Goal", params={"patient": ids["patient"]}), secrets
    )

    # The source row itself is untouched.
    original = vault.http.get(f"/Goal/{ids['goal']}")
    assert original.status_code == 200
    assert GOAL_WORDS in original.json()["description"]["text"]
    assert_not_in(logs.text.encode(), secrets, where="the log")
    assert "does not open" in logs.text


def test_an_old_version_copied_onto_the_current_one_does_not_open(
    vault: Vault, logs: pytest.LogCaptureFixture
) -> None:
    ids = store_plan(vault.http, bsn_value=bsn())
    url = f"/Goal/{ids['goal']}"
    current = vault.http.get(url).json()
    changed = {**current, "description": {"text": "Schulden zijn geregeld"}}
    assert vault.http.put(url, json=changed, headers=FHIR_JSON).status_code == 200

    # Version 1 replayed as version 2: same resource, same key, other version.
    copy_body(vault, (ids["goal"], 1), (ids["goal"], 2))

    assert_refused_without_content(vault.http.get(url), [GOAL_WORDS, "Schulden zijn geregeld"])
    first = vault.http.get(f"{url}/_history/1")
    assert first.status_code == 200
    assert GOAL_WORDS in first.json()["description"]["text"]
    assert_not_in(logs.text.encode(), [GOAL_WORDS, FAMILY], where="the log")
