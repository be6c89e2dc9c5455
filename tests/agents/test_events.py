"""The agent output parsers, on lines recorded from the real Claude Code CLI (2.1.197, talking
to tests/agents/fake_model.py), on Codex `exec --json` shapes (from codex-rs/exec/src/
exec_events.rs), on bad lines, and the event_to_json / parse_command_line round trip."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from huskies.agents.events import (
    AgentEvent,
    Error,
    RateLimit,
    Result,
    SessionStarted,
    Text,
    ToolResult,
    ToolUse,
    Usage,
    event_to_json,
    parse_claude_line,
    parse_codex_line,
    parse_command_line,
)
from huskies.crdt import Json

PARSERS = [parse_claude_line, parse_codex_line, parse_command_line]


def line(event: object) -> str:
    """The line as Claude Code prints it (JSON.stringify: compact, non-ASCII kept)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n"


# -- Lines printed by `claude -p --output-format stream-json --verbose` -----------------------
# Recorded verbatim, except that the long name lists of INIT are shortened.

INIT: dict[str, Json] = {
    "type": "system",
    "subtype": "init",
    "cwd": "/tmp/tmp_k9jk9pu/repo",
    "session_id": "0975bcde-0a92-4bf1-8c52-0c41aeae5978",
    "tools": ["Task", "Bash", "Edit", "Read", "Write"],
    "mcp_servers": [],
    "model": "claude-opus-4-8[1m]",
    "permissionMode": "acceptEdits",
    "slash_commands": ["deep-research", "update-config"],
    "apiKeySource": "ANTHROPIC_API_KEY",
    "claude_code_version": "2.1.197",
    "output_style": "default",
    "agents": ["claude", "Explore"],
    "skills": ["deep-research", "update-config"],
    "plugins": [],
    "analytics_disabled": True,
    "product_feedback_disabled": True,
    "uuid": "503e5803-7cc1-4264-b00f-a4eaec223125",
    "memory_paths": {
        "auto": "/tmp/tmp_k9jk9pu/home/.claude/projects/-tmp-tmp-k9jk9pu-repo/memory/"
    },
    "fast_mode_state": "off",
}

WRITE_CALL: dict[str, Json] = {
    "type": "assistant",
    "message": {
        "id": "msg_fake_0001",
        "type": "message",
        "role": "assistant",
        "model": "claude-opus-4-8",
        "content": [
            {
                "type": "tool_use",
                "id": "toolu_fake_0001_0",
                "name": "Write",
                "input": {"file_path": "/tmp/tmp_k9jk9pu/repo/hello.txt", "content": "hi\n"},
            }
        ],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 1200,
            "output_tokens": 1,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
        "context_management": None,
    },
    "parent_tool_use_id": None,
    "session_id": "0975bcde-0a92-4bf1-8c52-0c41aeae5978",
    "uuid": "9af48871-9b89-47e9-a585-cbd79afc5a94",
    "request_id": "req_fake",
}

WRITE_RESULT: dict[str, Json] = {
    "type": "user",
    "message": {
        "role": "user",
        "content": [
            {
                "tool_use_id": "toolu_fake_0001_0",
                "type": "tool_result",
                "content": (
                    "File created successfully at: /tmp/tmp_k9jk9pu/repo/hello.txt (file state "
                    "is current in your context — no need to Read it back)"
                ),
            }
        ],
    },
    "parent_tool_use_id": None,
    "session_id": "0975bcde-0a92-4bf1-8c52-0c41aeae5978",
    "uuid": "9e3f6c6b-c13d-494b-a589-13d1d2483323",
    "timestamp": "2026-11-23T15:42:09.044Z",
    "tool_use_result": {
        "type": "create",
        "filePath": "/tmp/tmp_k9jk9pu/repo/hello.txt",
        "content": "hi\n",
        "structuredPatch": [],
        "originalFile": None,
        "userModified": False,
    },
}

BASH_CALL: dict[str, Json] = {
    "type": "assistant",
    "message": {
        "id": "msg_fake_0002",
        "type": "message",
        "role": "assistant",
        "model": "claude-opus-4-8",
        "content": [
            {
                "type": "tool_use",
                "id": "toolu_fake_0002_0",
                "name": "Bash",
                "input": {
                    "command": (
                        "git add -A && git -c user.name=a -c user.email=a@b commit -m 'add hello'"
                    ),
                    "description": "commit",
                },
            }
        ],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 1200,
            "output_tokens": 1,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
        "context_management": None,
    },
    "parent_tool_use_id": None,
    "session_id": "0975bcde-0a92-4bf1-8c52-0c41aeae5978",
    "uuid": "46c5844e-4aea-48d2-b1d9-5e32185cd016",
    "request_id": "req_fake",
}

BASH_RESULT: dict[str, Json] = {
    "type": "user",
    "message": {
        "role": "user",
        "content": [
            {
                "tool_use_id": "toolu_fake_0002_0",
                "type": "tool_result",
                "content": (
                    "[work 6962459] add hello\n 1 file changed, 1 insertion(+)\n create mode "
                    "100644 hello.txt"
                ),
                "is_error": False,
            }
        ],
    },
    "parent_tool_use_id": None,
    "session_id": "0975bcde-0a92-4bf1-8c52-0c41aeae5978",
    "uuid": "85b88d84-1c92-4fb7-b29d-0a3054e6e10b",
    "timestamp": "2026-11-23T15:42:09.153Z",
    "tool_use_result": {
        "stdout": (
            "[work 6962459] add hello\n 1 file changed, 1 insertion(+)\n create mode 100644 "
            "hello.txt"
        ),
        "stderr": "",
        "interrupted": False,
        "isImage": False,
        "noOutputExpected": False,
        "gitOperation": {"commit": {"sha": "6962459", "kind": "committed"}},
    },
}

FINAL_TEXT: dict[str, Json] = {
    "type": "assistant",
    "message": {
        "id": "msg_fake_0003",
        "type": "message",
        "role": "assistant",
        "model": "claude-opus-4-8",
        "content": [{"type": "text", "text": "All done."}],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 1200,
            "output_tokens": 1,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
        "context_management": None,
    },
    "parent_tool_use_id": None,
    "session_id": "0975bcde-0a92-4bf1-8c52-0c41aeae5978",
    "uuid": "aca6c461-f270-4556-a9ae-c1f0f4ac4ec1",
    "request_id": "req_fake",
}

RESULT: dict[str, Json] = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "api_error_status": None,
    "duration_ms": 320,
    "duration_api_ms": 98,
    "ttft_ms": 160,
    "ttft_stream_ms": 158,
    "time_to_request_ms": 146,
    "num_turns": 3,
    "result": "All done.",
    "stop_reason": "end_turn",
    "session_id": "0975bcde-0a92-4bf1-8c52-0c41aeae5978",
    "total_cost_usd": 0.024,
    "usage": {
        "input_tokens": 3600,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 240,
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
        "service_tier": "standard",
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
        "inference_geo": "",
        "iterations": [],
        "speed": "standard",
    },
    "modelUsage": {
        "claude-opus-4-8[1m]": {
            "inputTokens": 3600,
            "outputTokens": 240,
            "cacheReadInputTokens": 0,
            "cacheCreationInputTokens": 0,
            "webSearchRequests": 0,
            "costUSD": 0.024,
            "contextWindow": 1000000,
            "maxOutputTokens": 64000,
        }
    },
    "permission_denials": [],
    "terminal_reason": "completed",
    "fast_mode_state": "off",
    "uuid": "91bda141-ad10-4038-b3be-e6c27503f500",
}

API_RETRY: dict[str, Json] = {
    "type": "system",
    "subtype": "api_retry",
    "attempt": 1,
    "max_retries": 1,
    "retry_delay_ms": 605.9530402984766,
    "error_status": 429,
    "error": "rate_limit",
    "session_id": "f183ef36-3da7-4579-8279-72f1b70f96e3",
    "uuid": "c13cff32-73fd-4782-8f4f-26a8781de800",
}

RATE_LIMIT_MESSAGE: dict[str, Json] = {
    "type": "assistant",
    "message": {
        "id": "81ef031e-6f6f-4770-bd34-0abb3f04356e",
        "container": None,
        "model": "<synthetic>",
        "role": "assistant",
        "stop_details": None,
        "stop_reason": "stop_sequence",
        "stop_sequence": "",
        "type": "message",
        "usage": {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
            "service_tier": None,
            "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
            "inference_geo": None,
            "iterations": None,
            "speed": None,
        },
        "content": [
            {
                "type": "text",
                "text": (
                    "API Error: Request rejected (429) · This request would exceed your "
                    "account's rate limit."
                ),
            }
        ],
        "context_management": None,
    },
    "parent_tool_use_id": None,
    "session_id": "7bbe5867-1295-4039-abda-f0c29ce26a91",
    "uuid": "918e3cd2-724e-4484-bf27-92c5d6feba0b",
    "error": "rate_limit",
    "request_id": "req_fake",
}

RATE_LIMIT_RESULT: dict[str, Json] = {
    "type": "result",
    "subtype": "success",
    "is_error": True,
    "api_error_status": 429,
    "duration_ms": 208,
    "duration_api_ms": 0,
    "num_turns": 1,
    "result": (
        "API Error: Request rejected (429) · This request would exceed your account's rate limit."
    ),
    "stop_reason": "stop_sequence",
    "session_id": "7bbe5867-1295-4039-abda-f0c29ce26a91",
    "total_cost_usd": 0,
    "usage": {
        "input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
        "service_tier": "standard",
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
        "inference_geo": "",
        "iterations": [],
        "speed": "standard",
    },
    "modelUsage": {},
    "permission_denials": [],
    "terminal_reason": "completed",
    "fast_mode_state": "off",
    "uuid": "984b847f-4172-4609-ac43-767181b01825",
}

RATE_LIMIT_EVENT: dict[str, Json] = {
    "type": "rate_limit_event",
    "rate_limit_info": {
        "status": "rejected",
        "resetsAt": 1795452133,
        "rateLimitType": "five_hour",
        "isUsingOverage": False,
    },
    "uuid": "a90cb7ac-2350-4934-a842-555b441da647",
    "session_id": "31013279-27b0-4437-bcc7-1546a0fda300",
}

SESSION_LIMIT_MESSAGE: dict[str, Json] = {
    "type": "assistant",
    "message": {
        "id": "9d084c24-9be3-4ca1-a513-5798670ef1b0",
        "container": None,
        "model": "<synthetic>",
        "role": "assistant",
        "stop_details": None,
        "stop_reason": "stop_sequence",
        "stop_sequence": "",
        "type": "message",
        "usage": {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
            "service_tier": None,
            "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
            "inference_geo": None,
            "iterations": None,
            "speed": None,
        },
        "content": [
            {"type": "text", "text": "You've hit your session limit · resets 4:42pm (UTC)"}
        ],
        "context_management": None,
    },
    "parent_tool_use_id": None,
    "session_id": "31013279-27b0-4437-bcc7-1546a0fda300",
    "uuid": "4890c47b-5756-4edc-a684-8674fa47f501",
    "error": "rate_limit",
    "request_id": "req_fake",
}

# Also recorded: `--max-turns 1`, and `--mcp-config` naming a server that fails to start.
MAX_TURNS_RESULT: dict[str, Json] = {
    "type": "result",
    "subtype": "error_max_turns",
    "duration_ms": 167,
    "duration_api_ms": 33,
    "is_error": True,
    "num_turns": 2,
    "stop_reason": "tool_use",
    "session_id": "a05af4a4-dd64-45c7-bc15-59a8404a6138",
    "total_cost_usd": 0.0048000000000000004,
    "usage": {"input_tokens": 1200, "output_tokens": 80},
    "permission_denials": [],
    "terminal_reason": "max_turns",
    "fast_mode_state": "off",
    "uuid": "e530987b-d6b6-4984-a721-c9b36a7ed36f",
    "errors": ["Reached maximum number of turns (1)"],
}
MCP_INIT: dict[str, Json] = {
    **INIT,
    "mcp_servers": [
        {"name": "huskies", "status": "connected"},
        {"name": "broken", "status": "failed"},
    ],
}


def test_claude_session_start() -> None:
    assert parse_claude_line(line(INIT)) == [
        SessionStarted(
            session_id="0975bcde-0a92-4bf1-8c52-0c41aeae5978",
            model="claude-opus-4-8[1m]",
            tools=("Task", "Bash", "Edit", "Read", "Write"),
            mcp_servers=(),
        )
    ]
    [started] = parse_claude_line(line(MCP_INIT))
    assert isinstance(started, SessionStarted)
    assert started.mcp_servers == (("huskies", "connected"), ("broken", "failed"))


def test_claude_tool_calls_and_results() -> None:
    assert parse_claude_line(line(WRITE_CALL)) == [
        ToolUse(
            "toolu_fake_0001_0",
            "Write",
            {"file_path": "/tmp/tmp_k9jk9pu/repo/hello.txt", "content": "hi\n"},
        )
    ]
    [written] = parse_claude_line(line(WRITE_RESULT))
    assert written == ToolResult(
        "toolu_fake_0001_0",
        "File created successfully at: /tmp/tmp_k9jk9pu/repo/hello.txt "
        "(file state is current in your context — no need to Read it back)",
        is_error=False,
    )
    [bash] = parse_claude_line(line(BASH_CALL))
    assert isinstance(bash, ToolUse)
    assert (bash.name, bash.input["description"]) == ("Bash", "commit")
    [committed] = parse_claude_line(line(BASH_RESULT))
    assert isinstance(committed, ToolResult)
    assert committed.tool_use_id == "toolu_fake_0002_0"
    assert committed.output.startswith("[work 6962459] add hello\n 1 file changed")
    assert parse_claude_line(line(FINAL_TEXT)) == [Text("All done.")]


def test_claude_result() -> None:
    assert parse_claude_line(line(RESULT)) == [
        Result(
            is_error=False,
            cost_usd=0.024,
            usage=Usage(input_tokens=3600, output_tokens=240),
            turns=3,
            duration_ms=320,
            text="All done.",
        )
    ]
    # A run stopped by --max-turns has no `result` text, only `errors`.
    assert parse_claude_line(line(MAX_TURNS_RESULT)) == [
        Result(
            True,
            0.0048000000000000004,
            Usage(1200, 80),
            2,
            167,
            "Reached maximum number of turns (1)",
        )
    ]


def test_claude_rate_limit_with_an_api_key() -> None:
    """API-key users get no reset time: a synthetic error message, then an error result."""
    message = (
        "API Error: Request rejected (429) · This request would exceed your account's rate limit."
    )
    assert parse_claude_line(line(RATE_LIMIT_MESSAGE)) == [RateLimit(None, message)]
    [result] = parse_claude_line(line(RATE_LIMIT_RESULT))
    assert result == Result(True, 0.0, Usage(), 1, 208, message)


def test_claude_rate_limit_with_a_subscription() -> None:
    """Subscriptions get a rate_limit_event with the reset time (seconds), then the message."""
    assert parse_claude_line(line(RATE_LIMIT_EVENT)) == [
        RateLimit(1795452133000, "five_hour limit reached; resets 2026-11-23 16:42 UTC")
    ]
    assert parse_claude_line(line(SESSION_LIMIT_MESSAGE)) == [
        RateLimit(None, "You've hit your session limit · resets 4:42pm (UTC)")
    ]
    allowed = {"type": "rate_limit_event", "rate_limit_info": {"status": "allowed"}}
    assert parse_claude_line(line(allowed)) == []
    for reset in (None, -5, 0, 1e308, "soon"):
        unknown = {"type": "rate_limit_event", "rate_limit_info": {"status": "rejected"}}
        if reset is not None:
            unknown["rate_limit_info"] = {"status": "rejected", "resetsAt": reset}
        assert parse_claude_line(line(unknown)) == [RateLimit(None, "rate limit reached")]


def test_claude_api_retry() -> None:
    [retry] = parse_claude_line(line(API_RETRY))
    assert retry == RateLimit(None, "API rate_limit (HTTP 429); retry 1/1 in 0.6 s")
    overloaded = {**API_RETRY, "error_status": 529, "error": "overloaded"}
    assert parse_claude_line(line(overloaded)) == [
        Error("API overloaded (HTTP 529); retry 1/1 in 0.6 s")
    ]


def test_claude_content_blocks() -> None:
    """Several blocks in one message: thinking is dropped, text and tools kept in order;
    tool_result content may be a list of blocks."""
    assistant = {
        "type": "assistant",
        "message": {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Let me look.", "signature": "sig"},
                {"type": "text", "text": "Reading both files."},
                {"type": "tool_use", "id": "t1", "name": "Read", "input": {"file_path": "a"}},
                {"type": "tool_use", "id": "t2", "name": "Read", "input": {"file_path": "b"}},
                {"type": "text", "text": ""},
            ],
        },
    }
    assert parse_claude_line(line(assistant)) == [
        Text("Reading both files."),
        ToolUse("t1", "Read", {"file_path": "a"}),
        ToolUse("t2", "Read", {"file_path": "b"}),
    ]
    user = {
        "type": "user",
        "message": {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "one"}, {"type": "image", "source": {}}],
                    "is_error": True,
                },
                {"type": "tool_result", "tool_use_id": "t2"},
                {"type": "text", "text": "a note Claude Code added"},
            ],
        },
    }
    assert parse_claude_line(line(user)) == [
        ToolResult("t1", "one\n[image]", is_error=True),
        ToolResult("t2", "", is_error=False),
    ]
    prompt = {"type": "user", "message": {"role": "user", "content": "do the thing"}}
    assert parse_claude_line(line(prompt)) == []


def test_claude_other_api_errors() -> None:
    failed = {
        **RATE_LIMIT_MESSAGE,
        "error": "authentication_failed",
        "message": {"content": [{"type": "text", "text": "Invalid API key"}]},
    }
    assert parse_claude_line(line(failed)) == [Error("Invalid API key")]


@pytest.mark.parametrize(
    "event",
    [
        {"type": "system", "subtype": "hook_started", "hook_name": "x"},
        {"type": "system", "subtype": "compact_boundary"},
        {"type": "stream_event", "event": {"type": "content_block_delta"}},
        {"type": "tool_progress", "tool_use_id": "t1"},
    ],
)
def test_claude_bookkeeping_is_quiet(event: dict[str, Json]) -> None:
    assert parse_claude_line(line(event)) == []


@pytest.mark.parametrize(
    "raw",
    [
        '{"type":"nope"}',
        '{"type":"system"}',
        '{"type":"system","subtype":"init"}',
        '{"type":"assistant","message":"oops"}',
        '{"type":"assistant","message":{"content":"text where blocks belong"}}',
        '{"type":"user","message":{"content":7}}',
        '{"type":"rate_limit_event","rate_limit_info":[]}',
        '{"no_type":1}',
    ],
)
def test_claude_unknown_shapes_are_text(raw: str) -> None:
    assert parse_claude_line(raw + "\n") == [Text(raw)]


def test_claude_wrong_field_types_fall_back_to_defaults() -> None:
    result = {"type": "result", "is_error": "yes", "num_turns": True, "total_cost_usd": "1"}
    assert parse_claude_line(line(result)) == [Result(False, None, Usage(), None, None, "")]
    huge = '{"type": "result", "total_cost_usd": 1%s}' % ("0" * 400)
    assert parse_claude_line(huge) == [Result(False, None, Usage(), None, None, "")]
    tool = {
        "type": "assistant",
        "message": {"content": [{"type": "tool_use", "name": "X", "input": "not an object"}, 5]},
    }
    assert parse_claude_line(line(tool)) == [ToolUse("", "X", {})]


# -- codex exec --json ------------------------------------------------------------------------


def codex(event: object) -> list[AgentEvent]:
    return parse_codex_line(json.dumps(event))


def test_codex_session_and_turns() -> None:
    thread = "0199a213-81c0-7800-8aa1-bbab2a035a53"
    assert codex({"type": "thread.started", "thread_id": thread}) == [
        SessionStarted(thread, "", (), ())
    ]
    assert codex({"type": "turn.started"}) == []
    usage = {"input_tokens": 1200, "cached_input_tokens": 200, "output_tokens": 345}
    assert codex({"type": "turn.completed", "usage": usage}) == [
        Result(
            False,
            None,
            Usage(input_tokens=1000, output_tokens=345, cache_read_input_tokens=200),
            None,
            None,
            "",
        )
    ]
    assert codex({"type": "turn.failed", "error": {"message": "stream disconnected"}}) == [
        Result(True, None, Usage(), None, None, "stream disconnected")
    ]


def test_codex_command_execution() -> None:
    item = {"id": "item_1", "type": "command_execution", "command": "bash -lc ls"}
    started = {**item, "aggregated_output": "", "exit_code": None, "status": "in_progress"}
    assert codex({"type": "item.started", "item": started}) == [
        ToolUse("item_1", "command_execution", {"command": "bash -lc ls"})
    ]
    assert codex({"type": "item.updated", "item": started}) == []
    done = {**item, "aggregated_output": "README.md\n", "exit_code": 0, "status": "completed"}
    assert codex({"type": "item.completed", "item": done}) == [
        ToolResult("item_1", "README.md\n", is_error=False)
    ]
    for failed in ({"exit_code": 2, "status": "failed"}, {"exit_code": None, "status": "declined"}):
        [result] = codex({"type": "item.completed", "item": {**done, **failed}})
        assert isinstance(result, ToolResult)
        assert result.is_error


def test_codex_messages_and_quiet_items() -> None:
    message = {"id": "item_3", "type": "agent_message", "text": "Done: tests pass."}
    assert codex({"type": "item.completed", "item": message}) == [Text("Done: tests pass.")]
    reasoning = {"id": "item_0", "type": "reasoning", "text": "**Looking at the tests**"}
    assert codex({"type": "item.completed", "item": reasoning}) == []
    todo = {"id": "item_2", "type": "todo_list", "items": [{"text": "a", "completed": False}]}
    assert codex({"type": "item.started", "item": todo}) == []
    warning = {"id": "item_4", "type": "error", "message": "model rerouted"}
    assert codex({"type": "item.completed", "item": warning}) == [Error("model rerouted")]


def test_codex_file_change_mcp_and_web_search() -> None:
    changes: list[Json] = [{"path": "a.py", "kind": "add"}, {"path": "b.py", "kind": "update"}]
    change = {"id": "item_5", "type": "file_change", "changes": changes, "status": "completed"}
    assert codex({"type": "item.started", "item": change}) == []
    assert codex({"type": "item.completed", "item": change}) == [
        ToolUse("item_5", "file_change", {"changes": changes}),
        ToolResult("item_5", "add a.py\nupdate b.py", is_error=False),
    ]
    call = {
        "id": "item_6",
        "type": "mcp_tool_call",
        "server": "huskies",
        "tool": "claim",
        "arguments": {"story": "12"},
        "result": None,
        "error": None,
        "status": "in_progress",
    }
    assert codex({"type": "item.started", "item": call}) == [
        ToolUse("item_6", "mcp__huskies__claim", {"story": "12"})
    ]
    ok = {**call, "status": "completed", "result": {"content": [{"type": "text", "text": "ok"}]}}
    assert codex({"type": "item.completed", "item": ok}) == [ToolResult("item_6", "ok", False)]
    failed = {**call, "status": "failed", "error": {"message": "no such story"}}
    assert codex({"type": "item.completed", "item": failed}) == [
        ToolResult("item_6", "no such story", True)
    ]
    search = {"id": "item_7", "type": "web_search", "query": "pytest asyncio"}
    assert codex({"type": "item.started", "item": search}) == [
        ToolUse("item_7", "web_search", {"query": "pytest asyncio"})
    ]
    assert codex({"type": "item.completed", "item": search}) == [ToolResult("item_7", "", False)]


def test_codex_errors_and_rate_limits() -> None:
    assert codex({"type": "error", "message": "Reconnecting... 1/5"}) == [
        Error("Reconnecting... 1/5")
    ]
    retry = "exceeded retry limit, last status: 429 Too Many Requests"
    assert codex({"type": "error", "message": retry}) == [RateLimit(None, retry)]
    quota = (
        "You've hit your usage limit. Visit https://chatgpt.com/codex/settings/usage "
        "to purchase more credits or try again at 3:28 PM."
    )
    assert codex({"type": "turn.failed", "error": {"message": quota}}) == [
        RateLimit(None, quota),
        Result(True, None, Usage(), None, None, quota),
    ]


@pytest.mark.parametrize(
    "raw",
    [
        '{"type":"item.completed","item":{"id":"x","type":"hologram"}}',
        '{"type":"item.completed","item":"x"}',
        '{"type":"item.started","item":{"type":[]}}',
        '{"type":"thread.started"}',
        '{"type":"error","message":5}',
        '{"type":"session.configured"}',
    ],
)
def test_codex_unknown_shapes_are_text(raw: str) -> None:
    assert parse_codex_line(raw) == [Text(raw)]


# -- Any command, and huskies' JSON shape -----------------------------------------------------

EXAMPLES: list[AgentEvent] = [
    Text("hello\nworld"),
    Text(""),
    ToolUse("t1", "Write", {"file_path": "a.txt", "content": "x", "n": [1, 2.5, None, True]}),
    ToolResult("t1", "ok", is_error=False),
    Result(True, 0.25, Usage(1, 2, 3, 4), 7, 1500, "failed"),
    Result(False, None, Usage(), None, None, ""),
    RateLimit(1795452133000, "five_hour limit reached"),
    RateLimit(None, ""),
    Error("boom"),
    SessionStarted("s1", "claude-sonnet-5", ("Bash", "Write"), (("huskies", "connected"),)),
]


@pytest.mark.parametrize("event", EXAMPLES)
def test_event_json_round_trip(event: AgentEvent) -> None:
    assert parse_command_line(json.dumps(event_to_json(event))) == [event]


def test_event_json_shape() -> None:
    assert event_to_json(Text("hi")) == {"type": "text", "text": "hi"}
    assert event_to_json(Result(False, 0.5, Usage(10, 2), 3, 40, "done")) == {
        "type": "result",
        "is_error": False,
        "cost_usd": 0.5,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 2,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
        "turns": 3,
        "duration_ms": 40,
        "text": "done",
    }
    assert event_to_json(SessionStarted("s", "m", ("Bash",), (("x", "failed"),))) == {
        "type": "session_started",
        "session_id": "s",
        "model": "m",
        "tools": ["Bash"],
        "mcp_servers": [{"name": "x", "status": "failed"}],
    }


def test_command_lines() -> None:
    assert parse_command_line("compiling huskies...\n") == [Text("compiling huskies...")]
    # Optional fields may be left out.
    assert parse_command_line('{"type": "result"}') == [
        Result(False, None, Usage(), None, None, "")
    ]
    assert parse_command_line('{"type": "tool_use", "name": "x"}') == [ToolUse("", "x", {})]
    assert parse_command_line('{"type": "rate_limit"}') == [RateLimit(None, "")]
    # Claude Code's own events are understood too; its result has a subtype, huskies' has not.
    assert parse_command_line(line(RESULT)) == parse_claude_line(line(RESULT))
    assert parse_command_line(line(WRITE_CALL)) == parse_claude_line(line(WRITE_CALL))


@pytest.mark.parametrize(
    "raw",
    [
        '{"type": "text", "text": 5}',
        '{"type": "text"}',
        '{"type": "error"}',
        '{"type": "result", "turns": 1.5}',
        '{"type": "result", "is_error": 1}',
        '{"type": "result", "duration_ms": true}',
        '{"type": "result", "cost_usd": "1"}',
        '{"type": "result", "usage": {"input_tokens": "5"}}',
        '{"type": "result", "usage": []}',
        '{"type": "rate_limit", "resets_at": true}',
        '{"type": "tool_use", "name": "x", "input": []}',
        '{"type": "tool_result", "output": "no id"}',
        '{"type": "session_started", "session_id": "s", "tools": [1]}',
        '{"type": "session_started", "session_id": "s", "mcp_servers": ["x"]}',
        '{"type": "session_started"}',
        '{"type": "status", "text": "json, but not an event"}',
    ],
)
def test_command_json_of_the_wrong_shape_is_text(raw: str) -> None:
    assert parse_command_line(raw) == [Text(raw)]


# -- Every parser ------------------------------------------------------------------------------


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize("raw", ["", "\n", "   \r\n", "\t"])
def test_blank_lines_give_nothing(parse: object, raw: str) -> None:
    assert callable(parse)
    assert parse(raw) == []


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize(
    "raw",
    [
        "plain output",
        "42",
        "null",
        '"a string"',
        "[1, 2]",
        "{not json",
        '{"type": ["system"]}',
        '{"type": {"text": "x"}}',
        '{"type": "result", "total_cost_usd": NaN}',  # NaN and Infinity are not JSON
        '{"type": "text", "text": "x", "n": 1e999}',
        "[" * 100_000,  # nesting too deep for the decoder
        "\x00\x1b[31mred\x1b[0m",
    ],
)
def test_lines_that_are_not_json_objects_are_text(parse: object, raw: str) -> None:
    assert callable(parse)
    assert parse(raw + "\r\n") == [Text(raw)]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "type",
    "subtype",
    "message",
    "content",
    "item",
    "usage",
    "error",
    "text",
    "name",
    "id",
    "input",
    "tool_use_id",
    "is_error",
    "result",
    "errors",
    "rate_limit_info",
    "status",
    "resetsAt",
    "session_id",
    "tools",
    "mcp_servers",
    "changes",
    "arguments",
    "cost_usd",
]
TYPES = [
    "system",
    "assistant",
    "user",
    "result",
    "rate_limit_event",
    "thread.started",
    "turn.completed",
    "turn.failed",
    "error",
    "item.started",
    "item.completed",
    "text",
    "tool_use",
    "tool_result",
    "rate_limit",
    "session_started",
]
fuzzed_events = st.builds(
    lambda kind, rest: {**rest, "type": kind},
    st.sampled_from(TYPES),
    st.dictionaries(
        st.sampled_from(FIELDS), json_values | st.dictionaries(st.sampled_from(FIELDS), json_values)
    ),
)


@settings(max_examples=150, deadline=None)
@given(fuzzed_events)
def test_parsers_never_raise_on_odd_events(event: dict[str, Json]) -> None:
    for parse in PARSERS:
        events = parse(json.dumps(event))
        assert all(isinstance(e, AgentEvent) for e in events)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_parsers_never_raise_on_any_text(raw: str) -> None:
    expected = [] if not raw.strip() else [Text(raw.rstrip("\r\n"))]
    for parse in PARSERS:
        # Only a JSON object can be anything but text.
        assert parse(raw) == expected or raw.strip().startswith("{")


events = st.one_of(
    st.builds(Text, st.text()),
    st.builds(ToolUse, st.text(), st.text(), st.dictionaries(st.text(), json_values)),
    st.builds(ToolResult, st.text(), st.text(), st.booleans()),
    st.builds(
        Result,
        st.booleans(),
        st.none() | st.floats(allow_nan=False, allow_infinity=False),
        st.builds(Usage, *[st.integers(0, 2**40)] * 4),
        st.none() | st.integers(0, 10_000),
        st.none() | st.integers(0, 2**40),
        st.text(),
    ),
    st.builds(RateLimit, st.none() | st.integers(0, 2**45), st.text()),
    st.builds(Error, st.text()),
    st.builds(
        SessionStarted,
        st.text(),
        st.text(),
        st.lists(st.text()).map(tuple),
        st.lists(st.tuples(st.text(), st.text())).map(tuple),
    ),
)


@settings(max_examples=300, deadline=None)
@given(events)
def test_any_event_round_trips(event: AgentEvent) -> None:
    assert parse_command_line(json.dumps(event_to_json(event))) == [event]
