"""Subject kinds as a bit set: filterable with `&` on SQLite and PostgreSQL alike."""

from collections.abc import Sequence

from commcentre.messages.schemas import SubjectKind

# The one bit per kind that messages.subject_kinds (and subscription filters) use.
KIND_BITS: dict[str, int] = {kind.value: 1 << i for i, kind in enumerate(SubjectKind)}


def kind_bits(kinds: Sequence[str]) -> int:
    bits = 0
    for kind in kinds:
        bits |= KIND_BITS[SubjectKind(kind).value]
    return bits


def kinds_of(bits: int) -> list[SubjectKind]:
    return [SubjectKind(kind) for kind, bit in KIND_BITS.items() if bits & bit]
