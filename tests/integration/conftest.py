"""Fixtures for the tests of this folder."""

from tests.integration.http_support import start_server
from tests.integration.prod_support import prod

__all__ = ["prod", "start_server"]
