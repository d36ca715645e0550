"""Serve a vault with the tests' access resolver, as a real process on 127.0.0.1.

    python -m tests.support.serve_for_tests --data-dir DIR --port PORT

Until the OAuth issue plugs real tokens in, ``vault serve`` answers 401 to every FHIR
request; tests that need a server process they can write to (and kill) start this one.
It reads the caller's access from the ``X-Test-Access`` header (``tests.conftest``) and,
like ``vault serve``, takes ``VAULT_DATABASE_URL`` from the environment. The data folder
must have been initialised (``vault init``, or ``tests.conftest.initialise``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from tests.conftest import test_access
from vault.app.main import create_app
from vault.kernel.config import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = create_app(Settings.from_env(args.data_dir), access_resolver=test_access)
    # Tests only: never listen beyond the loopback interface.
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
