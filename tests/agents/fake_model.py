"""A scripted fake of the Anthropic Messages API, served over real HTTP on 127.0.0.1.

Point Claude Code at it with `ANTHROPIC_BASE_URL` (see `claude_env`). The fake holds a script of
turns; every *main* request (one that offers tools: the agent loop) takes the next turn. When the
script is exhausted it answers "done" with `end_turn`, so an agent always finishes.

Side requests do not consume the script: `HEAD /` (Claude Code probes the base URL before its
first call), `count_tokens`, and any message request without tools (title or summary generation,
quota checks) get a short plain-text answer. Every request is recorded, so tests can assert what
the agent sent back (for example the `tool_result` of a tool the fake asked for).

The server runs in a daemon thread with stdlib `http.server`, so it works the same from sync and
async tests: it never needs the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from huskies.crdt import Json

FINAL_TEXT = "done"
SIDE_TEXT = "ok"


@dataclass(frozen=True, slots=True)
class Reply:
    """A text answer that ends the agent's turn (`stop_reason: end_turn`)."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One `tool_use` block: the agent should run tool `name` with `input`."""

    name: str
    input: dict[str, Json]


@dataclass(frozen=True, slots=True)
class ToolCalls:
    """An answer asking for one or more tools (`stop_reason: tool_use`), after optional text."""

    calls: tuple[ToolCall, ...]
    text: str = ""


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An API error: HTTP `status` with the Messages API error body and extra headers."""

    status: int
    error_type: str
    message: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Hold:
    """Keep the request open, unanswered, until `FakeModel.release()` (or close); then answer
    with `then`. Lets a test catch an agent in the middle of a model call."""

    then: Reply | ToolCalls | ErrorReply = Reply(FINAL_TEXT)


Turn = Reply | ToolCalls | ErrorReply | Hold


def tool(name: str, **input: Json) -> ToolCalls:
    """A turn asking for a single tool call."""
    return ToolCalls((ToolCall(name, dict(input)),))


def rate_limited(reset_at: int, retry_after: int = 0, message: str = "") -> ErrorReply:
    """A 429 `rate_limit_error` as the API sends it; `reset_at` is in seconds since the epoch."""
    return ErrorReply(
        429,
        "rate_limit_error",
        message or "This request would exceed your account's rate limit.",
        (
            ("retry-after", str(retry_after)),
            ("anthropic-ratelimit-unified-status", "rejected"),
            ("anthropic-ratelimit-unified-reset", str(reset_at)),
            ("anthropic-ratelimit-unified-representative-claim", "five_hour"),
        ),
    )


@dataclass(frozen=True, slots=True)
class Request:
    """One request the fake received. `body` is the parsed JSON body, None if there was none."""

    method: str
    path: str
    headers: dict[str, str]
    body: Json
    main: bool

    def messages(self) -> list[dict[str, Json]]:
        """The conversation sent with a messages request (empty for anything else)."""
        messages = self.body.get("messages") if isinstance(self.body, dict) else None
        return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []

    def tool_results(self) -> list[dict[str, Json]]:
        """Every `tool_result` block in the conversation this request carried."""
        found: list[dict[str, Json]] = []
        for message in self.messages():
            content = message.get("content")
            if message.get("role") == "user" and isinstance(content, list):
                found += [
                    b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"
                ]
        return found


@dataclass
class _State:
    script: list[Turn]
    requests: list[Request] = field(default_factory=list)
    messages: int = 0


class FakeModel:
    """The fake API server. Use as a context manager (or `start()` / `close()`)."""

    def __init__(
        self,
        script: Iterable[Turn] = (),
        *,
        input_tokens: int = 1200,
        output_tokens: int = 80,
    ) -> None:
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self._state = _State(list(script))
        self._changed = threading.Condition()
        self._released = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeModel:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        # A short poll interval so that close() (which waits for the next poll) is quick.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="fake-model", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._released.set()  # a held request must not keep a handler thread alive
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FakeModel:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The base URL to give the agent as `ANTHROPIC_BASE_URL`."""
        if self._server is None:
            raise RuntimeError("the fake model is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- script and records ----------------------------------------------------------------

    def add(self, *turns: Turn) -> None:
        """Append turns to the script (also while an agent is running)."""
        with self._changed:
            self._state.script.extend(turns)

    def release(self) -> None:
        """Answer every held request (see `Hold`), now and later."""
        self._released.set()

    @property
    def requests(self) -> list[Request]:
        with self._changed:
            return list(self._state.requests)

    @property
    def main_requests(self) -> list[Request]:
        return [r for r in self.requests if r.main]

    @property
    def remaining(self) -> int:
        """Scripted turns not yet served."""
        with self._changed:
            return len(self._state.script)

    def tool_results(self) -> list[dict[str, Json]]:
        """The distinct `tool_result` blocks the agent sent, in order (each later request
        repeats the whole conversation, so blocks are deduplicated by `tool_use_id`)."""
        seen: dict[str, dict[str, Json]] = {}
        for request in self.main_requests:
            for block in request.tool_results():
                seen.setdefault(str(block.get("tool_use_id")), block)
        return list(seen.values())

    def wait_for(self, predicate: Callable[[list[Request]], bool], timeout: float = 30) -> None:
        """Block until `predicate(requests)` holds; raise TimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self._state.requests):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"fake model: condition not met after {timeout} s")
                self._changed.wait(left)

    async def until(self, predicate: Callable[[list[Request]], bool], timeout: float = 30) -> None:
        """`wait_for` for async tests: waits in a worker thread, not on the event loop."""
        await asyncio.to_thread(self.wait_for, predicate, timeout)

    # -- serving (called from handler threads) ---------------------------------------------

    def _record(self, request: Request) -> Turn | None:
        """Record `request`; for a main request, take its turn from the script."""
        with self._changed:
            self._state.requests.append(request)
            turn: Turn | None = None
            if request.main:
                turn = self._state.script.pop(0) if self._state.script else Reply(FINAL_TEXT)
            self._changed.notify_all()
            return turn

    def _wait_released(self) -> None:
        self._released.wait()

    def _next_message(self) -> int:
        with self._changed:
            self._state.messages += 1
            return self._state.messages


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeModel


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as the Anthropic SDK expects
    timeout = 60  # drop idle keep-alive connections eventually

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the records are the log."""

    def do_HEAD(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Json = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        path = self.path.split("?", 1)[0]
        fields = body if isinstance(body, dict) else {}
        is_messages = self.command == "POST" and path == "/v1/messages"
        headers = {k.lower(): v for k, v in self.headers.items()}
        turn = fake._record(
            Request(
                self.command, self.path, headers, body, is_messages and bool(fields.get("tools"))
            )
        )
        if path == "/v1/messages/count_tokens":
            self._send(200, "application/json", _dumps({"input_tokens": fake.input_tokens}))
        elif not is_messages:
            self._send(200, "application/json", b"{}")
        else:
            model = str(fields.get("model") or "claude-fake")
            self._answer(turn or Reply(_side_text(fields)), model, fields.get("stream") is True)

    def _answer(self, turn: Turn, model: str, stream: bool) -> None:
        fake = self.server.fake
        if isinstance(turn, Hold):
            fake._wait_released()
            turn = turn.then
        if isinstance(turn, ErrorReply):
            error: Json = {
                "type": "error",
                "error": {"type": turn.error_type, "message": turn.message},
            }
            self._send(turn.status, "application/json", _dumps(error), turn.headers)
            return
        number = fake._next_message()
        blocks: list[Json] = [{"type": "text", "text": turn.text}] if turn.text else []
        if isinstance(turn, ToolCalls):
            blocks += [
                {
                    "type": "tool_use",
                    "id": f"toolu_fake_{number:04d}_{n}",
                    "name": c.name,
                    "input": c.input,
                }
                for n, c in enumerate(turn.calls)
            ]
        usage: dict[str, Json] = {
            "input_tokens": fake.input_tokens,
            "output_tokens": fake.output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        message: dict[str, Json] = {
            "id": f"msg_fake_{number:04d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": "tool_use" if isinstance(turn, ToolCalls) else "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        if stream:
            self._send(200, "text/event-stream", b"".join(_sse(message)))
        else:
            self._send(200, "application/json", _dumps(message))

    def _send(
        self,
        status: int,
        content_type: str,
        payload: bytes,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        self.send_header("request-id", "req_fake")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


def _side_text(body: dict[str, Json]) -> str:
    """The answer to a side request: a value of the JSON schema it asks for (Claude Code's
    session title call wants `{"title": ...}`), else a short text."""
    config = body.get("output_config")
    output_format = config.get("format") if isinstance(config, dict) else None
    if isinstance(output_format, dict) and output_format.get("type") == "json_schema":
        return json.dumps(_example(output_format.get("schema")))
    return SIDE_TEXT


def _example(schema: Json) -> Json:
    """The simplest value that `schema` accepts (required properties only)."""
    if not isinstance(schema, dict):
        return SIDE_TEXT
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties")
        required = schema.get("required")
        if not isinstance(properties, dict) or not isinstance(required, list):
            return {}
        return {k: _example(properties.get(k)) for k in required if isinstance(k, str)}
    simple: dict[str, Json] = {
        "array": [],
        "integer": 0,
        "number": 0,
        "boolean": False,
        "null": None,
    }
    return simple.get(str(kind), SIDE_TEXT)


def _dumps(value: Json) -> bytes:
    return json.dumps(value).encode()


def _event(name: str, data: Mapping[str, Json]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def _sse(message: dict[str, Json]) -> Iterator[bytes]:
    """The streaming form of a complete `message`: start, each block, delta with usage, stop."""
    usage = message["usage"]
    assert isinstance(usage, dict)
    blocks = message["content"]
    assert isinstance(blocks, list)
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield _event("message_start", {"type": "message_start", "message": start})
    for index, block in enumerate(blocks):
        assert isinstance(block, dict)
        if block["type"] == "text":
            opening: dict[str, Json] = {"type": "text", "text": ""}
            delta: dict[str, Json] = {"type": "text_delta", "text": block["text"]}
        else:
            opening = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        yield _event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": opening},
        )
        yield _event(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )
        yield _event("content_block_stop", {"type": "content_block_stop", "index": index})
    yield _event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield _event("message_stop", {"type": "message_stop"})


def claude_env(fake: FakeModel, home: Path, path: str | None = None) -> dict[str, str]:
    """A minimal environment for running Claude Code against `fake`, with `home` as its home,
    config and temporary directory, so nothing is read from or written to the real home or
    /tmp/claude-<uid> (where the Bash tool keeps its output files)."""
    return {
        "PATH": path if path is not None else os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "CLAUDE_CODE_TMPDIR": str(home / "tmp"),
        "TMPDIR": str(home / "tmp"),
        "ANTHROPIC_BASE_URL": fake.url,
        "ANTHROPIC_API_KEY": "sk-ant-fake",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


def claude_agent_toml(
    fake: FakeModel,
    home: Path,
    *,
    name: str = "claude",
    stage: str = "coder",
    prompt: str = "Work on story {number}: {title}, in {worktree} on {branch}.",
    tools: tuple[str, ...] = ("Read", "Write", "Bash"),
    **env: str,
) -> str:
    """An `[[agent]]` of agents.toml running Claude Code against `fake` (with `home` as in
    `claude_env`), committing as "Claude"; `env` adds or overrides variables."""
    environment = {key: value for key, value in claude_env(fake, home).items() if key != "PATH"}
    environment.update(
        {
            "GIT_AUTHOR_NAME": "Claude",
            "GIT_AUTHOR_EMAIL": "claude@example.com",
            "GIT_COMMITTER_NAME": "Claude",
            "GIT_COMMITTER_EMAIL": "claude@example.com",
            **env,
        }
    )
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    table = ", ".join(f"{key} = {json.dumps(value)}" for key, value in environment.items())
    return (
        f'[[agent]]\nname = "{name}"\nstage = "{stage}"\nruntime = "claude-code"\n'
        f'model = "sonnet"\nmax_turns = 10\nmax_budget_usd = 2.0\n'
        f"allowed_tools = {json.dumps(list(tools))}\nenv = {{ {table} }}\n"
        f"prompt = {json.dumps(prompt)}\n"
    )
