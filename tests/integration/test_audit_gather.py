"""The access log's writer waits a moment for the records of requests still being served.

A group commit costs the same whatever its size, so before it commits, the writer waits
for requests that are about to hand records over (``audit/waiting.expecting``), at most
``_GATHER_SECONDS``, and with nothing expected not at all. These tests hold requests in
flight by hand (a mark taken in a context of their own) and count the group commits; the
last one sends real requests through a real server and checks that every kind of request
stops being expected when it ends, whatever its answer: one that stayed counted would make
every later commit wait.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import httpx
import pytest

from tests.conftest import ServerThread
from tests.conftest import test_access as access_of
from tests.factories import goal
from tests.support.audit import new_inwoner, own_vault, read_by
from vault.app.main import create_app
from vault.app.metrics import _is_search
from vault.audit.log import AuditLog
from vault.audit.waiting import expected, expecting, unexpected
from vault.kernel.driver import DRIVER_STATEMENTS
from vault.kernel.runtime import Runtime

# How the links of a group reach the database (``kernel/driver.insert_rows``).
LINK_WRITES = ("INSERT INTO audit_chain ", "COPY audit_chain ")


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    with own_vault(tmp_path_factory.mktemp("audit-gather")) as rt:
        yield rt


@pytest.fixture
def groups() -> Iterator[list[str]]:
    """The group commits the writer sends while the test runs (one link insert each)."""
    sent: list[str] = []

    def count(statement: str) -> None:
        if statement.startswith(LINK_WRITES):
            sent.append(statement)

    DRIVER_STATEMENTS.append(count)
    try:
        yield sent
    finally:
        DRIVER_STATEMENTS.remove(count)


def in_flight() -> tuple[contextvars.Context, list[bool]]:
    """A request being served, in a context of its own: counted until it hands over."""
    context = contextvars.copy_context()
    return context, context.run(expecting)


def in_thread(run: Any, *args: Any) -> Future[None]:
    done: Future[None] = Future()

    def target() -> None:
        try:
            run(*args)
        except BaseException as exc:  # reported through the future
            done.set_exception(exc)
        else:
            done.set_result(None)

    threading.Thread(target=target, daemon=True).start()
    return done


def taken(log: AuditLog) -> None:
    """Until the writer has taken every record handed to it so far."""
    deadline = time.monotonic() + 20
    while log._thread is None or not log._queue.empty():
        assert time.monotonic() < deadline, "the writer did not take the record"
        time.sleep(0.005)


def log_with(
    runtime: Runtime,
    groups: list[str],
    monkeypatch: pytest.MonkeyPatch,
    *,
    gather: float,
    confirm: int,
) -> tuple[AuditLog, str]:
    """A log whose writer waits up to ``gather`` seconds for requests in flight and whose
    callers wait ``confirm`` seconds for their commit; a new inwoner, her creation's
    commits not counted in ``groups``."""
    monkeypatch.setattr("vault.audit.log._GATHER_SECONDS", gather)
    monkeypatch.setattr("vault.audit.log._CONFIRM_SECONDS", confirm)
    anna = new_inwoner(runtime)
    groups.clear()
    return AuditLog(runtime), anna


def test_a_record_waits_for_a_request_still_being_served_and_is_committed_with_it(
    runtime: Runtime, groups: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("vault.audit.log._GATHER_SECONDS", 30.0)
    anna, bram = new_inwoner(runtime), new_inwoner(runtime)
    groups.clear()  # creating them logged too
    log = AuditLog(runtime)
    context, mark = in_flight()
    try:
        first = in_thread(log.record, [read_by(anna, n=1)])
        taken(log)
        # The writer holds the first record while the second request is still served: a
        # writer that did not wait would have committed it by now.
        time.sleep(0.3)
        assert not first.done()
        assert groups == []
        second = in_thread(context.run, log.record, [read_by(bram, n=2)])
        first.result(timeout=20)
        second.result(timeout=20)
    finally:
        unexpected(mark)
        log.close()
    assert len(groups) == 1  # both records in one commit
    assert not mark[0]  # handing over ended the count of its request


def test_with_no_request_being_served_a_record_is_committed_at_once(
    runtime: Runtime, groups: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A writer that waited would not confirm before the request gives up.
    log, anna = log_with(runtime, groups, monkeypatch, gather=60.0, confirm=10)
    try:
        assert expected() == 0
        log.record([read_by(anna, n=3)])
        log.record([read_by(anna, n=4)])
    finally:
        log.close()
    assert len(groups) == 2


def test_the_wait_for_a_request_that_never_hands_records_over_is_bounded(
    runtime: Runtime, groups: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log, anna = log_with(runtime, groups, monkeypatch, gather=0.2, confirm=10)
    _, mark = in_flight()  # served on and on, and never hands anything over
    try:
        log.record([read_by(anna, n=5)])
        log.record([read_by(anna, n=6)])
    finally:
        unexpected(mark)
        log.close()
    assert len(groups) == 2
    assert expected() == 0


def test_closing_the_log_while_it_waits_still_commits_what_it_holds(
    runtime: Runtime, groups: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # ``confirm`` is also how long close() waits for the writer.
    log, anna = log_with(runtime, groups, monkeypatch, gather=60.0, confirm=5)
    _, mark = in_flight()
    try:
        waiting = in_thread(log.record, [read_by(anna, n=7)])
        taken(log)
        assert not waiting.done()
        log.close()  # wakes the writer while it waits: the record goes first
        waiting.result(timeout=5)
    finally:
        unexpected(mark)
    assert len(groups) == 1
    with pytest.raises(RuntimeError) as refused:
        log.record([read_by(anna, n=8)])
    assert str(refused.value.__cause__) == "the access log is closed"


def test_every_request_stops_being_expected_when_it_ends(runtime: Runtime) -> None:
    """Reads, searches and what else a caller sends to /fhir, answered or refused: none
    stays counted once its answer is out."""
    anna = new_inwoner(runtime)
    mine = {"x-test-access": f"patient:{anna}"}
    full = {"x-test-access": "full"}
    with ServerThread(create_app(runtime.settings, access_resolver=access_of, runtime=runtime)):
        pass  # a server that starts and stops with nothing served leaves nothing behind
    assert expected() == 0
    app = create_app(runtime.settings, access_resolver=access_of, runtime=runtime)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        made = http.post("/fhir/Goal", json=goal(patient_id=anna), headers=full)
        assert made.status_code == 201
        goal_id = made.json()["id"]
        answers = [
            http.get(f"/fhir/Goal/{goal_id}", headers=mine),  # plain read
            http.get("/fhir/Goal/no-such-goal", headers=mine),  # 404
            http.get("/fhir/Goal/%20bad%20id", headers=mine),  # not an id
            http.get(f"/fhir/Goal/{goal_id}"),  # no access: 401
            http.get("/fhir/Goal", params={"patient": anna}, headers=mine),  # search
            http.get("/fhir/Goal", params={"no-such-param": "x"}, headers=mine),  # 400
            http.post("/fhir/Goal/_search", data={"patient": anna}, headers=mine),
            http.get(f"/fhir/Goal/{goal_id}/_history", headers=mine),
            http.get("/fhir/metadata"),
            http.get("/fhir/NoSuchType/1", headers=mine),
            http.get("/healthz"),
        ]
        statuses = [answer.status_code for answer in answers]
        assert statuses[:4] == [200, 404, 404, 401], statuses
        assert statuses[4] == 200 and statuses[5] == 400, statuses
        assert statuses[6] == 200 and statuses[8] == 200, statuses
        assert all(status < 500 for status in statuses), statuses
        assert expected() == 0


@pytest.mark.parametrize(
    ("method", "path", "counted"),
    [
        ("GET", "/fhir/Goal", True),  # a search
        ("POST", "/fhir/Goal/_search", True),
        ("GET", "/fhir/Goal/g-1/_history", False),  # may run long: not waited for
        ("GET", "/fhir/Patient/p-1/$everything", False),
        ("GET", "/fhir/$export-status/job-1", False),  # polls for seconds, hands nothing over
        ("GET", "/fhir/metadata", False),
        ("POST", "/fhir/Goal", False),  # a write logs in its own transaction
        ("GET", "/plan", False),  # the inwoner's page
    ],
)
def test_the_writer_waits_for_searches_and_not_for_what_runs_long_or_logs_alone(
    method: str, path: str, counted: bool
) -> None:
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "query_string": b""}
    assert _is_search(scope) is counted
