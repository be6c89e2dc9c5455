"""A scripted coder for the board's tests and screenshots, run by the `command` runtime as
`python board_agent.py RELEASE`. It reports what it does in huskies' event shape (text, tool
calls and their results), waits until the file RELEASE exists, so that a test sees its output
while it still runs, then writes a notes file, commits it and reports its result. The cost it
reports grows with the item's number, so that items cost different amounts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 0.05  # how often to look for the release file, which another process makes
COST_PER_NUMBER_USD = 0.0421


def say(event: dict[str, object]) -> None:
    print(json.dumps(event), flush=True)


def run(call_id: str, *command: str) -> None:
    """Run a command as a reported Bash tool call, with its output as the result."""
    say(
        {"type": "tool_use", "id": call_id, "name": "Bash", "input": {"command": " ".join(command)}}
    )
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    say({"type": "tool_result", "tool_use_id": call_id, "output": done.stdout.strip() or "(none)"})


def main() -> None:
    release = Path(sys.argv[1])
    number = int(os.environ["HUSKIES_NUMBER"])
    title = os.environ["HUSKIES_TITLE"]
    notes = Path(f"notes-{number}.md")
    say({"type": "text", "text": f"Reading #{number}: {title}"})
    run("status", "git", "status", "--short")
    run("log", "git", "log", "--oneline", "-3")
    say({"type": "text", "text": f"I will write {notes} with what this item needs, then commit."})
    while not release.exists():
        time.sleep(POLL_S)
    notes.write_text(f"# {title}\n")
    say({"type": "tool_use", "id": "write", "name": "Write", "input": {"file_path": str(notes)}})
    say({"type": "tool_result", "tool_use_id": "write", "output": f"wrote {notes}"})
    run("add", "git", "add", str(notes))
    run("commit", "git", "commit", "-q", "-m", f"#{number}: {title}")
    say({"type": "text", "text": f"Committed {notes}"})
    say(
        {
            "type": "result",
            "is_error": False,
            "cost_usd": round(COST_PER_NUMBER_USD * number, 4),
            "usage": {"input_tokens": 18250 * number, "output_tokens": 2310 * number},
            "turns": 4,
            "duration_ms": 5300,
            "text": "Done",
        }
    )


if __name__ == "__main__":
    main()
