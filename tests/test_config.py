"""project.toml and agents.toml: real files, the templates, and every kind of bad input."""

import re
import tomllib
from pathlib import Path

import pytest

from huskies.config import (
    AGENTS_TOML_TEMPLATE,
    PLACEHOLDERS,
    PROJECT_TOML_TEMPLATE,
    AgentConfig,
    AgentsConfig,
    ConfigError,
    ProjectConfig,
    ServerConfig,
    StoreConfig,
    SyncConfig,
    load_agents_config,
    load_project_config,
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / ".huskies" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def project_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, "project.toml", text)
    with pytest.raises(ConfigError) as info:
        load_project_config(path)
    return checked(info.value, path)


def agents_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, "agents.toml", text)
    with pytest.raises(ConfigError) as info:
        load_agents_config(path)
    return checked(info.value, path)


def checked(error: ConfigError, path: Path) -> str:
    """Every line of the message names the file; returns the message without that prefix."""
    assert error.path == path
    lines = str(error).splitlines()
    assert len(lines) == len(error.problems) >= 1
    for line in lines:
        assert line.startswith(f"{path}: ")
    return "\n".join(line.removeprefix(f"{path}: ") for line in lines)


AGENT_DEFAULTS = {
    "name": '"coder"',
    "stage": '"coder"',
    "runtime": '"claude-code"',
    "prompt": '"Work on {title}"',
}


def agent(**keys: str | None) -> str:
    """An [[agent]] table: the required keys, with `keys` (TOML text; None drops a key) on top."""
    merged = {**AGENT_DEFAULTS, **keys}
    lines = [f"{key} = {value}" for key, value in merged.items() if value is not None]
    return "[[agent]]\n" + "\n".join(lines) + "\n"


# --- templates ------------------------------------------------------------------------------


def test_project_template_loads_as_the_defaults(tmp_path):
    config = load_project_config(write(tmp_path, "project.toml", PROJECT_TOML_TEMPLATE))
    assert config == ProjectConfig()
    assert config.store == StoreConfig(synchronous="normal", snapshot_every=10_000)
    assert (config.base_branch, config.default_qa, config.timezone) == ("", "server", "UTC")


def test_agents_template_holds_one_default_coder(tmp_path):
    config = load_agents_config(write(tmp_path, "agents.toml", AGENTS_TOML_TEMPLATE))
    [coder] = config.agents
    assert coder == AgentConfig(
        name="coder", stage="coder", runtime="claude-code", prompt=coder.prompt
    )
    for name in PLACEHOLDERS:
        assert f"{{{name}}}" in coder.prompt


def comment_above_each_key(template: str) -> None:
    lines = template.splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^\w+ = ", line):
            assert lines[index - 1].startswith("#"), f"no comment above {line!r}"


def test_templates_spell_out_every_key_with_a_comment():
    project = tomllib.loads(PROJECT_TOML_TEMPLATE)
    # Components are an example, commented out (a project has none until it says what to run).
    assert set(project) == set(ProjectConfig.model_fields) - {"components"}
    assert set(project["store"]) == set(StoreConfig.model_fields)
    assert set(project["sync"]) == set(SyncConfig.model_fields)
    agents = tomllib.loads(AGENTS_TOML_TEMPLATE)
    assert set(agents) == {"permission_timeout_secs", "agent", "permission"}
    [coder] = agents["agent"]
    assert set(coder) == set(AgentConfig.model_fields) - {"argv"}
    comment_above_each_key(PROJECT_TOML_TEMPLATE)
    comment_above_each_key(AGENTS_TOML_TEMPLATE)


def test_the_commented_component_in_the_template_is_valid(tmp_path):
    example = PROJECT_TOML_TEMPLATE[PROJECT_TOML_TEMPLATE.index("# [[component]]") :]
    uncommented = "\n".join(line.removeprefix("# ") for line in example.splitlines())
    config = load_project_config(write(tmp_path, "project.toml", uncommented + "\n"))
    (app,) = config.components
    assert (app.name, app.path, set(app.gates)) == ("app", ".", {"test", "lint"})
    assert app.gates["test"].timeout_secs == 600


def test_the_commented_command_agent_in_the_template_is_valid(tmp_path):
    example = AGENTS_TOML_TEMPLATE[AGENTS_TOML_TEMPLATE.index("# [[agent]]") :]
    uncommented = "\n".join(line.removeprefix("# ") for line in example.splitlines())
    text = AGENTS_TOML_TEMPLATE + "\n" + uncommented + "\n"
    config = load_agents_config(write(tmp_path, "agents.toml", text))
    assert [a.name for a in config.agents] == ["coder", "script"]
    script = config.agents[1]
    assert script.runtime == "command"
    assert script.argv == ("./scripts/agent.sh", "--verbose")


# --- good files -----------------------------------------------------------------------------


def test_an_empty_project_toml_means_the_defaults(tmp_path):
    assert load_project_config(write(tmp_path, "project.toml", "")) == ProjectConfig()


def test_project_toml_values_are_read(tmp_path):
    text = """
base_branch = "trunk"
default_qa = "human"
timezone = "Europe/London"
[store]
synchronous = "full"
snapshot_every = 100
[server]
hosts = ["huskies.example.com", "10.0.0.5", "[fe80::1]"]
"""
    config = load_project_config(write(tmp_path, "project.toml", text))
    assert config == ProjectConfig(
        base_branch="trunk",
        default_qa="human",
        timezone="Europe/London",
        store=StoreConfig(synchronous="full", snapshot_every=100),
        server=ServerConfig(hosts=("huskies.example.com", "10.0.0.5", "[fe80::1]")),
    )


def test_agents_toml_values_are_read(tmp_path):
    text = agent(
        name='"reviewer"',
        stage='"qa"',
        runtime='"codex"',
        model='"gpt-5"',
        max_turns="7",
        max_budget_usd="2",
        inactivity_timeout_secs="30",
        allowed_tools='["Bash", "Edit"]',
        env='{ RUST_LOG = "debug", "odd.name" = "" }',
        prompt="'''\nReview {branch} against {base_branch} in {worktree}.\n'''",
        system_prompt='"Story {number} ({story_id}): {title}. Braces: {{ and }}."',
    ) + agent(name='"script"', runtime='"command"', argv='["./agent.sh", "{raw}"]')
    reviewer, script = load_agents_config(write(tmp_path, "agents.toml", text)).agents
    assert reviewer == AgentConfig(
        name="reviewer",
        stage="qa",
        runtime="codex",
        model="gpt-5",
        max_turns=7,
        max_budget_usd=2.0,
        inactivity_timeout_secs=30,
        allowed_tools=("Bash", "Edit"),
        env={"RUST_LOG": "debug", "odd.name": ""},
        prompt="Review {branch} against {base_branch} in {worktree}.\n",
        system_prompt="Story {number} ({story_id}): {title}. Braces: {{ and }}.",
    )
    assert script.argv == ("./agent.sh", "{raw}")
    assert script.prompt == "Work on {title}"


def test_every_placeholder_fills_in_with_str_format(tmp_path):
    prompt = " ".join(f"{{{name}}}" for name in PLACEHOLDERS) + " {{literal}}"
    text = agent(prompt=f"'{prompt}'")
    [coder] = load_agents_config(write(tmp_path, "agents.toml", text)).agents
    values = {name: name.upper() for name in PLACEHOLDERS}
    assert coder.prompt.format(**values) == " ".join(values.values()) + " {literal}"


def test_an_agents_toml_without_agents_loads_empty(tmp_path):
    assert load_agents_config(write(tmp_path, "agents.toml", "# none yet\n")) == AgentsConfig()


# --- file-level errors ----------------------------------------------------------------------


def test_a_missing_file_names_it_and_says_to_run_init(tmp_path):
    for name, load in [("project.toml", load_project_config), ("agents.toml", load_agents_config)]:
        path = tmp_path / ".huskies" / name
        with pytest.raises(ConfigError) as info:
            load(path)
        assert str(info.value) == (
            f"{path}: file not found; run `huskies init` in your git repository to create it"
        )


def test_a_toml_syntax_error_gives_line_and_column(tmp_path):
    message = project_error(tmp_path, 'base_branch = "main"\ntimezone = \n')
    assert message == "TOML syntax error at line 2, column 12: invalid value"


def test_a_toml_error_without_a_position_says_end_of_file(tmp_path):
    message = agents_error(tmp_path, 'x = "unterminated')
    assert message == "TOML syntax error at end of file: unterminated string"


def test_a_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "project.toml"
    path.write_bytes(b'base_branch = "ma\xffin"\n')
    with pytest.raises(ConfigError) as info:
        load_project_config(path)
    assert checked(info.value, path) == "not UTF-8 text (bad byte at offset 17)"


def test_a_directory_in_place_of_the_file_is_refused(tmp_path):
    path = tmp_path / "agents.toml"
    path.mkdir()
    with pytest.raises(ConfigError) as info:
        load_agents_config(path)
    assert checked(info.value, path).startswith("cannot read the file: ")


def test_a_failed_load_writes_nothing(tmp_path):
    path = write(tmp_path, "project.toml", 'default_qa = "robot"\n')
    before = path.read_bytes(), path.stat().st_mtime_ns, sorted(tmp_path.rglob("*"))
    with pytest.raises(ConfigError):
        load_project_config(path)
    assert (path.read_bytes(), path.stat().st_mtime_ns, sorted(tmp_path.rglob("*"))) == before


# --- project.toml keys ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "foo = 1\n",
            "unknown key 'foo'; allowed keys: 'base_branch', 'default_qa', 'timezone', "
            "'max_coders', 'max_retries', 'archive_after', 'component', 'store', 'sync', 'server'",
        ),
        ("max_coders = 0\n", "max_coders: got 0; allowed: greater than 0"),
        (
            'archive_after = "4 hours"\n',
            "archive_after: got '4 hours'; allowed: a duration such as '90s', '30m', '4h' or '2d'",
        ),
        (
            '[[component]]\nname = "a"\npath = "../x"\n',
            "component[0] (\"a\").path: got '../x'; allowed: a path inside the repository, "
            "relative to its top level, such as '.' or 'backend'",
        ),
        (
            '[[component]]\nname = "a"\n[[component]]\nname = "a"\n',
            'component[1] ("a").name: duplicate name "a"; component[0] already has it',
        ),
        (
            '[[component]]\nname = "a"\n[component.gates.test]\ncommand = ""\n',
            "component[0] (\"a\").gates.test.command: got ''; allowed: a shell command such "
            "as 'pytest -q'",
        ),
        ("base_branch = 5\n", "base_branch: got 5; expected a string"),
        ('default_qa = "robot"\n', "default_qa: got 'robot'; allowed: 'server', 'agent', 'human'"),
        ("default_qa = true\n", "default_qa: got true; allowed: 'server', 'agent', 'human'"),
        (
            'timezone = "Mars/Olympus_Mons"\n',
            "timezone: got 'Mars/Olympus_Mons'; "
            "allowed: an IANA time zone name such as 'UTC' or 'Europe/London'",
        ),
        (
            'timezone = ""\n',
            "timezone: got ''; allowed: an IANA time zone name such as 'UTC' or 'Europe/London'",
        ),
        (
            'timezone = "../../etc/passwd"\n',
            "timezone: got '../../etc/passwd'; "
            "allowed: an IANA time zone name such as 'UTC' or 'Europe/London'",
        ),
        ("timezone = 0\n", "timezone: got 0; expected a string"),
        ("store = 5\n", "store: got 5; expected a table"),
        (
            '[store]\nsynchronous = "fast"\n',
            "store.synchronous: got 'fast'; allowed: 'normal', 'full'",
        ),
        ("[store]\nsnapshot_every = 99\n", "store.snapshot_every: got 99; allowed: 100 or more"),
        (
            '[store]\nsnapshot_every = "500"\n',
            "store.snapshot_every: got '500'; expected an integer",
        ),
        (
            "[store]\nsnapshot_every = 500.0\n",
            "store.snapshot_every: got 500.0; expected an integer",
        ),
        (
            "[store]\nwal = true\n",
            "store: unknown key 'wal'; allowed keys: 'synchronous', 'snapshot_every'",
        ),
        (
            '[sync]\nrendezvous = ["http://host/crdt-sync"]\n',
            "sync.rendezvous: got 'http://host/crdt-sync'; allowed: ws:// or wss:// URLs such as "
            "'ws://host:3000/crdt-sync'",
        ),
        (
            '[sync]\ntrusted_keys = ["ABC"]\n',
            "sync.trusted_keys: got 'ABC'; allowed: node ids of 64 lowercase hex digits "
            "(`huskies node id` prints one)",
        ),
        (
            "[sync]\nping_interval_secs = 0\n",
            "sync.ping_interval_secs: got 0; allowed: greater than 0",
        ),
        *(
            (
                f'base_branch = "{bad}"\n',
                f"base_branch: got '{bad}'; allowed: a git branch name such as 'main' or "
                "'release/2.x' (no spaces, control characters, '..', or any of ~^:?*[\\), or '' "
                "for the branch checked out when the server starts",
            )
            for bad in ("my branch", "a..b", "-x", "x.lock", "a~1", "feature/")
        ),
        *(
            (
                f'[server]\nhosts = ["{bad}"]\n',
                f"server.hosts: got '{bad}'; allowed: a host name or address alone, with no "
                "scheme, port or path, such as 'huskies.example.com' or '192.168.1.20'",
            )
            for bad in ("https://box", "box:3000", "box/x", "", "-box", "a..b", "*")
        ),
    ],
)
def test_a_bad_project_key_is_named_with_what_was_found_and_allowed(tmp_path, text, expected):
    assert project_error(tmp_path, text) == expected


def test_every_bad_project_key_is_reported_at_once(tmp_path):
    message = project_error(tmp_path, 'default_qa = "x"\n[store]\nsynchronous = 1\n')
    assert message.splitlines() == [
        "default_qa: got 'x'; allowed: 'server', 'agent', 'human'",
        "store.synchronous: got 1; allowed: 'normal', 'full'",
    ]


# --- agents.toml keys -----------------------------------------------------------------------

ALL_PLACEHOLDERS = "{story_id}, {number}, {title}, {worktree}, {branch}, {base_branch}"
AGENT_KEYS = (
    "'name', 'stage', 'runtime', 'model', 'max_turns', 'max_budget_usd', "
    "'inactivity_timeout_secs', 'allowed_tools', 'env', 'prompt', 'system_prompt', 'argv'"
)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"name": '""'}, "agent[0].name: got ''; allowed: a name that is not empty"),
        ({"name": '"  "'}, "agent[0].name: got '  '; allowed: a name that is not empty"),
        ({"name": None}, "agent[0].name: missing; expected a string"),
        (
            {"name": '"co\\u0000der"'},
            "agent[0] (\"co\\u0000der\").name: got 'co\\x00der', which holds the control "
            "character U+0000 at position 2; allowed: one line of plain text",
        ),
        (
            {"runtime": '"command"', "argv": '["sh", "a\\u0000b"]'},
            "agent[0] (\"coder\").argv[1]: got 'a\\x00b'; a program's arguments and "
            "environment cannot hold a NUL character",
        ),
        (
            {"env": '{ A = "x\\u0000" }'},
            "agent[0] (\"coder\").env.A: got 'x\\x00'; a program's arguments and environment "
            "cannot hold a NUL character",
        ),
        (
            {"env": '{ "A=B" = "x" }'},
            "agent[0] (\"coder\").env.\"A=B\": got 'A=B'; allowed: a variable name without '='",
        ),
        ({"name": "7"}, "agent[0].name: got 7; expected a string"),
        (
            {"stage": '"review"'},
            "agent[0] (\"coder\").stage: got 'review'; allowed: 'coder', 'qa', 'mergemaster'",
        ),
        (
            {"stage": None},
            "agent[0] (\"coder\").stage: missing; allowed: 'coder', 'qa', 'mergemaster'",
        ),
        (
            {"runtime": '"docker"'},
            "agent[0] (\"coder\").runtime: got 'docker'; "
            "allowed: 'claude-code', 'codex', 'command'",
        ),
        ({"model": "4"}, 'agent[0] ("coder").model: got 4; expected a string'),
        ({"max_turns": "0"}, 'agent[0] ("coder").max_turns: got 0; allowed: greater than 0'),
        ({"max_turns": "-3"}, 'agent[0] ("coder").max_turns: got -3; allowed: greater than 0'),
        ({"max_turns": '"50"'}, "agent[0] (\"coder\").max_turns: got '50'; expected an integer"),
        ({"max_turns": "50.0"}, 'agent[0] ("coder").max_turns: got 50.0; expected an integer'),
        ({"max_turns": "true"}, 'agent[0] ("coder").max_turns: got true; expected an integer'),
        (
            {"max_budget_usd": "0.0"},
            'agent[0] ("coder").max_budget_usd: got 0.0; allowed: greater than 0',
        ),
        (
            {"max_budget_usd": "-1"},
            'agent[0] ("coder").max_budget_usd: got -1; allowed: greater than 0',
        ),
        (
            {"max_budget_usd": "inf"},
            'agent[0] ("coder").max_budget_usd: got inf; allowed: a finite number',
        ),
        (
            {"max_budget_usd": "nan"},
            'agent[0] ("coder").max_budget_usd: got nan; allowed: a finite number',
        ),
        (
            {"max_budget_usd": '"5"'},
            "agent[0] (\"coder\").max_budget_usd: got '5'; expected a number",
        ),
        (
            {"inactivity_timeout_secs": "0"},
            'agent[0] ("coder").inactivity_timeout_secs: got 0; allowed: greater than 0',
        ),
        (
            {"inactivity_timeout_secs": "1979-05-27"},
            'agent[0] ("coder").inactivity_timeout_secs: got 1979-05-27; expected an integer',
        ),
        (
            {"allowed_tools": '"Bash"'},
            "agent[0] (\"coder\").allowed_tools: got 'Bash'; expected an array of strings",
        ),
        (
            {"allowed_tools": '["Bash", 1]'},
            'agent[0] ("coder").allowed_tools[1]: got 1; expected a string',
        ),
        ({"env": '["A=1"]'}, 'agent[0] ("coder").env: got an array; expected a table of strings'),
        ({"env": "{ A = 1 }"}, 'agent[0] ("coder").env.A: got 1; expected a string'),
        ({"env": '{ "A B" = {} }'}, 'agent[0] ("coder").env."A B": got a table; expected a string'),
        ({"prompt": None}, 'agent[0] ("coder").prompt: missing; expected a string'),
        (
            {"prompt": '"Fix {bug}"'},
            f'agent[0] ("coder").prompt: unknown placeholder {{bug}}; allowed: {ALL_PLACEHOLDERS}',
        ),
        (
            {"system_prompt": '"{}"'},
            f'agent[0] ("coder").system_prompt: unknown placeholder {{}}; '
            f"allowed: {ALL_PLACEHOLDERS}",
        ),
        (
            {"prompt": '"{0}"'},
            f'agent[0] ("coder").prompt: unknown placeholder {{0}}; allowed: {ALL_PLACEHOLDERS}',
        ),
        (
            {"prompt": '"{worktree.parent}"'},
            f'agent[0] ("coder").prompt: unknown placeholder {{worktree.parent}}; '
            f"allowed: {ALL_PLACEHOLDERS}",
        ),
        (
            {"prompt": '"{title!r}"'},
            'agent[0] ("coder").prompt: got placeholder {title!r}; allowed: plain {title}',
        ),
        (
            {"prompt": '"{number:04}"'},
            'agent[0] ("coder").prompt: got placeholder {number:04}; allowed: plain {number}',
        ),
        (
            {"system_prompt": '"return {"'},
            "agent[0] (\"coder\").system_prompt: has a '{' or '}' that opens or closes no "
            "placeholder; write {{ and }} for literal braces",
        ),
        (
            {"prompt": '"json: {\\"a\\": 1}"'},
            f'agent[0] ("coder").prompt: unknown placeholder {{"a": 1}}; '
            f"allowed: {ALL_PLACEHOLDERS}",
        ),
        (
            {"prompt": '"done}"'},
            "agent[0] (\"coder\").prompt: has a '{' or '}' that opens or closes no "
            "placeholder; write {{ and }} for literal braces",
        ),
        (
            {"argv": '["claude"]'},
            "agent[0] (\"coder\").argv: only allowed with runtime 'command'; "
            "this agent's runtime is 'claude-code'",
        ),
        (
            {"runtime": '"codex"', "argv": "[]"},
            "agent[0] (\"coder\").argv: only allowed with runtime 'command'; "
            "this agent's runtime is 'codex'",
        ),
        (
            {"runtime": '"command"'},
            "agent[0] (\"coder\").argv: missing; runtime 'command' requires it",
        ),
        (
            {"runtime": '"command"', "argv": "[]"},
            'agent[0] ("coder").argv: got an empty array; allowed: the program and its '
            'arguments, e.g. ["./agent.sh"]',
        ),
        (
            {"runtime": '"command"', "argv": '["", "x"]'},
            "agent[0] (\"coder\").argv[0]: got ''; allowed: a program name or path",
        ),
        (
            {"runtime": '"command"', "argv": '"./agent.sh"'},
            "agent[0] (\"coder\").argv: got './agent.sh'; expected an array of strings",
        ),
        (
            {"max_turn": "5"},
            f"agent[0] (\"coder\"): unknown key 'max_turn'; allowed keys: {AGENT_KEYS}",
        ),
    ],
)
def test_a_bad_agent_key_is_named_with_the_agent(tmp_path, keys, expected):
    assert agents_error(tmp_path, agent(**keys)) == expected


def test_a_later_agent_is_named_by_index_and_name(tmp_path):
    text = agent() + agent(name='"reviewer"', stage='"qa"') + agent(name='"x"', max_turns="0")
    assert (
        agents_error(tmp_path, text) == 'agent[2] ("x").max_turns: got 0; allowed: greater than 0'
    )


def test_a_duplicate_agent_name_is_refused(tmp_path):
    text = agent() + agent(name='"qa"', stage='"qa"') + agent(stage='"mergemaster"')
    assert agents_error(tmp_path, text) == (
        'agent[2] ("coder").name: duplicate name "coder"; agent[0] already has it'
    )


def test_an_agent_name_with_quotes_is_escaped_in_the_key(tmp_path):
    text = agent(name="'say \"hi\"'", max_turns="0")
    assert agents_error(tmp_path, text) == (
        'agent[0] ("say \\"hi\\"").max_turns: got 0; allowed: greater than 0'
    )


def test_agent_as_a_single_table_asks_for_an_array_of_tables(tmp_path):
    text = '[agent]\nname = "coder"\n'
    assert agents_error(tmp_path, text) == (
        "agent: got a table; expected an array of tables, written [[agent]]"
    )


def test_an_agent_that_is_not_a_table_is_refused(tmp_path):
    assert (
        agents_error(tmp_path, 'agent = ["coder"]\n') == "agent[0]: got 'coder'; expected a table"
    )


def test_an_unknown_top_level_key_in_agents_toml(tmp_path):
    assert agents_error(tmp_path, "[[agents]]\n") == (
        "unknown key 'agents'; allowed keys: 'permission_timeout_secs', 'agent', 'permission'"
    )


def test_every_bad_agent_key_is_reported_at_once(tmp_path):
    text = agent(max_turns="0", runtime='"docker"') + agent(name='"qa"', stage='"review"', x="1")
    assert agents_error(tmp_path, text).splitlines() == [
        "agent[0] (\"coder\").runtime: got 'docker'; allowed: 'claude-code', 'codex', 'command'",
        'agent[0] ("coder").max_turns: got 0; allowed: greater than 0',
        "agent[1] (\"qa\").stage: got 'review'; allowed: 'coder', 'qa', 'mergemaster'",
        f"agent[1] (\"qa\"): unknown key 'x'; allowed keys: {AGENT_KEYS}",
    ]


# --- [[permission]] rules -------------------------------------------------------------------


def test_the_templates_permission_rules_load(tmp_path):
    config = load_agents_config(write(tmp_path, "agents.toml", AGENTS_TOML_TEMPLATE))
    assert config.permission_timeout_secs == 300
    git, bash = config.permissions
    assert (git.tool_name, git.argument, git.decision) == ("Bash", "git *", "allow")
    assert (bash.tool_name, bash.argument, bash.decision) == ("Bash", None, "ask")


def test_bad_permission_rules_are_named(tmp_path):
    text = (
        agent()
        + '[[permission]]\ntool = "Bash(git *"\ndecision = "maybe"\n'
        + '[[permission]]\ntool = ""\ndecision = "allow"\nreason = "x"\n'
    )
    assert agents_error(tmp_path, text).splitlines() == [
        "permission[0].tool: got 'Bash(git *'; allowed: a tool name, optionally with an "
        'argument pattern, e.g. "Bash", "Bash(git *)" or "mcp__github__*"',
        "permission[0].decision: got 'maybe'; allowed: 'allow', 'deny', 'ask'",
        "permission[1].tool: got ''; allowed: a tool name, optionally with an argument "
        'pattern, e.g. "Bash", "Bash(git *)" or "mcp__github__*"',
        "permission[1]: unknown key 'reason'; allowed keys: 'tool', 'decision', 'agent', 'message'",
    ]


def test_a_permission_rule_for_an_unknown_agent_is_refused(tmp_path):
    text = agent() + '[[permission]]\ntool = "Bash"\ndecision = "ask"\nagent = "cdoer"\n'
    assert agents_error(tmp_path, text) == (
        "permission[0].agent: no [[agent]] is named 'cdoer'; agents: 'coder'"
    )


def test_the_permission_timeout_must_be_positive(tmp_path):
    text = "permission_timeout_secs = 0\n" + agent()
    assert agents_error(tmp_path, text) == "permission_timeout_secs: got 0; allowed: greater than 0"
