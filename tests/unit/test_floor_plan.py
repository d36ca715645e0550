"""The size rule of the floor plan (docs/architecture.md, issue 15): no module of the vault
over 500 lines and no function over 60 without its reason written at its top ("Over 500
lines: ..." in the module's docstring, "Long on purpose: ..." in the function's first
lines). The import arrows are held by import-linter in ``make lint``."""

from __future__ import annotations

import ast
from pathlib import Path

VAULT = Path(__file__).resolve().parents[2] / "vault"
MODULE_LINES = 500
FUNCTION_LINES = 60
REASON_WITHIN = 25  # lines from a function's ``def`` to its "Long on purpose"


def _sources() -> list[Path]:
    return sorted(VAULT.rglob("*.py"))


def test_every_long_module_says_why() -> None:
    silent = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MODULE_LINES:
            docstring = ast.get_docstring(ast.parse(text)) or ""
            if "Over 500 lines" not in docstring:
                silent.append(f"{path.relative_to(VAULT.parent)} ({text.count(chr(10))} lines)")
    assert silent == []


def test_every_long_function_says_why() -> None:
    silent = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            top = "\n".join(lines[node.lineno - 1 : node.lineno - 1 + REASON_WITHIN])
            if length > FUNCTION_LINES and "Long on purpose" not in top:
                silent.append(f"{path.relative_to(VAULT.parent)}:{node.lineno} {node.name}")
    assert silent == []


def test_the_rule_sees_the_whole_vault() -> None:
    # A rule over no files passes by itself: it must see the layers it guards.
    names = {p.relative_to(VAULT).parts[0] for p in _sources()}
    assert {"kernel", "store", "consent", "audit", "fhir", "oauth", "page", "app"} <= names
