"""A scripted agent for the lifecycle tests, run by the `command` runtime as
`python lifecycle_agent.py ROLE`. It does what each test item's title asks, with real git.

Coder titles it understands (the first word picks the behaviour):
- "write NAME TEXT": write NAME with TEXT and commit;
- "flaky NAME": commit NAME holding BUG (the gates refuse it) unless the prompt says the gates
  failed, then commit it fixed;
- "empty NAME": commit NAME, then commit its removal (commits ahead, nothing to merge);
- "conflict NAME TEXT": like write, but on a file another item also writes.
The mergemaster resolves a conflicted squash by taking both sides' lines and committing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def commit(message: str) -> None:
    git("add", "-A")
    git("commit", "-q", "-m", message)
    print(f"committed: {message}", flush=True)


def coder() -> None:
    words = os.environ["HUSKIES_TITLE"].split()
    verb, name = words[0], Path(words[1])
    number = os.environ["HUSKIES_NUMBER"]
    if verb in ("write", "conflict"):
        name.write_text(" ".join(words[2:]) + "\n")
        commit(f"#{number}: {name}")
    elif verb == "flaky":
        fixed = "gates failed" in os.environ["HUSKIES_PROMPT"]
        name.write_text("fixed\n" if fixed else "BUG\n")
        commit(f"#{number}: {name} ({'fixed' if fixed else 'first try'})")
    elif verb == "empty":
        name.write_text("temporary\n")
        commit(f"#{number}: add {name}")
        name.unlink()
        commit(f"#{number}: remove {name}")
    elif verb == "spike":
        Path("NOTES.md").write_text("Findings: none worth merging.\n")
        commit(f"#{number}: notes")
    else:
        print(f"no idea how to {verb}", flush=True)
        sys.exit(2)


def mergemaster() -> None:
    conflicted = git("diff", "--name-only", "--diff-filter=U").split()
    print(f"resolving {conflicted}", flush=True)
    for name in conflicted:
        kept = [
            line
            for line in Path(name).read_text().splitlines()
            if not line.startswith(("<<<<<<<", "=======", ">>>>>>>"))
        ]
        Path(name).write_text("\n".join(kept) + "\n")
    commit("resolve the squash conflict")


if __name__ == "__main__":
    {"coder": coder, "mergemaster": mergemaster}[sys.argv[1]]()
