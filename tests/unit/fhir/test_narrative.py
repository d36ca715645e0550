"""Narrative XHTML checks of vault/fhir/narrative.py, case by case (FHIR R4 txt-1, txt-2)."""

from __future__ import annotations

import pytest

from vault.fhir.narrative import check_narratives, narrative_problem
from vault.kernel.errors import Unprocessable

NS = 'xmlns="http://www.w3.org/1999/xhtml"'


@pytest.mark.parametrize(
    "div",
    [
        f'<div {NS}><a href="&#106;avascript:alert(1)">x</a></div>',
        f'<div {NS}><a href="JAVASCRIPT:alert(1)">x</a></div>',
        f'<div {NS}><a href=" javascript:alert(1)">x</a></div>',
        f'<div {NS}><a href="vbscript:x">x</a></div>',
        f'<div {NS}><a href="//evil.example/x">x</a></div>',
        f'<div {NS}><img src="//evil.example/x.png"/></div>',
        f'<div {NS}><img src="data:image/svg+xml;base64,PHN2Zz4="/></div>',
        f'<div {NS}><p style="width: expression(alert(1))">x</p></div>',
        f'<div {NS}><p style="background: u\\72l(x)">x</p></div>',
        f'<div {NS}><p style="@import x">x</p></div>',
        f'<div {NS}><base href="https://evil.example/"/><p>x</p></div>',
        f'<div {NS}><link rel="stylesheet" href="https://evil.example/x.css"/><p>x</p></div>',
        f'<div {NS}><object data="x"/><p>x</p></div>',
        f'<div {NS}><p xmlns:x="http://www.w3.org/1999/xlink" x:href="x">x</p></div>',
        f"<div {NS}><?php echo 1; ?><p>x</p></div>",
        f"<div {NS}><body><p>x</p></body></div>",
        "",
        "x" * 10,
    ],
)
def test_unsafe_narrative_is_named(div: str) -> None:
    assert narrative_problem(div) is not None


@pytest.mark.parametrize(
    "div",
    [
        f"<div {NS}>Alleen tekst</div>",
        f'<div {NS}><p style="color: rgb(0, 0, 0); font-weight: bold">x</p></div>',
        f'<div {NS}><a href="tel:+31201234567">bel</a><a name="top">top</a></div>',
        f'<div {NS}><img src="#plaatje"/></div>',
        f'<div {NS}><table><thead><tr><th scope="col">A</th></tr></thead></table></div>',
    ],
)
def test_narrative_as_fhir_allows_it_passes(div: str) -> None:
    assert narrative_problem(div) is None


def test_every_narrative_of_a_resource_is_checked() -> None:
    bad = {"status": "generated", "div": f"<div {NS}><script>1</script>x</div>"}
    with pytest.raises(Unprocessable) as raised:
        check_narratives("Goal", {"resourceType": "Goal", "contained": [{}, {"text": bad}]})
    assert raised.value.expression == ["Goal.contained[1].text.div"]
    with pytest.raises(Unprocessable):
        check_narratives("Goal", {"resourceType": "Goal", "text": {"div": 5}})
