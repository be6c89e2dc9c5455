"""Typed events parsed from a coding agent's output, one line at a time. Pure: no I/O.

Three line formats are understood:

- Claude Code, `claude -p --output-format stream-json --verbose`: `parse_claude_line`.
- Codex, `codex exec --json`: `parse_codex_line`.
- Any other program: `parse_command_line`. A line is text, unless it is a JSON object in huskies'
  own event shape (what `event_to_json` writes) or a Claude Code stream-json event.

Rules shared by the parsers:

- They never raise, and keep no state: one line in, a list of events out.
- A blank line gives [].
- A line that is not a JSON object, or a JSON object whose shape the parser does not know, gives
  [Text(line)]: whatever an agent prints is still shown to people.
- Known events that carry nothing for people or for the supervisor give [] (turn and hook
  bookkeeping, partial-message deltas, thinking and reasoning, progress updates).
- A run's outcome is its `Result`. `Error` is informational (an API retry, a warning); a run
  that fails still ends with `Result(is_error=True)`.
- A rate limit can be reported more than once per run: Claude Code prints a `rate_limit_event`
  (subscriptions only) and then an error message, and each retry is reported. `resets_at` is
  None when a report does not carry a reset time, so keep the latest known one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeAlias, assert_never, cast

from huskies.crdt import Json

__all__ = [
    "AgentEvent",
    "Error",
    "RateLimit",
    "Result",
    "SessionStarted",
    "Text",
    "ToolResult",
    "ToolUse",
    "Usage",
    "event_to_json",
    "parse_claude_line",
    "parse_codex_line",
    "parse_command_line",
]


@dataclass(frozen=True, slots=True)
class Text:
    """Text the agent wrote for people (or a line of a program's output)."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolUse:
    """The agent called tool `name` with `input`; its `ToolResult` carries the same `id`."""

    id: str
    name: str
    input: dict[str, Json]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool call returned."""

    tool_use_id: str
    output: str
    is_error: bool


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens, counted as the Anthropic API does: `input_tokens` excludes cached input."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Result:
    """The end of a run. `cost_usd`, `turns` and `duration_ms` are None when not reported."""

    is_error: bool
    cost_usd: float | None
    usage: Usage
    turns: int | None
    duration_ms: int | None
    text: str


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The provider refused a request for a rate or usage limit. `resets_at` is in
    milliseconds since the epoch, None if unknown."""

    resets_at: int | None
    message: str


@dataclass(frozen=True, slots=True)
class Error:
    """An error the agent reported (not necessarily the end of the run)."""

    message: str


@dataclass(frozen=True, slots=True)
class SessionStarted:
    """The agent started: its session id, model, tools and MCP servers as (name, status)."""

    session_id: str
    model: str
    tools: tuple[str, ...]
    mcp_servers: tuple[tuple[str, str], ...]


AgentEvent: TypeAlias = Text | ToolUse | ToolResult | Result | RateLimit | Error | SessionStarted

_Obj: TypeAlias = dict[str, object]


# -- Reading JSON values without trusting their shape ---------------------------------------


def _reject(token: str) -> float:
    raise ValueError(f"not JSON: {token}")


def _finite(token: str) -> float:
    value = float(token)
    if value in (float("inf"), float("-inf")):  # 1e999: JSON has no infinities
        raise ValueError(f"number out of range: {token}")
    return value


def _load_object(line: str) -> _Obj | None:
    """The JSON object on `line`, or None if the line is anything else."""
    try:
        value: object = json.loads(line, parse_constant=_reject, parse_float=_finite)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return None
    return _obj(value)


def _obj(value: object) -> _Obj | None:
    # json.loads only makes dicts with str keys.
    return value if isinstance(value, dict) else None


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _str(value: object, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _int(value: object) -> int | None:
    # bool is an int in Python but never a count in JSON.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: object) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer with hundreds of digits
        return None


def _json_obj(value: object) -> dict[str, Json]:
    """A JSON object as huskies' Json type ({} for anything else). Values from json.loads are
    Json by construction, so no copy or check is needed."""
    return cast("dict[str, Json]", value) if isinstance(value, dict) else {}


def _text(line: str) -> Text:
    return Text(line.rstrip("\r\n"))


def _usage(value: object) -> Usage:
    usage = _obj(value) or {}
    return Usage(
        input_tokens=_int(usage.get("input_tokens")) or 0,
        output_tokens=_int(usage.get("output_tokens")) or 0,
        cache_creation_input_tokens=_int(usage.get("cache_creation_input_tokens")) or 0,
        cache_read_input_tokens=_int(usage.get("cache_read_input_tokens")) or 0,
    )


def _block_text(content: object) -> str:
    """Tool output, which is a string or a list of content blocks (text, image, ...)."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for item in _list(content):
        block = _obj(item) or {}
        kind = _str(block.get("type"), "unknown")
        parts.append(_str(block.get("text")) if kind == "text" else f"[{kind}]")
    return "\n".join(parts)


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _shown(count: int | None) -> str:
    return "?" if count is None else str(count)


# -- Claude Code stream-json -----------------------------------------------------------------

# Known top-level events with nothing in them for huskies.
_CLAUDE_QUIET = frozenset(
    {
        "stream_event",  # partial-message deltas (--include-partial-messages)
        "tool_progress",
        "tool_use_summary",
        "auth_status",
        "prompt_suggestion",
        "keep_alive",
        "control_request",
        "control_response",
        "control_cancel_request",
    }
)


def parse_claude_line(line: str) -> list[AgentEvent]:
    """Events from one line of `claude -p --output-format stream-json --verbose`."""
    if not line.strip():
        return []
    event = _load_object(line)
    parsed = _claude_event(event) if event is not None else None
    return parsed if parsed is not None else [_text(line)]


def _claude_event(event: _Obj) -> list[AgentEvent] | None:
    """None if `event` is not a Claude stream-json event this parser knows."""
    kind = _str(event.get("type"))  # a str: lists and dicts cannot be looked up in sets
    if kind == "system":
        return _claude_system(event)
    if kind == "assistant":
        return _claude_assistant(event)
    if kind == "user":
        return _claude_user(event)
    if kind == "result":
        return [_claude_result(event)]
    if kind == "rate_limit_event":
        return _claude_rate_limit(event)
    if kind in _CLAUDE_QUIET:
        return []
    return None


def _claude_system(event: _Obj) -> list[AgentEvent] | None:
    subtype = event.get("subtype")
    if subtype == "init":
        session_id = event.get("session_id")
        if not isinstance(session_id, str):
            return None
        servers = [_obj(s) or {} for s in _list(event.get("mcp_servers"))]
        return [
            SessionStarted(
                session_id=session_id,
                model=_str(event.get("model")),
                tools=tuple(t for t in _list(event.get("tools")) if isinstance(t, str)),
                mcp_servers=tuple(
                    (_str(s.get("name")), _str(s.get("status"))) for s in servers if "name" in s
                ),
            )
        ]
    if subtype == "api_retry":
        # Claude Code failed an API call and will try again after retry_delay_ms.
        status = _int(event.get("error_status"))
        error = _str(event.get("error"), "error")
        delay = _num(event.get("retry_delay_ms")) or 0.0
        attempt, retries = _int(event.get("attempt")), _int(event.get("max_retries"))
        message = (
            f"API {error} (HTTP {_shown(status)}); retry {_shown(attempt)}/{_shown(retries)} "
            f"in {delay / 1000:.1f} s"
        )
        return [
            RateLimit(None, message) if error == "rate_limit" or status == 429 else Error(message)
        ]
    # Hooks, compaction, status notices: Claude Code's bookkeeping.
    return [] if isinstance(subtype, str) else None


def _claude_assistant(event: _Obj) -> list[AgentEvent] | None:
    message = _obj(event.get("message"))
    if message is None or not isinstance(message.get("content"), list):
        return None
    blocks = [b for b in map(_obj, _list(message.get("content"))) if b is not None]
    error = event.get("error")
    if isinstance(error, str):
        # Claude Code turns a failed API call into a synthetic assistant message whose text
        # is the error ("API Error: ...", "You've hit your session limit · resets 4pm").
        text = "\n".join(_str(b.get("text")) for b in blocks if b.get("type") == "text") or error
        return [RateLimit(None, text) if error == "rate_limit" else Error(text)]
    events: list[AgentEvent] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text" and _str(block.get("text")):
            events.append(Text(_str(block.get("text"))))
        elif kind in ("tool_use", "server_tool_use") and isinstance(block.get("name"), str):
            events.append(
                ToolUse(
                    _str(block.get("id")), _str(block.get("name")), _json_obj(block.get("input"))
                )
            )
        # thinking and redacted_thinking blocks are the model's scratch work: not shown.
    return events


def _claude_user(event: _Obj) -> list[AgentEvent] | None:
    message = _obj(event.get("message"))
    if message is None:
        return None
    content = message.get("content")
    if isinstance(content, str):
        return []  # the prompt, echoed back
    if not isinstance(content, list):
        return None
    return [
        ToolResult(
            tool_use_id=_str(block.get("tool_use_id")),
            output=_block_text(block.get("content")),
            is_error=block.get("is_error") is True,
        )
        for block in map(_obj, content)
        if block is not None and block.get("type") == "tool_result"
    ]


def _claude_result(event: _Obj) -> Result:
    subtype = _str(event.get("subtype"))
    # Success carries the final text in `result`; error_max_turns and friends carry `errors`.
    text = event.get("result")
    if not isinstance(text, str):
        text = "\n".join(e for e in _list(event.get("errors")) if isinstance(e, str)) or subtype
    return Result(
        is_error=event.get("is_error") is True or subtype.startswith("error"),
        cost_usd=_num(event.get("total_cost_usd")),
        usage=_usage(event.get("usage")),
        turns=_int(event.get("num_turns")),
        duration_ms=_int(event.get("duration_ms")),
        text=text,
    )


def _claude_rate_limit(event: _Obj) -> list[AgentEvent] | None:
    info = _obj(event.get("rate_limit_info"))
    if info is None:
        return None
    if info.get("status") != "rejected":
        return []  # "allowed" and "allowed_warning" are usage reports, not limits
    seconds = _num(info.get("resetsAt"))  # seconds since the epoch
    # Beyond the year 5000 is not a reset time (and would overflow the conversion).
    resets_at = round(seconds * 1000) if seconds is not None and 0 < seconds < 1e11 else None
    message = f"{_str(info.get('rateLimitType'), 'rate')} limit reached"
    if resets_at is not None:
        message += f"; resets {_utc(resets_at)}"
    return [RateLimit(resets_at, message)]


# -- Codex exec --json -----------------------------------------------------------------------

_RATE_LIMITED = re.compile(r"rate.?limit|usage limit|too many requests|\b429\b", re.IGNORECASE)
_CODEX_QUIET_ITEMS = frozenset({"reasoning", "todo_list", "plan", "collab_tool_call"})
_CODEX_ITEMS = _CODEX_QUIET_ITEMS | {
    "agent_message",
    "command_execution",
    "file_change",
    "mcp_tool_call",
    "web_search",
    "error",
}


def parse_codex_line(line: str) -> list[AgentEvent]:
    """Events from one line of `codex exec --json`.

    Codex counts cached input inside `input_tokens`; `Usage` does not (as Anthropic), so
    `Usage.input_tokens` is Codex's input minus its cached input. Codex reports no cost, turn
    count or duration, and its final message comes as an `agent_message` before
    `turn.completed`, so its `Result` has `cost_usd`, `turns`, `duration_ms` None and no text.
    Tool names are Codex's item types (`command_execution`, `file_change`, `web_search`), MCP
    tools are `mcp__<server>__<tool>` as in Claude Code.
    """
    if not line.strip():
        return []
    event = _load_object(line)
    parsed = _codex_event(event) if event is not None else None
    return parsed if parsed is not None else [_text(line)]


def _codex_event(event: _Obj) -> list[AgentEvent] | None:
    kind = _str(event.get("type"))
    if kind == "thread.started":
        thread_id = event.get("thread_id")
        return [SessionStarted(thread_id, "", (), ())] if isinstance(thread_id, str) else None
    if kind in ("turn.started", "item.plan.delta"):
        return []
    if kind == "turn.completed":
        usage = _obj(event.get("usage")) or {}
        cached = _int(usage.get("cached_input_tokens")) or 0
        tokens = Usage(
            input_tokens=max(0, (_int(usage.get("input_tokens")) or 0) - cached),
            output_tokens=_int(usage.get("output_tokens")) or 0,
            cache_read_input_tokens=cached,
        )
        return [Result(False, None, tokens, None, None, "")]
    if kind == "turn.failed":
        message = _str((_obj(event.get("error")) or {}).get("message"), "turn failed")
        failed = Result(True, None, Usage(), None, None, message)
        return [RateLimit(None, message), failed] if _RATE_LIMITED.search(message) else [failed]
    if kind == "error":
        error = event.get("message")
        if not isinstance(error, str):
            return None
        return [RateLimit(None, error) if _RATE_LIMITED.search(error) else Error(error)]
    if kind in ("item.started", "item.updated", "item.completed"):
        item = _obj(event.get("item"))
        if item is None or _str(item.get("type")) not in _CODEX_ITEMS:
            return None
        return _codex_item(kind, item)
    return None


def _codex_item(phase: str, item: _Obj) -> list[AgentEvent]:
    """Tool calls become a ToolUse when started and a ToolResult when completed; updates are
    progress and give nothing."""
    kind = _str(item.get("type"))
    item_id = _str(item.get("id"))
    started, completed = phase == "item.started", phase == "item.completed"
    status = item.get("status")
    if kind in _CODEX_QUIET_ITEMS or not (started or completed):
        return []
    if kind == "agent_message":
        text = _str(item.get("text"))
        return [Text(text)] if completed and text else []
    if kind == "error":
        return [Error(_str(item.get("message")))] if completed else []
    if kind == "command_execution":
        if started:
            return [ToolUse(item_id, kind, {"command": _str(item.get("command"))})]
        exit_code = _int(item.get("exit_code"))
        failed = status in ("failed", "declined") or exit_code not in (None, 0)
        return [ToolResult(item_id, _str(item.get("aggregated_output")), failed)]
    if kind == "file_change":
        # Older Codex emits file changes only when completed, so the call is reported then.
        if started:
            return []
        changes = [_obj(c) or {} for c in _list(item.get("changes"))]
        summary = "\n".join(f"{_str(c.get('kind'))} {_str(c.get('path'))}" for c in changes)
        changed: dict[str, Json] = {"changes": cast("list[Json]", _list(item.get("changes")))}
        return [ToolUse(item_id, kind, changed), ToolResult(item_id, summary, status == "failed")]
    if kind == "mcp_tool_call":
        if started:
            name = f"mcp__{_str(item.get('server'))}__{_str(item.get('tool'))}"
            return [ToolUse(item_id, name, _json_obj(item.get("arguments")))]
        error = _obj(item.get("error"))
        result = _obj(item.get("result")) or {}
        output = _str(error.get("message")) if error else _block_text(result.get("content"))
        return [ToolResult(item_id, output, status == "failed" or error is not None)]
    # web_search: Codex does not print what the search found.
    if started:
        return [ToolUse(item_id, kind, {"query": _str(item.get("query"))})]
    return [ToolResult(item_id, "", status == "failed")]


# -- Any command, and huskies' own JSON shape -------------------------------------------------


def parse_command_line(line: str) -> list[AgentEvent]:
    """Events from one line of any program's output.

    A JSON object is an event if it has huskies' own shape (see `event_to_json`; optional
    fields may be left out) or is a Claude Code stream-json event; anything else is text. A
    `result` with a `subtype` is Claude's (huskies' has none).
    """
    if not line.strip():
        return []
    event = _load_object(line)
    if event is not None:
        kind = _str(event.get("type"))
        claude = kind not in _HUSKIES_TYPES or (kind == "result" and "subtype" in event)
        parsed = _claude_event(event) if claude else _huskies_event(event)
        if parsed is not None:
            return parsed
    return [_text(line)]


_HUSKIES_TYPES = frozenset(
    {"text", "tool_use", "tool_result", "result", "rate_limit", "error", "session_started"}
)


class _WrongShape(Exception):
    """A field is missing or of the wrong type: the object is not an event of that kind."""


_MISSING = object()


def _field(event: _Obj, key: str, kind: type[object], default: object = _MISSING) -> object:
    value = event.get(key, _MISSING)
    if value is _MISSING:
        if default is _MISSING:
            raise _WrongShape(key)
        return default
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise _WrongShape(key)
    return value


def _f_str(event: _Obj, key: str, default: str | None = None) -> str:
    return cast(str, _field(event, key, str, _MISSING if default is None else default))


def _f_bool(event: _Obj, key: str) -> bool:
    return cast(bool, _field(event, key, bool, False))


def _f_int(event: _Obj, key: str) -> int | None:
    return None if event.get(key) is None else cast(int, _field(event, key, int))


def _huskies_event(event: _Obj) -> list[AgentEvent] | None:
    try:
        return [_huskies_shape(event)]
    except _WrongShape:
        return None


def _huskies_shape(event: _Obj) -> AgentEvent:
    kind = event.get("type")
    if kind == "text":
        return Text(_f_str(event, "text"))
    if kind == "tool_use":
        tool_input = _field(event, "input", dict, {})
        return ToolUse(_f_str(event, "id", ""), _f_str(event, "name"), _json_obj(tool_input))
    if kind == "tool_result":
        output = _f_str(event, "output", "")
        return ToolResult(_f_str(event, "tool_use_id"), output, _f_bool(event, "is_error"))
    if kind == "result":
        cost = event.get("cost_usd")
        if cost is not None and _num(cost) is None:
            raise _WrongShape("cost_usd")
        usage = _obj(_field(event, "usage", dict, {})) or {}
        counts = {key: _f_int(usage, key) or 0 for key in _USAGE_KEYS}
        return Result(
            is_error=_f_bool(event, "is_error"),
            cost_usd=_num(cost),
            usage=Usage(**counts),
            turns=_f_int(event, "turns"),
            duration_ms=_f_int(event, "duration_ms"),
            text=_f_str(event, "text", ""),
        )
    if kind == "rate_limit":
        return RateLimit(_f_int(event, "resets_at"), _f_str(event, "message", ""))
    if kind == "error":
        return Error(_f_str(event, "message"))
    servers: list[tuple[str, str]] = []
    for server in cast("list[object]", _field(event, "mcp_servers", list, [])):
        entry = _obj(server)
        if entry is None:
            raise _WrongShape("mcp_servers")
        servers.append((_f_str(entry, "name"), _f_str(entry, "status", "")))
    tools = cast("list[object]", _field(event, "tools", list, []))
    if not all(isinstance(tool, str) for tool in tools):
        raise _WrongShape("tools")
    return SessionStarted(
        _f_str(event, "session_id"),
        _f_str(event, "model", ""),
        tuple(cast("list[str]", tools)),
        tuple(servers),
    )


_USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


def event_to_json(event: AgentEvent) -> dict[str, Json]:
    """huskies' JSON shape of `event`, one object with a `type`; `parse_command_line` reads
    it back as the same event."""
    if isinstance(event, Text):
        return {"type": "text", "text": event.text}
    if isinstance(event, ToolUse):
        return {"type": "tool_use", "id": event.id, "name": event.name, "input": event.input}
    if isinstance(event, ToolResult):
        return {
            "type": "tool_result",
            "tool_use_id": event.tool_use_id,
            "output": event.output,
            "is_error": event.is_error,
        }
    if isinstance(event, Result):
        usage = event.usage
        return {
            "type": "result",
            "is_error": event.is_error,
            "cost_usd": event.cost_usd,
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_creation_input_tokens": usage.cache_creation_input_tokens,
                "cache_read_input_tokens": usage.cache_read_input_tokens,
            },
            "turns": event.turns,
            "duration_ms": event.duration_ms,
            "text": event.text,
        }
    if isinstance(event, RateLimit):
        return {"type": "rate_limit", "resets_at": event.resets_at, "message": event.message}
    if isinstance(event, Error):
        return {"type": "error", "message": event.message}
    if isinstance(event, SessionStarted):
        return {
            "type": "session_started",
            "session_id": event.session_id,
            "model": event.model,
            "tools": list(event.tools),
            "mcp_servers": [{"name": name, "status": status} for name, status in event.mcp_servers],
        }
    assert_never(event)
