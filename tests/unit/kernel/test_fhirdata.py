"""The type names the lower layers use agree with the FHIR registry of ``vault/fhir``."""

from vault.fhir.resources import RESOURCE_TYPES, SUBSCRIPTION
from vault.kernel.fhirdata import SCOPE_TYPES, SHARED_TYPES, STORED_TYPES


def test_stored_types_are_the_registry() -> None:
    assert tuple(RESOURCE_TYPES) == STORED_TYPES


def test_shared_types_are_the_types_outside_every_compartment() -> None:
    assert {n for n, spec in RESOURCE_TYPES.items() if spec.compartment is None} == SHARED_TYPES


def test_scope_types_add_subscription_and_the_reporting_types() -> None:
    assert (*RESOURCE_TYPES, SUBSCRIPTION.name, "Measure", "MeasureReport") == SCOPE_TYPES
