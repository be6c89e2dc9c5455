"""The signing helper: a real child process holding the node key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from huskies.crdt.identity import verify_signature
from huskies.signer import SignerGone, SignerProcess

from .crdt.support import key

NODE = key(3)


async def test_it_signs_frames_in_order_exactly_as_the_node_would():
    signer = await SignerProcess.start(NODE.seed)
    try:
        frames = [[os.urandom(32) for _ in range(n)] for n in (1, 17, 4)]
        for ids in frames:
            signer.send(ids)
        assert signer.owed == 22
        for ids in frames:
            signatures = await signer.receive(len(ids), 30)
            assert signatures == [NODE.sign(i) for i in ids]  # Ed25519 is deterministic
            assert all(
                verify_signature(NODE.public_key, i, s)
                for i, s in zip(ids, signatures, strict=True)
            )
        assert signer.owed == 0
    finally:
        await signer.close()
    assert signer.returncode == 0  # it exits when its input closes


async def test_a_helper_that_died_is_reported_not_waited_for():
    signer = await SignerProcess.start(NODE.seed)
    os.kill(signer.pid, signal.SIGKILL)
    signer.send([bytes(32)])
    with pytest.raises(SignerGone, match="stopped"):
        await signer.receive(1, 30)
    await signer.close()


async def test_signatures_given_up_on_are_dropped_when_they_come():
    """A helper that was not scheduled in time: the caller signs that frame itself and skips
    its answer; the next frame's answer is the next one received."""
    signer = await SignerProcess.start(NODE.seed)
    try:
        os.kill(signer.pid, signal.SIGSTOP)
        late, later = [os.urandom(32) for _ in range(3)], [os.urandom(32) for _ in range(2)]
        signer.send(late)
        assert await signer.receive(3, 0.05) is None
        signer.skip(3)
        signer.send(later)
        os.kill(signer.pid, signal.SIGCONT)
        assert await signer.receive(2, 30) == [NODE.sign(i) for i in later]
        assert signer.owed == 0
    finally:
        await signer.close()


def test_the_child_stops_quietly_on_a_cut_frame():
    """A parent that dies mid-frame leaves the child with half a frame: it exits, writing
    nothing more, rather than waiting or signing garbage."""
    frame = NODE.seed + (2).to_bytes(4, "big") + bytes(32) + bytes(10)
    done = subprocess.run(
        [sys.executable, "-m", "huskies.signer"], input=frame, capture_output=True, timeout=60
    )
    assert done.returncode == 0
    assert done.stdout == b""
    assert done.stderr == b""
