"""OAuth 2 / SMART on FHIR authorization server (built in the OAuth issue)."""

__all__: list[str] = []
