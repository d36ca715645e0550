"""The guides run as written: every command block of docs/ that an integrator or adapter
developer runs against a vault is executed here, in order, in a new folder, the way a reader
would (one shell, so variables carry over from block to block).

- ``sh`` blocks run in one bash session with ``set -eo pipefail``: a failing command fails
  the test. Set-up lines (creating a virtualenv, ``pip install``, ``export PATH``) are the
  only ones left out; ``partner-venv/bin/python`` is this suite's interpreter.
- ``vault serve`` starts the vault in the background, on a free port that replaces the
  guide's port everywhere in the guide.
- A ``python`` or ``toml`` block whose first line names a file (``# read_plan.py: ...``) is
  saved under that name, as the reader would save it.
- A ``text`` block right after a command block lists lines the command must print; a
  ``json`` block there must have the same members, and the same values where they do not
  change from run to run (tokens and keys do).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO_ROOT, ServerProcess, fresh_database, vault_env
from tests.support.docs import DOCS, Block, blocks

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
_SET_UP = re.compile(r"^\s*(python3 -m venv|\S*pip install|export PATH=|make\b)")
_SERVE = re.compile(r"^((?:[A-Z_]+=\S+ )*)vault serve [^#]*--port (\d+)")
# Commands the guide says to leave running in a terminal of their own.
_BACKGROUND = re.compile(r"^vault-adapter listen\b")
# JSON members whose values differ on every run: only their presence is compared.
_VOLATILE = {"access_token", "kid", "x", "y", "link", "keys"}


class Shell:
    """One bash session in ``folder``: the reader's terminal."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=folder,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._send("set -eo pipefail\n")
        self.count = 0

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def run(self, script: str, *, where: str, timeout: float = 300) -> str:
        """Run ``script`` (a saved file, sourced with no stdin); what it printed."""
        self.count += 1
        path = self.folder / f".block-{self.count}.sh"
        path.write_text(script, encoding="utf-8")
        marker = f"--end-{uuid.uuid4().hex}--"
        self._send(f"source {path.name} < /dev/null\nprintf '\\n%s\\n' '{marker}'\n")
        output: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"{where} did not finish:\n{''.join(output)}")
            if line is None:
                pytest.fail(f"{where} failed:\n{script}\n---\n{''.join(output)}")
            if line.rstrip("\n") == marker:
                text = "".join(output)
                return text[:-1] if text.endswith("\n") else text
            output.append(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


def _same_json(expected: Any, actual: Any, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r}"
        assert set(actual) == set(expected), f"{where}: members {sorted(actual)}"
        for key, value in expected.items():
            if key not in _VOLATILE:
                _same_json(value, actual[key], f"{where}.{key}")
    elif not isinstance(expected, list):
        assert actual == expected, f"{where}: {actual!r} is not {expected!r}"


def check_output(expected: Block, output: str, where: str) -> None:
    if expected.lang == "json":
        _same_json(json.loads(expected.text), json.loads(output), where)
        return
    printed = output.splitlines()
    missing = [line for line in expected.text.splitlines() if line and not _shown(line, printed)]
    assert not missing, f"{where}: the guide shows {missing}, the command printed:\n{output}"


def _shown(line: str, printed: list[str]) -> bool:
    """A shown line is printed; "…" stands for what differs from run to run (an id, a URL's
    query), and a shown line may leave out a varying tail ("1 passed" of "1 passed in 2.3s")."""
    pattern = ".*".join(re.escape(part) for part in line.split("…"))
    return any(re.fullmatch(pattern + r"( .*)?", p) for p in printed)


Hook = Callable[[Path, str], str]


def run_guide(
    name: str,
    folder: Path,
    *,
    database_url: str,
    fill: Hook | None = None,
) -> list[str]:
    """Run the guide ``docs/name`` in ``folder``; returns which blocks ran, for the test."""
    doc = DOCS / name
    parsed = blocks(doc)
    login_file = folder / ".login.json"
    env = vault_env(
        database_url,
        PATH=f"{BIN}:{os.environ['PATH']}",
        HOME=str(folder),  # a token file under ~ stays in this folder
        # A page the guide's command opens is logged in to by Chromium, as a reader would.
        BROWSER=f"{sys.executable} -m tests.support.chromium_login %s",
        PYTHONPATH=str(REPO_ROOT),
        DOC_LOGIN_FILE=str(login_file),
    )
    env.pop("VAULT_DATA_DIR", None)
    # The example files a guide points at, as the reader downloads them.
    for example in (DOCS / "examples").iterdir():
        shutil.copy(example, folder / example.name)
    partner_bin = folder / "partner-venv" / "bin"
    partner_bin.mkdir(parents=True)
    (partner_bin / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (partner_bin / "python").chmod(0o755)
    shell = Shell(folder, env)
    servers: list[ServerProcess] = []
    running: list[Background] = []
    ran: list[str] = []
    port_map: dict[str, str] = {}
    try:
        previous: Block | None = None
        output = ""

        def ported(text: str) -> str:
            for old, new in port_map.items():
                text = text.replace(f":{old}", f":{new}")
            return text

        for block in parsed:
            where = f"{name}:{block.line}"
            if block.lang == "sh":
                chunk: list[str] = []
                for line in [*block.text.splitlines(), None]:
                    serve = _SERVE.match(line) if line is not None else None
                    if line is not None and not serve:
                        if _SET_UP.match(line):
                            continue
                        if _BACKGROUND.match(line):
                            running.append(Background(ported(line), folder, env, where))
                            continue
                        chunk.append(line)
                        continue
                    script = "\n".join(chunk).strip()
                    chunk = []
                    if script:  # what comes before the server starts, or the end
                        output = shell.run(ported(script) + "\n", where=where)
                        ran.append(where)
                        demo = re.search(r"^\s+sanne\s+(\S+)$", output, re.M)
                        if demo:  # `vault demo` printed the demo inwoners' passwords
                            login = {"username": "sanne", "password": demo.group(1)}
                            login_file.write_text(json.dumps(login), encoding="utf-8")
                    if serve:
                        servers.append(_serve(serve, folder, env))
                        port_map[serve.group(2)] = str(servers[-1].port)
            elif block.file_name is not None:
                text = ported(block.text)
                (folder / block.file_name).write_text(
                    fill(folder, text) if fill else text, encoding="utf-8"
                )
            elif block.lang in ("text", "json") and previous is not None and previous.lang == "sh":
                # What a command left running printed counts too; it may still be on its way.
                deadline = time.monotonic() + 60
                while True:
                    printed = "\n".join([output, *(b.output() for b in running)])
                    try:
                        check_output(replace(block, text=ported(block.text)), printed, where)
                        break
                    except AssertionError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
                ran.append(f"{where} (output)")
            previous = block
    finally:
        shell.close()
        for command in running:
            command.stop()
        for server in servers:
            server.stop()
    return ran


class Background:
    """A command the guide leaves running (``vault-adapter listen``): started, then read."""

    def __init__(self, line: str, folder: Path, env: dict[str, str], where: str) -> None:
        self.where = where
        self.process = subprocess.Popen(
            ["bash", "-c", line.split("#", 1)[0]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=folder,
            env=env,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 60
        while not any("listening on" in x for x in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.reader.join(timeout=5)
                pytest.fail(f"{where} did not start:\n{self.output()}")
            time.sleep(0.05)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> None:
        """Ctrl-C, as the guide says; it must end cleanly (it unsubscribes on the way)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        assert self.process.returncode == 0, f"{self.where}:\n{self.output()}"


def _serve(found: re.Match[str], folder: Path, env: dict[str, str]) -> ServerProcess:
    """``vault serve`` as the guide writes it, on a free port instead of the guide's."""
    env = env | dict(pair.split("=", 1) for pair in found.group(1).split())
    words = found.string.split("#", 1)[0].split()[found.group(1).count("=") :]
    at = words.index("--port")
    data = words.index("--data-dir")
    words[data + 1] = str(folder / words[data + 1])  # ServerProcess runs in the checkout
    server = ServerProcess(
        lambda port: [str(BIN / "vault"), *words[1:at], "--port", str(port), *words[at + 2 :]],
        env=env,
        log_path=folder / "serve.log",
        start_timeout=90,  # CI machines with two busy cores start it slowly
    )
    return server.start()


@pytest.fixture
def guide_database(tmp_path: Path) -> Iterator[str]:
    with fresh_database(tmp_path) as url:
        yield url


def test_connect_your_system_runs_as_written(tmp_path: Path, guide_database: str) -> None:
    folder = tmp_path / "guide"
    folder.mkdir()
    ran = run_guide("connect-your-system.md", folder, database_url=guide_database)
    # Every command and every output shown was checked (set-up blocks aside).
    assert len([r for r in ran if "output" not in r]) >= 14, ran
    assert len([r for r in ran if "output" in r]) >= 8, ran


def _client_id(folder: Path, text: str) -> str:
    # The guide says to copy the value of the file client_id into the config.
    if 'client_id = "…"' not in text:
        return text
    client_id = (folder / "client_id").read_text(encoding="utf-8").strip()
    return text.replace('client_id = "…"', f'client_id = "{client_id}"')


def test_write_an_adapter_runs_as_written(tmp_path: Path, guide_database: str) -> None:
    folder = tmp_path / "guide"
    folder.mkdir()
    ran = run_guide("adapters.md", folder, database_url=guide_database, fill=_client_id)
    assert len([r for r in ran if "output" not in r]) >= 10, ran
    assert len([r for r in ran if "output" in r]) >= 7, ran


def test_the_runner_notices_output_that_drifted_from_the_guide() -> None:
    shown = Block("text", "upserted 5, removed 0\n1 passed\n", 1)
    check_output(shown, "upserted 5, removed 0\n1 passed in 2.10s", "same")
    with pytest.raises(AssertionError):
        check_output(shown, "upserted 4, removed 0\n1 passed", "drifted")
    token = Block("json", '{"token_type": "Bearer", "access_token": "a", "expires_in": 300}', 1)
    check_output(token, '{"token_type": "Bearer", "access_token": "b", "expires_in": 300}', "ok")
    with pytest.raises(AssertionError):
        check_output(token, '{"token_type": "Bearer", "access_token": "b"}', "member gone")
    with pytest.raises(AssertionError):
        check_output(token, '{"token_type": "DPoP", "access_token": "b", "expires_in": 300}', "x")


def test_import_a_samenwerkplan_runs_as_written(tmp_path: Path, guide_database: str) -> None:
    folder = tmp_path / "guide"
    folder.mkdir()
    ran = run_guide("samenwerkplan.md", folder, database_url=guide_database)
    assert len([r for r in ran if "output" not in r]) >= 6, ran
    assert len([r for r in ran if "output" in r]) >= 5, ran


RUN_GUIDES = {"connect-your-system.md", "adapters.md", "samenwerkplan.md"}
# Benchmarks for the maintainers, not commands an integrator runs against a vault.
NOT_FOR_INTEGRATORS = {"performance.md"}
_VAULT_COMMAND = re.compile(r"^\s*(\S+=\S+ )*(curl|vault|vault-adapter|python|\S*/python)\b", re.M)


def test_every_guide_with_commands_against_a_vault_is_run_here() -> None:
    # A new guide, or a command block added to one that is not run, fails here first.
    with_commands = {
        doc.name
        for doc in DOCS.glob("*.md")
        if any(b.lang == "sh" and _VAULT_COMMAND.search(b.text) for b in blocks(doc))
    }
    assert with_commands - NOT_FOR_INTEGRATORS == RUN_GUIDES
