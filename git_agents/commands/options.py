"""Options shared by several commands."""

from __future__ import annotations

import argparse


def add_verbosity(parser: argparse.ArgumentParser, *, quiet: str = "print only errors and the final summary",
                  verbose: str = "print more detail") -> None:
    """-q/--quiet and -v/--verbose (args.verbosity: -1, 0 or 1), for commands that print more than
    a line; `quiet` and `verbose` say what they do for this command."""
    parser.add_argument("-q", "--quiet", action="store_const", dest="verbosity", const=-1, default=0, help=quiet)
    parser.add_argument("-v", "--verbose", action="store_const", dest="verbosity", const=1, help=verbose)


def add_sparse_option(p: argparse.ArgumentParser) -> None:
    """--sparse <dir>... and --no-sparse (spawn, `git agent-pool claim --task`)."""
    p.add_argument("--sparse", nargs="+", action="extend", metavar="<dir>",
                   help="check out only these directories (cone-mode sparse checkout, plus the top-level files; "
                        "default: agent.sparse); put the ids first, or end the list with --")
    p.add_argument("--no-sparse", dest="sparse", action="store_const", const=[],
                   help="a full checkout, even if agent.sparse is set")


def add_isolation_option(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """--isolation <mode> (spawn, `git agent-pool claim --task`, worker; tasks/isolation.py)."""
    p.add_argument("--isolation", choices=("worktree", "clone", "sandbox"), metavar="<mode>",
                   help=f"{prefix}worktree (a guarded worktree; default: agent.isolation), clone (a clone of its own) "
                        "or sandbox (that clone with the agent under bubblewrap)")


def add_task_text_options(p: argparse.ArgumentParser) -> None:
    """--title, --prompt and --prompt-file (spawn, `git agent-pool claim --task`)."""
    p.add_argument("--title", metavar="<text>", help="short title (default: first line of the task text)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--prompt", metavar="<text>", help="the task text")
    src.add_argument("--prompt-file", metavar="<file>",
                     help="read the task text from <file> ({id} is replaced by the id; - reads stdin)")
