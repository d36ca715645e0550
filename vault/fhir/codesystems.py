"""The vault's own CodeSystems: the life domains a goal and a score belong to.

One definition for the demo, the consent page and (later) the served CodeSystem resource.
"""

from __future__ import annotations

__all__ = ["LEVENSDOMEIN", "LEVENSDOMEINEN"]

LEVENSDOMEIN = "https://regiekluis.nl/fhir/CodeSystem/levensdomein"

# code -> display, in the order the page shows them
LEVENSDOMEINEN = {
    "financien": "Financiën",
    "wonen": "Wonen",
    "relaties": "Relaties",
    "dagbesteding": "Dagbesteding",
    "gezondheid": "Gezondheid",
    "opvoeding": "Opvoeding",
}
