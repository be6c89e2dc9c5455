"""Timers, pure: the next time a clock shows HH:MM (across changes of the clocks), and timers
stored in a real document, replaced, cancelled and read back tolerantly."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from huskies.crdt import Document, ObjKind, Transaction
from huskies.pipeline.timers import (
    Timer,
    cancel_timer,
    next_occurrence,
    parse_hh_mm,
    read_timers,
    set_timer,
    timer_to_json,
)

from ..crdt.support import key, set_key

A, B = key(1), key(2)
NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
APIA = ZoneInfo("Pacific/Apia")
ITEM = "ab" * 32 + ".0"
OTHER = "cd" * 32 + ".3"


def ms(year: int, month: int, day: int, hour: int, minute: int, zone: ZoneInfo | None = None):
    """The instant clocks in `zone` (UTC if None) show the time (the first, if shown twice)."""
    moment = datetime(year, month, day, hour, minute, tzinfo=zone or UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def wall(at: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(at / 1000, zone).strftime("%Y-%m-%d %H:%M %Z")


@pytest.mark.parametrize("text", ["00:00", "09:05", "12:30", "23:59"])
def test_times_of_day_are_read(text: str):
    hours, minutes = text.split(":")
    assert parse_hh_mm(text) == (int(hours), int(minutes))


@pytest.mark.parametrize(
    "text",
    ["24:00", "23:60", "9:30", "09:3", "0930", " 09:30", "09:30 ", "09:30:00", "", "ab:cd",
     "٠٩:٣٠", "09.30", "-1:00", "+9:30"],
)  # fmt: skip
def test_anything_but_strict_hh_mm_is_refused_with_the_text_named(text: str):
    with pytest.raises(ValueError, match="is not a time of day") as caught:
        parse_hh_mm(text)
    assert repr(text) in str(caught.value)
    assert "HH:MM" in str(caught.value)
    with pytest.raises(ValueError, match="is not a time of day"):
        next_occurrence(text, LONDON, ms(2024, 6, 1, 8, 0))


def test_later_today_or_else_tomorrow():
    now = ms(2024, 6, 1, 8, 0, LONDON)
    assert wall(next_occurrence("09:30", LONDON, now), LONDON) == "2024-06-01 09:30 BST"
    assert wall(next_occurrence("07:59", LONDON, now), LONDON) == "2024-06-02 07:59 BST"
    # Exactly now has passed: a timer fires after it is set.
    assert wall(next_occurrence("08:00", LONDON, now), LONDON) == "2024-06-02 08:00 BST"
    assert next_occurrence("08:00", LONDON, now - 1) == now


def test_the_zone_decides_which_day_it_is():
    # 23:30 UTC on 1 June is already 2 June in Tokyo, so 09:00 there is hours away.
    now = ms(2024, 6, 1, 23, 30)
    tokyo = ZoneInfo("Asia/Tokyo")
    assert wall(next_occurrence("09:00", tokyo, now), tokyo) == "2024-06-02 09:00 JST"
    assert wall(next_occurrence("09:00", NEW_YORK, now), NEW_YORK) == "2024-06-02 09:00 EDT"


def test_a_time_the_clocks_skip_fires_when_they_jump():
    # New York, 10 March 2024: 02:00 EST becomes 03:00 EDT, so 02:30 never shows.
    at = next_occurrence("02:30", NEW_YORK, ms(2024, 3, 10, 0, 0, NEW_YORK))
    assert at == ms(2024, 3, 10, 7, 0)  # the jump: 02:00 EST, shown as 03:00 EDT
    assert wall(at, NEW_YORK) == "2024-03-10 03:00 EDT"
    # London, 31 March 2024: 01:00 GMT becomes 02:00 BST.
    at = next_occurrence("01:59", LONDON, ms(2024, 3, 30, 12, 0, LONDON))
    assert wall(at, LONDON) == "2024-03-31 02:00 BST"
    # The next day it shows again, and fires at it.
    after = next_occurrence("02:30", NEW_YORK, ms(2024, 3, 10, 12, 0, NEW_YORK))
    assert wall(after, NEW_YORK) == "2024-03-11 02:30 EDT"


def test_a_time_the_clocks_show_twice_fires_at_the_first_still_ahead():
    # New York, 3 November 2024: 02:00 EDT falls back to 01:00 EST, so 01:30 shows twice.
    first, second = ms(2024, 11, 3, 5, 30), ms(2024, 11, 3, 6, 30)
    assert next_occurrence("01:30", NEW_YORK, ms(2024, 11, 3, 0, 0, NEW_YORK)) == first
    # Set between the two, it fires at the second rather than waiting a day.
    assert next_occurrence("01:30", NEW_YORK, first) == second
    assert next_occurrence("01:30", NEW_YORK, second) == ms(2024, 11, 4, 1, 30, NEW_YORK)


def test_a_day_the_zone_skips_fires_as_soon_as_the_zone_is_past_it():
    # Samoa moved across the date line: 29 December 2011 23:59 was followed by 31 December.
    at = next_occurrence("09:00", APIA, ms(2011, 12, 29, 10, 0, APIA))
    assert wall(at, APIA) == "2011-12-31 00:00 +14"


ZONES = [UTC, LONDON, NEW_YORK, APIA, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Asia/Kolkata")]


@settings(max_examples=60, deadline=None)
@given(
    now=st.integers(ms(2010, 1, 1, 0, 0), ms(2030, 1, 1, 0, 0)),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    zone=st.sampled_from(ZONES),
)
def test_the_first_instant_after_now_that_shows_the_time(
    now: int, hour: int, minute: int, zone: ZoneInfo
):
    at = next_occurrence(f"{hour:02}:{minute:02}", zone, now)
    assert now < at <= now + 2 * 86_400_000
    local = datetime.fromtimestamp(at / 1000, zone)
    shown = (local.hour, local.minute, local.second) == (hour, minute, 0)
    if not shown:  # skipped: it fires at a change of the clocks
        before = datetime.fromtimestamp((at - 1) / 1000, zone)
        assert before.utcoffset() != local.utcoffset()
    # No whole minute between now and then shows the time.
    minute_ms = 60_000
    for earlier in range(now - now % minute_ms + minute_ms, at, minute_ms):
        seen = datetime.fromtimestamp(earlier / 1000, zone)
        assert (seen.hour, seen.minute) != (hour, minute)


def timer(
    item_id: str = ITEM,
    at: int = 1_000,
    *,
    number: int = 3,
    set_at: int = 500,
    node: str | None = "node-a",
) -> Timer:
    return Timer(item_id=item_id, number=number, at=at, set_at=set_at, node=node)


def commit(doc: Document, build: Callable[[Transaction], None]) -> None:
    tx = Transaction(doc)
    build(tx)
    tx.commit(A, 1)


def test_timers_are_set_replaced_cancelled_and_read_soonest_first():
    doc = Document()
    assert read_timers(doc) == ([], [])
    later, sooner = timer(ITEM, 9_000), timer(OTHER, 2_000, number=7, node=None)
    commit(doc, lambda tx: set_timer(tx, later))
    commit(doc, lambda tx: set_timer(tx, sooner))
    assert read_timers(doc) == ([sooner, later], [])
    replaced = timer(ITEM, 1_000, set_at=800)
    commit(doc, lambda tx: set_timer(tx, replaced))
    assert read_timers(doc) == ([replaced, sooner], [])
    commit(doc, lambda tx: cancel_timer(tx, OTHER))
    assert read_timers(doc) == ([replaced], [])
    commit(doc, lambda tx: cancel_timer(tx, OTHER))  # cancelling nothing changes nothing
    assert read_timers(doc) == ([replaced], [])


def test_timers_set_on_two_nodes_meet_in_one_map():
    a, b = Document(), Document()
    first, second = timer(ITEM), timer(OTHER, 5_000)
    tx = Transaction(a)
    set_timer(tx, first)
    change_a = tx.commit(A, 1)
    tx = Transaction(b)
    set_timer(tx, second)
    change_b = tx.commit(B, 1)
    a.apply(change_b)
    b.apply(change_a)
    assert read_timers(a) == read_timers(b) == ([first, second], [])


def test_bad_entries_are_named_and_the_rest_still_read():
    doc = Document()
    good = timer()

    def build(tx: Transaction) -> None:
        set_timer(tx, good)
        tx.set(("timers",), OTHER, {**timer_to_json(good), "at": "soon"})
        tx.set(("timers",), "not-an-id", timer_to_json(good))
        tx.set(("timers",), "ef" * 32 + ".1", [1, 2])
        tx.set(("timers",), "01" * 32 + ".1", {"at": 1, "number": 0, "set_at": 1})
        tx.set(("timers",), "23" * 32 + ".1", {"at": 1, "number": 2})
        tx.set(("timers",), "45" * 32 + ".1", {**timer_to_json(good), "node": 5})

    commit(doc, build)
    timers, problems = read_timers(doc)
    assert timers == [good]
    assert sorted(problems) == sorted(
        [
            f"timer for item {OTHER!r}: 'at' must be an integer, got a string",
            "timer for item 'not-an-id': item id 'not-an-id' must look like "
            "<64 hex digits>.<index>",
            f"timer for item {'ef' * 32 + '.1'!r}: must be an object, got an array",
            f"timer for item {'01' * 32 + '.1'!r}: 'number' must be ≥ 1, got 0",
            f"timer for item {'23' * 32 + '.1'!r}: 'set_at' is missing",
            f"timer for item {'45' * 32 + '.1'!r}: 'node' must be a string, got a number",
        ]
    )


def test_an_entry_without_a_node_fires_anywhere():
    doc = Document()
    raw = timer_to_json(timer())
    del raw["node"]

    def build(tx: Transaction) -> None:
        tx.make((), "timers", ObjKind.MAP)
        tx.set(("timers",), ITEM, raw)

    commit(doc, build)
    assert read_timers(doc) == ([timer(node=None)], [])


def test_timers_that_are_not_a_map_are_reported():
    doc = Document()
    set_key(doc, A, "timers", "at nine")
    assert read_timers(doc) == ([], ["timers must be an object, got a string"])
