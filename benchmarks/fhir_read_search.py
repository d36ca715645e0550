"""Read and search throughput of the vault over real HTTP, next to a bare FastAPI endpoint.

Issue 2, "Benchmark (not a test)": generate N inwoners of about 20 resources each, serve
them with uvicorn (one worker, pinned to one core), drive load with wrk from another core,
and compare three things measured in one run:

  bare     a plain FastAPI endpoint returning the same CarePlan JSON bytes (the yardstick)
  read     ``GET /fhir/CarePlan/{id}``, random ids
  search   ``GET /fhir/Goal?patient={id}``, random inwoners

Target: a read costs at most 3x the bare endpoint (bare req/s / read req/s), with p99 under
5 ms at 16 connections. Figures and their reading are in ``docs/performance.md``.

    python benchmarks/fhir_read_search.py [--inwoners 1000] [--database-url URL]
                                          [--connections 16] [--duration 10] [--profile]

Needs ``wrk`` (``apt-get install wrk``), ``taskset`` (util-linux) and two CPU cores; with
``--profile`` also ``py-spy`` (``pip install py-spy``). Everything binds to 127.0.0.1 and
every process it starts is stopped before it exits.

This module is also the launcher of the vault server (``vault_app``, for
``uvicorn --factory``), so the access rule the benchmark runs under sits in one place.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import server_probe
from fastapi import FastAPI, Request
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from vault.app.main import create_app
from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.config import Settings
from vault.kernel.crypto import MasterKey
from vault.kernel.db import Database
from vault.kernel.runtime import Runtime
from vault.migrations import upgrade

HERE = Path(__file__).resolve().parent
BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"
DOMAIN_SYSTEM = "https://regiekluis.nl/fhir/CodeSystem/levensdomein"
TARGET_RATIO = 3.0
TARGET_P99_MS = 5.0

# -- the vault server (runs in the uvicorn child process) ----------------------------------


def bench_access(request: Request) -> AccessContext:
    """Who the benchmark's requests are: full access until OAuth brings real tokens.

    When tokens exist, this is the one function to change: resolve the bearer token of
    ``request`` here, so the measured path includes the token lookup.
    """
    return AccessContext.full("bench")


def vault_app() -> FastAPI:
    """Factory for ``uvicorn --factory``: the real app, settings from ``VAULT_*``."""
    return server_probe.install(create_app(Settings.from_env(), access_resolver=bench_access))


# -- data ----------------------------------------------------------------------------------

DOMAINS = ("financien", "wonen", "werk", "gezondheid", "sociaal-netwerk", "dagbesteding")
GOALS = (
    "Ik wil mijn schulden op een rij hebben en weten wat ik elke maand kan uitgeven",
    "Ik wil in een huis wonen waar mijn kinderen een eigen kamer hebben",
    "Ik wil weer twee dagen per week werken, het liefst buiten",
    "Ik wil beter slapen en minder piekeren over geld",
    "Ik wil mijn zus weer vaker zien en iemand hebben om op terug te vallen",
    "Ik wil iets zinnigs doen overdag, bijvoorbeeld vrijwilligerswerk bij de kinderboerderij",
)
ORGANISATIONS = ("Sociaal team Harderwijk", "MEE Veluwe", "GGZ Centraal", "Uwoon")


def _ref(resource_type: str, resource_id: str) -> dict[str, str]:
    return {"reference": f"{resource_type}/{resource_id}"}


def _bsn(seed: int) -> str:
    # Fictional numbers from the 99999xxxx test range that pass the 11-proef.
    for offset in range(1000):
        digits = f"99999{(seed + offset) % 10000:04d}"
        total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
        if (total - int(digits[8])) % 11 == 0:
            return digits
    raise AssertionError("no BSN found")


def _patient(n: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": BSN_SYSTEM, "value": _bsn(n)}],
        "name": [{"family": f"Jansen-{n}", "given": ["Sanne", "Maria"]}],
        "gender": "female",
        "birthDate": f"19{70 + n % 30}-0{1 + n % 9}-1{n % 10}",
        "telecom": [{"system": "phone", "value": f"06-{10000000 + n}", "use": "mobile"}],
        "address": [{"line": [f"Stationsstraat {n % 200 + 1}"], "city": "Harderwijk"}],
    }


def _goal(patient_id: str, i: int) -> dict[str, Any]:
    return {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "achievementStatus": {"text": "in progress"},
        "description": {"text": GOALS[i % len(GOALS)]},
        "subject": _ref("Patient", patient_id),
        "expressedBy": _ref("Patient", patient_id),
        "category": [{"coding": [{"system": DOMAIN_SYSTEM, "code": DOMAINS[i % len(DOMAINS)]}]}],
        "startDate": "2026-09-01",
        "target": [{"dueDate": "2027-06-30"}],
        "note": [{"text": "In haar eigen woorden opgeschreven tijdens het keukentafelgesprek."}],
    }


def _related_person(patient_id: str, name: str, relation: str) -> dict[str, Any]:
    return {
        "resourceType": "RelatedPerson",
        "active": True,
        "patient": _ref("Patient", patient_id),
        "relationship": [{"text": relation}],
        "name": [{"text": name}],
        "telecom": [{"system": "phone", "value": "06-87654321"}],
    }


def _careteam(patient_id: str, related: list[str], orgs: list[str]) -> dict[str, Any]:
    members = [_ref("Patient", patient_id)]
    members += [_ref("RelatedPerson", r) for r in related]
    members += [_ref("Organization", o) for o in orgs]
    return {
        "resourceType": "CareTeam",
        "status": "active",
        "name": "Netwerk rond Sanne",
        "subject": _ref("Patient", patient_id),
        "period": {"start": "2026-09-01"},
        "participant": [{"member": m} for m in members],
    }


def _careplan(patient_id: str, goals: list[str], careteam: str, orgs: list[str]) -> dict[str, Any]:
    """About 2 KB of JSON once stored: the plan, in the inwoner's words, with agreements."""
    activities = [
        ("Samen met MEE een overzicht maken van alle schulden en vaste lasten", orgs[1]),
        ("Aanmelden bij de schuldhulpverlening van de gemeente", orgs[0]),
        ("Wekelijks gesprek over slapen en piekeren", orgs[2]),
        ("Urgentieaanvraag voor een grotere woning indienen", orgs[3]),
    ]
    return {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "title": "Mijn plan",
        "description": (
            "Wat ik wil: rust in mijn hoofd, een huis dat past bij ons gezin en weer werk. "
            "Wat ik zelf kan: mijn administratie bijhouden als iemand meekijkt. "
            "Wat ik nodig heb: hulp bij de schulden en iemand die met mij naar de "
            "woningcorporatie gaat."
        ),
        "subject": _ref("Patient", patient_id),
        "period": {"start": "2026-09-01", "end": "2027-08-31"},
        "created": "2026-09-01",
        "author": _ref("Patient", patient_id),
        "careTeam": [_ref("CareTeam", careteam)],
        "goal": [_ref("Goal", g) for g in goals],
        "activity": [
            {
                "detail": {
                    "kind": "Task",
                    "status": "in-progress",
                    "description": description,
                    "performer": [_ref("Organization", org)],
                }
            }
            for description, org in activities
        ],
        "note": [{"text": "Afgesproken aan de keukentafel; over drie maanden kijken we samen."}],
    }


def _observation(patient_id: str, i: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": DOMAIN_SYSTEM, "code": DOMAINS[i % len(DOMAINS)]}]},
        "subject": _ref("Patient", patient_id),
        "effectiveDateTime": f"2026-{9 + i // 6:02d}-0{1 + i % 6}T10:00:00+01:00",
        "valueInteger": 3 + i % 7,
    }


def _consent(patient_id: str, org: str) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
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
        "patient": _ref("Patient", patient_id),
        "dateTime": "2026-09-01T10:00:00+02:00",
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
            ]
        },
        "provision": {
            "type": "permit",
            "period": {"start": "2026-09-01", "end": "2027-08-31"},
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
                    "reference": _ref("Organization", org),
                }
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
        },
    }


@dataclass
class Loaded:
    patients: list[str]
    careplans: list[str]
    resources: int
    seconds: float


def load(runtime: Runtime, *, inwoners: int, batch: int = 25) -> Loaded:
    """Write the data in-process through the repository, ``batch`` inwoners a transaction."""
    repo = Repository(runtime, AccessContext.full("bench"))
    patients: list[str] = []
    careplans: list[str] = []
    count = 0
    started = reported = time.perf_counter()

    def create(conn: Any, body: dict[str, Any]) -> str:
        nonlocal count
        stored, _ = repo.create(conn, body["resourceType"], body)
        count += 1
        return stored.resource_id

    with runtime.db.write() as conn:
        orgs = [
            create(conn, {"resourceType": "Organization", "active": True, "name": name})
            for name in ORGANISATIONS
        ]
    for first in range(0, inwoners, batch):
        with runtime.db.write() as conn:
            for n in range(first, min(first + batch, inwoners)):
                pid = create(conn, _patient(n))
                related = [
                    create(conn, _related_person(pid, "Buurvrouw Ans", "buurvrouw")),
                    create(conn, _related_person(pid, "Zus Petra", "zus")),
                ]
                goals = [create(conn, _goal(pid, i)) for i in range(6)]
                team = create(conn, _careteam(pid, related, orgs))
                careplans.append(create(conn, _careplan(pid, goals, team, orgs)))
                for i in range(8):
                    create(conn, _observation(pid, i))
                create(conn, _consent(pid, orgs[n % len(orgs)]))
                patients.append(pid)
        if time.perf_counter() - reported > 10:
            reported = time.perf_counter()
            print(f"  {len(patients):>6} inwoners, {count:>7} resources", flush=True)
    return Loaded(patients, careplans, count, time.perf_counter() - started)


# -- database ------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(url: str | None, data_dir: Path) -> Iterator[str]:
    """A new, empty database: a SQLite file in ``data_dir``, or a dedicated PostgreSQL one."""
    if not url:
        yield f"sqlite:///{data_dir / 'vault.db'}"
        return
    name = f"rk_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# How the run placed PostgreSQL, for the header (``machine_info``): set by ``pinned_postgres``.
_database_placement = "not pinned"


def _postgres_processes() -> tuple[int | None, list[int]]:
    """The local PostgreSQL's postmaster and every process named ``postgres`` (its backends
    and background workers)."""
    postmaster, found = None, []
    for pid, title in _postgres_titles():
        found.append(pid)
        if not title.startswith("postgres:"):
            postmaster = pid
    return postmaster, found


@contextlib.contextmanager
def pinned_postgres(url: str, cpu: int | None) -> Iterator[None]:
    """With ``cpu`` and a PostgreSQL URL: the local PostgreSQL on that core for the run (the
    issue asks for its backends pinned where the machine allows). Its postmaster is pinned,
    so every backend it starts after is, and so are the processes running already; each is
    put back as it was afterwards, and a backend started meanwhile gets the postmaster's old
    cores. Where the machine does not allow it (not permitted, no such core), the run goes
    on unpinned and its header says so."""
    global _database_placement
    if cpu is None or not url or url.startswith("sqlite"):
        yield
        return
    postmaster, processes = _postgres_processes()
    if postmaster is None:
        _database_placement = "not pinned (its postmaster is not on this machine)"
        yield
        return
    before: dict[int, set[int]] = {}
    try:
        for pid in [postmaster, *(p for p in processes if p != postmaster)]:
            with contextlib.suppress(ProcessLookupError):
                before[pid] = os.sched_getaffinity(pid)
                os.sched_setaffinity(pid, {cpu})
    except OSError as exc:  # not permitted, or no such core
        _restore_affinity(before, before.get(postmaster))
        _database_placement = f"not pinned (pinning it to core {cpu} failed: {exc.strerror})"
        yield
        return
    _database_placement = f"pinned to core {cpu} (postmaster and every backend)"
    try:
        yield
    finally:
        _restore_affinity(before, before[postmaster])
        _database_placement = "not pinned"


def _restore_affinity(before: dict[int, set[int]], default: set[int] | None) -> None:
    for pid, cores in before.items():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, cores)
    if default is not None:
        for pid in _postgres_processes()[1]:
            if pid not in before:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(pid, default)


def initialise(settings: Settings) -> None:
    """What ``vault init`` does, in process: master key, migrations, vault keys."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    MasterKey.generate().write(settings.master_key_path)
    db = Database(settings.database_url)
    try:
        upgrade(db.write_engine)
    finally:
        db.dispose()
    open_runtime(settings, bootstrap=True).close()


def settle(runtime: Runtime) -> None:
    """Leave the database as a running vault would have it some minutes after a bulk load."""
    db = runtime.db
    if db.is_sqlite:
        with db.read() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        # What autovacuum would have done by itself shortly after the load.
        with db.write_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")


# -- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Server:
    """One uvicorn process serving an app factory on 127.0.0.1, pinned to one core."""

    def __init__(
        self, name: str, factory: str, *, cpu: int, env: dict[str, str], log_dir: Path
    ) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = log_dir / f"{name}.log"
        self.command = [
            *("taskset", "-c", str(cpu)),
            *(sys.executable, "-m", "uvicorn", factory, "--factory"),
            *("--app-dir", str(HERE), "--host", "127.0.0.1", "--port", str(self.port)),
            *("--workers", "1", "--no-access-log", "--log-level", "warning"),
            "--no-proxy-headers",
        ]
        self._env = env
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> Server:
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self.command, env=self._env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + 60
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.name} server exited:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                if http_get(self.url + "/healthz")[0] == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} server did not start:\n{self.log_tail()}")
            time.sleep(0.1)

    def __exit__(self, *_exc: object) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


# -- load generation -----------------------------------------------------------------------

# Picks a random line of a file for every request, so reads spread over every resource.
# done() prints one JSON line for this script to read; wrk's own text stays for humans.
WRK_SCRIPT = r"""
local paths = {}

function init(args)
  for line in io.lines(args[1]) do
    paths[#paths + 1] = string.format(args[2], line)
  end
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 1000)
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50":%.1f,"p90":%.1f,"p99":%.1f,' ..
    '"p999":%.1f,"mean":%.1f,"max":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.mean, latency.max))
end
"""


@dataclass
class Measured:
    label: str
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    bytes_per_response: float
    # CPU used during the run, in cores (1.0 = one core all the time).
    server_cpu: float
    wrk_cpu: float
    postgres_cpu: float
    # Busy time of the two pinned cores not explained by the three above: other processes
    # (another test run on the machine) competing for the cores, plus kernel softirq work.
    other_cpu: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cost_us(self) -> float:
        """Server CPU time per request, in microseconds."""
        return self.server_cpu * 1e6 / self.rps

    @property
    def db_cost_us(self) -> float:
        return self.postgres_cpu * 1e6 / self.rps


@dataclass(frozen=True)
class _CpuSnapshot:
    at: float
    server: float
    children: float
    postgres: float
    cores: dict[int, tuple[int, int]]  # core -> (busy ticks, all ticks)

    @classmethod
    def take(cls, server_pid: int, *, database: str | None) -> _CpuSnapshot:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(
            at=time.perf_counter(),
            server=_process_cpu_seconds(server_pid),
            children=usage.ru_utime + usage.ru_stime,
            postgres=_postgres_cpu_seconds(database) if database else 0.0,
            cores=_core_ticks(),
        )


def _process_cpu_seconds(pid: int) -> float:
    """User + system time of a process and all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_cpu_seconds(database: str) -> float:
    """CPU time of the local PostgreSQL backends serving ``database``, plus that of every
    backend that has exited (the postmaster's reaped children: a pool that opens and closes
    connections under load leaves its cost there). Live backends of other databases count
    as other programs."""
    total = 0.0
    for pid, title in _postgres_titles():
        with contextlib.suppress(OSError, ValueError, IndexError):
            if f" {database} " in title:
                total += _process_cpu_seconds(pid)
            elif not title.startswith("postgres:"):  # the postmaster
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return total


def _postgres_titles() -> Iterator[tuple[int, str]]:
    """Every process named ``postgres`` on this machine, with its title: a backend's is
    "postgres: user database host(port) state", the postmaster's its command line."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, UnicodeDecodeError):
                if (proc / "comm").read_text().strip() == "postgres":
                    title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    yield int(proc.name), title


def _core_ticks() -> dict[int, tuple[int, int]]:
    result = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            numbers = [int(v) for v in values[:8]]
            idle = numbers[3] + numbers[4]
            result[int(name[3:])] = (sum(numbers) - idle, sum(numbers))
    return result


def wait_until_quiet(cpus: tuple[int, int], *, limit: float) -> bool:
    """Wait up to ``limit`` seconds for both cores to be idle (other runs on a shared box)."""
    deadline = time.monotonic() + limit
    while True:
        before = _core_ticks()
        time.sleep(1)
        after = _core_ticks()
        busy = max((after[c][0] - before[c][0]) / max(1, after[c][1] - before[c][1]) for c in cpus)
        if busy < 0.05:
            return True
        if time.monotonic() > deadline:
            return False


def measure(run: dict[str, Any], *, duration: float, warmup: float, quiet: float) -> Measured:
    """Warm up, then measure; measure again (twice at most) if another program interfered."""
    for attempt in range(3):
        if quiet > 0 and not wait_until_quiet(run["cpus"], limit=quiet):
            print(f"  the cores stayed busy for {quiet:g} s; measuring anyway", flush=True)
        if warmup > 0:
            run_wrk(**run, duration=warmup)
        measured = run_wrk(**run, duration=duration)
        if measured.other_cpu <= 0.1 or attempt == 2:
            return measured
        print(f"  other programs used {measured.other_cpu:.0%} of a core; again", flush=True)
    raise AssertionError("unreachable")


def run_wrk(
    *,
    label: str,
    url: str,
    path_template: str,
    ids_file: Path,
    script: Path,
    cpus: tuple[int, int],
    connections: int,
    duration: float,
    server_pid: int,
    postgres_database: str | None,
) -> Measured:
    """One wrk run against ``url``; ``cpus`` is (server core, wrk core)."""
    command = [
        *("taskset", "-c", str(cpus[1]), "wrk", "-t1", f"-c{connections}"),
        *(f"-d{duration:g}s", "--timeout", "5s", "--latency", "-s", str(script), url),
        *("--", str(ids_file), path_template),
    ]
    before = _CpuSnapshot.take(server_pid, database=postgres_database)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    after = _CpuSnapshot.take(server_pid, database=postgres_database)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("WRKJSON "))
    wall = after.at - before.at
    server = (after.server - before.server) / wall
    wrk = (after.children - before.children) / wall
    postgres = (after.postgres - before.postgres) / wall
    busy = 0.0
    for core in cpus:
        busy_ticks = after.cores[core][0] - before.cores[core][0]
        all_ticks = after.cores[core][1] - before.cores[core][1]
        busy += busy_ticks / max(1, all_ticks)
    return Measured(
        label=label,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=sum(data[k] for k in ("connect", "read", "write", "status", "timeout")),
        p50_ms=data["p50"] / 1000,
        p90_ms=data["p90"] / 1000,
        p99_ms=data["p99"] / 1000,
        max_ms=data["max"] / 1000,
        bytes_per_response=data["bytes"] / max(1, data["requests"]),
        server_cpu=server,
        wrk_cpu=wrk,
        postgres_cpu=postgres,
        other_cpu=max(0.0, busy - server - wrk - postgres),
    )


# -- reporting -----------------------------------------------------------------------------


def machine_info(database_url: str, *, server_cpu: int, client_cpu: int) -> list[str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    if database_url.startswith("sqlite"):
        database = f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=FULL), file in temp dir"
    else:
        engine = create_engine(database_url)
        with engine.connect() as conn:
            version = conn.exec_driver_sql("SHOW server_version").scalar()
            fsync = conn.exec_driver_sql("SHOW fsync").scalar()
        engine.dispose()
        database = f"PostgreSQL {version} on 127.0.0.1 (fsync={fsync}), {_database_placement}"
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    wrk_version = (wrk.stdout + wrk.stderr).splitlines()[0].split(" Copyright")[0]
    packages = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "sqlalchemy")
    )
    extra = "psycopg " + importlib.metadata.version("psycopg")
    return [
        f"Vault     {_vault_revision()}",
        f"CPU       {model}, {os.cpu_count()} cores ({platform.machine()})",
        f"Kernel    {platform.system()} {platform.release()}",
        f"Python    {platform.python_version()} ({platform.python_implementation()})",
        f"Packages  {packages}, {extra}",
        f"Database  {database}",
        f"Load      {wrk_version}",
        f"Pinning   servers on core {server_cpu}, wrk on core {client_cpu}",
    ]


def _vault_revision() -> str:
    """The commit the vault code comes from, and whether ``vault/`` differs from it."""

    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(HERE.parent), *argv], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "version " + importlib.metadata.version("regiekluis") + " (no git checkout)"
    changed = git("status", "--porcelain", "--", "vault")
    return f"commit {commit}" + (" + uncommitted changes in vault/" if changed else "")


def print_table(rows: list[Measured], *, bare: Measured, connections: int) -> None:
    header = (
        f"{'endpoint':<33} {'req/s':>7} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
        f"{'max ms':>7} {'err':>3} {'server':>6} {'µs/req':>6} {'db µs':>6} {'other':>5} "
        f"{'x bare':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row.label:<33} {row.rps:>7.0f} {row.p50_ms:>7.2f} {row.p90_ms:>7.2f} "
            f"{row.p99_ms:>7.2f} {row.max_ms:>7.2f} {row.errors:>3} {row.server_cpu:>6.0%} "
            f"{row.cost_us:>6.0f} {row.db_cost_us:>6.0f} {row.other_cpu:>5.0%} "
            f"{bare.rps / row.rps:>6.2f}"
        )
    print(
        f"""
x bare  bare req/s / endpoint req/s. Target: read <= {TARGET_RATIO:g}x, p99 < \
{TARGET_P99_MS:g} ms at {connections} connections.
server  CPU the server process used (all its threads), in cores; µs/req is that per request.
db µs   CPU of the PostgreSQL backends of the benchmark's database per request (0 on
        SQLite: it runs inside the server process)
other   busy time of the two cores that neither server, wrk nor PostgreSQL used: another
        program competing for the cores. Above ~10 % the row is not trustworthy; run again."""
    )


def verdict(row: Measured, bare: Measured) -> str:
    ratio = bare.rps / row.rps
    ok_ratio = ratio <= TARGET_RATIO
    ok_p99 = row.p99_ms < TARGET_P99_MS
    status = "meets" if ok_ratio and ok_p99 else "MISSES"
    return (
        f"{row.label}: {status} the target (ratio {ratio:.2f} {'<=' if ok_ratio else '>'} "
        f"{TARGET_RATIO:g}; p99 {row.p99_ms:.2f} ms {'<' if ok_p99 else '>='} "
        f"{TARGET_P99_MS:g} ms)"
    )


# -- profiling -----------------------------------------------------------------------------

# Each sample is charged to the innermost frame that matches one of these, in this order.
LAYERS = (
    ("decrypt (AES-GCM) and data-key cache", ("open_body", "DataKeyCache.aead", "._open")),
    ("SQL driver: execute + fetch", ("do_execute", "fetchone", "FetchStrategy", "psycopg/")),
    (
        "SQLAlchemy: checkout/return, BEGIN/ROLLBACK",
        (
            *("/pool/", "Engine.connect", "Connection.close", "Connection.__exit__"),
            *("_on_begin", "_begin_impl", "_rollback_impl", "Connection.__init__"),
            *("Transaction", "vault/kernel/db.py"),
        ),
    ),
    ("SQLAlchemy: execute and result overhead", ("sqlalchemy/",)),
    ("repository: other", ("repository.py",)),
    ("thread pool hops (sync routes and deps)", ("anyio/", "queue.py", "threading.py")),
    ("FastAPI dependency resolution", ("solve_dependencies", "deps.py", "bench_access")),
    ("router: headers, accept, Response", ("vault/fhir/router.py", "email/", "responses.py")),
    ("FastAPI/Starlette routing, middleware", ("fastapi/", "starlette/", "contextlib.py")),
    ("uvicorn HTTP protocol (httptools)", ("uvicorn/protocols",)),
    ("event loop (uvloop; C code not seen)", ("runners.py", "asyncio/", "uvicorn/")),
)


def _layer(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, needles in LAYERS:
            if any(needle in frame for needle in needles):
                return name
    return "other"


def profile(server: Server, *, run: dict[str, Any], seconds: float, out_dir: Path) -> None:
    """Sample the vault server with py-spy while wrk drives reads; print where time goes.

    Only samples in which a thread holds the GIL count (``--gil``): on one core that is
    the Python work the server does. Work in C without the GIL (SQLite inside a query,
    waiting for PostgreSQL, epoll) is not in these samples.
    """
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("py-spy not found: `pip install py-spy` into this environment to use --profile")
        return
    raw = out_dir / "read-profile.txt"
    command = [
        *("taskset", "-c", str(run["cpus"][1]), py_spy, "record", "--pid", str(server.pid)),
        *("--rate", "499", "--format", "raw", "--output", str(raw), "--gil", "--nonblocking"),
        *("--duration", str(round(seconds + 1))),
    ]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        measured = run_wrk(**{**run, "duration": seconds})
        _, err = spy.communicate(timeout=seconds + 30)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
    if not raw.exists():
        print(f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}")
        return
    layers: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        layers[_layer(frames)] += int(count)
        own[frames[-1]] += int(count)
    total = max(1, sum(layers.values()))
    print(
        f"\nProfile of read-by-id: py-spy --gil at 499 Hz, {total} samples, while wrk measured "
        f"{measured.rps:.0f} req/s and the server used {measured.cost_us:.0f} µs CPU per "
        f"request (sampling slows it down). Raw stacks: {raw}"
    )
    print(f"\n  {'layer (innermost matching frame)':<48} {'share':>6} {'≈ µs/req':>9}")
    for name, count in layers.most_common():
        share = count / total
        print(f"  {name:<48} {share:>6.1%} {share * measured.cost_us:>9.0f}")
    print(f"\n  {'hottest lines (self)':<96} {'share':>6}")
    for frame, count in own.most_common(15):
        print(f"  {frame[:96]:<96} {count / total:>6.1%}")


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inwoners", type=int, default=1000)
    parser.add_argument(
        "--database-url", default="", help="PostgreSQL server URL; default: a SQLite file"
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=3, help="seconds before each one")
    parser.add_argument(
        "--quiet",
        type=float,
        default=60,
        help="seconds to wait, before each measurement, for other programs to leave the cores",
    )
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    add_pin_database(parser)
    parser.add_argument("--profile", action="store_true", help="also sample reads with py-spy")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    return parser.parse_args(argv)


def add_pin_database(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pin-database",
        type=int,
        default=None,
        metavar="CPU",
        help="pin the local PostgreSQL (postmaster and backends) to this core for the run, "
        "and put it back after; default: not pinned",
    )


def check_tools(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `apt-get install wrk` (Debian/Ubuntu), then run again")
    if shutil.which("taskset") is None:
        sys.exit("taskset is not installed: `apt-get install util-linux`")
    allowed = os.sched_getaffinity(0)
    if args.server_cpu == args.client_cpu or not {args.server_cpu, args.client_cpu} <= allowed:
        sys.exit(
            f"need two different usable cores for server and wrk; usable: {sorted(allowed)} "
            "(see --server-cpu / --client-cpu)"
        )


def in_scratch(
    args: argparse.Namespace, bench: Callable[[argparse.Namespace, Path, str], None], *, name: str
) -> None:
    """Run ``bench`` on a temporary data folder and a fresh database, both removed after
    it unless ``--keep``; every benchmark script starts this way."""
    os.environ.pop("VAULT_MASTER_KEY", None)  # the benchmark's vault uses its own key file
    data_dir = Path(tempfile.mkdtemp(prefix=f"regiekluis-{name}-"))
    try:
        with (
            fresh_database(args.database_url, data_dir) as url,
            pinned_postgres(url, getattr(args, "pin_database", None)),
        ):
            bench(args, data_dir, url)
    finally:
        if args.keep:
            print(f"kept {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    check_tools(args)
    in_scratch(args, bench, name="bench")


def bench(args: argparse.Namespace, data_dir: Path, url: str) -> None:
    print("Regiekluis read/search benchmark")
    print("\n".join(machine_info(url, server_cpu=args.server_cpu, client_cpu=args.client_cpu)))
    print(f"Command   {' '.join([Path(sys.executable).name, *sys.argv])}\n")

    settings = Settings(data_dir=data_dir, database_url=url)
    pg_name = None if url.startswith("sqlite") else make_url(url).database
    initialise(settings)
    print(f"Loading {args.inwoners} inwoners (about 20 resources each) ...", flush=True)
    runtime = open_runtime(settings)
    try:
        loaded = load(runtime, inwoners=args.inwoners)
        settle(runtime)
        with runtime.db.read() as conn:
            sample = Repository(runtime, AccessContext.full("bench")).read(
                conn, "CarePlan", loaded.careplans[0]
            )
    finally:
        runtime.close()
    print(
        f"Loaded {loaded.resources} resources in {loaded.seconds:.1f} s "
        f"({loaded.resources / loaded.seconds:.0f} resources/s: validated, encrypted, "
        "indexed, committed)\n"
    )

    assert sample.body is not None
    body_path = data_dir / "careplan.json"
    body_path.write_bytes(sample.body)
    careplans = data_dir / "careplan-ids.txt"
    careplans.write_text("\n".join(loaded.careplans) + "\n")
    patients = data_dir / "patient-ids.txt"
    patients.write_text("\n".join(loaded.patients) + "\n")
    script = data_dir / "random-path.lua"
    script.write_text(WRK_SCRIPT)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BENCH_"))}
    env |= {
        "VAULT_DATA_DIR": str(data_dir),
        "VAULT_DATABASE_URL": url,
        "BENCH_BARE_BODY": str(body_path),
    }
    cpus = (args.server_cpu, args.client_cpu)
    with (
        Server("bare", "_bare_app:bare_app", cpu=cpus[0], env=env, log_dir=data_dir) as bare,
        Server(
            "vault", "fhir_read_search:vault_app", cpu=cpus[0], env=env, log_dir=data_dir
        ) as vault,
    ):
        check_responses(bare, vault, loaded)
        scenarios = [
            ("bare FastAPI, async def", bare, "/fhir/CarePlan/%s", careplans),
            ("bare FastAPI, def (thread pool)", bare, "/sync/fhir/CarePlan/%s", careplans),
            ("read CarePlan/{id}", vault, "/fhir/CarePlan/%s", careplans),
            ("search Goal?patient={id}", vault, "/fhir/Goal?patient=%s", patients),
        ]

        def scenario(label: str, server: Server, template: str, ids: Path) -> dict[str, Any]:
            return {
                "label": label,
                "url": server.url,
                "path_template": template,
                "ids_file": ids,
                "script": script,
                "cpus": cpus,
                "connections": args.connections,
                "server_pid": server.pid,
                "postgres_database": pg_name,
            }

        rows = []
        for label, server, template, ids in scenarios:
            print(f"measuring {label} for {args.duration:g} s ...", flush=True)
            run = scenario(label, server, template, ids)
            rows.append(measure(run, duration=args.duration, warmup=args.warmup, quiet=args.quiet))
        print(
            f"\n{args.inwoners} inwoners, {loaded.resources} resources; "
            f"{args.connections} connections, {args.duration:g} s per row; CarePlan "
            f"{len(sample.body)} bytes, Goal bundle {rows[3].bytes_per_response:.0f} bytes "
            "with headers\n"
        )
        print_table(rows, bare=rows[0], connections=args.connections)
        print()
        for row in rows[2:]:
            print(verdict(row, rows[0]))
        if any(row.other_cpu > 0.1 for row in rows):
            print("WARNING: other programs used the pinned cores during the run; see 'other'.")
        if args.profile:
            read = scenario("read (profiled)", vault, "/fhir/CarePlan/%s", careplans)
            profile(vault, run=read, seconds=args.duration, out_dir=data_dir)


def check_responses(bare: Server, vault: Server, loaded: Loaded) -> None:
    """Fail early if the servers do not answer what the benchmark thinks it measures."""
    first = loaded.careplans[0]
    status, plain = http_get(f"{bare.url}/fhir/CarePlan/{first}")
    status_read, stored = http_get(f"{vault.url}/fhir/CarePlan/{first}")
    if status != 200 or status_read != 200 or plain != stored:
        raise RuntimeError(f"bare ({status}) and vault ({status_read}) bodies differ for {first}")
    status, bundle = http_get(f"{vault.url}/fhir/Goal?patient={loaded.patients[0]}")
    found = json.loads(bundle).get("total") if status == 200 else None
    if found != 6:
        raise RuntimeError(f"Goal?patient= answered {status} with total {found}, expected 6")
    print(f"Checked: read body == bare body ({len(stored)} bytes); Goal search bundle total 6")


if __name__ == "__main__":
    main()
