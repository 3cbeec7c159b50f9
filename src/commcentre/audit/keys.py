"""How the audit keys reach the code that appends to or verifies the chain.

The keys (keyring, never the database) travel in the session: a Database built
with `session_info=audit_session_info(keyring)` puts them into every session's
`info`, so the many services that append need no extra parameter. A session
without them cannot append or verify (`AuditKeysMissingError`).
"""

from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.crypto import AuditKeyProvider
from commcentre.db import WriteSession

_KEYS_INFO = "commcentre.audit.keys"


class AuditKeysMissingError(RuntimeError):
    """The session carries no audit keys: its Database was built without them."""


def audit_session_info(keys: AuditKeyProvider) -> dict[str, object]:
    """The `session_info` of a Database whose sessions append to or verify the chain."""
    return {_KEYS_INFO: keys}


def session_audit_keys(session: WriteSession | AsyncSession) -> AuditKeyProvider:
    """The audit keys the session carries; AuditKeysMissingError when it has none."""
    keys = session.info.get(_KEYS_INFO)
    if keys is None:
        raise AuditKeysMissingError(
            "this database handle has no audit keys (build it with audit_session_info)"
        )
    return cast(AuditKeyProvider, keys)
