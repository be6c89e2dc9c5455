"""Usage records in a real document: appended per run, read back oldest first, bad ones named."""

import dataclasses

from huskies.crdt import Document, ObjKind, Transaction
from huskies.pipeline.usage import UsageRecord, read_usage, record_usage, usage_to_json

from ..crdt.support import key, set_key

A, B = key(1), key(2)
T = 1_700_000_000_000

RECORD = UsageRecord(
    run="run-1",
    item_id="ab" * 32 + ".0",
    number=7,
    agent="coder",
    outcome="completed",
    cost_usd=0.0123,
    input_tokens=1200,
    output_tokens=340,
    cache_read_input_tokens=50,
    cache_creation_input_tokens=0,
    turns=3,
    started_at=T,
    ended_at=T + 5000,
)


def append(doc: Document, record: UsageRecord, signer=A) -> None:
    tx = Transaction(doc)
    record_usage(tx, record)
    tx.commit(signer, record.ended_at)


def test_records_come_back_oldest_first():
    doc = Document()
    second = dataclasses.replace(RECORD, run="run-2", cost_usd=None, turns=None, ended_at=T + 9)
    append(doc, RECORD)
    append(doc, second)
    assert read_usage(doc) == ([RECORD, second], [])


def test_an_empty_document_has_no_usage():
    assert read_usage(Document()) == ([], [])


def test_a_bad_record_is_named_and_the_rest_still_count():
    doc = Document()
    append(doc, RECORD)
    tx = Transaction(doc)
    tx.insert(("usage",), 0, {**usage_to_json(RECORD), "input_tokens": "many"})
    tx.insert(("usage",), 0, {**usage_to_json(RECORD), "cost_usd": True})
    tx.insert(("usage",), 0, "not a record")
    tx.commit(A, T + 1)
    records, problems = read_usage(doc)
    assert records == [RECORD]
    assert problems == [
        "usage record 1: 'input_tokens' must be an integer, got a string",
        "usage record 2: 'cost_usd' must be a number or null, got a boolean",
        "usage record 3: must be an object, got a string",
    ]


def test_usage_that_is_not_a_list_is_reported():
    doc = Document()
    set_key(doc, A, "usage", 5)
    assert read_usage(doc) == ([], ["usage must be an array, got a number"])


def test_a_missing_field_is_named():
    doc = Document()
    raw = usage_to_json(RECORD)
    del raw["agent"]
    tx = Transaction(doc)
    tx.make((), "usage", ObjKind.LIST)
    tx.insert(("usage",), 0, raw)
    tx.commit(B, T)
    assert read_usage(doc) == ([], ["usage record 0: 'agent' is missing"])
