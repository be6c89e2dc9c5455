"""Signing change ids on a helper process, so a busy writer signs in parallel with its other work.

An Ed25519 signature (18 µs with PyNaCl here) costs the replica's writer some 40% on top of
everything else it does for a change. A thread cannot take that work off the event loop: each
PyNaCl call has to take the GIL back, and a busy loop holds it (measured: a thread's 32
signatures wait until the loop goes idle). A child process has its own interpreter, so it signs
on the other core.

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
import subprocess
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


class _Pipes(asyncio.SubprocessProtocol):
    """Collects what the child writes, and wakes the reader waiting for enough of it."""

    def __init__(self) -> None:
        self.output = bytearray()
        self.skip = 0  # bytes still to come that nobody wants (see SignerProcess.skip)
        self.gone: str | None = None  # why no more output will come
        self.waiter: tuple[int, asyncio.Future[None]] | None = None
        self.exited = asyncio.get_running_loop().create_future()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        raw = data if isinstance(data, bytes) else data.encode()
        if self.skip:
            dropped = min(self.skip, len(raw))
            raw, self.skip = raw[dropped:], self.skip - dropped
        self.output += raw
        self._wake()

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self.gone = self.gone or "its output closed"
            self._wake()

    def process_exited(self) -> None:
        self.gone = self.gone or "it exited"
        self._wake()
        if not self.exited.done():
            self.exited.set_result(None)

    def _wake(self) -> None:
        if self.waiter is None:
            return
        wanted, future = self.waiter
        if (len(self.output) >= wanted or self.gone) and not future.done():
            self.waiter = None
            future.set_result(None)


class SignerProcess:
    """The parent's end: `send` ids, then `receive` their signatures in the same order."""

    def __init__(self, transport: asyncio.SubprocessTransport, pipes: _Pipes) -> None:
        self._transport = transport
        self._pipes = pipes
        stdin = transport.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.WriteTransport)
        self._stdin = stdin
        self.owed = 0  # signatures sent for and not yet received or skipped

    @classmethod
    async def start(cls, seed: bytes) -> SignerProcess:
        """Start a helper for the key of `seed`; raises SignerGone if it does not come up."""
        transport, pipes = await asyncio.get_running_loop().subprocess_exec(
            _Pipes,
            sys.executable,
            "-m",
            "huskies.signer",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
        )
        signer = cls(transport, pipes)
        signer._stdin.write(seed)
        # One signature proves the child is up and holds the right key before anyone relies on it.
        probe = bytes(ID_BYTES)
        signer.send([probe])
        try:
            answer = await signer.receive(1, START_TIMEOUT_S)
        except SignerGone as exc:
            await signer.close(grace_s=0)
            raise SignerGone(f"the signing helper did not start: {exc}") from None
        if answer is None:
            await signer.close(grace_s=0)
            raise SignerGone(f"the signing helper did not answer in {START_TIMEOUT_S} s")
        _, secret = crypto_sign_seed_keypair(seed)
        if answer[0] != _sign(probe, secret):
            await signer.close(grace_s=0)
            raise SignerGone("the signing helper signed with another key")
        return signer

    def send(self, ids: list[bytes]) -> None:
        """Queue `ids` for signing; never waits (the pipe's buffer grows instead)."""
        if self._stdin.is_closing() or self._pipes.gone:
            raise SignerGone(f"the signing helper stopped ({self._pipes.gone or 'input closed'})")
        self._stdin.write(_COUNT.pack(len(ids)) + b"".join(ids))
        self.owed += len(ids)

    async def receive(self, count: int, wait_s: float) -> list[bytes] | None:
        """The next `count` signatures, in the order their ids were sent, or None if they
        have not all come within `wait_s` seconds (then `skip` them, or receive again).
        Raises SignerGone if the helper stopped."""
        size, pipes = count * SIGNATURE_BYTES, self._pipes
        if len(pipes.output) < size and not pipes.gone:
            # Not there yet (under load they usually are, and this costs nothing).
            future = asyncio.get_running_loop().create_future()
            pipes.waiter = (size, future)
            try:
                async with asyncio.timeout(wait_s):
                    await future
            except TimeoutError:
                return None
            finally:
                pipes.waiter = None
        if len(pipes.output) < size:
            raise SignerGone(f"the signing helper stopped ({pipes.gone})")
        self.owed -= count
        data = bytes(pipes.output[:size])
        del pipes.output[:size]
        return [data[i : i + SIGNATURE_BYTES] for i in range(0, size, SIGNATURE_BYTES)]

    def skip(self, count: int) -> None:
        """Drop the next `count` signatures, now or as they come (the caller made them)."""
        self.owed -= count
        size, pipes = count * SIGNATURE_BYTES, self._pipes
        here = min(size, len(pipes.output))
        del pipes.output[:here]
        pipes.skip += size - here

    async def close(self, grace_s: float = 5.0) -> None:
        """Close the child's input (it exits) and reap it; kill it if it has not exited
        within `grace_s` seconds."""
        self._stdin.close()
        try:
            async with asyncio.timeout(grace_s):
                await asyncio.shield(self._pipes.exited)  # a timeout must not cancel it
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._transport.kill()
            await self._pipes.exited
        self._transport.close()

    @property
    def pid(self) -> int:
        return self._transport.get_pid()

    @property
    def returncode(self) -> int | None:
        return self._transport.get_returncode()


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
