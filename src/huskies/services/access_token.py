"""The HTTP API's access token: when it is needed, and the file that keeps it.

A server that listens beyond loopback can be reached by anyone on the network, so it requires
a bearer token on every route but `/crdt-sync` (peers authenticate there with their node keys).
The token is made on first need and kept in `.huskies/access-token`, readable by its owner only,
where the CLI on the same machine finds it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets
import stat
import tempfile
from pathlib import Path

from huskies.project import Project

log = logging.getLogger("huskies.access")

FILE_NAME = "access-token"
HOW_TO_FIND = (
    "the token is in .huskies/access-token on the server's machine (`huskies serve` printed "
    "it when it made it); send it as `Authorization: Bearer <token>`"
)


def is_loopback(host: str) -> bool:
    """True if `host` (as given to `huskies serve --host`) only accepts connections from this
    machine: localhost, 127.0.0.0/8 or ::1. Wildcards (0.0.0.0, ::) and names are not."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def token_path(project: Project) -> Path:
    return project.dir / FILE_NAME


def read_token(project: Project) -> str | None:
    """The token, or None if none was made (or the file is empty)."""
    try:
        token = token_path(project).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return token or None


def ensure_token(project: Project) -> tuple[str, bool]:
    """The token, and whether it was made just now (so it is printed once, never again).

    Call it holding the database's writer lock (as `huskies serve` does), so two processes
    never both make one.
    """
    path = token_path(project)
    existing = read_token(project)
    if existing is not None:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            path.chmod(0o600)
            log.warning(
                "%s could be read by other users (mode %o); it is now 0600, but if anyone "
                "else may have read it, delete it and restart the server for a new token",
                path,
                mode,
            )
        return existing, False
    token = secrets.token_urlsafe(32)
    # mkstemp creates the file 0600, so the token is never readable by others, not even
    # before a chmod; the rename makes it appear whole.
    fd, temporary = tempfile.mkstemp(dir=project.dir, prefix=f".{FILE_NAME}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(token + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _keep_out_of_git(project)
    return token, True


def _keep_out_of_git(project: Project) -> None:
    """Projects initialised before the token existed have a .gitignore without it."""
    ignore = project.dir / ".gitignore"
    try:
        text = ignore.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    if FILE_NAME not in text.splitlines():
        with ignore.open("a", encoding="utf-8") as file:
            file.write(("\n" if text and not text.endswith("\n") else "") + f"{FILE_NAME}\n")
