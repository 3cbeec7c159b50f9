"""Durable delivery: the outbox rows, the dispatcher, retries and dead letters."""
