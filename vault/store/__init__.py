"""store layer (docs/architecture.md)."""
