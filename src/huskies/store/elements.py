"""Which elements of root lists a change touches: what the change log's element index holds.

A container in a list at the document's root (a work item in "items") is named by its element
id, the id of the op that made it. A change touches such an element when it makes it, replaces
it, or edits anything inside it (an op whose path runs through it). Indexing changes
by the elements they touch lets the history of one item be read without decoding the whole log.

Removals are not indexed: a removed element is gone from every view, so nobody asks for its
history, and a remote change's spans are not yet checked against the document when it is
filed (a forged span could name billions of elements).
"""

from __future__ import annotations

from huskies.crdt import OpId
from huskies.crdt.ops import ListMake, ListSet, Op, slots


def op_element(change_id: bytes, slot: int, op: Op) -> OpId | None:
    """The root-list element that `op`, the op at id slot `slot` of change `change_id`,
    makes, replaces or edits inside ("this change" in its path resolved), if any."""
    path = op.path
    depth = len(path)
    if depth >= 2:
        element = path[1]
        if not isinstance(element, OpId):
            return None  # inside a map at the root
    elif depth == 1 and type(op) is ListMake:
        return OpId(change_id, slot)
    elif depth == 1 and type(op) is ListSet:
        element = op.element
    else:
        return None
    return element if element.change else OpId(change_id, element.idx)


def touched_elements(change_id: bytes, ops: tuple[Op, ...]) -> set[OpId]:
    """Every root-list element the change's ops touch. Runs for every change filed, so it
    tests exact types and calls nothing per op that it can avoid."""
    touched: set[OpId] = set()
    slot = 0
    for op in ops:
        element = op_element(change_id, slot, op)
        if element is not None:
            touched.add(element)
        slot += slots(op)
    return touched


def element_key(element: OpId) -> tuple[int, int]:
    """How the index stores an element: the first 8 bytes of its change id as a signed
    integer, and its index. Integers keep the index small and cheap to insert into; two
    elements sharing a prefix are told apart when the changes are read back."""
    return int.from_bytes(element.change[:8], "big", signed=True), element.idx
