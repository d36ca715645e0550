"""The FHIR R4 store and REST API."""

__all__: list[str] = []
