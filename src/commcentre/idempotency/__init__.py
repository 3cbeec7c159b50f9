"""Idempotency-Key handling (IETF httpapi draft): stored responses per client and key."""
