"""Fixtures for agent tests: the real Claude Code CLI and the scripted fake model."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .fake_model import FakeModel

REPO = Path(__file__).resolve().parents[2]
CLAUDE_VERSION = "2.1.197"
CLAUDE_INSTALL = (
    "npm install --silent --no-audit --no-fund --prefix .venv/node "
    f"@anthropic-ai/claude-code@{CLAUDE_VERSION}"
)


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    """The `claude` executable installed by .ci/run into the git-ignored .venv/node."""
    path = REPO / ".venv" / "node" / "node_modules" / ".bin" / "claude"
    if not os.access(path, os.X_OK):
        pytest.fail(f"Claude Code is not installed at {path}; from {REPO} run: {CLAUDE_INSTALL}")
    version = subprocess.run(
        [path, "--version"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    # The tests pin the CLI's output and request shapes, so they need the verified version.
    if not version.startswith(CLAUDE_VERSION):
        pytest.fail(f"{path} is {version.strip()!r}, not {CLAUDE_VERSION}; run: {CLAUDE_INSTALL}")
    return path


@pytest.fixture
def fake_model() -> Iterator[FakeModel]:
    """A running fake Anthropic API with an empty script: add turns with `fake_model.add()`."""
    with FakeModel() as fake:
        yield fake
