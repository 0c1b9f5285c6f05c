"""git agent-doctor: whether this machine and repository are ready for git-agents."""

from __future__ import annotations

import argparse
import json

from git_agents.core.errors import ExitCode
from git_agents.core.output import use_colour

USAGE = "git agent-doctor [--json]"

DESCRIPTION = """\
Check whether this machine and repository are ready, one line per check: ok, warn (it works,
but something is worth knowing) or fail (something needed is missing), what was found and
what to do. The checks: git's version (2.39 or newer); each preset's CLI (claude, codex,
gemini, aider, opencode, and any agent.preset.<name>): found on PATH, its version, logged in
or its API settings present (only the names of the variables and files are shown, never a
secret); claude's one-time dialogs (trust this folder, the custom API key, bypass-permissions
mode) answered for this repository, since an interactive claude stops at each; tmux, for
--tmux; bubblewrap, which --isolation=sandbox and codex's sandbox need; codex's home
outside $TMPDIR (there its sandbox silently fails) and a command run in its sandbox; inotify
instances and watches free for worktree seals; disk space free beside the worktree root
(agent.worktreeRoot); a UTF-8 locale; the man pages found by man (after uv tool install they
need MANPATH); submodule.recurse, and the repository's hooks that git-agents runs differently
from plain git (merge commits are made with commit-tree, the queue pushes with --no-verify).

A missing CLI fails only when this repository is set to use it (agent.command,
agent.resolveAgent or agent.preset.<name>); otherwise it is a warning. So are tmux and
bubblewrap, unless agent.tmux is true or agent.isolation is sandbox. Exits 1 when any
check fails, 0 otherwise.
"""

EXAMPLES = """\
git agent-doctor
git agent doctor --json | jq '.checks[] | select(.level != "ok")'
"""

JSON_VERSION = 1

JSON = """\
With --json, doctor prints one object: {"version": 1, "ok": true|false, "checks": [...]}, each
check with the fields name, level (ok, warn or fail), found and fix ("" when nothing to do).
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare doctor's options."""
    p.add_argument("--json", action="store_true", help="print a JSON object")


def run(args: argparse.Namespace) -> int:
    """Run every check and print them."""
    from git_agents.core.repo import Repo
    from git_agents.lifecycle import doctor

    found = [doctor.git_version()]
    if found[0].level != doctor.FAIL:  # everything else reads the repository through git
        found += list(doctor.checks(Repo.discover()))
    failed = any(c.level == doctor.FAIL for c in found)
    if args.json:
        print(json.dumps({"version": JSON_VERSION, "ok": not failed, "checks": [c.to_json() for c in found]},
                         indent=2))
    else:
        colour = use_colour(args.color)
        paint = {doctor.OK: "\x1b[32m", doctor.WARN: "\x1b[33m", doctor.FAIL: "\x1b[31m"}
        for c in found:
            level = f"{paint[c.level]}{c.level}\x1b[m" if colour else c.level
            print(f"{level.ljust(4 + (len(level) - len(c.level)))}  {c.name}: {c.found}")
            if c.fix:
                print(f"      -> {c.fix}")
    return ExitCode.FAILED if failed else ExitCode.OK
