"""audit layer (docs/architecture.md)."""
