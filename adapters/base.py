"""The base class of an adapter: how a partner's own system meets the vault.

An adapter maps what the vault shares (FHIR R4 resources, as ``fhir.resources.R4B`` models)
onto the partner's records — ``upsert`` and ``remove`` — and keeps the sync's watermarks in
the partner's own storage, next to the records they describe, so a crash between the two
can never make a sync skip a change. ``Synchroniser`` (``adapters/sdk/sync.py``) drives it;
``vault-adapter sync --config FILE`` runs any adapter a config file names.

An adapter that also writes back (a partner the inwoner allowed to ``correct``) implements
``to_fhir``: the partner's record as the FHIR resource to PUT.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ClassVar

__all__ = ["Adapter", "patient_of"]


def patient_of(resource: Any) -> str | None:
    """The id of the inwoner a resource belongs to (its Patient compartment), if any."""
    if getattr(resource, "resource_type", None) == "Patient" or (
        getattr(resource, "get_resource_type", None) and resource.get_resource_type() == "Patient"
    ):
        return str(resource.id)
    for element in ("subject", "patient"):
        reference = getattr(getattr(resource, element, None), "reference", None)
        if isinstance(reference, str) and reference.startswith("Patient/"):
            return reference.removeprefix("Patient/")
    return None


class Adapter(abc.ABC):
    """Subclass this, implement the five abstract methods, name it in a config file.

    ``settings`` is the ``[adapter.settings]`` table of the config, as given.
    """

    name: ClassVar[str] = "adapter"

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)

    # -- storage ---------------------------------------------------------------------------

    def transaction(self) -> AbstractContextManager[Any]:
        """One unit of work (one type for one inwoner); the default does nothing."""
        return _nothing()

    @abc.abstractmethod
    def get_watermark(self, key: str) -> str | None:
        """The stored watermark for ``key`` (``"Goal|<patient>"``), or None."""

    @abc.abstractmethod
    def set_watermark(self, key: str, value: str) -> None:
        """Store the watermark for ``key``, in the same transaction as the records."""

    @abc.abstractmethod
    def known(self, resource_type: str, patient_id: str | None) -> Mapping[str, str]:
        """Ids of ``resource_type`` this adapter holds (for ``patient_id``; None: all),
        each with the FHIR ``versionId`` it holds."""

    # -- mapping ---------------------------------------------------------------------------

    @abc.abstractmethod
    def upsert(self, resource: Any) -> None:
        """Insert or update the partner's record of ``resource`` (an R4B model)."""

    @abc.abstractmethod
    def remove(self, reference: str) -> None:
        """Delete the partner's record of ``reference`` (``"Goal/<id>"``): no longer granted."""

    def to_fhir(self, record: Any) -> dict[str, Any]:
        """The partner's record as FHIR JSON, for adapters that write back."""
        raise NotImplementedError(f"{type(self).__name__} does not write back to the vault")

    def close(self) -> None:  # noqa: B027 - optional hook: most adapters hold nothing
        """Release connections; called once after the sync."""


@contextmanager
def _nothing() -> Iterator[None]:
    yield
