"""The installed `huskies` command."""

import shutil
import subprocess
import sys

from huskies import __version__


def run(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("huskies")
    command = [exe] if exe else [sys.executable, "-m", "huskies"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"huskies {__version__}"


def test_help_lists_the_commands():
    result = run("--help")
    assert result.returncode == 0
    assert "demo" in result.stdout
    assert "--version" in result.stdout


def test_unknown_command_fails_with_a_message():
    result = run("no-such-command")
    assert result.returncode != 0
    assert "No such command" in result.stderr
