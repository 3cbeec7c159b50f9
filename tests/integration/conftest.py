"""Fixtures for the tests of this folder."""

from tests.integration.http_support import start_server

__all__ = ["start_server"]
