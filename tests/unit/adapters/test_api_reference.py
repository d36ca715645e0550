"""The SDK's API reference (``make docs``) builds from the docstrings without a warning."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import REPO_ROOT


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_docs_builds_the_api_reference_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "api"
    # STAMP= : use the installed environment as it is; never reinstall from a test.
    done = subprocess.run(
        ["make", "-s", "docs", f"API_OUT={out}", "STAMP="],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
    sdk = (out / "adapters" / "sdk.html").read_text()
    for name in ("VaultClient", "AppLaunchAuth", "Synchroniser", "AccessRevoked"):
        assert f'id="{name}"' in sdk, name
    assert (out / "adapters" / "samenwerkplan.html").exists()
