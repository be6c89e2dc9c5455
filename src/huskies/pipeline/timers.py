"""Timers: "start item N's agent at 09:00", kept in the replicated document under "timers".

The root key "timers" holds a map from item id to one JSON value `{"at", "number", "set_at",
"node"}`, written whole so an entry's fields never mix two writers' values. Keyed by item id, an
item has at most one timer, and setting another replaces it. `number` is the item's number when
the timer was set (numbers can change; the id cannot). `node` is the node that set the timer and
fires it, since a timer starts an agent, and agents run on the node that was asked; an entry
without one fires on any node.

`next_occurrence` turns a wall-clock time into an instant. The clock and the time zone come in
as arguments; the zone's rules are read from tzdata when the caller builds the ZoneInfo.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from huskies.crdt import Document, Json, ObjKind, Path, Transaction
from huskies.pipeline.jsonvalues import (
    WrongType,
    as_int,
    as_object,
    as_str,
    describe,
    member,
)
from huskies.pipeline.schema import parse_item_key

TIMERS = "timers"
TIMERS_PATH: Path = (TIMERS,)

HH_MM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
"""A time of day on a 24-hour clock, 00:00 to 23:59 (matched whole)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Timer:
    """Start the agent of item `item_id` (#`number`) at `at`; set at `set_at` (ms since the
    epoch) by node `node` (None: any node may fire it)."""

    item_id: str
    number: int
    at: int
    set_at: int
    node: str | None


def parse_hh_mm(text: str) -> tuple[int, int]:
    """(hour, minute) of a strict "HH:MM" from 00:00 to 23:59, or ValueError saying why not."""
    match = HH_MM.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a time of day; give hours and minutes as HH:MM on a 24-hour "
            "clock, from 00:00 to 23:59, such as 09:30"
        )
    return int(match.group(1)), int(match.group(2))


def next_occurrence(hh_mm: str, zone: ZoneInfo, now_ms: int) -> int:
    """The first instant after `now_ms` (ms since the epoch) at which clocks in `zone` show
    `hh_mm`, in ms since the epoch.

    Around changes of the clocks:

    - A time the clocks skip (02:30 on a night that jumps from 02:00 to 03:00) gives the moment
      of the jump, the first instant after the time would have been, so the timer still fires
      that day and as early as it can.
    - A time the clocks show twice (01:30 on a night that falls back from 02:00 to 01:00)
      gives the first of the two still ahead: usually the earlier one, and the later one when
      `now_ms` lies between them. Either way it fires once.
    """
    hour, minute = parse_hh_mm(hh_mm)
    today = (_EPOCH + now_ms * _MS).astimezone(zone).date()
    # Three days cover every case: today's time may have passed, and a zone can skip a whole
    # day (Pacific/Apia skipped 30 December 2011).
    for offset in range(3):
        for candidate in _instants(today + timedelta(days=offset), hour, minute, zone):
            if candidate > now_ms:
                return candidate
    raise AssertionError("a time of day comes round within three days")


def _instants(day: date, hour: int, minute: int, zone: ZoneInfo) -> list[int]:
    """The instants at which clocks in `zone` show `hour:minute` on `day`, earliest first; for
    a time the clocks skip, the instant they skip it."""
    readings = sorted(
        {
            _ms(datetime(day.year, day.month, day.day, hour, minute, fold=fold, tzinfo=zone))
            for fold in (0, 1)
        }
    )
    shown = [at for at in readings if _wall(at, zone) == (day, hour, minute)]
    if shown:
        return shown
    # Skipped: the two folds read the time with the offsets before and after the jump, so
    # the jump lies between the two readings; find its instant.
    earlier, later = readings[0], readings[-1]
    before = _offset(earlier, zone)
    while later - earlier > 1:
        middle = (earlier + later) // 2
        if _offset(middle, zone) == before:
            earlier = middle
        else:
            later = middle
    return [later]


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


def _local(at: int, zone: ZoneInfo) -> datetime:
    return (_EPOCH + at * _MS).astimezone(zone)


def _wall(at: int, zone: ZoneInfo) -> tuple[date, int, int]:
    local = _local(at, zone)
    return local.date(), local.hour, local.minute


def _offset(at: int, zone: ZoneInfo) -> timedelta | None:
    return _local(at, zone).utcoffset()


def set_timer(tx: Transaction, timer: Timer) -> None:
    """Store `timer`, replacing any timer of its item (the map is made every time; concurrent
    makes share one map)."""
    tx.make((), TIMERS, ObjKind.MAP)
    tx.set(TIMERS_PATH, timer.item_id, timer_to_json(timer))


def cancel_timer(tx: Transaction, item_id: str) -> None:
    """Remove the timer of item `item_id` (nothing happens if it has none)."""
    tx.delete(TIMERS_PATH, item_id)


def timer_to_json(timer: Timer) -> dict[str, Json]:
    return {"at": timer.at, "number": timer.number, "set_at": timer.set_at, "node": timer.node}


def timer_from_json(item_id: str, raw: object) -> Timer:
    """The timer `raw` holds for item `item_id`, or WrongType naming the first bad field."""
    try:
        parse_item_key(item_id)
    except ValueError as exc:
        raise WrongType(str(exc)) from None
    entry = as_object(raw)
    number = member(entry, "number", as_int)
    if number < 1:
        raise WrongType(f"'number' must be ≥ 1, got {number}")
    return Timer(
        item_id=item_id,
        number=number,
        at=member(entry, "at", as_int),
        set_at=member(entry, "set_at", as_int),
        node=None if entry.get("node") is None else member(entry, "node", as_str),
    )


def read_timers(doc: Document) -> tuple[list[Timer], list[str]]:
    """Every readable timer, soonest first, and a problem line for each entry that is not one
    (which is left where it is: a newer node may have written something this one cannot
    read)."""
    try:
        entries = doc.get(TIMERS_PATH)
    except KeyError:
        return [], []
    if not isinstance(entries, dict):
        return [], [f"timers must be an object, got {describe(entries)}"]
    timers, problems = [], []
    for item_id, raw in entries.items():
        try:
            timers.append(timer_from_json(item_id, raw))
        except WrongType as exc:
            problems.append(f"timer for item {item_id!r}: {exc}")
    timers.sort(key=lambda timer: (timer.at, timer.item_id))
    return timers, problems
