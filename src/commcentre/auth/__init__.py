"""API clients: hashed keys, scopes and the current-client dependency."""
