"""Does an inbound message (or a request event) match a subscription's filter? Pure
functions, no I/O.

A filter is stored as JSON: `{"subject_kinds": [...], "channels": [...],
"partners": [...], "priorities": [...], "types": [...], "events": [...]}`
plus the case_ref's blind-index digest in its own column. For a message an
empty (or missing) list matches anything; every criterion given must match.
A request event is wanted only when `events` names it, and only the case
digest applies to it (against the request reference's digest).
"""

from collections.abc import Mapping, Sequence
from typing import Any

from commcentre.messages.kinds import KIND_BITS


def _listed(criteria: Mapping[str, Any], name: str) -> Sequence[Any]:
    value = criteria.get(name)
    return value if isinstance(value, list) else []


def kinds_mask(kinds: Sequence[str]) -> int:
    """The bit set of subject kinds (as messages.subject_kinds stores it); unknown kinds: 0."""
    mask = 0
    for kind in kinds:
        mask |= KIND_BITS.get(kind, 0)
    return mask


def matches(
    criteria: Mapping[str, Any],
    case_digest: bytes | None,
    message: Mapping[str, Any],
    *,
    event: str,
) -> bool:
    """True when `message` (a messages row as a mapping) passes the filter for `event`."""
    events = _listed(criteria, "events")
    if events and event not in events:
        return False
    if case_digest is not None and message.get("case_digest") != case_digest:
        return False
    for name, column in (
        ("channels", "channel"),
        ("partners", "source_partner_id"),
        ("priorities", "priority"),
        ("types", "type"),
    ):
        allowed = _listed(criteria, name)
        if allowed and message.get(column) not in allowed:
            return False
    kinds = _listed(criteria, "subject_kinds")
    if kinds:
        bits = message.get("subject_kinds") or 0
        if not int(bits) & kinds_mask(kinds):
            return False
    return True


def wants_request_event(
    criteria: Mapping[str, Any],
    case_digest: bytes | None,
    *,
    event: str,
    reference_digest: bytes | None,
) -> bool:
    """True when a subscription asked for `event` about a request with this reference.

    The event must be listed (an empty `events` means message events only); a
    subscription naming a case gets only the events of a request with that
    reference. Message criteria (kinds, channels, partners, priorities, types)
    describe messages and do not apply.
    """
    if event not in _listed(criteria, "events"):
        return False
    return case_digest is None or case_digest == reference_digest
