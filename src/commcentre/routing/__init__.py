"""Routing: which partners must receive a message."""
