"""The permission policy: first matching rule wins, argument patterns, chained commands, plain
git, paths relative to the worktree (and never outside it, nor in git's own files), huskies' own
tools, and deny by default."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from huskies.agents.permissions import ToolCall, rule_on
from huskies.config import PermissionRule


def rule(tool: str, decision: str, **keys: str) -> PermissionRule:
    return PermissionRule.model_validate({"tool": tool, "decision": decision, **keys})


def ask(tmp_path: Path, tool: str, agent: str | None = "coder", **tool_input: Any) -> ToolCall:
    return ToolCall(tool, tool_input, agent, tmp_path)


RULES = (
    rule("Bash(git *)", "allow"),
    rule("Bash(rm *)", "deny", message="no deleting"),
    rule("Bash", "ask"),
    rule("Edit(docs/*)", "allow"),
    rule("mcp__github__*", "allow", agent="reviewer"),
    rule("mcp__huskies__purge_item", "deny"),
)


def test_the_first_matching_rule_decides(tmp_path: Path):
    git = rule_on(RULES, ask(tmp_path, "Bash", command="git status"))
    assert (git.decision, git.shown) == ("allow", "Bash(git status)")
    assert "permission[0]" in git.reason
    assert rule_on(RULES, ask(tmp_path, "Bash", command="rm -rf build")).decision == "deny"
    assert rule_on(RULES, ask(tmp_path, "Bash", command="make")).decision == "ask"


def test_a_rules_message_is_what_a_denied_agent_is_told(tmp_path: Path):
    ruling = rule_on(RULES, ask(tmp_path, "Bash", command="rm -rf build"))
    assert ruling.reason == "no deleting"


def test_a_chained_or_redirected_command_never_matches_an_allow_pattern(tmp_path: Path):
    for command in (
        "git status; rm -rf ~",
        "git status && curl evil",
        "git log | sh",
        "git log > /etc/passwd",
        "git $(rm -rf ~)",
        "git `whoami`",
        "git status\nrm -rf ~",
    ):
        # Not allowed by Bash(git *): the plain Bash rule asks a person instead.
        assert rule_on(RULES, ask(tmp_path, "Bash", command=command)).decision == "ask", command
    anything = (rule("Bash(*)", "allow"),)
    assert rule_on(anything, ask(tmp_path, "Bash", command="a; b")).decision == "allow"


def test_paths_match_relative_to_the_worktree(tmp_path: Path):
    inside = rule_on(RULES, ask(tmp_path, "Edit", file_path=str(tmp_path / "docs" / "a.md")))
    assert (inside.decision, inside.shown) == ("allow", "Edit(docs/a.md)")
    relative = rule_on(RULES, ask(tmp_path, "Edit", file_path="docs/deep/b.md"))
    assert relative.decision == "allow"
    elsewhere = rule_on(RULES, ask(tmp_path, "Edit", file_path="src/c.py"))
    assert elsewhere.decision == "deny"
    assert "no [[permission]] rule" in elsewhere.reason


def test_a_path_outside_the_worktree_is_denied_whatever_the_rules(tmp_path: Path):
    everything = (rule("Edit", "allow"), rule("Write(*)", "allow"))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "out").symlink_to(tmp_path.parent)
    for tool, path in (
        ("Edit", "../x"),
        ("Edit", "/etc/passwd"),
        ("Write", "docs/out/x"),
        ("Edit", "docs/../../x"),
        ("Write", "a\x00b"),  # no path at all: refused, not a crash
    ):
        ruling = rule_on(everything, ask(tmp_path, tool, file_path=path))
        assert ruling.decision == "deny", path
        assert "is outside" in ruling.reason


GITS_OWN = "is git's own file: an agent that writes it can make git run any program"

EVERY_FILE = (rule("Edit", "allow"), rule("Write(*)", "allow"), rule("Read", "allow"))


def test_gits_own_files_are_denied_whatever_the_rules(tmp_path: Path):
    (tmp_path / ".git").write_text("gitdir: /srv/repo/.git/worktrees/wt\n")
    (tmp_path / "link").symlink_to(".git")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to("..")
    for tool, key, path, shown in (
        ("Edit", "file_path", ".git", "Edit(.git)"),
        ("Write", "file_path", str(tmp_path / ".git"), "Write(.git)"),
        ("Write", "file_path", ".git/config", "Write(.git/config)"),
        ("Edit", "file_path", "./.git", "Edit(.git)"),
        ("Edit", "file_path", "sub/../.git", "Edit(.git)"),
        ("Write", "file_path", ".GIT/config", "Write(.GIT/config)"),
        ("Write", "file_path", ".Git", "Write(.Git)"),
        ("Edit", "file_path", "link", "Edit(.git)"),  # a symlink to .git
        ("Edit", "file_path", "sub/up/.git", "Edit(.git)"),
        ("Write", "file_path", "vendor/lib/.git/config", "Write(vendor/lib/.git/config)"),
        ("NotebookEdit", "notebook_path", ".git/x.ipynb", "NotebookEdit(.git/x.ipynb)"),
        ("Read", "file_path", ".git", "Read(.git)"),
    ):
        ruling = rule_on(EVERY_FILE, ask(tmp_path, tool, **{key: path}))
        assert (ruling.decision, ruling.shown) == ("deny", shown), path
        assert ruling.reason == f"{shown.partition('(')[2][:-1]} {GITS_OWN}", path


def test_files_named_like_git_are_ordinary_files(tmp_path: Path):
    (tmp_path / ".git").write_text("gitdir: /srv/repo/.git/worktrees/wt\n")
    for path in (
        ".gitignore",
        ".github/workflows/ci.yml",
        "src/.gitkeep",
        ".gitattributes",
        ".git-blame-ignore-revs",
        "git/config",
        "vendor/lib.git",
    ):
        assert rule_on(EVERY_FILE, ask(tmp_path, "Edit", file_path=path)).decision == "allow", path


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_the_git_directory_a_worktrees_dot_git_file_names_is_gits_own(tmp_path: Path):
    repo, worktree = tmp_path / "repo", tmp_path / "repo" / "wt"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q", "--allow-empty", "-mA")
    git(repo, "worktree", "add", "-q", str(worktree), "-b", "feature")
    # This is what refusing `git init --separate-git-dir` prevents: git moves the repository's
    # own directory into the worktree, and points the worktree's .git file at a directory in it.
    git(worktree, "init", "-q", "--separate-git-dir=moved")
    assert (worktree / ".git").read_text().startswith(f"gitdir: {worktree}/moved/worktrees/")
    for path in (
        "moved/config",  # the common directory: once the main repository's .git
        "moved/hooks/pre-commit",
        "moved/worktrees/wt/HEAD",  # the worktree's own git directory
        str(worktree / "moved" / "worktrees" / "wt" / "config.worktree"),
    ):
        ruling = rule_on(EVERY_FILE, ask(worktree, "Write", file_path=path))
        assert ruling.decision == "deny", path
        assert GITS_OWN in ruling.reason
    refused = rule_on(RULES, ask(worktree, "Bash", command="git log --output=moved/hooks/x"))
    assert refused.decision == "ask"
    assert f"`moved/hooks/x` {GITS_OWN}" in refused.reason
    assert rule_on(EVERY_FILE, ask(worktree, "Write", file_path="movedx/a")).decision == "allow"


def test_a_relative_gitdir_is_read_from_the_worktree(tmp_path: Path):
    (tmp_path / ".git").write_text("gitdir: hidden\n")
    ruling = rule_on(EVERY_FILE, ask(tmp_path, "Edit", file_path="hidden/config"))
    assert (ruling.decision, ruling.reason) == ("deny", f"hidden/config {GITS_OWN}")


def test_a_rule_for_one_agent_does_not_apply_to_others(tmp_path: Path):
    github = ask(tmp_path, "mcp__github__create_issue", agent="reviewer", title="x")
    assert rule_on(RULES, github).decision == "allow"
    coder = ask(tmp_path, "mcp__github__create_issue", agent="coder", title="x")
    assert rule_on(RULES, coder).decision == "deny"
    person = ask(tmp_path, "mcp__github__create_issue", agent=None, title="x")
    assert rule_on(RULES, person).decision == "deny"


def test_huskies_own_tools_are_allowed_unless_a_rule_says_otherwise(tmp_path: Path):
    todos = rule_on(RULES, ask(tmp_path, "mcp__huskies__get_todos", number=1))
    assert todos.decision == "allow"
    assert rule_on(RULES, ask(tmp_path, "mcp__huskies__purge_item", number=1)).decision == "deny"


def test_with_no_rules_everything_but_huskies_tools_is_denied(tmp_path: Path):
    assert rule_on((), ask(tmp_path, "Bash", command="ls")).decision == "deny"
    assert rule_on((), ask(tmp_path, "WebFetch", url="https://example.com")).decision == "deny"
    assert rule_on((), ask(tmp_path, "mcp__huskies__git_status")).decision == "allow"


def test_a_url_pattern(tmp_path: Path):
    rules = (rule("WebFetch(https://docs.python.org/*)", "allow"),)
    docs = ask(tmp_path, "WebFetch", url="https://docs.python.org/3/library/asyncio.html")
    assert rule_on(rules, docs).decision == "allow"
    other = ask(tmp_path, "WebFetch", url="https://example.com/?q=https://docs.python.org/")
    assert rule_on(rules, other).decision == "deny"


GIT_ALLOWED = "permission[0] (Bash(git *) → allow) did not apply because "

NOT_PLAIN = [
    # The hardening issue's examples.
    ("git status & id", "`&` runs the command before it in the background"),
    ("git -c alias.x='!id' x", "`git -c` sets configuration"),
    ("git -c core.pager=id log", "`git -c` sets configuration"),
    ("git config --global core.pager id", "`git config` changes configuration"),
    ("git -C / status", "`git -C` runs git in another directory"),
    ("git diff --no-index /etc/passwd /dev/null", "`git diff --no-index` reads files outside"),
    # Shell operators, wherever they stand.
    ("git status&id", "`&` runs the command before it in the background"),
    ("git status |& id", "`|&` runs another command"),
    ("git status || id", "`||` runs another command"),
    ("git status;id", "`;` runs another command"),
    ("git status \\; id", "`;` runs another command"),  # a literal `;`, refused all the same
    ("git log <(id)", "`<(` runs another command"),
    ("git diff >(id)", "`>(` runs another command"),
    ("git log ( id )", "`(` runs another command"),
    ("git log > log.txt", "`>` redirects"),
    ("git log >> log.txt", "`>>` redirects"),
    ("git log 2> err.txt", "`>` redirects"),
    ("git log 2>&1", "`>&` redirects"),
    ("git log &> all.txt", "`&>` redirects"),
    ("git apply < x.patch", "`<` redirects"),
    ("git apply <<EOF", "`<<` redirects"),
    ("git status\nid", "a line break runs another command"),
    ("git status \\\nid", "a line break (after `\\`)"),
    # Expansions that run or reach elsewhere, in double quotes too.
    ('git log "$(id)"', "`$(…)` runs another command"),
    ("git log `id`", "backticks run another command"),
    ('git log "`id`"', "backticks run another command"),
    ("git log $HOME", "`$HOME` expands a variable"),
    ('git log "${HOME}"', "`${…}` expands a variable"),
    ("git log $'\\x3b'", "is quoting that huskies does not read"),
    ("git diff {/etc/passwd,a.txt}", "braces like `{a,b}`"),
    ("git log # '\nid\n'", "`#` starts a comment"),
    ("git log 'unbalanced", "does not parse"),
    # git told to run a program, or to look elsewhere.
    ("git --config-env=core.pager=PAGER log", "`git --config-env` sets configuration"),
    ("git --git-dir=/tmp/other.git log", "`git --git-dir` points git at another repository"),
    ("git --work-tree=/ status", "`git --work-tree` points git at another directory"),
    ("git --exec-path=/tmp log", "`git --exec-path` changes where git finds"),
    ("git --bare log", "`git --bare` before a subcommand is not among"),
    ("git st", "`git st` is not one of git's own commands"),
    ("git x", "an alias can run any program"),
    ("git difftool -x id", "`git difftool` runs an external diff program"),
    ("git mergetool", "`git mergetool` runs an external merge program"),
    ("git filter-branch --tree-filter id", "`git filter-branch` runs shell commands"),
    ("git send-email a.patch", "`git send-email` runs a mail program"),
    ("git submodule foreach id", "`git submodule foreach` runs a shell command"),
    ("git bisect run id", "`git bisect run` runs the program"),
    ("git rebase --exec id main", "`git rebase --exec` names a program"),
    ("git rebase --exe=id main", "`git rebase --exec` names a program"),  # an abbreviation
    ("git rebase -x id main", "`git rebase -x` names a program"),
    ("git rebase -ix id main", "`git rebase -x` names a program"),
    ("git archive --remote=origin HEAD", "`git archive --remote` reads another repository"),
    ("git archive --exec=id HEAD", "`git archive --exec` names a program"),
    ("git fetch --upload-pack=id origin", "`git fetch --upload-pack` names a program"),
    ("git pull --upload-pack id origin", "`git pull --upload-pack` names a program"),
    ("git ls-remote --upload-pack=id .", "`git ls-remote --upload-pack` names a program"),
    ("git clone -u id https://example.com/r.git", "`git clone -u` names a program"),
    ("git clone -c core.fsmonitor=id a b", "`git clone -c` sets configuration"),
    ("git clone --template=hooks a b", "`git clone --template` copies hooks"),
    ("git push --receive-pack=id origin", "`git push --receive-pack` names a program"),
    ("git push --exec=id origin", "`git push --exec` names a program"),
    ("git grep -O id main", "`git grep -O` names a program"),
    ("git grep --open-files-in-pager=id main", "`git grep --open-files-in-pager` names"),
    ("git grep --no-index root", "`git grep --no-index` reads files outside"),
    ("git apply --unsafe-paths x.patch", "`git apply --unsafe-paths` writes files outside"),
    # Paths outside the worktree, as arguments or as options' values.
    ("git log --output=/tmp/log.txt", "`/tmp/log.txt` is outside the worktree"),
    ("git diff --output=../diff.txt", "`../diff.txt` is outside the worktree"),
    ("git log --outp=/tmp/log.txt", "`/tmp/log.txt` is outside the worktree"),
    ("git format-patch -o /tmp/p HEAD~1", "`/tmp/p` is outside the worktree"),
    ("git format-patch -qo/tmp/p HEAD~1", "`/tmp/p` is outside the worktree"),
    ("git commit -F /etc/passwd", "`/etc/passwd` is outside the worktree"),
    ("git commit -F ../secret", "`../secret` is outside the worktree"),
    ("git blame --contents=/etc/passwd a.py", "`/etc/passwd` is outside the worktree"),
    ("git add ~/notes", "`~/notes` is outside the worktree"),
    ("git worktree add ../elsewhere", "`../elsewhere` is outside the worktree"),
    ("git fetch file:///srv/other.git", "`file:///srv/other.git` is outside the worktree"),
    ("git checkout-index -a --prefix=/tmp/x/", "`/tmp/x/` is outside the worktree"),
    ("git log -- ../x", "`../x` is outside the worktree"),
    ("git init --separate-git-dir=moved", "`git init --separate-git-dir` puts git's own dir"),
    ("git clone --separate-git-dir=m https://e.com/r.git s", "`git clone --separate-git-dir`"),
    ("git init --sep=moved", "`git init --separate-git-dir` puts git's own directory"),
    ("git commit -F out/passwd", "`out/passwd` is outside the worktree"),  # a symlink
    ("git commit -F o?t/passwd", "the pattern `o?t/passwd` matches `out/passwd`"),
    ("git add .*", "the pattern `.*` may match `..`"),
    # git's own files, inside the worktree (.git here is a directory, dotgit a symlink to it).
    ("git diff --output=.git/config", f"`.git/config` {GITS_OWN}"),
    ("git log --output=./.git/hooks/pre-commit", f"`./.git/hooks/pre-commit` {GITS_OWN}"),
    ("git log --output=sub/../.git/config", f"`sub/../.git/config` {GITS_OWN}"),
    ("git log --output=.GIT/config", f"`.GIT/config` {GITS_OWN}"),
    ("git log --output=dotgit/config", f"`dotgit/config` {GITS_OWN}"),
    ("git format-patch -o .git/hooks HEAD~1", f"`.git/hooks` {GITS_OWN}"),
    ("git checkout-index -a --prefix=.git/x/", f"`.git/x/` {GITS_OWN}"),
    ("git commit -F .git/config", f"`.git/config` {GITS_OWN}"),
    ("git add .git", f"`.git` {GITS_OWN}"),
    ("git diff --output=d*/config", f"matches `dotgit/config`, which {GITS_OWN}"),
]


@pytest.mark.parametrize(("command", "why"), NOT_PLAIN)
def test_bash_git_star_allows_plain_git_only(tmp_path: Path, command: str, why: str):
    (tmp_path / "out").symlink_to(tmp_path.parent)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").touch()
    (tmp_path / "dotgit").symlink_to(".git")
    (tmp_path.parent / "passwd").touch()
    ruling = rule_on(RULES, ask(tmp_path, "Bash", command=command))
    # Not allowed by Bash(git *): the plain Bash rule asks a person, who is told why.
    assert ruling.decision == "ask"
    assert ruling.reason.startswith(f"Bash({command}): permission[2] (Bash → ask); ")
    assert GIT_ALLOWED in ruling.reason
    assert why in ruling.reason


PLAIN_GIT = [
    "git status",
    "git log --oneline -5",
    "git diff HEAD~1 -- src/a.py",
    "git add -A",
    'git commit -m "fix: a; b && c"',  # operators inside quotes are a message, not shell
    "git commit -am 'price: $5 | `x`'",
    'git commit -m "price: \\$5"',
    "git show HEAD:src/a.py",
    "git branch --show-current",
    "git stash list",
    "git show stash@{0}",
    "git restore --staged x",
    "git log --format='%h %s'",
    "git rev-parse HEAD",
    "git diff main...HEAD --stat",
    "git log main..HEAD",
    "git checkout -b feature/x",
    "git --no-pager log -1",
    "git grep -n 'def main' -- '*.py'",
    "git push -u origin feature/x",
    "git add -u",
    "git rebase main",
    "git fetch origin",
    "git log --output=log.txt",
    "git --version",
    "git log -L10,20:src/a.py",
    "git commit -m'fix: src/a.py'",
    "git add .gitignore .github/workflows/ci.yml src/.gitkeep",
    "git commit -m '.git is hidden'",
]


@pytest.mark.parametrize("command", PLAIN_GIT)
def test_bash_git_star_still_allows_plain_git(tmp_path: Path, command: str):
    ruling = rule_on(RULES, ask(tmp_path, "Bash", command=command))
    assert (ruling.decision, ruling.reason) == (
        "allow",
        f"Bash({command}): permission[0] (Bash(git *) → allow)",
    )


def test_other_command_patterns_allow_plain_commands_only(tmp_path: Path):
    rules = (
        rule("Bash(npm test)", "allow"),
        rule("Bash(npm run *)", "allow"),
        rule("Bash(pytest *)", "allow"),
        rule("Bash(* --version)", "allow"),
    )
    for command in ("npm test", "npm run lint", "pytest -q tests/a.py", "pytest -k 'a or b'"):
        assert rule_on(rules, ask(tmp_path, "Bash", command=command)).decision == "allow"
    for command, why in (
        ("npm run build & id", "`&` runs the command before it"),
        ("pytest $(id)", "`$(…)` runs another command"),
        ("pytest > /tmp/out", "`>` redirects"),
        ("pytest 'x", "does not parse"),
        ("LD_PRELOAD=/tmp/x.so node --version", "`LD_PRELOAD=/tmp/x.so` sets a variable"),
    ):
        ruling = rule_on(rules, ask(tmp_path, "Bash", command=command))
        assert ruling.decision == "deny", command
        assert "did not apply because" in ruling.reason
        assert why in ruling.reason
    # The git rules are git's: `pytest -c` is pytest's own option.
    assert rule_on(rules, ask(tmp_path, "Bash", command="pytest -c x.ini")).decision == "allow"


def test_bash_star_still_allows_anything(tmp_path: Path):
    anything = (rule("Bash(*)", "allow"),)
    for command in ("git status & id", "git -c core.pager=id log", "git log 'x"):
        assert rule_on(anything, ask(tmp_path, "Bash", command=command)).decision == "allow"


def test_deny_and_ask_rules_match_the_command_as_written(tmp_path: Path):
    rules = (
        rule("Bash(rm *)", "deny"),
        rule("Bash(git push *)", "ask"),
        rule("Bash(*)", "allow"),
    )
    # Appending an operator does not slip a command past a rule that denies it...
    denied = rule_on(rules, ask(tmp_path, "Bash", command="rm -rf ~ & true"))
    assert (denied.decision, denied.reason) == (
        "deny",
        "Bash(rm -rf ~ & true): permission[0] (Bash(rm *) → deny)",
    )
    # ...or past one that asks a person (who sees the whole command).
    asked = rule_on(rules, ask(tmp_path, "Bash", command="git push -f origin main; id"))
    assert asked.decision == "ask"


def test_every_allow_rule_passed_over_is_named(tmp_path: Path):
    rules = (rule("Bash(git *)", "allow"), rule("Bash(git log*)", "allow"))
    ruling = rule_on(rules, ask(tmp_path, "Bash", command="git log -c core.pager=id; id"))
    assert ruling.reason == (
        "no [[permission]] rule in agents.toml allows Bash(git log -c core.pager=id; id), so "
        "it is denied; permission[0] (Bash(git *) → allow) and permission[1] (Bash(git log*) "
        "→ allow) did not apply because `;` runs another command"
    )
