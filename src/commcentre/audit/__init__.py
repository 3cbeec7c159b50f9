"""Append-only, hash-chained audit log (Law Enforcement Directive 2016/680 Art. 25)."""
