"""Partner adapters: core code depends on `adapters.base` only."""
