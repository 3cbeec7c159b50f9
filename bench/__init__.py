"""Benchmarks (scripts, not tests); `bench.apps` holds the app factories they serve."""
