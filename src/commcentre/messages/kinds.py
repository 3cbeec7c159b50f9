"""Subject kinds as a bit set: filterable with `&` on SQLite and PostgreSQL alike."""

from collections.abc import Sequence

from commcentre.messages.schemas import SubjectKind

_KIND_BITS = {kind: 1 << i for i, kind in enumerate(SubjectKind)}


def kind_bits(kinds: Sequence[str]) -> int:
    bits = 0
    for kind in kinds:
        bits |= _KIND_BITS[SubjectKind(kind)]
    return bits


def kinds_of(bits: int) -> list[SubjectKind]:
    return [kind for kind, bit in _KIND_BITS.items() if bits & bit]
