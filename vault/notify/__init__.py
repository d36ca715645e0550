"""Change notifications: Subscriptions, the outbox written with every change, delivery."""

__all__: list[str] = []
