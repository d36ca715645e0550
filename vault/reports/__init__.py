"""Outcome reports for the gemeente, without personal data (issue 14, section 1).

``codes`` (purpose, phases, rating), ``figures`` and ``suppress`` (pure), ``collect``
(counting through the access decision, freezing), ``measure`` and ``router`` (FHIR),
``html`` (the page and CSV of ``vault report``).
"""

from __future__ import annotations

__all__: list[str] = []
