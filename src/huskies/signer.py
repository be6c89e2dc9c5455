"""Signing change ids on a helper process, so a busy writer signs in parallel with its other work.

An Ed25519 signature costs the replica's writer about as much as a third of everything else it
does for a change. A thread cannot take that work off the event loop: each PyNaCl call has to
take the GIL back, and a busy loop holds it (measured: a thread's 32 signatures wait until the
loop goes idle). A child process has its own interpreter, so it signs on the other core.

The child gets the node's seed through its stdin (never its arguments or environment, which
other users can read), then answers frames in order. A frame is a 4-byte big-endian count and
that many 32-byte change ids; its answer is the 64-byte signature of each id. Ed25519 is
deterministic, so these are exactly the signatures the node would make itself. The child exits
when its stdin closes, including when the parent dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import sys
from typing import BinaryIO

from nacl.bindings import crypto_sign, crypto_sign_seed_keypair

SEED_BYTES = 32
ID_BYTES = 32
SIGNATURE_BYTES = 64
_COUNT = struct.Struct(">I")
START_TIMEOUT_S = 30.0


class SignerGone(Exception):
    """The helper process stopped answering; sign in-process instead."""


class SignerProcess:
    """The parent's end: `send` ids, then `receive` their signatures in the same order."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        assert process.stdin is not None
        assert process.stdout is not None
        self._stdin = process.stdin
        self._stdout = process.stdout
        self.owed = 0  # signatures sent for and not yet received

    @classmethod
    async def start(cls, seed: bytes) -> SignerProcess:
        """Start a helper for the key of `seed`; raises SignerGone if it does not come up."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "huskies.signer",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        signer = cls(process)
        signer._stdin.write(seed)
        # One signature proves the child is up and holds the right key before anyone relies on it.
        probe = bytes(ID_BYTES)
        signer.send([probe])
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                [signature] = await signer.receive(1)
        except (SignerGone, TimeoutError) as exc:
            await signer.close()
            raise SignerGone(f"the signing helper did not start: {exc}") from None
        _, secret = crypto_sign_seed_keypair(seed)
        if signature != _sign(probe, secret):
            await signer.close()
            raise SignerGone("the signing helper signed with another key")
        return signer

    def send(self, ids: list[bytes]) -> None:
        """Queue `ids` for signing; never waits (the pipe's buffer grows instead)."""
        if self._stdin.is_closing():
            raise SignerGone("the signing helper's input is closed")
        self._stdin.write(_COUNT.pack(len(ids)) + b"".join(ids))
        self.owed += len(ids)

    async def receive(self, count: int) -> list[bytes]:
        """The next `count` signatures, in the order their ids were sent."""
        self.owed -= count
        try:
            data = await self._stdout.readexactly(count * SIGNATURE_BYTES)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise SignerGone(f"the signing helper stopped ({exc})") from None
        return [data[i : i + SIGNATURE_BYTES] for i in range(0, len(data), SIGNATURE_BYTES)]

    async def close(self) -> None:
        """Close the child's input (it exits) and reap it."""
        with contextlib.suppress(ConnectionError):
            self._stdin.close()
        try:
            async with asyncio.timeout(5):
                await self._process.wait()
        except TimeoutError:
            self._process.kill()
            await self._process.wait()

    @property
    def pid(self) -> int:
        return self._process.pid


def _sign(message: bytes, secret: bytes) -> bytes:
    signed: bytes = crypto_sign(message, secret)
    return signed[:SIGNATURE_BYTES]


def _read(stream: BinaryIO, size: int) -> bytes | None:
    """Exactly `size` bytes, or None at the end of the input."""
    data = stream.read(size)
    if len(data) < size:
        return None
    return data


def main() -> None:
    """The child's end: sign frames from stdin onto stdout until stdin closes."""
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    seed = _read(source, SEED_BYTES)
    if seed is None:
        return
    _, secret = crypto_sign_seed_keypair(seed)
    while (head := _read(source, _COUNT.size)) is not None:
        (count,) = _COUNT.unpack(head)
        ids = _read(source, count * ID_BYTES)
        if ids is None:
            return
        sink.write(
            b"".join(_sign(ids[i : i + ID_BYTES], secret) for i in range(0, len(ids), ID_BYTES))
        )
        sink.flush()


if __name__ == "__main__":
    main()
