"""`.huskies/project.toml` and `.huskies/agents.toml`: models, templates and loading.

The models are pydantic at the edge: unknown keys are refused, scalars are not coerced (a TOML
string is never read as a number), and every failure becomes a `ConfigError` whose message names
the file, the key, what was found and what is allowed.
"""

import ipaddress
import json
import re
import string
import tomllib
from collections.abc import Sequence
from datetime import date, datetime, time
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Self, TypeVar, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from huskies.pipeline.lines import line_problem

QaMode = Literal["server", "agent", "human"]
Synchronous = Literal["normal", "full"]
Stage = Literal["coder", "qa", "mergemaster"]
Runtime = Literal["claude-code", "codex", "command"]

PLACEHOLDERS = ("story_id", "number", "title", "worktree", "branch", "base_branch")
"""The names `prompt` and `system_prompt` may use, as `{name}` (str.format syntax)."""

PROJECT_TOML_TEMPLATE = """\
# huskies project settings. Commit this file: the database beside it stays out of git.

# The branch finished work is squash-merged into. Empty: the branch that is checked out
# when the server starts.
base_branch = ""

# How an item is checked once the quality gates pass: "server" (the gates are enough),
# "agent" (a QA agent reviews it) or "human" (held until a person approves it).
default_qa = "server"

# The IANA time zone for schedules and the times shown to people, e.g. "Europe/London".
timezone = "UTC"

# At most this many coder agents run at once on this node.
max_coders = 3

# Automatic attempts an item gets in a stage (failed runs, failed gates, rejections) before
# it is blocked and waits for a person (`huskies unblock N`).
max_retries = 3

# Done items are archived (as completed) this long after their merge: 90s, 30m, 4h, 2d.
archive_after = "4h"

[store]
# SQLite durability: "normal" (fast; a power cut may lose the last few changes, a crash
# of huskies loses none) or "full" (every commit is synced to disk; slower).
synchronous = "normal"

# Take a snapshot of the document every this many changes, so that a restart replays only
# the changes since the last snapshot. At least 100.
snapshot_every = 10000

[sync]
# Other huskies nodes to connect to and keep connected to, e.g.
# ["ws://build-box.local:3000/crdt-sync"]. Empty: this node only accepts connections.
rendezvous = []

# Node ids (64 hex digits, from `huskies node id`) allowed to sync with this node. Empty: no
# peer is trusted, except one that presents a join token from `huskies node token`.
trusted_keys = []

# Keepalive: ping a peer after this many seconds without a frame from it...
ping_interval_secs = 30

# ...and drop it after this many seconds of silence.
ping_timeout_secs = 60

# A connection must authenticate (and be allowed) within this many seconds of connecting, or it
# is closed; pings do not extend it.
handshake_timeout_secs = 10

[server]
# The server answers only requests whose Host is one of its own names (loopback, the address
# it listens on, this machine's names), so a web page cannot reach it by DNS rebinding. Names
# it is also reached by, say through a reverse proxy, e.g. ["huskies.example.com"]; read when
# the server starts.
hosts = []

# Quality gates. huskies runs them itself when a coder finishes, and again on the squashed
# result before it merges; it never takes an agent's word that they pass. Each [[component]]
# is a part of the repository: `path` (relative to the top level) is where its commands run,
# `setup` runs before the gates, `teardown` after them, and each gate is a shell command with
# a timeout. To use it, remove the leading "# " from the lines below.
#
# [[component]]
# name = "app"
# path = "."
# setup = ["python -m pip install -q -e ."]
# teardown = []
# setup_timeout_secs = 900
#
# [component.gates.test]
# command = "python -m pytest -q"
# timeout_secs = 600
#
# [component.gates.lint]
# command = "ruff check ."
# timeout_secs = 120
"""

AGENTS_TOML_TEMPLATE = """\
# huskies agents. Each [[agent]] table defines one agent; huskies picks an agent of the
# item's stage to work on it. Commit this file, but keep secrets out of it.
#
# `prompt` and `system_prompt` may use these placeholders, filled in for each item:
#   {story_id}     the item's internal id
#   {number}       the item's number, e.g. 42
#   {title}        the item's title
#   {worktree}     the path of the item's git worktree
#   {branch}       the item's branch, e.g. feature/story-42
#   {base_branch}  the branch the work is merged into
# Write {{ and }} for literal braces.

# How long a permission request waits for a person's answer (see [[permission]] below)
# before it is denied. The agent's inactivity timeout does not run while it waits.
permission_timeout_secs = 300

[[agent]]
# A unique name, used in logs, on the board and in commands.
name = "coder"

# The pipeline stage this agent works in: "coder", "qa" or "mergemaster".
stage = "coder"

# What runs the agent: "claude-code", "codex" or "command" (any program; see below).
runtime = "claude-code"

# The model to ask the runtime for. Empty: the runtime's default.
model = ""

# Stop the agent after this many turns.
max_turns = 50

# Stop the agent once it has spent this many US dollars.
max_budget_usd = 5.0

# Stop the agent when it has been silent for this many seconds.
inactivity_timeout_secs = 600

# Tools the agent may use without asking, e.g. ["Bash", "Edit"]. Empty: none beyond the
# runtime's own settings.
allowed_tools = []

# Extra environment variables for the agent's process, e.g. { RUST_LOG = "debug" }.
env = {}

# The task the agent is given.
prompt = '''
Work on story {number}, "{title}" (id {story_id}), in the git worktree {worktree}
on branch {branch}. Read the story with your huskies tools, implement it with tests,
and commit your work to {branch}. Do not merge it into {base_branch}: huskies runs
the quality gates itself and merges the branch once they pass.
'''

# Added to the runtime's own system prompt. Empty: nothing is added.
system_prompt = ""

# `argv` is only for runtime "command": see the example below.

# When a claude-code agent wants a tool that its allowed_tools do not cover, huskies decides
# with these rules, first match wins. `tool` is a tool name, optionally with a pattern for
# its argument (the command of Bash, the path of Edit or Write relative to the worktree, the
# URL of WebFetch): "Bash", "Bash(git *)", "Edit(docs/*)", "mcp__github__*". `*` matches
# anything, "/" included. An "allow" rule's command pattern other than "*" allows one plain
# command only: no ;, &, &&, ||, |, line break, redirection, $(, $VAR or backticks, and for
# git no -c, -C, config, alias or --no-index, nothing that runs another program and no path
# outside the worktree or in .git. `decision` is "allow", "deny" or "ask": ask a person on
# the board (or POST /api/permissions/ID), denied if no one answers within
# permission_timeout_secs. Optional keys: `agent` (the rule is for that agent only) and
# `message` (what a denied agent is told). No rule matches: huskies' own tools
# (mcp__huskies__*) are allowed, anything else is denied. A path outside the agent's
# worktree, or in git's own files (.git), is always denied.

[[permission]]
# Plain git commands in the worktree (status, diff, add, commit…) run without asking.
tool = "Bash(git *)"
# "allow", "deny" or "ask".
decision = "allow"

[[permission]]
# Any other command: ask a person.
tool = "Bash"
# "allow", "deny" or "ask".
decision = "ask"

# A "command" agent runs any program in the item's worktree. `argv` is the program and its
# arguments (required, not empty); every other key means what it means above. To use it,
# remove the leading "# " from the lines below.
#
# [[agent]]
# name = "script"
# stage = "coder"
# runtime = "command"
# argv = ["./scripts/agent.sh", "--verbose"]
# prompt = "Work on story {number}: {title}"
# inactivity_timeout_secs = 1800
"""


class ConfigError(Exception):
    """A config file could not be loaded. `problems` holds one "key: what is wrong" per line."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{path}: {problem}" for problem in self.problems))


class _Invalid(ValueError):
    """A validator's complete message, and `at`: the key it concerns, below the validated value."""

    def __init__(self, message: str, at: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.at = at


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreConfig(_Model):
    """The `[store]` table of project.toml."""

    synchronous: Synchronous = "normal"
    snapshot_every: StrictInt = Field(default=10_000, ge=100)


class SyncConfig(_Model):
    """The `[sync]` table of project.toml."""

    rendezvous: tuple[StrictStr, ...] = ()
    trusted_keys: tuple[StrictStr, ...] = ()
    ping_interval_secs: StrictInt = Field(default=30, gt=0)
    ping_timeout_secs: StrictInt = Field(default=60, gt=0)
    handshake_timeout_secs: StrictInt = Field(default=10, gt=0)

    @field_validator("rendezvous")
    @classmethod
    def _websocket_urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            if not url.startswith(("ws://", "wss://")) or len(url) <= len("wss://"):
                raise _Invalid(
                    f"got {url!r}; allowed: ws:// or wss:// URLs such as 'ws://host:3000/crdt-sync'"
                )
        return urls

    @field_validator("trusted_keys")
    @classmethod
    def _node_ids(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        for value in keys:
            if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
                raise _Invalid(
                    f"got {value!r}; allowed: node ids of 64 lowercase hex digits "
                    "(`huskies node id` prints one)"
                )
        return keys


LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
HOST_NAME = re.compile(rf"^{LABEL}(\.{LABEL})*$")


class ServerConfig(_Model):
    """The `[server]` table of project.toml."""

    hosts: tuple[StrictStr, ...] = ()
    """Names the server is reached by beyond its own (say, a reverse proxy's), for the Host
    check (see `huskies.web.guard`)."""

    @field_validator("hosts")
    @classmethod
    def _host_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if HOST_NAME.match(name) is None and not _is_address(name.strip("[]")):
                raise _Invalid(
                    f"got {name!r}; allowed: a host name or address alone, with no scheme, "
                    "port or path, such as 'huskies.example.com' or '192.168.1.20'"
                )
        return names


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _one_line_name(value: str) -> str:
    if not value.strip():
        raise _Invalid(f"got {value!r}; allowed: a name that is not empty")
    problem = line_problem(value)
    if problem is not None:
        raise _Invalid(f"got {value!r}, which {problem}; allowed: one line of plain text")
    return value


BRANCH_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")


def _is_branch_name(name: str) -> bool:
    """What `git check-ref-format --branch` accepts, checked without running git."""
    return (
        BRANCH_FORBIDDEN.search(name) is None
        and line_problem(name) is None
        and not name.startswith(("-", "/", "."))
        and not name.endswith(("/", ".", ".lock"))
        and "/." not in name
        and name != "@"
    )


def _no_nul(value: str, at: tuple[str | int, ...]) -> None:
    if "\x00" in value:
        raise _Invalid(
            f"got {value!r}; a program's arguments and environment cannot hold a NUL character",
            at=at,
        )


DURATION = re.compile(r"^([1-9][0-9]*)(s|m|h|d)$")
DURATION_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def duration_ms(text: str) -> int:
    """Milliseconds in a checked duration such as "90s", "30m", "4h" or "2d"."""
    match = DURATION.match(text)
    assert match is not None, f"unchecked duration {text!r}"
    return int(match.group(1)) * DURATION_MS[match.group(2)]


class GateConfig(_Model):
    """One quality gate: a shell command run in the component's directory."""

    command: StrictStr
    timeout_secs: StrictInt = Field(default=600, gt=0)

    @field_validator("command")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise _Invalid("got ''; allowed: a shell command such as 'pytest -q'")
        return value


class ComponentConfig(_Model):
    """One `[[component]]` of project.toml: a part of the repository with its own gates."""

    name: StrictStr
    path: StrictStr = "."
    setup: tuple[StrictStr, ...] = ()
    teardown: tuple[StrictStr, ...] = ()
    setup_timeout_secs: StrictInt = Field(default=900, gt=0)
    gates: dict[StrictStr, GateConfig] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        return _one_line_name(value)

    @field_validator("path")
    @classmethod
    def _inside_the_repository(cls, value: str) -> str:
        parts = Path(value).parts
        if not value or Path(value).is_absolute() or ".." in parts:
            raise _Invalid(
                f"got {value!r}; allowed: a path inside the repository, relative to its top "
                "level, such as '.' or 'backend'"
            )
        return value


class ProjectConfig(_Model):
    """project.toml."""

    base_branch: StrictStr = ""
    default_qa: QaMode = "server"
    timezone: StrictStr = "UTC"
    max_coders: StrictInt = Field(default=3, gt=0)
    max_retries: StrictInt = Field(default=3, gt=0)
    archive_after: StrictStr = "4h"
    components: tuple[ComponentConfig, ...] = Field(default=(), alias="component")
    store: StoreConfig = Field(default_factory=StoreConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)

    @field_validator("base_branch")
    @classmethod
    def _branch_name(cls, value: str) -> str:
        if value and not _is_branch_name(value):
            raise _Invalid(
                f"got {value!r}; allowed: a git branch name such as 'main' or 'release/2.x' "
                "(no spaces, control characters, '..', or any of ~^:?*[\\), or '' for the "
                "branch checked out when the server starts"
            )
        return value

    @field_validator("archive_after")
    @classmethod
    def _duration(cls, value: str) -> str:
        if DURATION.match(value) is None:
            raise _Invalid(f"got {value!r}; allowed: a duration such as '90s', '30m', '4h' or '2d'")
        return value

    @field_validator("components")
    @classmethod
    def _unique_components(
        cls, components: tuple[ComponentConfig, ...]
    ) -> tuple[ComponentConfig, ...]:
        _unique_names([component.name for component in components], "component")
        return components

    @field_validator("timezone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise _Invalid(
                f"got {value!r}; allowed: an IANA time zone name such as 'UTC' or 'Europe/London'"
            ) from None
        return value


def _check_placeholders(text: str) -> str:
    allowed = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError:
        raise _Invalid(
            "has a '{' or '}' that opens or closes no placeholder; "
            "write {{ and }} for literal braces"
        ) from None
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        written = "{" + name + (f"!{conversion}" if conversion else "")
        written += (f":{spec}" if spec else "") + "}"
        if name not in PLACEHOLDERS:
            raise _Invalid(f"unknown placeholder {written}; allowed: {allowed}")
        if spec or conversion:
            raise _Invalid(f"got placeholder {written}; allowed: plain {{{name}}}")
    return text


class AgentConfig(_Model):
    """One `[[agent]]` table of agents.toml."""

    name: StrictStr
    stage: Stage
    runtime: Runtime
    model: StrictStr = ""
    max_turns: StrictInt = Field(default=50, gt=0)
    max_budget_usd: StrictFloat = Field(default=5.0, gt=0, allow_inf_nan=False)
    inactivity_timeout_secs: StrictInt = Field(default=600, gt=0)
    allowed_tools: tuple[StrictStr, ...] = ()
    env: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    prompt: StrictStr
    system_prompt: StrictStr = ""
    argv: tuple[StrictStr, ...] | None = None
    """The program and its arguments; only for runtime "command", which requires it."""

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        return _one_line_name(value)

    @field_validator("argv")
    @classmethod
    def _no_nul_in_argv(cls, argv: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for index, argument in enumerate(argv or ()):
            _no_nul(argument, at=(index,))
        return argv

    @field_validator("env")
    @classmethod
    def _a_valid_environment(cls, env: dict[str, str]) -> dict[str, str]:
        for name, value in env.items():
            if not name or "=" in name:
                raise _Invalid(f"got {name!r}; allowed: a variable name without '='", at=(name,))
            _no_nul(name, at=(name,))
            _no_nul(value, at=(name,))
        return env

    @field_validator("prompt", "system_prompt")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        return _check_placeholders(value)

    @model_validator(mode="after")
    def _argv_fits_runtime(self) -> Self:
        if self.runtime != "command":
            if self.argv is not None:
                raise _Invalid(
                    f"only allowed with runtime 'command'; this agent's runtime is "
                    f"{self.runtime!r}",
                    at=("argv",),
                )
        elif self.argv is None:
            raise _Invalid("missing; runtime 'command' requires it", at=("argv",))
        elif not self.argv:
            raise _Invalid(
                'got an empty array; allowed: the program and its arguments, e.g. ["./agent.sh"]',
                at=("argv",),
            )
        elif not self.argv[0]:
            raise _Invalid("got ''; allowed: a program name or path", at=("argv", 0))
        return self


Decision = Literal["allow", "deny", "ask"]

_TOOL_RULE = re.compile(r"(?P<name>[^()\s]+)(?:\((?P<argument>.+)\))?")


class PermissionRule(_Model):
    """One `[[permission]]` table of agents.toml: who may use which tool without asking."""

    tool: StrictStr
    decision: Decision
    agent: StrictStr = ""
    """Only this agent's requests; empty: every agent's."""
    message: StrictStr = ""
    """What a denied agent is told (a default names the rule)."""

    @field_validator("tool")
    @classmethod
    def _tool_pattern(cls, value: str) -> str:
        if _TOOL_RULE.fullmatch(value) is None:
            raise _Invalid(
                f"got {value!r}; allowed: a tool name, optionally with an argument pattern, "
                'e.g. "Bash", "Bash(git *)" or "mcp__github__*"'
            )
        return value

    @property
    def tool_name(self) -> str:
        return self._parts()[0]

    @property
    def argument(self) -> str | None:
        """The pattern in parentheses, if the rule has one."""
        return self._parts()[1]

    def _parts(self) -> tuple[str, str | None]:
        found = _TOOL_RULE.fullmatch(self.tool)
        assert found is not None  # checked when loaded
        return found["name"], found["argument"]


class AgentsConfig(_Model):
    """agents.toml: the `[[agent]]` tables, in file order, and the `[[permission]]` rules."""

    permission_timeout_secs: StrictInt = Field(default=300, gt=0)
    agents: tuple[AgentConfig, ...] = Field(default=(), alias="agent")
    permissions: tuple[PermissionRule, ...] = Field(default=(), alias="permission")

    @field_validator("agents")
    @classmethod
    def _unique_names(cls, agents: tuple[AgentConfig, ...]) -> tuple[AgentConfig, ...]:
        _unique_names([agent.name for agent in agents], "agent")
        return agents

    @model_validator(mode="after")
    def _rules_name_known_agents(self) -> Self:
        names = {agent.name for agent in self.agents}
        for index, rule in enumerate(self.permissions):
            if rule.agent and rule.agent not in names:
                known = ", ".join(repr(name) for name in sorted(names)) or "none"
                raise _Invalid(
                    f"no [[agent]] is named {rule.agent!r}; agents: {known}",
                    at=("permission", index, "agent"),
                )
        return self


def _unique_names(names: list[str], table: str) -> None:
    """Refuse the second `[[table]]` that reuses a name, pointing at the first."""
    first: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in first:
            raise _Invalid(
                f"duplicate name {json.dumps(name)}; {table}[{first[name]}] already has it",
                at=(index, "name"),
            )
        first[name] = index


def load_project_config(path: Path) -> ProjectConfig:
    """Read and check project.toml; raise `ConfigError` on any problem."""
    return _load(path, ProjectConfig)


def load_agents_config(path: Path) -> AgentsConfig:
    """Read and check agents.toml; raise `ConfigError` on any problem."""
    return _load(path, AgentsConfig)


_M = TypeVar("_M", bound=BaseModel)

_TOML_POSITION = re.compile(
    r"^(?P<what>.*) \(at (?:line (?P<line>\d+), column (?P<column>\d+)|end of document)\)$"
)


def _load(path: Path, model: type[_M]) -> _M:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            path, ["file not found; run `huskies init` in your git repository to create it"]
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [f"not UTF-8 text (bad byte at offset {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError(path, [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [_syntax_problem(str(exc))]) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(model, data, error) for error in exc.errors()]
        raise ConfigError(path, problems) from None


def _syntax_problem(message: str) -> str:
    match = _TOML_POSITION.match(message)
    if match is None:
        return f"TOML syntax error: {message}"
    what = match["what"][:1].lower() + match["what"][1:]
    where = f"line {match['line']}, column {match['column']}" if match["line"] else "end of file"
    return f"TOML syntax error at {where}: {what}"


def _problem(model: type[BaseModel], data: dict[str, Any], error: ErrorDetails) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    value = error["input"]
    context = error.get("ctx", {})
    if kind == "extra_forbidden":
        keys = ", ".join(repr(key) for key in _keys(_annotation_at(model, loc[:-1])))
        return _keyed(data, loc[:-1], f"unknown key {loc[-1]!r}; allowed keys: {keys}")
    if kind == "value_error" and isinstance(context.get("error"), _Invalid):
        invalid: _Invalid = context["error"]
        return _keyed(data, loc + invalid.at, str(invalid))
    annotation = _annotation_at(model, loc)
    if kind == "missing":
        return _keyed(data, loc, f"missing; {_allowed(annotation, loc)}")
    if kind == "greater_than":
        return _keyed(data, loc, f"got {_found(value)}; allowed: greater than {context['gt']:g}")
    if kind == "greater_than_equal":
        return _keyed(data, loc, f"got {_found(value)}; allowed: {context['ge']:g} or more")
    if kind == "finite_number":
        return _keyed(data, loc, f"got {_found(value)}; allowed: a finite number")
    # A value of the wrong type, or not one of a fixed set of choices.
    return _keyed(data, loc, f"got {_found(value)}; {_allowed(annotation, loc)}")


def _keyed(data: dict[str, Any], loc: tuple[str | int, ...], text: str) -> str:
    """`text` prefixed with the dotted key at `loc`; an agent's index is followed by its name."""
    label = ""
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            label += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            name = node.get("name") if isinstance(node, dict) else None
            if isinstance(name, str) and name.strip():
                label += f" ({json.dumps(name)})"
        else:
            key = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part)
            label += f".{key}" if label else key
            node = node.get(part) if isinstance(node, dict) else None
    return f"{label}: {text}" if label else text


def _unwrap(annotation: Any) -> Any:
    """Strip `Annotated[...]` and `| None` down to the type underneath."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, UnionType):
            annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _field_key(model: type[BaseModel], name: str) -> str:
    return model.model_fields[name].alias or name


def _keys(model: type[BaseModel]) -> list[str]:
    return [_field_key(model, name) for name in model.model_fields]


def _annotation_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> Any:
    """The declared type of the value at `loc` under `model`."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        origin = get_origin(annotation)
        if _is_model(annotation):
            fields = annotation.model_fields
            annotation = next(
                fields[name].annotation for name in fields if _field_key(annotation, name) == part
            )
        elif origin is tuple:
            annotation = get_args(annotation)[0]
        elif origin is dict:
            annotation = get_args(annotation)[1]
    return _unwrap(annotation)


_SCALARS: dict[Any, tuple[str, str]] = {
    str: ("a string", "strings"),
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
}


def _allowed(annotation: Any, loc: tuple[str | int, ...]) -> str:
    """What may stand at `loc`: "allowed: 'a', 'b'" for a choice, "expected <type>" otherwise."""
    origin = get_origin(annotation)
    if origin is Literal:
        return "allowed: " + ", ".join(repr(choice) for choice in get_args(annotation))
    if origin is tuple:
        item = _unwrap(get_args(annotation)[0])
        if _is_model(item):
            return f"expected an array of tables, written [[{loc[-1]}]]"
        return f"expected an array of {_SCALARS[item][1]}"
    if origin is dict:
        return f"expected a table of {_SCALARS[_unwrap(get_args(annotation)[1])][1]}"
    if _is_model(annotation):
        return "expected a table"
    return f"expected {_SCALARS[annotation][0]}"


def _found(value: Any) -> str:
    """A TOML value as it would be written: '5', 5, true, 1979-05-27; "an array", "a table"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return repr(value)
