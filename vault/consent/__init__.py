"""The consent engine and the consent page (built in the consent issues)."""

__all__: list[str] = []
