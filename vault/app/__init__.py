"""app layer (docs/architecture.md)."""
