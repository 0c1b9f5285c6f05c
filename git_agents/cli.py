"""Command-line plumbing shared by every `git agent-<verb>`: parsing, errors, exit codes.

Each command lives in `git_agents.commands.<verb>` and is imported only when it runs, so
`git agent-spawn -h` loads argparse and one small module, nothing else.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from types import ModuleType
from typing import NoReturn, Sequence

from .errors import AgentError, ExitCode, UsageError

# verb -> one-line summary (kept here so the umbrella command lists them without importing each).
COMMANDS: dict[str, str] = {
    "spawn": "Create task worktrees on new branches and start their agents",
    "status": "Show every task: agent state, commits, changed files, unsaved work",
    "wait": "Wait for agents to finish",
    "merge": "Merge finished tasks into their target branch, one by one",
    "clean": "Remove task worktrees, branches and live metadata",
    "prompt": "Print the prompt a task's agent was given",
    "run": "Run every task of a task file, a few agents at a time, then merge them",
    "logs": "Show or follow a task's agent log",
    "stop": "Stop a running agent's whole process group",
}


class Parser(argparse.ArgumentParser):
    """argparse with git's conventions: usage errors go to stderr with exit 129."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message}\n")
        self.print_usage(sys.stderr)
        raise SystemExit(ExitCode.USAGE)


def load(verb: str) -> ModuleType:
    """The module implementing `git agent-<verb>`."""
    return importlib.import_module(f"git_agents.commands.{verb}")


def build_parser(verb: str, module: ModuleType) -> Parser:
    """The argument parser of one command, built from its module's `configure`."""
    parser = Parser(prog=f"git agent-{verb}", usage=getattr(module, "USAGE", None),
                    description=COMMANDS.get(verb), allow_abbrev=False,
                    formatter_class=lambda prog: argparse.HelpFormatter(prog, max_help_position=30))
    module.configure(parser)
    return parser


def report(error: AgentError) -> None:
    """Print an error as git does: `fatal: ...` and an optional `hint: ...`, on stderr."""
    prefix = "error" if error.code == ExitCode.FAILED else "fatal"
    sys.stderr.write(f"{prefix}: {error.message}\n")
    if error.hint:
        for line in error.hint.splitlines():
            sys.stderr.write(f"hint: {line}\n")


def main(verb: str, argv: Sequence[str] | None = None) -> int:
    """Run `git agent-<verb>` with `argv` (default: sys.argv[1:]); return its exit code."""
    module = load(verb)
    parser = build_parser(verb, module)
    args = parser.parse_args(argv)
    try:
        return int(module.run(args) or 0)
    except UsageError as error:
        parser.error(error.message)
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
