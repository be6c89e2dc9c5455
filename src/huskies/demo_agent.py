"""`python -m huskies.demo_agent`: the scripted coder of `huskies demo`.

It needs no model and no network beyond the huskies server that started it. The item it works
on says what to do, in a fenced block of TOML in its body, opened by a line of three backticks
followed by `demo-agent`:

    [[attempt]]
    commit = "Add subtract()"
    say = ["Adding subtract() beside add()"]

    [[attempt.write]]
    path = "calc/basic.py"
    text = '''
    ...the whole new file...
    '''

Each run carries out the next attempt: it prints the `say` lines (they become the run's live
output), writes the files into its worktree and commits them. Which attempt is next comes from
the branch itself: every commit the agent makes names the item's id in a
`Huskies-Demo-Item` trailer, and those commits on the branch since the base branch are counted.
That survives server restarts and does not depend on how the server words a retry's prompt.
A run after the last attempt repeats it; if that changes nothing, the agent commits nothing,
and huskies counts a failed attempt as it would for any agent that did no work.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FENCE = "demo-agent"
TRAILER = "Huskies-Demo-Item"

_BLOCK = re.compile(rf"^```{FENCE}[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
# unittest's headline for each failing test ("FAIL: test_x (tests.test_y.Case.test_x)").
_FAILURE = re.compile(r"^(FAIL|ERROR): ")
_SHOWN_FAILURES = 3
_HTTP_TIMEOUT_S = 30
PACE_ENV = "HUSKIES_DEMO_PACE_S"
"""Seconds the agent takes over each line it says (default 0): the live demo sets it, so a person
watching the board sees the work happen rather than a pipeline already finished."""


class DemoAgentError(Exception):
    """The agent cannot do its work; the message says why."""


@dataclass(frozen=True)
class Attempt:
    """One run's work: lines to say, whole files to write (path → text), a commit message."""

    commit: str
    files: Mapping[str, str]
    say: Sequence[str] = field(default=())


def script_block(attempts: Sequence[Attempt]) -> str:
    """The fenced block that tells the demo agent to make `attempts`, for an item's body."""
    lines = [f"```{FENCE}"]
    for attempt in attempts:
        lines += [
            "[[attempt]]",
            f"commit = {toml_string(attempt.commit)}",
            f"say = [{', '.join(toml_string(line) for line in attempt.say)}]",
        ]
        for path, text in attempt.files.items():
            # A literal string keeps the file readable in the body: no escapes to undo.
            if "'''" in text or "```" in text or not text.endswith("\n"):
                raise ValueError(f"{path}: the text must end with a newline and hold no ''' or ```")
            lines += [
                "",
                "[[attempt.write]]",
                f"path = {toml_string(path)}",
                f"text = '''\n{text}'''",
            ]
        lines.append("")
    lines.append("```")
    return "\n".join(lines)


def parse_script(body: str) -> list[Attempt]:
    """The attempts in the demo-agent block of `body`; DemoAgentError if there is none or it
    is malformed."""
    match = _BLOCK.search(body)
    if match is None:
        raise DemoAgentError(f"the item's body has no ```{FENCE} block saying what to do")
    try:
        data = tomllib.loads(match.group(1))
    except tomllib.TOMLDecodeError as exc:
        raise DemoAgentError(f"the ```{FENCE} block is not valid TOML: {exc}") from None
    raw_attempts = data.get("attempt")
    if not isinstance(raw_attempts, list) or not raw_attempts:
        raise DemoAgentError(f"the ```{FENCE} block has no [[attempt]] tables")
    return [_attempt(index, raw) for index, raw in enumerate(raw_attempts, 1)]


def _attempt(index: int, raw: dict[str, Any]) -> Attempt:
    where = f"attempt {index}"
    commit, say, writes = raw.get("commit"), raw.get("say", []), raw.get("write", [])
    if not isinstance(commit, str) or not commit.strip():
        raise DemoAgentError(f"{where}: `commit` must be a commit message")
    if not isinstance(say, list) or not all(isinstance(line, str) for line in say):
        raise DemoAgentError(f"{where}: `say` must be a list of strings")
    if not isinstance(writes, list) or not writes:
        raise DemoAgentError(f"{where}: it needs at least one [[attempt.write]]")
    files: dict[str, str] = {}
    for write in writes:
        path, text = write.get("path"), write.get("text")
        if not isinstance(path, str) or not isinstance(text, str):
            raise DemoAgentError(f"{where}: each write needs a `path` and a `text` (strings)")
        files[path] = text
    return Attempt(commit=commit, files=files, say=tuple(say))


def toml_string(value: str) -> str:
    """`value` as a TOML basic string."""
    # A JSON string is a TOML basic string, except that TOML has no surrogate escapes: keep
    # non-ASCII characters as they are.
    return json.dumps(value, ensure_ascii=False)


# ---- the run ----------------------------------------------------------------------------


def main() -> int:
    try:
        run(os.environ, Path.cwd())
    except DemoAgentError as exc:
        print(f"demo agent: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


def run(env: Mapping[str, str], worktree: Path) -> None:
    """Carry out this run's attempt on the item named in `env`, in `worktree`."""
    say = _speaker(_pace(env))
    item_id, number = _env(env, "HUSKIES_ITEM_ID"), _env(env, "HUSKIES_NUMBER")
    title = env.get("HUSKIES_TITLE", "")
    attempts = parse_script(_fetch_body(_env(env, "HUSKIES_SERVER"), item_id))
    done = _attempts_made(worktree, _env(env, "HUSKIES_BASE_BRANCH"), item_id)
    attempt = attempts[min(done, len(attempts) - 1)]
    say(f'#{number} "{title}": attempt {done + 1} (the script has {len(attempts)})')
    if done:
        say(f"attempt {done} did not get through; what the gates said:")
        prompt = env.get("HUSKIES_PROMPT", "")
        failures = [line for line in prompt.splitlines() if _FAILURE.match(line)]
        for line in failures[:_SHOWN_FAILURES] or ["(no test failures in my prompt)"]:
            say(f"  {line}")
    for line in attempt.say:
        say(line)
    paths = [_write(worktree, path, text, say) for path, text in attempt.files.items()]
    _git(worktree, "add", "--", *paths)
    if _git(worktree, "diff", "--cached", "--quiet", check=False).returncode == 0:
        say("nothing left to change: this work is already committed")
        return
    _git(worktree, "commit", "--quiet", "-m", attempt.commit, "-m", f"{TRAILER}: {item_id}")
    sha = _git(worktree, "rev-parse", "--short", "HEAD").stdout.strip()
    say(f"committed {sha} {attempt.commit}")


def _env(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise DemoAgentError(f"${name} is not set; huskies sets it for every agent run")
    return value


def _fetch_body(server: str, item_id: str) -> str:
    """The item's body, from the server's API. Found by id, which never changes (a number can,
    when two nodes gave out the same one)."""
    url = f"{server}/api/items?all=true"
    try:
        with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT_S) as response:
            listing = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DemoAgentError(f"cannot read the board from {url}: {exc}") from None
    for item in listing.get("items", []):
        if item.get("id") == item_id:
            return str(item.get("body", ""))
    raise DemoAgentError(f"item {item_id} is not on the board at {server}")


def _attempts_made(worktree: Path, base: str, item_id: str) -> int:
    """How many of this agent's runs on the item committed on the branch since `base`."""
    grep = f"--grep={TRAILER}: {item_id}"
    counted = _git(worktree, "rev-list", "--count", "--fixed-strings", grep, f"{base}..HEAD")
    return int(counted.stdout.strip())


def _write(worktree: Path, path: str, text: str, say: Callable[[str], None]) -> str:
    """Write one file of the attempt; only inside the worktree, and never into git's files."""
    root = worktree.resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or target == root or ".git" in Path(path).parts:
        raise DemoAgentError(f"refusing to write {path!r}: it is not a file in the worktree")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    say(f"wrote {path}")
    return path


def _git(worktree: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["git", *args], cwd=worktree, capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        detail = result.stderr.strip() or result.stdout.strip()
        raise DemoAgentError(f"git {' '.join(args)} failed: {detail}")
    return result


def _pace(env: Mapping[str, str]) -> float:
    text = env.get(PACE_ENV, "0")
    try:
        pace = float(text)
    except ValueError:
        raise DemoAgentError(f"${PACE_ENV} must be a number of seconds, got {text!r}") from None
    if not 0 <= pace <= 10:
        raise DemoAgentError(f"${PACE_ENV} must be from 0 to 10 seconds, got {text!r}")
    return pace


def _speaker(pace_s: float) -> Callable[[str], None]:
    """How the agent says a line: printed and flushed at once (each line is its live output on
    the board), then `pace_s` seconds taken over it."""

    def say(line: str) -> None:
        print(line, flush=True)
        time.sleep(pace_s)

    return say


if __name__ == "__main__":
    sys.exit(main())
