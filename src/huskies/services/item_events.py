"""Item changes on the live event stream, and number collisions settled as they arrive.

One loop for the server's life: it follows the replica's changes (local ones and those from
peers alike), keeps the board current with an `ItemTracker`, and publishes

- `item` `{"item": item json}` for each item that is new or whose stored form changed,
- `item_removed` `{"id", "number"}` for each item purged,
- `item_error` `{"error": {"item_id", "field", "problem"}}` for each item that became unreadable.

When two nodes gave one number to different items, the loop stores the numbers the losers
resolved to (`Board.settle_numbers`), so the server does that while it runs rather than each CLI
call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging

from huskies.crdt import Rejected, decode_signed
from huskies.pipeline import ItemsView, item_to_json, renumbering
from huskies.pipeline.tracker import BoardChanges, ItemTracker
from huskies.services.events import EventHub
from huskies.services.stories import Board
from huskies.store import PersistError, Replica, SubscriptionLagged

log = logging.getLogger("huskies.items")

ITEM = "item"
ITEM_REMOVED = "item_removed"
ITEM_ERROR = "item_error"


async def publish_item_events(replica: Replica, board: Board, hub: EventHub) -> None:
    """Run until the replica closes."""
    tracker: ItemTracker | None = None
    while True:
        with contextlib.closing(replica.subscribe()) as subscription:
            # Read the board after subscribing, so no change falls between the two.
            if tracker is None:
                tracker = ItemTracker(replica.document)
            else:
                _publish(hub, tracker.reload(replica.document))
            await _settle(board, tracker.view)
            try:
                async for published in subscription:
                    verified = decode_signed(published.change, check_signature=False)
                    if isinstance(verified, Rejected):  # the replica applied it, so never
                        log.error("an applied change does not decode: %s", verified.detail)
                        continue
                    _publish(hub, tracker.update(replica.document, [verified]))
                    await _settle(board, tracker.view)
                return
            except SubscriptionLagged:
                log.warning("item events fell behind the replica; reloading the board")


def _publish(hub: EventHub, changes: BoardChanges) -> None:
    for item in changes.changed:
        hub.publish(ITEM, {"item": item_to_json(item)})
    for item in changes.removed:
        hub.publish(ITEM_REMOVED, {"id": item.id, "number": item.number})
    for error in changes.failed:
        hub.publish(ITEM_ERROR, {"error": dataclasses.asdict(error)})


async def _settle(board: Board, view: ItemsView) -> None:
    if not renumbering(view):
        return
    try:
        settled = await board.settle_numbers()
    except PersistError as exc:  # the next change tries again
        log.warning("could not store settled item numbers: %s", exc)
        return
    for claimed, item in settled:
        log.info(
            "#%d was also given to another item on another node; %r is now #%d",
            claimed,
            item.title,
            item.number,
        )
