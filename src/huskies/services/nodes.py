"""`huskies node …`: the node's id, trusting a peer, issuing join tokens, the server's peers."""

from __future__ import annotations

import json
import re
import sqlite3
import urllib.error
import urllib.request
from datetime import UTC, datetime

from huskies.crdt import node_id as format_node_id
from huskies.crdt import parse_node_id
from huskies.project import Project
from huskies.services.access_token import read_token
from huskies.store import Replica
from huskies.store.database import Store
from huskies.sync.trust import TrustStore, mint_token

_TTL = re.compile(r"^(\d+)([smhd])$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class NodeError(Exception):
    """A node command that cannot be done; the message says why."""


def stored_node_id(project: Project) -> str | None:
    """This node's id if its key exists, read without opening the database for writing (so
    while a server holds it, too)."""
    if not project.db_path.exists():
        return None
    conn = sqlite3.connect(f"file:{project.db_path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT public_key FROM identity").fetchone()
    except sqlite3.Error:
        row = None
    finally:
        conn.close()
    return None if row is None else format_node_id(bytes(row[0]))


async def node_id(project: Project) -> str:
    """This node's id, creating its key on first use."""
    stored = stored_node_id(project)
    if stored is not None:
        return stored
    async with await Replica.open(project.db_path) as replica:
        return replica.node_id


def add_trusted_key(project: Project, key: str) -> bool:
    """Add `key` to sync.trusted_keys in project.toml; False if it was there already."""
    try:
        parse_node_id(key)
    except ValueError as exc:
        raise NodeError(str(exc)) from None
    config = project.config()
    if key in config.sync.trusted_keys:
        return False
    text = project.project_toml.read_text(encoding="utf-8")
    line = re.compile(r"^trusted_keys\s*=\s*\[(.*)\]\s*$", re.MULTILINE)
    match = line.search(text)
    if match is None:
        raise NodeError(
            f"{project.project_toml}: no one-line `trusted_keys = [...]` under [sync]; "
            f"add {key!r} to it by hand"
        )
    keys = [*config.sync.trusted_keys, key]
    listed = ", ".join(f'"{k}"' for k in keys)
    updated = text[: match.start()] + f"trusted_keys = [{listed}]" + text[match.end() :]
    project.project_toml.write_text(updated, encoding="utf-8")
    project.config()  # still valid, or the error names the file and key
    return True


def parse_ttl(text: str) -> int:
    match = _TTL.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise NodeError(f"--ttl {text!r}: give a positive number and a unit: 90s, 30m, 1h or 2d")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


async def issue_token(project: Project, ttl: str, now_ms: int) -> tuple[str, str]:
    """A new one-time join token and when it expires (UTC)."""
    ttl_ms = parse_ttl(ttl)
    issuer = parse_node_id(await node_id(project))
    Store.open(project.db_path).close()  # the schema is current (a running server did that)
    token, secret_hash = mint_token(issuer)
    store = TrustStore(project.db_path)
    try:
        store.add_token(secret_hash, now_ms, ttl_ms)
    finally:
        store.close()
    expires = datetime.fromtimestamp((now_ms + ttl_ms) / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return token, expires


def running_health(project: Project) -> dict[str, object]:
    """The running server's /health, found through its port file."""
    try:
        port = int((project.dir / "server.port").read_text().strip())
    except (OSError, ValueError):
        raise NodeError(
            "no huskies server is running here; start one with `huskies serve`"
        ) from None
    request = urllib.request.Request(f"http://127.0.0.1:{port}/health")
    token = read_token(project)
    if token is not None:  # needed when the server listens beyond loopback
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            health: dict[str, object] = json.load(response)
    except (urllib.error.URLError, OSError) as exc:
        raise NodeError(f"the server on port {port} does not answer ({exc})") from None
    return health
