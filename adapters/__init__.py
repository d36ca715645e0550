"""Adapters: the SDK partner systems use to pull what an inwoner granted, and the base class
an adapter implements (``adapters.base.Adapter``)."""

from adapters.base import Adapter, patient_of

__all__ = ["Adapter", "patient_of"]
