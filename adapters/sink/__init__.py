"""Adapter 1: keeps a partner's SQL database in step with what the inwoner granted."""

from adapters.sink.adapter import SinkAdapter, metadata, records, watermarks

__all__ = ["SinkAdapter", "metadata", "records", "watermarks"]
