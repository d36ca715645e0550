"""The vault's levensdomein CodeSystem, as the SDK writes it into Goals.

The SDK speaks HTTP only and imports nothing of the vault; these are the published codes
(docs/samenwerkplan.md names the same system), and
``tests/unit/adapters/test_samenwerkplan_codes.py`` checks they agree with the vault's.
"""

from __future__ import annotations

__all__ = ["LEVENSDOMEIN", "LEVENSDOMEINEN"]

LEVENSDOMEIN = "https://regiekluis.nl/fhir/CodeSystem/levensdomein"

# code -> display, in the order the consent page shows them
LEVENSDOMEINEN = {
    "financien": "Financiën",
    "wonen": "Wonen",
    "relaties": "Relaties",
    "dagbesteding": "Dagbesteding",
    "gezondheid": "Gezondheid",
    "opvoeding": "Opvoeding",
}
