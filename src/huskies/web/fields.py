"""Request fields whose schema says exactly what the server accepts.

The checks themselves stay where they are (the services' rules, with their messages naming
what was wrong); these annotations only make `/openapi.json` say the same, so a client that
follows the schema is never refused. The conformance test (Schemathesis over the whole API)
holds the two together.

An agent's name is one of those configured in agents.toml, which can be reloaded: its schema is
the `AgentName` component, filled in with the names when the schema is served.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import StrictStr, WithJsonSchema

from huskies.pipeline.lines import FORBIDDEN
from huskies.pipeline.timers import HH_MM
from huskies.services.stories import MAX_TITLE

AGENT_NAME = "AgentName"
_AGENT_MARK = "x-huskies-agent-name"
_AGENT_PLACEHOLDER = {"type": "string", _AGENT_MARK: True}

TITLE_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TITLE,
    # One line of allowed characters, at least one of them not a space.
    "pattern": rf"^[^{FORBIDDEN}]*[^{FORBIDDEN}\s][^{FORBIDDEN}]*$",
    "description": f"one line of plain text, at most {MAX_TITLE} characters",
}

Title = Annotated[StrictStr, WithJsonSchema(TITLE_SCHEMA)]
TitleEdit = Annotated[StrictStr | None, WithJsonSchema(TITLE_SCHEMA)]
"""A title to change to; left out, the title is kept (null is refused)."""

BodyEdit = Annotated[
    StrictStr | None, WithJsonSchema({"type": "string", "description": "markdown"})
]
"""A body to change to; left out, the body is kept (null is refused)."""

AgentName = Annotated[StrictStr, WithJsonSchema(_AGENT_PLACEHOLDER)]
AgentNameOrNull = Annotated[
    StrictStr | None, WithJsonSchema({"anyOf": [_AGENT_PLACEHOLDER, {"type": "null"}]})
]

Reason = Annotated[
    StrictStr,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"\S",
            "description": "what the coder must fix; it goes into their prompt",
        }
    ),
]
"""Free text with something in it besides spaces."""

TimeOfDay = Annotated[
    StrictStr,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": f"^{HH_MM.pattern}$",
            "description": "a time of day, HH:MM on a 24-hour clock, in the project's time zone",
            "examples": ["09:30"],
        }
    ),
]


def refer_to_agent_names(node: Any) -> Any:
    """`node` (a part of the schema) with every agent name field made a reference to the
    `AgentName` component (pydantic cannot refer to a component it does not make)."""
    if isinstance(node, dict):
        if node.get(_AGENT_MARK):
            return {"$ref": f"#/components/schemas/{AGENT_NAME}"}
        return {key: refer_to_agent_names(value) for key, value in node.items()}
    if isinstance(node, list):
        return [refer_to_agent_names(value) for value in node]
    return node


def agent_name_schema(names: list[str]) -> dict[str, Any]:
    """The `AgentName` component for the agents configured now."""
    if not names:
        return {"not": {}, "description": "no agent is configured in agents.toml"}
    return {"type": "string", "enum": names, "description": "an agent from agents.toml"}
