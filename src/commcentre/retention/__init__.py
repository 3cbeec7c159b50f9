"""Retention: messages past `purge_after` are crypto-shredded, then removed."""
