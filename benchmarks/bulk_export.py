"""Bulk Data export throughput: resources per second for N inwoners, over real HTTP.

Issue 6, "Benchmark: bulk export throughput (resources per second) for 10,000 inwoners on
SQLite and PostgreSQL". The script

1. loads ``--inwoners`` (10,000) inwoners of 20 resources each with the bulk loader
   (``bulk_load.py``: the data of ``fhir_read_search.py``, sealed and indexed as the API
   writes it), each Consent granting one partner organisation everything of its inwoner;
   ``--through-repository`` loads them one request's worth at a time instead, as this
   script did before, and gives each inwoner a second Consent for the partner (that took
   8 minutes on SQLite and 24 on PostgreSQL for 10,000 inwoners);
2. registers that partner as a SMART Backend Services client, and starts the real vault
   (uvicorn, one worker, real bearer-token resolver and consent enforcement) pinned to one
   core;
3. from the other core, with the SDK (``adapters.sdk.VaultClient``, a signed client
   assertion and a real token), kicks off a system-level ``$export``, polls until the
   manifest is there, and downloads every ndjson file;
4. prints resources per second, the times of the export and the download, the size of the
   files, and the server's peak resident memory (``VmHWM``) and CPU time.

    python benchmarks/bulk_export.py [--inwoners 10000] [--database-url URL]

Needs ``taskset`` and two cores. Binds only 127.0.0.1; stops the server it starts; a
PostgreSQL database it makes is dropped afterwards. Figures: ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
from joserfc import jwk
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bulk_load
import fhir_read_search as base

from adapters.sdk import VaultClient
from vault.app.clients import register_client
from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext
from vault.fhir.directory import find_or_create_organization
from vault.fhir.repository import Repository
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime

PARTNER = "Bulk Export Bench"
PARTNER_ID = "bulk-export-partner"  # the Organization the bulk-loaded Consents name
TYPES = ("Patient", "RelatedPerson", "Goal", "CareTeam", "CarePlan", "Observation", "Consent")
SCOPES = tuple(f"system/{t}.rs" for t in (*TYPES, "Organization"))


def grant_everything(runtime: Runtime, patients: list[str], org: str, *, batch: int = 100) -> int:
    """One more Consent per inwoner: the partner may see all of the inwoner's data."""
    repo = Repository(runtime, AccessContext.full("bench"))
    for first in range(0, len(patients), batch):
        with runtime.db.write() as conn:
            for pid in patients[first : first + batch]:
                repo.create(conn, "Consent", base._consent(pid, org))
    return len(patients)


def register_partner(runtime: Runtime) -> tuple[str, jwk.Key, str]:
    key = jwk.ECKey.generate_key("P-384", parameters={"alg": "ES384", "use": "sig"})
    client_id = register_client(
        runtime,
        name=f"{PARTNER} systeem",
        organization_name=PARTNER,
        scopes=list(SCOPES),
        jwks={"keys": [key.as_dict(private=False) | {"kid": key.thumbprint()}]},
    )
    with runtime.db.write() as conn:
        org = find_or_create_organization(runtime, conn, PARTNER)
    return client_id, key, org


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inwoners", type=int, default=10_000)
    parser.add_argument(
        "--database-url", default="", help="PostgreSQL server URL; default: a SQLite file"
    )
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    parser.add_argument(
        "--through-repository",
        action="store_true",
        help="load through the repository, a second Consent per inwoner (slow); default: bulk",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if shutil.which("taskset") is None:
        sys.exit("taskset is not installed: `apt-get install util-linux`")
    base.in_scratch(args, bench, name="export-bench")


def bench(args: argparse.Namespace, data_dir: Path, url: str) -> None:
    print("Regiekluis bulk export benchmark")
    for line in base.machine_info(url, server_cpu=args.server_cpu, client_cpu=args.client_cpu):
        if not line.startswith("Load"):  # no wrk here: the SDK downloads
            print(line.replace("servers on core", "server on core").replace("wrk", "client"))
    print(f"Command   {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"Load avg  {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min) at start\n")

    settings = Settings(data_dir=data_dir, database_url=url)
    base.initialise(settings)
    runtime = open_runtime(settings)
    try:
        print(f"Loading {args.inwoners} inwoners (20 resources each) ...", flush=True)
        if args.through_repository:
            loaded = base.load(runtime, inwoners=args.inwoners)
        else:
            loaded = bulk_load.load_for_one_partner(
                runtime, inwoners_=args.inwoners, org_id=PARTNER_ID, name=PARTNER
            )
        print(
            f"Loaded {loaded.resources} resources in {loaded.seconds:.1f} s "
            f"({loaded.resources / loaded.seconds:.0f} resources/s)",
            flush=True,
        )
        client_id, key, org = register_partner(runtime)
        if args.through_repository:
            started = time.perf_counter()
            grant_everything(runtime, loaded.patients, f"Organization/{org}")
            print(
                f"Granted {PARTNER} everything of {len(loaded.patients)} inwoners "
                f"({time.perf_counter() - started:.1f} s)",
                flush=True,
            )
        elif org != PARTNER_ID:
            raise RuntimeError(f"the partner is Organization/{org}, not the loaded {PARTNER_ID}")
        base.settle(runtime)
        if not runtime.db.is_sqlite:
            # What autovacuum does after a load like this one (``export_profile.py``).
            with runtime.db.write() as conn:
                conn.exec_driver_sql("ANALYZE")
            print("ANALYZE after loading", flush=True)
    finally:
        runtime.close()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BENCH_"))}
    env |= {"VAULT_DATA_DIR": str(data_dir), "VAULT_DATABASE_URL": url}
    os.sched_setaffinity(0, {args.client_cpu})
    server = base.Server(
        "vault",
        "consent_read_search:partner_vault_app",
        cpu=args.server_cpu,
        env=env,
        log_dir=data_dir,
    )
    with (
        server,
        httpx.Client(timeout=600) as http,
        VaultClient(server.url, client_id, key, scopes=SCOPES, http=http) as vault,
    ):
        rss_before = peak_rss_mib(server.pid)
        cpu_before = base._process_cpu_seconds(server.pid)
        vault.access_token()  # the token request is not part of the export
        print("Exporting (system-level $export, all types) ...", flush=True)
        t0 = time.perf_counter()
        manifest = vault.bulk_export_manifest(level="system", timeout=7200)
        t1 = time.perf_counter()
        sizes: Counter[str] = Counter()
        lines: Counter[str] = Counter()
        for resource_type, file_url, _count in manifest.outputs:
            response = http.get(
                file_url,
                headers={
                    "authorization": f"Bearer {vault.access_token()}",
                    "accept": "application/fhir+ndjson",
                },
            )
            response.raise_for_status()
            sizes[resource_type] += len(response.content)
            lines[resource_type] += response.content.count(b"\n")
        t2 = time.perf_counter()
        cpu_used = base._process_cpu_seconds(server.pid) - cpu_before
        rss_peak = peak_rss_mib(server.pid)
        http.delete(
            manifest.status_url, headers={"authorization": f"Bearer {vault.access_token()}"}
        )
        if not url.startswith("sqlite"):
            print(f"Database  {make_url(url).database} (dropped after the run)")

    total = sum(lines.values())
    counted = sum(count for _, _, count in manifest.outputs)
    export_s, download_s = t1 - t0, t2 - t1
    print(f"\n{len(manifest.outputs)} files, {total} resources (manifest: {counted})")
    for resource_type in sorted(lines, key=lambda t: -lines[t]):
        print(
            f"  {resource_type:<14} {lines[resource_type]:>8} resources  "
            f"{sizes[resource_type] / 1e6:>8.1f} MB"
        )
    mb = sum(sizes.values()) / 1e6
    cores = cpu_used / (export_s + download_s)
    print(
        f"\nkick-off to manifest  {export_s:8.1f} s   {total / export_s:8.0f} resources/s\n"
        f"download              {download_s:8.1f} s   {mb / download_s:8.1f} MB/s\n"
        f"total                 {export_s + download_s:8.1f} s   "
        f"{total / (export_s + download_s):8.0f} resources/s\n"
        f"ndjson                {mb:8.1f} MB ({mb * 1e6 / max(total, 1):.0f} bytes/resource)\n"
        f"server CPU            {cpu_used:8.1f} s ({cores:.2f} cores)\n"
        f"server peak RSS       {rss_peak:8.0f} MiB (before the export: {rss_before:.0f} MiB)\n"
        f"load avg at the end   {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    if total != counted:
        print("WARNING: the files hold another number of lines than the manifest says")


if __name__ == "__main__":
    main()
