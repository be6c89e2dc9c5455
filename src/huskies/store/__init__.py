"""The shell around the document: the SQLite change log and the replica that writes it."""

from huskies.store.database import Snapshot, StoreError, Synchronous
from huskies.store.lock import LockedError
from huskies.store.replica import (
    PersistError,
    Published,
    Replica,
    ReplicaStats,
    Subscription,
    SubscriptionLagged,
)

__all__ = [
    "LockedError",
    "PersistError",
    "Published",
    "Replica",
    "ReplicaStats",
    "Snapshot",
    "StoreError",
    "Subscription",
    "SubscriptionLagged",
    "Synchronous",
]
