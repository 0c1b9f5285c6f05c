"""Command-line plumbing shared by every `git agent-<verb>`: parsing, errors, exit codes.

Each command lives in `git_agents.commands.<verb>` and is imported only when it runs;
`git agent-spawn -h` prints the text generated from its parser into `help_texts.py` and imports
no command at all. The option helpers here (`option_label`, `documented_actions`,
`subcommands`, `usage_lines`) are what -h, the man pages and the completion scripts share.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from git_agents.core.errors import AgentError, ExitCode, UsageError

# verb -> one-line summary (kept here so the umbrella command lists them without importing each).
COMMANDS: dict[str, str] = {
    "spawn": "Create task worktrees on new branches and start their agents",
    "status": "Show every task: agent state, commits, changed files, unsaved work",
    "wait": "Wait for agents to finish",
    "merge": "Merge finished tasks into their target branch, one by one",
    "clean": "Remove task worktrees, branches and live metadata",
    "prompt": "Print the prompt a task's agent was given",
    "path": "Print the directory a task works in (cd \"$(git agent-path 48)\")",
    "run": "Run every task of a task file, a few agents at a time, then merge them",
    "logs": "Show or follow a task's agent log",
    "stop": "Stop a running agent's whole process group",
    "queue": "Publish tasks to a shared remote for workers, and show the queue",
    "worker": "Claim and run tasks from the queue on a shared remote",
    "conflicts": "Show which tasks change the same files and which would conflict",
    "diff": "Show a task's change against where it left its target, for review",
    "log": "List merged tasks from the notes on their merge commits",
    "pool": "Keep a pool of warm worktrees that tasks claim and release",
    "top": "Watch and steer every task on one full-screen, live view",
    "attach": "Show an interactive agent's tmux window",
    "send": "Type a follow-up into a running interactive agent",
    "continue": "Run a finished task's agent again in its worktree with a follow-up",
    "doctor": "Check that this machine and repository are ready for git-agents",
}

# verbs whose module name differs (a Python keyword cannot name a module you import)
_MODULES = {"continue": "continue_"}


# Options whose value is given only after '=' (git's `--color[=<when>]`): alone, they mean this value.
_EQUALS_ONLY = {"--color": "always", "--resolve": "", "--watch": "2"}

USAGE_WIDTH = 24  # as git's parse-options: option names up to this column, help from column 26


def option_label(action: argparse.Action) -> str:
    """An option as git writes it in usage and man pages: `-f, --force`, `--base <branch>`,
    `--color[=<when>]`."""
    names = ", ".join(action.option_strings)
    if action.nargs == 0:
        return names
    metavar = action.metavar or f"<{action.dest.replace('_', '-')}>"
    if action.nargs == "?" and set(action.option_strings) & _EQUALS_ONLY.keys():  # its value only after '='
        return f"{names}[={metavar}]"
    if action.nargs == "?":
        return f"{names} [{metavar}]"
    return f"{names} {metavar}"


def documented_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options a parser accepts, in declaration order, without -h (documented apart)."""
    return [a for a in parser._actions
            if a.option_strings and not isinstance(a, argparse._HelpAction) and a.help != argparse.SUPPRESS]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """name -> parser of each subcommand (`git agent-pool list`), empty for a plain command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def usage_lines(usage: str) -> list[str]:
    """The forms of a module's USAGE, one string each. A form starts with `git` (optionally after
    `or:`, as git writes its usage); a line starting otherwise continues the previous form."""
    forms: list[str] = []
    for line in usage.strip().splitlines():
        line = line.strip()
        if line.startswith("or:"):
            line = line[3:].strip()
        elif forms and line and not line.startswith("git "):
            forms[-1] += " " + line
            continue
        if line:
            forms.append(line)
    return forms


class Parser(argparse.ArgumentParser):
    """argparse with git's conventions: `-h` prints git-style short usage on stdout (exit 0);
    usage errors print `error: ...` and the short usage on stderr (exit 129)."""

    def format_usage(self) -> str:
        if self.usage is None:  # a subcommand's parser: argparse's own summary of its options
            return super().format_usage()
        return "usage: " + "\n   or: ".join(usage_lines(self.usage)) + "\n"

    def format_help(self) -> str:
        out = [self.format_usage(), "\n"]
        for action in documented_actions(self):
            label = "    " + option_label(action)
            help_text = (action.help or "") % {"default": action.default}
            if len(label) <= USAGE_WIDTH:
                out.append(f"{label.ljust(USAGE_WIDTH + 2)}{help_text}\n")
            else:
                out.append(f"{label}\n{' ' * (USAGE_WIDTH + 2)}{help_text}\n")
        subs = subcommands(self)
        if subs:
            out.append("\n")
            for name, sub in subs.items():
                out.append(f"    {name.ljust(USAGE_WIDTH - 2)}{sub.description or ''}\n")
        out.append("\n")
        return "".join(out)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def]
        # git's --color[=<when>] takes its value only after '=': `--color 48` is --color=always
        # and task 48, where argparse would take 48 as the value.
        args = list(sys.argv[1:] if args is None else args)
        end = args.index("--") if "--" in args else len(args)
        for name, alone in _EQUALS_ONLY.items():
            action = self._option_string_actions.get(name)
            if action is not None and action.nargs == "?":
                args[:end] = [f"{name}={alone}" if a == name else a for a in args[:end]]
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message}\n")
        self.print_usage(sys.stderr)
        raise SystemExit(ExitCode.USAGE)


def load(verb: str) -> ModuleType:
    """The module implementing `git agent-<verb>`."""
    return importlib.import_module(f"git_agents.commands.{_MODULES.get(verb, verb)}")


def build_parser(verb: str, module: ModuleType) -> Parser:
    """The argument parser of one command: its module's `configure` plus the global options."""
    parser = Parser(prog=f"git agent-{verb}", usage=getattr(module, "USAGE", None),
                    description=COMMANDS.get(verb), allow_abbrev=False)
    module.configure(parser)
    if "--color" in parser._option_string_actions:  # the command declares its own
        return parser
    colour = dict(nargs="?", const="always", choices=("always", "never", "auto"), metavar="<when>",
                  help="colour the output: always, never or auto (default: auto)")
    parser.add_argument("--color", default=None, **colour)  # type: ignore[arg-type]
    for sub in subcommands(parser).values():
        # also after a subcommand (git agent-pool list --color); SUPPRESS keeps the value given before it
        if "--color" not in sub._option_string_actions:
            sub.add_argument("--color", default=argparse.SUPPRESS, **colour)  # type: ignore[arg-type]
    return parser


def report(error: AgentError) -> None:
    """Print an error as git does, on stderr: `fatal: ...` when nothing was done, `error: ...` for
    usage errors and partial failures, then optional `hint: ...` lines."""
    prefix = "fatal" if error.code == ExitCode.FATAL else "error"
    sys.stderr.write(f"{prefix}: {error.message}\n")
    if error.hint:
        for line in error.hint.splitlines():
            sys.stderr.write(f"hint: {line}\n")


def main(verb: str, argv: Sequence[str] | None = None) -> int:
    """Run `git agent-<verb>` with `argv` (default: sys.argv[1:]); return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["-h"], ["--help"]):
        # The text generated from this command's parser (kept up to date by the tests): printing
        # it costs no import of the command and its dependencies, ~40 ms.
        try:
            from git_agents.cli.help_texts import HELP
        except ImportError:  # not generated yet: argparse below prints the same
            HELP = {}
        if verb in HELP:
            sys.stdout.write(HELP[verb])
            return ExitCode.OK
    # Text from git (its messages, a path inside them) may hold bytes that are not UTF-8, kept as
    # surrogates by the gateway: write them back as those bytes, as git itself prints them, rather
    # than fail. Lists of paths are quoted first (core.git.quote_paths); JSON escapes them.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="surrogateescape")
    module = load(verb)
    parser = build_parser(verb, module)
    # A command whose options may come between its positionals (send: `48 --no-enter <text>`, where
    # <text> may be empty because --key replaces it) says so; argparse alone would stop at the option.
    intermixed = getattr(module, "INTERMIXED", False)
    args = parser.parse_intermixed_args(argv) if intermixed else parser.parse_args(argv)
    try:
        return int(module.run(args) or 0)
    except UsageError as error:
        report(error)
        parser.print_usage(sys.stderr)
        return error.code
    except AgentError as error:
        report(error)
        return error.code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return ExitCode.OK


def entry() -> None:
    """Console-script entry for every `git-agent-<verb>`: the verb comes from the program's name."""
    name = os.path.basename(sys.argv[0])
    verb = name.removeprefix("git-agent-")
    if verb not in COMMANDS:
        sys.stderr.write(f"fatal: {name} is not a git-agents command\n")
        sys.exit(ExitCode.FATAL)
    sys.exit(main(verb))
