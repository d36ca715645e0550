"""Regiekluis: a consent-driven personal data vault for the Dutch social domain."""

__all__ = ["__version__"]

__version__ = "0.1.0"
