"""Every type of the registry has the R4B model that validates it."""

from vault.fhir.resources import _MODELS
from vault.store.registry import RESOURCE_TYPES, SUBSCRIPTION


def test_every_registered_type_has_its_model() -> None:
    assert set(_MODELS) == {*RESOURCE_TYPES, SUBSCRIPTION.name}
    assert all(model.__name__ == name for name, model in _MODELS.items())
