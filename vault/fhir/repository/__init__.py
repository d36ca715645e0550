"""The FHIR store: versioned, encrypted resources, read and written under an AccessContext.

Every interaction of the FHIR REST API (https://hl7.org/fhir/R4/http.html) lands here. The
repository is constructed with the caller's ``AccessContext`` and applies the one access
decision (``consent/decision.py``) inside each SQL statement, so a page, its total, its
includes and its history only ever contain rows the caller may see; nothing is fetched
first and filtered afterwards.

One class per job, each in its own module and each extending the one before:
``base.py`` (the caller, the scope check, the access log), ``reads.py``, ``search.py``,
``history.py`` and ``writes.py``.
"""

from __future__ import annotations

from vault.fhir.repository.history import HistoryPage
from vault.fhir.repository.search import SearchPage
from vault.fhir.repository.writes import Writes
from vault.store.writes import Stored

__all__ = ["HistoryPage", "Repository", "SearchPage", "Stored"]


class Repository(Writes):
    """Reads, searches, history and writes of one caller, under its ``AccessContext``."""
