"""Read and search by a partner under consent enforcement, as inwoners and grants grow.

Issue 4, "Benchmark": the read and search of ``fhir_read_search.py``, but asked by a real
partner system (SMART Backend Services client of the Organization "MEE Veluwe", scope
``system/Goal.rs``, a bearer token from the vault's own ``/oauth/token``) to a vault that
resolves tokens and enforces Consents as in production, with 1, 10 and 100 ``consent_grant``
rows per inwoner, for 1,000 and 10,000 inwoners:

  read     ``GET /fhir/Goal/{id}``, random Goal ids (every Goal is granted to the partner)
  search   ``GET /fhir/Goal?patient={id}``, random inwoners (6 Goals each)

Each inwoner has one Consent: a permit provision, action ``access``, class Goal, whose
actors are MEE Veluwe and N-1 other Organizations, so it compiles to exactly N grant rows
(checked with a COUNT on ``consent_grant``). The same two requests with full access (the
``bench_access`` vault of ``fhir_read_search.py``) are measured as the baseline in the same
run. Target: the server CPU per request stays flat (within +-15 %) as inwoners and grants
grow, because the access decision is index lookups, not scans; the script prints the query
plans of the partner's requests to show it. After each row it prints how full the access
log's group commits were (records per commit, from the server's ``/metrics``, which the
servers it starts serve with ``VAULT_METRICS=on``).

    python benchmarks/consent_read_search.py [--inwoners 1000,10000] [--database-url URL]
                                             [--grants 1,10,100] [--duration 8]

Data is loaded once: the first count, measured, then the rest added to the same database.
``--keep`` keeps the data folder; ``--reuse DIR`` measures again on a kept SQLite folder
(``--inwoners`` must then be the count it holds) without loading anything: a 100,000-inwoner
folder takes half an hour to load here.
Needs ``wrk``, ``taskset`` and two cores, like ``fhir_read_search.py`` (whose data, servers,
wrk driver and CPU accounting this script reuses). Binds only 127.0.0.1; stops every process
it starts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from fastapi import FastAPI
from joserfc import jwk, jwt
from sqlalchemy import Engine, event, func, select
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bulk_load
import fhir_read_search as base
import pg_waits
import server_probe

from vault.app.clients import register_client
from vault.app.main import create_app
from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext
from vault.consent.models import ConsentGrant
from vault.fhir.directory import find_or_create_organization
from vault.fhir.repository import Repository
from vault.kernel.config import Settings
from vault.kernel.db import _in_order, _native_placeholders
from vault.kernel.runtime import Runtime
from vault.notify.worker import Notifier
from vault.oauth.scopes import permissions_from
from vault.store.models import ResourceRow
from vault.store.registry import RESOURCE_TYPES

PARTNER = "MEE Veluwe"  # one of fhir_read_search.ORGANISATIONS: the data refers to it
# ... and the bulk loader writes it with this id (``bulk_load.ORG_IDS``).
LOADED_PARTNER = f"Organization/{bulk_load.ORG_IDS[base.ORGANISATIONS.index(PARTNER)]}"
SCOPES = ["system/Goal.rs"]
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_SECONDS = 3600
FLAT = 0.15


def partner_vault_app() -> FastAPI:
    """Factory for ``uvicorn --factory``: the real app with the real access resolver."""
    return server_probe.install(create_app(Settings.from_env()))


# -- consents --------------------------------------------------------------------------------


def consent_body(patient_id: str, consent_id: str, actors: list[str]) -> dict[str, Any]:
    """One permit provision: ``actors`` x access x Goal = len(actors) grant rows."""
    return {
        "resourceType": "Consent",
        "id": consent_id,
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": "2026-09-01T10:00:00+02:00",
        "provision": {
            "type": "permit",
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "IRCP",
                            }
                        ]
                    },
                    "reference": {"reference": actor},
                }
                for actor in actors
            ],
            "action": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentaction",
                            "code": "access",
                        }
                    ]
                }
            ],
            "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Goal"}],
        },
    }


@dataclass
class Vault:
    """What the benchmark knows about the database between phases."""

    partner_org: str  # "Organization/<id>"
    other_orgs: list[str]
    consents: dict[str, str]  # patient id -> its Consent id
    goals: list[str]
    patients: list[str]


def scan(runtime: Runtime, partner_org: str, other_orgs: list[str]) -> Vault:
    """Read ids back from the database: every Consent and Goal, per inwoner."""
    with runtime.db.read() as conn:
        rows = conn.execute(
            select(ResourceRow.resource_type, ResourceRow.resource_id, ResourceRow.patient_id)
            .where(
                ResourceRow.resource_type.in_(("Consent", "Goal", "Patient")),
                ResourceRow.deleted.is_(False),
            )
            .order_by(ResourceRow.pk)
        ).all()
    consents: dict[str, str] = {}
    goals: list[str] = []
    patients: list[str] = []
    for resource_type, resource_id, patient_id in rows:
        if resource_type == "Consent":
            if patient_id in consents:
                raise RuntimeError(f"inwoner {patient_id} has more than one Consent")
            consents[patient_id] = resource_id
        elif resource_type == "Goal":
            goals.append(resource_id)
        else:
            patients.append(resource_id)
    return Vault(partner_org, other_orgs, consents, goals, patients)


def set_grants(runtime: Runtime, vault: Vault, level: int, *, batch: int = 50) -> float:
    """Update every inwoner's Consent so it compiles to exactly ``level`` grant rows (none
    when they do already: a reused folder)."""
    if _grant_counts(runtime, vault) == _expected(vault, level):
        return 0.0
    actors = [vault.partner_org, *vault.other_orgs[: level - 1]]
    started = time.perf_counter()
    items = list(vault.consents.items())
    # Side by side in a process per core on PostgreSQL, as the bulk loader writes.
    jobs = bulk_load.workers(runtime, 0, len(items))
    parts = [(items[i::jobs], actors, batch) for i in range(jobs)]
    bulk_load.in_processes(runtime, _point_consents, parts)
    seconds = time.perf_counter() - started
    counts = _grant_counts(runtime, vault)
    if counts != _expected(vault, level):
        low, high, inwoners, partner = counts
        raise RuntimeError(
            f"consent_grant: {low}..{high} rows per inwoner for {inwoners} inwoners, "
            f"{partner} for the partner; expected {level} for {len(vault.consents)}"
        )
    return seconds


def _point_consents(
    runtime: Runtime, items: list[tuple[str, str]], actors: list[str], batch: int
) -> int:
    """Each (patient, Consent) of ``items`` updated to name ``actors``, ``batch`` per
    transaction, through the repository's write; returns how many."""
    repo = Repository(runtime, AccessContext.full("bench"))
    for first in range(0, len(items), batch):
        with runtime.db.write() as conn:
            for patient_id, consent_id in items[first : first + batch]:
                repo.update(
                    conn, "Consent", consent_id, consent_body(patient_id, consent_id, actors)
                )
    return len(items)


def _expected(vault: Vault, level: int) -> tuple[int, int, int, int]:
    return (level, level, len(vault.consents), len(vault.consents))


def _grant_counts(runtime: Runtime, vault: Vault) -> tuple[int, int, int, int]:
    """Grant rows per inwoner (least, most), inwoners with any, and the partner's."""
    with runtime.db.read() as conn:
        per_patient = (
            select(ConsentGrant.patient_id, func.count().label("n"))
            .group_by(ConsentGrant.patient_id)
            .subquery()
        )
        low, high, inwoners = conn.execute(
            select(func.min(per_patient.c.n), func.max(per_patient.c.n), func.count())
        ).one()
        partner = conn.scalar(
            select(func.count())
            .select_from(ConsentGrant)
            .where(
                ConsentGrant.grantee == vault.partner_org,
                ConsentGrant.resource_type == "Goal",
                ConsentGrant.action == "access",
            )
        )
    return (low, high, inwoners, partner)


# -- the partner's token -------------------------------------------------------------------


@dataclass
class Partner:
    client_id: str
    key: jwk.Key

    def token(self, base_url: str) -> str:
        """A token from the running vault: client_credentials with a signed assertion."""
        token_url = f"{base_url}/oauth/token"
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "exp": now + 240,
            "iat": now,
            "jti": uuid.uuid4().hex,
        }
        header = {"alg": "ES256", "kid": self.key.kid, "typ": "JWT"}
        form = {
            "grant_type": "client_credentials",
            "scope": " ".join(SCOPES),
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": jwt.encode(header, claims, self.key, algorithms=["ES256"]),
        }
        request = urllib.request.Request(
            token_url, data=urllib.parse.urlencode(form).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        if answer.get("expires_in", 0) < 600:
            raise RuntimeError(f"token lives {answer.get('expires_in')} s; too short for a run")
        return str(answer["access_token"])


def register_partner(runtime: Runtime) -> tuple[Partner, str]:
    key = jwk.ECKey.generate_key(
        "P-256", parameters={"kid": uuid.uuid4().hex[:16], "alg": "ES256", "use": "sig"}
    )
    client_id = register_client(
        runtime,
        name=f"{PARTNER} systeem",
        organization_name=PARTNER,
        scopes=SCOPES,
        jwks={"keys": [key.as_dict(private=False)]},
    )
    with runtime.db.write() as conn:
        org = find_or_create_organization(runtime, conn, PARTNER)
    return Partner(client_id, key), f"Organization/{org}"


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wrk_script(token: str | None) -> str:
    """``WRK_SCRIPT``, sending the bearer token on every request when there is one."""
    if token is None:
        return base.WRK_SCRIPT
    line = f'  wrk.headers["Authorization"] = "Bearer {token}"\n'
    return base.WRK_SCRIPT.replace("function init(args)\n", "function init(args)\n" + line, 1)


# -- query plans ---------------------------------------------------------------------------


def partner_context(runtime: Runtime, client_id: str, partner_org: str) -> AccessContext:
    """The context ``oauth/protector.py`` builds for the partner's token."""
    return AccessContext(
        subject=f"client:{client_id}",
        kind="system",
        client_id=client_id,
        organization=partner_org,
        permissions=permissions_from(SCOPES, context="system", known_types=RESOURCE_TYPES),
        patient_id=None,
        account_id=None,
        purposes=frozenset(),
        practitioner=None,
        representative=None,
    )


def query_plans(runtime: Runtime, context: AccessContext, vault: Vault) -> list[str]:
    """EXPLAIN (QUERY PLAN) of every SELECT the partner's read and search run; on
    PostgreSQL also the generic plan of the two that run as prepared statements."""
    # Long on purpose: capture, then explain each kind of statement the way it runs.
    statements: list[tuple[str, str, Any]] = []
    phase = ""

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((phase, statement, parameters))

    repo = Repository(runtime, context)
    patient = vault.patients[len(vault.patients) // 2]
    query = repo.parse("Goal", [("patient", patient)], lenient=True)
    event.listen(Engine, "before_cursor_execute", capture)
    try:
        with runtime.db.read() as conn:
            phase = "search Goal?patient="
            page = repo.search(conn, query)
            goal = page.matches[0].resource_id
            phase = "read Goal/{id}"
            repo.read(conn, "Goal", goal)
    finally:
        event.remove(Engine, "before_cursor_execute", capture)
    if len(page.matches) != 6:
        raise RuntimeError(f"in-process partner search found {len(page.matches)} Goals, not 6")
    lines: list[str] = []
    sqlite = runtime.db.is_sqlite
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
    with runtime.db.read() as conn:
        for phase, statement, parameters in statements:
            if "consent_grant" not in statement and "fhir_resource" not in statement:
                continue
            lines.append(f"-- {phase}: {' '.join(statement.split())[:150]} ...")
            result = conn.exec_driver_sql(prefix + statement, parameters).all()
            for row in result:
                lines.append(f"   {'  '.join(str(v) for v in row[-1:] if v is not None)}")
        # The read by id and the first page of a one-inwoner search run one statement each
        # on the driver's own cursor, which SQLAlchemy's events do not see: explain those
        # statements themselves. PostgreSQL keeps one plan for every run of a prepared
        # statement once it judges it as good (a generic plan, made without the bound
        # values), so that plan is shown too: the plan made with the values may never run.
        driver: list[tuple[str, str, Any]] = []
        plan = repo._read_plan("Goal", goal, conn.dialect)
        if plan is not None:
            driver.append(("read Goal/{id} (fetch_one)", plan.sql, plan.params))
        first = repo._compartment_statement(query, conn.dialect)
        if first is not None:
            driver.append(("search Goal?patient= (first page)", *first))
        for name, sql, params in driver:
            lines.append(f"-- {name}: {' '.join(sql.split())[:150]} ...")
            cursor = conn.connection.cursor()
            try:
                cursor.execute(prefix + sql, params)
                lines.extend(f"   {row[-1]}" for row in cursor.fetchall())
                if not sqlite:
                    lines.append(f"-- {name}, generic plan (EXPLAIN ANALYZE):")
                    generic = _generic_plan(conn.connection.driver_connection, sql, params)
                    lines.extend(f"   {line}" for line in generic)
            finally:
                cursor.close()
    return lines


def conninfo(url: str) -> str:
    """The libpq address of a SQLAlchemy PostgreSQL URL, for psycopg on its own."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _generic_plan(connection: Any, sql: str, params: Any) -> list[str]:
    """PostgreSQL's generic plan of ``sql`` run with ``params``, with its times: the
    statement prepared with the ``$n`` placeholders the vault's cursor sends, and run once
    under ``plan_cache_mode = force_generic_plan`` with its values written into
    ``EXECUTE`` (a client-side cursor: bound there, their types could not be told)."""
    numbered, order = _native_placeholders(sql)  # the vault's own numbering
    values = _in_order(params, order)
    cursor = psycopg.ClientCursor(connection)
    cursor.execute(b"PREPARE rk_generic AS " + numbered)
    try:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        marks = ", ".join(["%s"] * len(values))
        cursor.execute(f"EXPLAIN ANALYZE EXECUTE rk_generic({marks})", values)
        return [str(row[-1]) for row in cursor.fetchall()]
    finally:
        cursor.execute("RESET plan_cache_mode")
        cursor.execute("DEALLOCATE rk_generic")
        cursor.close()


def full_scans(plan: list[str], *, sqlite: bool) -> list[str]:
    """Plan lines that read a whole table of the access path rather than an index range."""
    bad = []
    for line in plan:
        text = line.strip()
        if text.startswith("--"):
            continue
        if sqlite and text.startswith("SCAN ") and "CONSTANT ROW" not in text:
            bad.append(text)
        if not sqlite and "Seq Scan" in text:
            bad.append(text)
    return bad


# -- running -------------------------------------------------------------------------------


@dataclass
class Row:
    inwoners: int
    grants: str  # "1", "10", "100" or "full" (no consent, the baseline)
    endpoint: str
    measured: base.Measured


def run_phase(
    args: argparse.Namespace,
    *,
    data_dir: Path,
    url: str,
    vault: Vault,
    partner: Partner,
    runtime: Runtime,
    levels: list[int],
) -> list[Row]:
    inwoners = len(vault.patients)
    goals = data_dir / f"goal-ids-{inwoners}.txt"
    goals.write_text("\n".join(vault.goals) + "\n")
    patients = data_dir / f"patient-ids-{inwoners}.txt"
    patients.write_text("\n".join(vault.patients) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BENCH_"))}
    env |= {
        "VAULT_DATA_DIR": str(data_dir),
        "VAULT_DATABASE_URL": url,
        "VAULT_BACKEND_TOKEN_SECONDS": str(TOKEN_SECONDS),
        "VAULT_METRICS": "on",  # the access log's group commits, read around each row
    }
    if args.checkpoint_seconds:
        env["VAULT_SQLITE_CHECKPOINT_SECONDS"] = args.checkpoint_seconds
    cpus = (args.server_cpu, args.client_cpu)
    pg_name = None if url.startswith("sqlite") else make_url(url).database
    endpoints = (("read Goal/{id}", "/fhir/Goal/%s", goals), ("search Goal?patient=", None, None))

    def waits_sampler(token: str | None) -> pg_waits.Sampler | None:
        """``--waits``: PostgreSQL's backends sampled while a partner's row runs (the
        full-access rows write no access log)."""
        if not args.waits or pg_name is None or token is None:
            return None
        sampler = pg_waits.Sampler(conninfo(url), pg_name)
        sampler.start()
        return sampler

    def measure(server: base.Server, label: str, token: str | None, grants: str) -> list[Row]:
        windows.clear()
        script = data_dir / f"wrk-{uuid.uuid4().hex[:8]}.lua"
        script.write_text(wrk_script(token))
        rows = []
        for endpoint, template, ids in endpoints:
            template = template or "/fhir/Goal?patient=%s"
            ids = ids or patients
            print(f"  measuring {label}, {endpoint} for {args.duration:g} s ...", flush=True)
            run = {
                "label": f"{label} {endpoint}",
                "url": server.url,
                "path_template": template,
                "ids_file": ids,
                "script": script,
                "cpus": cpus,
                "connections": args.connections,
                "server_pid": server.pid,
                "postgres_database": pg_name,
            }
            before = group_commits(server.url)
            sampler = waits_sampler(token)
            try:
                measured = base.measure(
                    run, duration=args.duration, warmup=args.warmup, quiet=args.quiet
                )
            finally:
                if sampler is not None:
                    sampler.stop()
            ended = time.time()
            if sampler is not None:
                for line in sampler.summary(ended - args.duration, ended):
                    print(line, flush=True)
            windows.append((endpoint, ended - args.duration, ended))
            after = group_commits(server.url)
            records, commits = after[0] - before[0], after[1] - before[1]
            if commits:
                print(
                    f"    access log: {records:.0f} records in {commits:.0f} group commits, "
                    f"{records / commits:.1f} per commit (warm-up and row)",
                    flush=True,
                )
            rows.append(Row(inwoners, grants, endpoint, measured))
        return rows

    # Each row's measured seconds (wall clock), for the server's own view (``--probe``).
    windows: list[tuple[str, float, float]] = []

    def probed(name: str) -> dict[str, str]:
        return {**env, "PROBE_OUT": str(data_dir / f"probe-{name}.json")} if args.probe else env

    def probe_summary(name: str) -> None:
        if args.probe:
            for endpoint, start, end in windows:
                print(f"  {name}, {endpoint}, as the server saw it:", flush=True)
                for line in server_probe.summary(data_dir / f"probe-{name}.json", start, end):
                    print(line, flush=True)

    rows: list[Row] = []
    with base.Server(
        "baseline",
        "fhir_read_search:vault_app",
        cpu=cpus[0],
        env=probed("baseline"),
        log_dir=data_dir,
    ) as server:
        status, bundle = get(f"{server.url}/fhir/Goal?patient={vault.patients[0]}")
        if status != 200 or json.loads(bundle).get("total") != 6:
            raise RuntimeError(f"baseline Goal search answered {status}: {bundle[:300]!r}")
        rows += measure(server, "full access", None, "full")
    probe_summary("baseline")

    for level in levels:
        seconds = set_grants(runtime, vault, level)
        quiesce(runtime)
        written = f"{len(vault.consents)} updates in {seconds:.1f} s" if seconds else "so loaded"
        print(
            f"{inwoners} inwoners: every Consent now compiles to {level} grant rows "
            f"(checked with COUNT; {written})",
            flush=True,
        )
        name = f"partner-{inwoners}-{level}"
        with base.Server(
            name,
            "consent_read_search:partner_vault_app",
            cpu=cpus[0],
            env=probed(name),
            log_dir=data_dir,
        ) as server:
            token = partner.token(server.url)
            check_partner(server, token, vault)
            rows += measure(server, f"partner, {level} grants", token, str(level))
        probe_summary(name)
    return rows


def group_commits(url: str) -> tuple[float, float]:
    """Records and group commits of the access log so far, from the server's ``/metrics``
    (``vault_access_log_group_records``): how full its commits were under a row's load."""
    status, body = base.http_get(url + "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    found = {"sum": 0.0, "count": 0.0}
    for line in body.decode().splitlines():
        for kind in found:
            if line.startswith(f"vault_access_log_group_records_{kind} "):
                found[kind] = float(line.split()[1])
    return found["sum"], found["count"]


def quiesce(runtime: Runtime) -> None:
    """Do now what writing the data left for later, so no server does it while measured.

    Every Consent update logged a record: left waiting, this process's access-log writer
    settled them while the partner rows ran (after 100,000 updates: p99 545 ms). Every
    Patient and Consent write queued a change notification, which a server's delivery
    worker fanned out while measured (after 100,000 updates: 374 µs a full-access read,
    not 163). Nobody subscribes in a benchmark."""
    runtime.audit.settle_all()
    notifier = Notifier(runtime)
    while notifier.fan_out():
        pass
    base.settle(runtime)


def check_partner(server: base.Server, token: str, vault: Vault) -> None:
    """Fail early unless the partner sees what it is granted, and only with its token."""
    status, body = get(f"{server.url}/fhir/Goal/{vault.goals[0]}", token)
    if status != 200:
        raise RuntimeError(f"partner read Goal answered {status}: {body[:300]!r}")
    status, body = get(f"{server.url}/fhir/Goal?patient={vault.patients[-1]}", token)
    total = json.loads(body).get("total") if status == 200 else None
    if total != 6:
        raise RuntimeError(f"partner Goal search answered {status} with total {total}")
    status, _ = get(f"{server.url}/fhir/Goal/{vault.goals[0]}")
    if status != 401:
        raise RuntimeError(f"a read without token answered {status}, not 401")


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'inwoners':>8} {'grants':>6} {'endpoint':<21} {'req/s':>6} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'err':>4} {'server':>6} {'µs/req':>6} {'db µs':>6} {'other':>5}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        m = row.measured
        print(
            f"{row.inwoners:>8} {row.grants:>6} {row.endpoint:<21} {m.rps:>6.0f} "
            f"{m.p50_ms:>7.2f} {m.p99_ms:>7.2f} {m.errors:>4} {m.server_cpu:>6.0%} "
            f"{m.cost_us:>6.0f} {m.db_cost_us:>6.0f} {m.other_cpu:>5.0%}"
        )


def flatness(rows: list[Row]) -> list[str]:
    """Per endpoint: the spread of CPU per request over every inwoners x grants point."""
    lines = []
    for endpoint in ("read Goal/{id}", "search Goal?patient="):
        partner = [r for r in rows if r.endpoint == endpoint and r.grants != "full"]
        full = [r for r in rows if r.endpoint == endpoint and r.grants == "full"]
        costs = [r.measured.cost_us + r.measured.db_cost_us for r in partner]
        if not costs:
            continue
        mean = sum(costs) / len(costs)
        low, high = min(costs) / mean - 1, max(costs) / mean - 1
        flat = max(-low, high) <= FLAT
        baseline = sum(r.measured.cost_us + r.measured.db_cost_us for r in full) / max(1, len(full))
        lines.append(
            f"{endpoint}: partner CPU per request {min(costs):.0f}..{max(costs):.0f} µs over "
            f"{len(costs)} points, mean {mean:.0f} µs, spread {low:+.0%}/{high:+.0%}: "
            f"{'FLAT' if flat else 'NOT flat'} (limit ±{FLAT:.0%}); full access "
            f"{baseline:.0f} µs, consent path x{mean / baseline:.2f}"
        )
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inwoners", default="1000,10000", help="ascending counts")
    parser.add_argument("--grants", default="1,10,100", help="grant rows per inwoner")
    parser.add_argument(
        "--database-url", default="", help="PostgreSQL server URL; default: a SQLite file"
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--probe",
        action="store_true",
        help="print each row as the server saw it: its requests inside the app, group "
        "commits, checkpoints, event-loop lag, garbage collections (server_probe.py)",
    )
    parser.add_argument(
        "--waits",
        action="store_true",
        help="PostgreSQL: print under each partner row what the backends waited for, the "
        "access log's writer apart (pg_stat_activity every 10 ms, pg_waits.py)",
    )
    parser.add_argument("--duration", type=float, default=8, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2, help="seconds before each one")
    parser.add_argument(
        "--quiet", type=float, default=10, help="seconds to wait for quiet cores before a row"
    )
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    base.add_pin_database(parser)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    parser.add_argument(
        "--reuse", default="", metavar="DIR", help="measure on a kept SQLite data folder"
    )
    parser.add_argument(
        "--bulk",
        type=int,
        default=-1,
        metavar="ACCESS",
        help="load with the bulk loader (benchmarks/bulk_load.py), ACCESS access-log records "
        "per inwoner; default: through the repository, no access-log records",
    )
    parser.add_argument(
        "--checkpoint-seconds",
        default="",
        metavar="S",
        help="the vault's VAULT_SQLITE_CHECKPOINT_SECONDS (SQLite); default: its own, 1 s",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    base.check_tools(args)
    if args.reuse:
        if args.database_url:
            sys.exit("--reuse takes a kept SQLite folder (a PostgreSQL run drops its database)")
        folder = Path(args.reuse)
        bench(args, folder, f"sqlite:///{folder / 'vault.db'}")
    else:
        base.in_scratch(args, bench, name="consent-bench")


def bench(args: argparse.Namespace, data_dir: Path, url: str) -> None:
    counts = [int(x) for x in args.inwoners.split(",")]
    levels = [int(x) for x in args.grants.split(",")]
    if counts != sorted(counts) or min(levels) < 1:
        sys.exit("--inwoners must be ascending and --grants at least 1")
    print("Regiekluis consent read/search benchmark")
    print("\n".join(base.machine_info(url, server_cpu=args.server_cpu, client_cpu=args.client_cpu)))
    print(f"Command   {' '.join([Path(sys.executable).name, *sys.argv])}\n")

    settings = Settings(data_dir=data_dir, database_url=url)
    if not args.reuse:
        base.initialise(settings)
    runtime = open_runtime(settings)
    rows: list[Row] = []
    plans: dict[int, list[str]] = {}
    try:
        loaded_so_far = 0
        if args.reuse:  # nothing to load: the scan below checks the folder holds them all
            if len(counts) != 1:
                raise RuntimeError("--reuse measures one count of inwoners: the folder's")
            loaded_so_far = counts[0]
        partner: Partner | None = None
        vault: Vault | None = None
        other_orgs: list[str] = []
        partner_org = ""
        for count in counts:
            more = count - loaded_so_far
            if more:
                print(f"Loading {more} inwoners (about 20 resources each) ...", flush=True)
                if args.bulk >= 0:
                    # At one grant the Consents are loaded naming the partner, as
                    # ``set_grants`` would write them: 100,000 updates fewer to wait for.
                    loaded = bulk_load.load(
                        runtime,
                        first=loaded_so_far,
                        inwoners_=more,
                        access=args.bulk,
                        consent=partial(consent_body, actors=[LOADED_PARTNER])
                        if levels[0] == 1
                        else None,
                    )
                else:
                    loaded = base.load(runtime, inwoners=more)
                loaded_so_far = count
                print(
                    f"Loaded {loaded.resources} resources in {loaded.seconds:.1f} s "
                    f"({loaded.resources / loaded.seconds:.0f} resources/s)",
                    flush=True,
                )
            else:
                print(f"Reusing {args.reuse}: {count} inwoners", flush=True)
            if partner is None:
                partner, partner_org = register_partner(runtime)
                repo = Repository(runtime, AccessContext.full("bench"))
                with runtime.db.write() as conn:
                    for i in range(max(levels) - 1):
                        body = {"resourceType": "Organization", "active": True}
                        body["name"] = f"Partner {i + 1}"
                        stored, _ = repo.create(conn, "Organization", body)
                        other_orgs.append(f"Organization/{stored.resource_id}")
            vault = scan(runtime, partner_org, other_orgs)
            if len(vault.patients) != count or len(vault.consents) != count:
                raise RuntimeError(f"{len(vault.patients)} inwoners in the database, not {count}")
            quiesce(runtime)
            rows += run_phase(
                args,
                data_dir=data_dir,
                url=url,
                vault=vault,
                partner=partner,
                runtime=runtime,
                levels=levels,
            )
            context = partner_context(runtime, partner.client_id, partner_org)
            plans[count] = query_plans(runtime, context, vault)
    finally:
        runtime.close()

    print(
        f"\n{args.connections} connections, {args.duration:g} s per row (after {args.warmup:g} s "
        "warmup); partner = MEE Veluwe backend client with a bearer token, consent enforced; "
        "full = the full-access vault of fhir_read_search.py\n"
    )
    print_table(rows)
    print(
        """
server  CPU the server process used (all threads), in cores; µs/req is that per request.
db µs   CPU of the PostgreSQL backends per request (0 on SQLite: it runs in the server).
other   busy time of the two pinned cores used by other programs; rows above ~10 % are
        disturbed and not trustworthy."""
    )
    print()
    for line in flatness(rows):
        print(line)
    if any(r.measured.errors for r in rows):
        print("WARNING: some requests failed (see err): the figures of those rows are wrong.")
    if any(r.measured.other_cpu > 0.1 for r in rows):
        print("WARNING: other programs used the pinned cores during the run; see 'other'.")
    sqlite = url.startswith("sqlite")
    for count, plan in plans.items():
        print(
            f"\nQuery plans of the partner's search and read, {count} inwoners, "
            f"{levels[-1]} grants each ({'EXPLAIN QUERY PLAN' if sqlite else 'EXPLAIN'}):"
        )
        if count == counts[-1]:
            print("\n".join(plan))
        bad = full_scans(plan, sqlite=sqlite)
        print(f"full scans: {bad if bad else 'none'}")


if __name__ == "__main__":
    main()
