"""Scopes an API client can hold (API.md)."""

from enum import StrEnum


class Scope(StrEnum):
    MESSAGES_WRITE = "messages:write"
    MESSAGES_READ = "messages:read"
    REQUESTS_MANAGE = "requests:manage"
    PARTNERS_MANAGE = "partners:manage"
    AUDIT_READ = "audit:read"
    # Prometheus scrapes in prod (GET /metrics is open in dev only).
    METRICS_READ = "metrics:read"
    ADMIN = "admin"
