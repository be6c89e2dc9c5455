"""One writer per database: an advisory lock held while a replica has the database open.

Two processes writing as the same node would both sign seq n+1 for the node's key, which every
peer would see as the node equivocating. The lock makes the second opener wait, then fail with
the other process's pid.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path


class LockedError(Exception):
    """Another process holds the database."""


class WriterLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, timeout: float) -> None:
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                    os.close(fd)
                    raise LockedError(
                        f"{self.path.with_suffix('')} is in use by another huskies process "
                        f"(pid {holder}); stop it, or talk to the running server instead"
                    ) from None
                time.sleep(0.02)  # polling a lock another process holds; no event to await
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
