"""Helpers for tests that run the vault as real processes.

A fresh database per test (a SQLite file, or a new PostgreSQL database when the suite runs
with ``VAULT_DATABASE_URL``), the installed ``vault`` command, and server processes that
are always stopped, however the test ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import httpx
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from vault.consent.access import AccessContext, Permissions
from vault.kernel.db import Database
from vault.kernel.runtime import Runtime
from vault.notify.models import NotifyDelivery
from vault.notify.worker import Notifier
from vault.store.outbox import NotifyEvent

__all__ = [
    "PG_URL",
    "REPO_ROOT",
    "ServerProcess",
    "free_port",
    "fresh_database",
    "inwoner_context",
    "run_vault",
    "sqlite_database",
    "vault",
    "vault_command",
    "vault_env",
]

REPO_ROOT = Path(__file__).resolve().parents[2]


def inwoner_context(patient_id: str) -> AccessContext:
    """The inwoner herself (kind ``patient``): her own compartment, every interaction."""
    return AccessContext(
        subject=f"inwoner:{patient_id}",
        kind="patient",
        patient_id=patient_id,
        organization=None,
        client_id=None,
        account_id=None,
        permissions=Permissions.everything(),
        purposes=frozenset(),
        practitioner=None,
        representative=None,
    )


def organization_context(organization: str) -> AccessContext:
    """A partner organisation (kind ``system``) whose scopes allow everything: what it sees
    is what the inwoners' Consents grant it, the one access decision alone."""
    return AccessContext(
        subject=f"client:{organization}",
        kind="system",
        patient_id=None,
        organization=organization,
        client_id=None,
        account_id=None,
        permissions=Permissions.everything(),
        purposes=frozenset(),
        practitioner=None,
        representative=None,
    )


def settle_notifications(notifier: Notifier, runtime: Runtime, *, timeout: float = 30.0) -> None:
    """Run ``notifier`` until every change is fanned out and every delivery made.

    The in-process app runs a notifier of its own (``app/main.py``), and on PostgreSQL the
    two take turns under an advisory lock: a round of this one may do nothing while the
    other delivers. So it waits for the outbox to be empty, not for one idle round."""
    deadline = time.monotonic() + timeout
    while True:
        if notifier.run_once():
            continue
        with runtime.db.read() as conn:
            busy = (
                conn.execute(select(NotifyEvent.id).limit(1)).first()
                or conn.execute(select(NotifyDelivery.id).limit(1)).first()
            )
        if not busy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"notifications still pending after {timeout} s")
        time.sleep(0.05)


PG_URL = os.environ.get("VAULT_DATABASE_URL", "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def fresh_database(directory: Path, *, template: str | None = None) -> Iterator[str]:
    """The URL of a new, empty database that is dropped afterwards.

    SQLite: ``vault.kernel.db`` in ``directory`` (where ``vault`` itself would put it).
    PostgreSQL: a new database on the server ``VAULT_DATABASE_URL`` names, a copy of the
    database ``template`` when one is named (no one may be connected to it).
    """
    if not PG_URL.startswith("postgresql"):
        yield f"sqlite:///{directory / 'vault.db'}"
        return
    name = f"rk_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            copy = f' TEMPLATE "{template}"' if template else ""
            conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        try:
            yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def sqlite_database(path: Path, *statements: str) -> Iterator[Database]:
    """A bare SQLite :class:`Database` at ``path``, ``statements`` run in one write first
    (a table of the test's own, no vault schema); disposed afterwards."""
    db = Database(f"sqlite:///{path}")
    with db.write() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    try:
        yield db
    finally:
        db.dispose()


def vault_env(database_url: str, **extra: str) -> dict[str, str]:
    """This process's environment for a child, pointed at ``database_url``."""
    env = dict(os.environ)
    env.pop("VAULT_MASTER_KEY", None)
    env.pop("VAULT_DATA_DIR", None)
    env["VAULT_DATABASE_URL"] = database_url
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def vault_command() -> list[str]:
    """The installed ``vault`` console script of the interpreter running the tests."""
    script = Path(sys.executable).with_name("vault")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from vault.app.cli import app; app(prog_name='vault')"]


def run_vault(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*vault_command(), *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def vault(*args: str, env: dict[str, str], ok: bool = True) -> tuple[str, str]:
    """Run ``vault ARGS``; it must succeed (``ok``) or fail cleanly, never with a traceback."""
    result = run_vault(*args, env=env)
    if ok:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0, result.stdout
        assert "Traceback" not in result.stderr
    return result.stdout, result.stderr


class ServerProcess:
    """A vault server in its own process on 127.0.0.1, ready once ``/healthz`` answers.

    ``command`` gets the port to listen on. If another process took the free port first,
    the start is retried on a new one.
    """

    def __init__(
        self,
        command: Callable[[int], list[str]],
        *,
        env: dict[str, str],
        log_path: Path,
        start_timeout: float = 30,
    ) -> None:
        self._command = command
        self._env = env
        self._log_path = log_path
        self._start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> ServerProcess:
        for _attempt in range(3):
            self.port = free_port()
            with self._log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    self._command(self.port),
                    env=self._env,
                    cwd=REPO_ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                ready = self._wait_ready()
            except BaseException:
                self.stop()
                raise
            if ready:
                return self
            self.stop()
            if "address already in use" not in self.log().lower():
                break
        raise RuntimeError(f"the vault process did not start:\n{self.log()[-4000:]}")

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        return False

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 15) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no flush, no goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=15)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it does not go."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()
