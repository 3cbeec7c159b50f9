"""Identifiers: time-ordered UUIDs (version 7)."""

import uuid

import uuid6


def new_id() -> uuid.UUID:
    """A new UUIDv7; monotonic within this process."""
    return uuid.UUID(bytes=uuid6.uuid7().bytes)
