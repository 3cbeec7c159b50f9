"""Prometheus metrics: what this process counted, and what the store holds at scrape time."""

from commcentre.metrics.collectors import Metrics

__all__ = ["Metrics"]
