"""The samenwerkplan import adapter: a plan written at the kitchen table (Markdown with the
headings *Wat wil ik*, *Wat kan ik*, *Wat heb ik nodig*, *Afspraken*, *Wie doen er mee*)
into the inwoner's vault as Goal, CareTeam and CarePlan, on the inwoner's own authority.

Format and walk-through: ``docs/samenwerkplan.md``. Command: ``vault-adapter import-plan``.
"""

from adapters.samenwerkplan.importer import (
    IDENTIFIER_SYSTEM,
    IMPORT_SCOPES,
    ImportResult,
    PlanImporter,
    goal_priority,
)
from adapters.samenwerkplan.plan import (
    Activity,
    Participant,
    Plan,
    PlanError,
    Wish,
    parse_plan,
    read_plan,
)

__all__ = [
    "IDENTIFIER_SYSTEM",
    "IMPORT_SCOPES",
    "Activity",
    "ImportResult",
    "Participant",
    "Plan",
    "PlanError",
    "PlanImporter",
    "Wish",
    "goal_priority",
    "parse_plan",
    "read_plan",
]
