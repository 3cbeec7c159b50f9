"""RFC 9162 (section 2.1.1) Merkle tree hashes over the audit log, in streaming form.

MTH({}) = SHA-256(), a leaf is SHA-256(0x00 || data), and a tree of n > 1 leaves
is SHA-256(0x01 || MTH(first k) || MTH(rest)) with k the largest power of two
below n. `MerkleAccumulator` takes leaves one at a time and keeps only the roots
of the perfect subtrees that make up the tree so far (one per bit of the size):
O(log n) memory, whatever the length of the log.

The leaf data of audit entry `seq` is its stored 32-byte chain hash (the MAC of
its canonical bytes, which cover its fields and the previous hash), at index
seq - 1. Pure functions, no I/O.
"""

import hashlib

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class MerkleAccumulator:
    """The Merkle tree hash of the leaves appended so far, in O(log n) memory."""

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        # Roots of perfect subtrees, largest (leftmost) first; their sizes are the
        # set bits of _size, from the highest down.
        self._stack: list[bytes] = []

    @property
    def size(self) -> int:
        """How many leaves were appended."""
        return self._size

    def append(self, data: bytes) -> None:
        """Add the leaf whose data is `data`."""
        node = leaf_hash(data)
        size = self._size
        # Each trailing one bit of the old size is a perfect subtree as large as
        # the one being carried: merge them, as binary addition carries.
        while size & 1:
            node = node_hash(self._stack.pop(), node)
            size >>= 1
        self._stack.append(node)
        self._size += 1

    def copy(self) -> "MerkleAccumulator":
        """An independent accumulator in the same state."""
        twin = MerkleAccumulator()
        twin._size, twin._stack = self._size, list(self._stack)
        return twin

    def root(self) -> bytes:
        """MTH of the leaves so far: the subtrees folded from the right, as RFC 9162
        splits at the largest power of two (so the smaller subtrees nest rightmost)."""
        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node
