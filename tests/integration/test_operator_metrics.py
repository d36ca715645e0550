"""What an operator watches (issue 13): /healthz, /readyz and /metrics on a real server."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import _logs, metrics, trace
from opentelemetry._logs import _internal as logs_internal
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from tests.conftest import ServerThread, create, initialise, make_settings
from tests.conftest import test_access as access_of
from tests.factories import goal, patient
from tests.support import fresh_database
from vault.app.main import create_app
from vault.audit.runtime import open_runtime
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime

PLAIN_READ = "/fhir/{resource_type}/{resource_id}"


@pytest.fixture
def metered(settings: Settings, runtime: Runtime) -> Iterator[ServerThread]:
    app = create_app(
        dataclasses.replace(settings, metrics=True), access_resolver=access_of, runtime=runtime
    )
    with ServerThread(app) as running:
        yield running


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = httpx.get(url + "/metrics", timeout=30)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def requests(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], route: str, status: str
) -> float:
    return found.get(("vault_http_requests_total", (("route", route), ("status", status))), 0.0)


def test_ready_when_database_migrations_and_keys_are(server: ServerThread) -> None:
    assert httpx.get(server.url + "/healthz", timeout=10).json() == {"status": "ok"}
    answer = httpx.get(server.url + "/readyz", timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "keys": "ok"},
    }


def test_metrics_are_not_served_unless_switched_on(server: ServerThread) -> None:
    assert httpx.get(server.url + "/metrics", timeout=10).status_code == 404


def test_not_ready_when_the_schema_is_behind_or_the_keys_do_not_load(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        settings = make_settings(tmp_path / "vault", url)
        initialise(settings)
        runtime = open_runtime(settings)
        try:
            with ServerThread(create_app(settings, runtime=runtime)) as running:
                with runtime.db.write() as conn:
                    conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
                answer = httpx.get(running.url + "/readyz", timeout=10)
                assert answer.status_code == 503
                assert answer.json()["checks"]["migrations"] == "behind"
                with runtime.db.write() as conn:
                    conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": "x"})
                    conn.execute(text("UPDATE data_key SET wrapped = :w"), {"w": b"\0" * 40})
                answer = httpx.get(running.url + "/readyz", timeout=10)
                assert answer.status_code == 503
                assert answer.json() == {
                    "status": "not ready",
                    "checks": {"database": "ok", "migrations": "behind", "keys": "unavailable"},
                }
        finally:
            runtime.close()


def test_metrics_count_routes_decisions_and_queues_without_ids(
    metered: ServerThread, client: httpx.Client
) -> None:
    inwoner = str(create(client, patient())["id"])
    other = str(create(client, patient())["id"])
    mine = str(create(client, goal(patient_id=inwoner))["id"])
    before = samples(metered.url)
    with httpx.Client(
        base_url=metered.url + "/fhir", headers={"x-test-access": f"patient:{inwoner}"}, timeout=30
    ) as own:
        assert own.get(f"/Goal/{mine}").status_code == 200  # the plain read, before the router
        assert own.get(f"/Patient/{other}").status_code == 404  # denied, answered as missing
        assert own.get("/Goal", params={"patient": inwoner}).status_code == 200
    after = samples(metered.url)

    assert requests(after, PLAIN_READ, "200") == requests(before, PLAIN_READ, "200") + 1
    assert requests(after, PLAIN_READ, "404") == requests(before, PLAIN_READ, "404") + 1
    assert requests(after, "/fhir/{resource_type}", "200") >= (
        requests(before, "/fhir/{resource_type}", "200") + 1
    )
    latency = ("vault_http_request_seconds_count", (("route", PLAIN_READ),))
    assert after[latency] >= before.get(latency, 0.0) + 2
    permits = ("vault_access_decisions_total", (("outcome", "permit"),))
    denies = ("vault_access_decisions_total", (("outcome", "deny"),))
    assert after[permits] >= before.get(permits, 0.0) + 2
    assert after[denies] >= before.get(denies, 0.0) + 1
    groups = ("vault_access_log_group_records_count", ())
    assert after[groups] > before.get(groups, 0.0)
    assert ("vault_notify_queue_depth", ()) in after
    assert ("vault_notify_delivery_failures_total", ()) in after

    exposition = httpx.get(metered.url + "/metrics", timeout=30).text
    for identifier in (inwoner, other, mine):
        assert identifier not in exposition


class _Recording(trace.TracerProvider):
    """A tracer provider as an environment's OpenTelemetry set-up would install (not a
    no-op one, which FastAPI skips): it notes every tracer asked of it, as FastAPI asks for
    one before its first span."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_tracer(self, instrumenting_module_name: str, *args: Any, **kwargs: Any) -> Any:
        self.asked.append(instrumenting_module_name)
        return trace.NoOpTracer()


class _RecordingMeters(metrics.MeterProvider):
    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_meter(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.asked.append(name)
        return metrics.NoOpMeter(name)


class _RecordingLoggers(_logs.LoggerProvider):
    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_logger(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.asked.append(name)
        return _logs.NoOpLogger(name)


def test_no_request_reaches_an_opentelemetry_provider_set_for_the_process(
    server: ServerThread, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A span names the request's URL (a search names the inwoner), and FastAPI's own logs
    carry stack traces: with providers configured for the whole process, as an operator's
    OpenTelemetry set-up does, no request of the vault reaches them."""
    tracers, meters, loggers = _Recording(), _RecordingMeters(), _RecordingLoggers()
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", tracers)
    monkeypatch.setattr(metrics._internal, "_METER_PROVIDER", meters)
    monkeypatch.setattr(logs_internal, "_LOGGER_PROVIDER", loggers)
    inwoner = str(create(client, patient())["id"])
    mine = str(create(client, goal(patient_id=inwoner))["id"])
    assert client.get(f"/Goal/{mine}").status_code == 200
    assert client.get("/Goal", params={"patient": inwoner}).status_code == 200
    assert client.get("/Goal", params={"nonsense": "1"}).status_code == 400
    assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
    assert tracers.asked == []
    assert meters.asked == []
    assert loggers.asked == []
