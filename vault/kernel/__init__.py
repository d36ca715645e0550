"""kernel layer (docs/architecture.md)."""
