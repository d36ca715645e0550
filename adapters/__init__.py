"""Adapters: the SDK partner systems use to pull what an inwoner granted."""

__all__: list[str] = []
