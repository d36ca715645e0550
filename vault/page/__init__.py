"""page layer (docs/architecture.md)."""
