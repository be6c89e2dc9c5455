"""Which git commands are plain: git working on the repository of the agent's worktree, and
nothing else.

`Bash(git *)` reads as "the agent may use git", but git can be told to run any program or to
read and write files anywhere. Configuration given on the command line (`-c`, `--config-env`)
can name a pager, an alias `!…`, an ssh command or a hooks directory; `-C`, `--git-dir` and
`--work-tree` point git elsewhere; some commands and options exist to run a program
(`difftool`, `filter-branch`, `rebase --exec`, `fetch --upload-pack`, …); `--no-index` reads
files outside any repository; and options such as `--output` or `-F` take a file. So
`check_plain_git` refuses all of that, and aliases too: the subcommand must be one of git's
own commands, whose names an alias cannot take. Git accepts any unambiguous abbreviation of a
long option (`--exe` for `--exec`), so a refused long option is refused abbreviated as well.

git's own files are refused as paths too, inside the worktree as well (`git diff
--output=.git/config`): whoever writes git's configuration or hooks makes git run their
program at its next `git status`. `is_gits_own` says which paths those are; the permission
policy keeps the file tools (Edit, Write, Read) out of them with the same test.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePath
from string import ascii_letters

from huskies.agents.shell import NotPlain

HARMLESS_GLOBAL_OPTIONS = frozenset(
    {
        "--no-pager",
        "-P",
        "-p",
        "--paginate",
        "--no-replace-objects",
        "--no-optional-locks",
        "--literal-pathspecs",
        "--glob-pathspecs",
        "--noglob-pathspecs",
        "--icase-pathspecs",
        "--version",
        "--help",
    }
)
"""What may come between `git` and its subcommand. Anything else there is refused."""

CONFIGURATION_RUNS_PROGRAMS = (
    "configuration can name any program for git to run (an alias `!…`, core.pager, "
    "core.sshCommand, core.fsmonitor)"
)

GLOBAL_OPTION_REFUSALS = {
    "-c": f"`git -c` sets configuration, and {CONFIGURATION_RUNS_PROGRAMS}",
    "--config-env": f"`git --config-env` sets configuration, and {CONFIGURATION_RUNS_PROGRAMS}",
    "-C": "`git -C` runs git in another directory",
    "--git-dir": "`git --git-dir` points git at another repository",
    "--work-tree": "`git --work-tree` points git at another directory",
    "--exec-path": "`git --exec-path` changes where git finds the programs it runs",
}

PORCELAIN = """
    add am annotate apply archive bisect blame branch bundle checkout cherry cherry-pick
    clean clone commit count-objects describe diff fetch format-patch fsck gc grep help init
    log merge mv notes pack-refs prune pull push range-diff rebase reflog remote repack
    replace rerere reset restore revert rm shortlog show show-branch sparse-checkout stash
    status submodule switch tag verify-commit verify-tag version whatchanged worktree
"""

PLUMBING = """
    cat-file check-attr check-ignore check-mailmap check-ref-format checkout-index column
    commit-graph commit-tree diff-files diff-index diff-tree fmt-merge-msg for-each-ref
    get-tar-commit-id hash-object interpret-trailers ls-files ls-remote ls-tree merge-base
    merge-file merge-tree mktag mktree multi-pack-index name-rev patch-id prune-packed
    read-tree rev-list rev-parse show-index show-ref stripspace symbolic-ref update-index
    update-ref var verify-pack write-tree
"""

COMMANDS = frozenset(PORCELAIN.split() + PLUMBING.split())
"""git's own commands that do their work on the repository (or print something). An alias
can't take one of these names; any other subcommand is refused."""

COMMAND_REFUSALS = {
    "config": f"`git config` changes configuration, and {CONFIGURATION_RUNS_PROGRAMS}",
    "difftool": "`git difftool` runs an external diff program",
    "mergetool": "`git mergetool` runs an external merge program",
    "filter-branch": "`git filter-branch` runs shell commands on every commit",
    "send-email": "`git send-email` runs a mail program and sends mail",
    "instaweb": "`git instaweb` starts a web server",
    "maintenance": "`git maintenance` schedules jobs with the system's scheduler",
    "for-each-repo": "`git for-each-repo` runs git in other repositories",
    "merge-index": "`git merge-index` runs the program it is given",
    "credential": "`git credential` hands out stored passwords",
}
"""git's own commands that are not plain, with the reason people are shown."""

SUBCOMMAND_REFUSALS = {
    ("bisect", "run"): "`git bisect run` runs the program it is given",
    ("submodule", "foreach"): "`git submodule foreach` runs a shell command in every submodule",
}

EVERYWHERE_OPTION_REFUSALS = {
    "--no-index": "reads files outside the repository",
    "--unsafe-paths": "writes files outside the worktree",
}

RUNS_A_PROGRAM = "names a program for git to run"
HOOKS_FROM_ELSEWHERE = "copies hooks, which git runs, from another directory"
GIT_DIR_ELSEWHERE = (
    "puts git's own directory where the agent can write it (run in a worktree, `git init` "
    "moves the whole repository's there)"
)

GITS_OWN = "is git's own file: an agent that writes it can make git run any program"
"""Why a path in `.git`, or in the git directory a worktree's `.git` file names, is refused."""

OPTION_REFUSALS: dict[str, dict[str, str]] = {
    "fetch": {"--upload-pack": RUNS_A_PROGRAM},
    "pull": {"--upload-pack": RUNS_A_PROGRAM},
    "ls-remote": {"--upload-pack": RUNS_A_PROGRAM},
    "clone": {
        "--upload-pack": RUNS_A_PROGRAM,
        "-u": RUNS_A_PROGRAM,
        "--config": f"sets configuration, and {CONFIGURATION_RUNS_PROGRAMS}",
        "-c": f"sets configuration, and {CONFIGURATION_RUNS_PROGRAMS}",
        "--template": HOOKS_FROM_ELSEWHERE,
        "--separate-git-dir": GIT_DIR_ELSEWHERE,
    },
    "init": {"--template": HOOKS_FROM_ELSEWHERE, "--separate-git-dir": GIT_DIR_ELSEWHERE},
    "push": {"--receive-pack": RUNS_A_PROGRAM, "--exec": RUNS_A_PROGRAM},
    "archive": {"--exec": RUNS_A_PROGRAM, "--remote": "reads another repository"},
    "rebase": {"--exec": RUNS_A_PROGRAM, "-x": RUNS_A_PROGRAM},
    "grep": {"--open-files-in-pager": RUNS_A_PROGRAM, "-O": RUNS_A_PROGRAM},
}
"""Options of one command that make it run a program or reach outside, by command."""

GLOB_CHARS = "*?["


def check_plain_git(arguments: Sequence[str], worktree: Path) -> None:
    """Raise NotPlain unless `git <arguments>` (the words after `git`) only works on the
    repository of `worktree` and names no file outside it, nor any of git's own files."""
    at = _after_global_options(arguments)
    if at == len(arguments):
        return  # `git`, `git --version`: nothing is run
    command, rest = arguments[at], arguments[at + 1 :]
    _check_command(command, rest)
    for option in _options(rest):
        _check_option(command, option)
    _check_paths(rest, worktree.resolve())


def _after_global_options(arguments: Sequence[str]) -> int:
    """The index of the subcommand: after the options that come before it, all harmless."""
    at = 0
    while at < len(arguments) and arguments[at].startswith("-"):
        option = arguments[at]
        if option not in HARMLESS_GLOBAL_OPTIONS:
            # `-cname=value` and `--git-dir=path` are refused for their option's reason.
            name = option.partition("=")[0] if option.startswith("--") else option[:2]
            raise NotPlain(
                GLOBAL_OPTION_REFUSALS.get(name)
                or f"`git {option}` before a subcommand is not among the options huskies "
                "knows to be harmless there"
            )
        at += 1
    return at


def _check_command(command: str, rest: Sequence[str]) -> None:
    if command in COMMAND_REFUSALS:
        raise NotPlain(COMMAND_REFUSALS[command])
    if command not in COMMANDS:
        raise NotPlain(
            f"`git {command}` is not one of git's own commands that huskies knows to be plain "
            "(it may be an alias, and an alias can run any program)"
        )
    first = next((word for word in rest if not word.startswith("-")), "")
    if (command, first) in SUBCOMMAND_REFUSALS:
        raise NotPlain(SUBCOMMAND_REFUSALS[command, first])


def _options(rest: Sequence[str]) -> Iterator[str]:
    """The words that git reads as options: those starting with `-`, up to `--`."""
    for word in rest:
        if word == "--":
            return
        if word.startswith("-") and word != "-":
            yield word


def _check_option(command: str, option: str) -> None:
    refusals = {**EVERYWHERE_OPTION_REFUSALS, **OPTION_REFUSALS.get(command, {})}
    if option.startswith("--"):
        given = option.partition("=")[0]
        # git takes an unambiguous beginning of a long option for the whole of it.
        refused = [name for name in refusals if name.startswith("--") and name.startswith(given)]
    else:
        # A cluster of short options (`-ix`) sets each letter.
        refused = [name for name in refusals if len(name) == 2 and name[1] in option[1:]]
    if refused:
        raise NotPlain(f"`git {command} {refused[0]}` {refusals[refused[0]]}")


def _check_paths(rest: Sequence[str], root: Path) -> None:
    """Refuse any argument, or value of an option, that names a path outside `root` or one of
    git's own files."""
    after_options = False
    for word in rest:
        for text in _possible_paths(word, after_options):
            _check_path(root, text)
        after_options = after_options or word == "--"


def _possible_paths(word: str, after_options: bool) -> list[str]:
    """What in `word` git may take for a path: the word, the value of `--name=value`, or a
    value joined to a short option. In a cluster (`-qo/tmp/x`) the value follows one of the
    leading letters, whichever is the first to take one, so each of those places counts."""
    if after_options or not word.startswith("-"):
        return [word]
    if word.startswith("--"):
        _, equals, value = word.partition("=")
        return [value] if equals else []
    letters = len(word) - 1 - len(word[1:].lstrip(ascii_letters))
    return [word[start:] for start in range(2, 2 + letters)]


def _check_path(root: Path, text: str) -> None:
    if text.startswith("~"):
        raise NotPlain(f"`{text}` is outside the worktree")  # the shell puts a home there
    path = text.removeprefix("file://")
    trouble = _trouble(root, path)
    if trouble is not None:
        raise NotPlain(f"`{text}` {trouble}")
    if not _has_glob(path):
        return
    # The shell puts the names a pattern matches in its place, and in bash `.*` matches `..`.
    if any(part.startswith((".", "[")) and _has_glob(part) for part in path.split("/")):
        raise NotPlain(f"the pattern `{text}` may match `..`, outside the worktree")
    for name in glob.glob(path, root_dir=root):
        trouble = _trouble(root, name)
        if trouble is not None:
            raise NotPlain(f"the pattern `{text}` matches `{name}`, which {trouble}")


def _trouble(root: Path, path: str) -> str | None:
    """What is wrong with git taking `path` (relative to `root`): None when nothing is."""
    if _resolves_outside(root, path):
        return "is outside the worktree"
    if is_gits_own(root, path):
        return GITS_OWN
    return None


def _has_glob(text: str) -> bool:
    return any(char in text for char in GLOB_CHARS)


def _resolves_outside(root: Path, path: str) -> bool:
    """Whether `path` (relative to `root`, symlinks followed) leads outside `root`."""
    try:
        return not (root / path).resolve().is_relative_to(root)
    except (OSError, ValueError):  # a NUL, a name too long: not a path we can vouch for
        return True


def is_gits_own(root: Path, path: str) -> bool:
    """Whether `path` (relative to the worktree `root`, resolved, and leading inside it) is git's
    own: a `.git` file or directory at any depth, or anything in one, as written or with
    symlinks followed; or anything in the git directory that root's `.git` file names, or in
    that directory's common directory (the main repository's `.git`).

    Names are compared case-folded, because macOS and Windows file systems take `.GIT` for
    `.git`. A `.git` in a subdirectory counts too: git run there takes it for the repository."""
    written = root / path
    resolved = written.resolve()
    names = (*_names_below(root, written), *_names_below(root, resolved))
    if any(name.casefold() == ".git" for name in names):
        return True
    return any(resolved.is_relative_to(directory) for directory in _git_directories(root))


def _names_below(root: Path, path: PurePath) -> tuple[str, ...]:
    """The names in `path` below `root`: all of them when it is not written under `root`."""
    return path.relative_to(root).parts if path.is_relative_to(root) else path.parts


def _git_directories(worktree: Path) -> tuple[Path, ...]:
    """The git directory named by the `gitdir:` line of `worktree`'s `.git` file and its common
    directory, resolved; none when `.git` is not such a file (in a repository's own checkout it
    is the git directory, which its name already covers)."""
    pointer = _first_line(worktree / ".git")
    if pointer is None or not pointer.startswith("gitdir: "):
        return ()
    # git reads a relative gitdir from the directory that holds the `.git` file.
    git_dir = (worktree / pointer.removeprefix("gitdir: ")).resolve()
    common = _first_line(git_dir / "commondir")
    if common is None:
        return (git_dir,)
    return (git_dir, (git_dir / common).resolve())


def _first_line(path: Path) -> str | None:
    """The first line of the regular file `path` without its line break; None when there is no
    such file, or the line holds a NUL (no path does). Only a regular file is read: reading a
    FIFO would wait for ever."""
    try:
        if not path.is_file():
            return None
        with path.open(encoding="utf-8") as file:
            line = file.readline(4096).rstrip("\r\n")
    except (OSError, UnicodeDecodeError):
        return None
    return None if "\0" in line else line
