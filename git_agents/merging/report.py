"""The one report of a merge run (local, remote and run alike): a line per task, then a summary."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from git_agents.core.errors import ExitCode
from git_agents.core.git import quote_paths
from git_agents.core.output import printable
from git_agents.core.repo import Repo
from git_agents.merging.inmemory import Attempt
from git_agents.merging.queue import Options, check_failure_text
from git_agents.tasks.store import TaskState


def report(repo: Repo, attempts: list[Attempt], problems: dict[str, str], opts: Options, *, dry_run: bool,
           kept: str = "branch and worktree kept", landed: Sequence[str] = ()) -> int:
    """Print each attempt (or, --dry-run, prediction) and each skipped task as git agent-merge does; the exit code.

    `kept` says where a task that did not merge stays; `landed`: lines saying where the targets
    went (merge --remote: the pushes), printed before the summary. Text from tasks (paths, check
    output, reasons) is printed with control characters escaped.
    """
    show_empty = opts.show_empty
    merged = [a for a in attempts if a.status == TaskState.MERGED]
    for a in attempts:
        if a.status == TaskState.MERGED:
            if opts.verbosity >= 0:
                _print(f"Task {a.task_id} would merge cleanly" if dry_run else
                       f"Merged task {a.task_id} ({a.commit[:12]})" + (" after rebasing it" if a.rebased else "")
                       + (f" after its conflict was resolved by {a.resolved_by}" if a.resolved_by else ""))
            if opts.verbosity > 0 and not dry_run:
                _print(f"  {repo.git('log', '-1', '--format=%s', a.commit)}")
        elif a.status == "up-to-date":
            if show_empty and opts.verbosity >= 0:
                _print(f"Task {a.task_id} has no commits to merge")
        elif a.status == TaskState.CHECK_FAILED:
            _print(check_failure_text(a, kept), end="")
        elif a.status == TaskState.BLOCKED:
            _print(f"Task {a.task_id} would not merge: {a.check_output}" if dry_run else
                   f"Task {a.task_id} not merged: {a.check_output} "
                   f"(move or remove it, then merge again; {kept})")
        elif a.status == "hook-refused":
            _print(f"Task {a.task_id} not merged: {a.check_output}; {kept}")
        elif dry_run:
            _print(f"Task {a.task_id} would conflict: {quote_paths(a.conflicts, repo.config)}")
            for line in a.messages:
                _print(f"    {line}")
            if opts.resolve is not None:
                _print(f"    it would need a resolver: {opts.resolve or 'its own agent'}")
        elif a.status == TaskState.CONFLICT and a.check_output:  # --rebase tried and failed
            _print(f"Conflict in task {a.task_id}: {quote_paths(a.conflicts, repo.config)} ({a.check_output}; "
                  "not merged; branch and worktree kept)")
            if a.resolve_log:
                _print("    the resolver's log ends:")
                for line in a.resolve_log.splitlines():
                    _print(f"    | {line}")
        elif a.status == "resolving":
            _print(f"Conflict in task {a.task_id}: {quote_paths(a.conflicts, repo.config)}")
            _print(a.check_output)  # the instructions
        else:
            _print(f"Conflict in task {a.task_id}: {quote_paths(a.conflicts, repo.config)} (not merged; {kept})")
    if opts.verbosity >= 0:
        for line in landed:
            _print(line)
    for task_id, why in problems.items():
        sys.stderr.write(printable(f"warning: skipped task {task_id}: {why}", newlines=False) + "\n")
    not_merged = len(problems) + sum(a.status in ("conflict", "check-failed", "resolving", "blocked", "hook-refused")
                                     or (a.status == "up-to-date" and show_empty) for a in attempts)
    if not merged and not not_merged:
        _print("Nothing to merge.")
    elif dry_run:
        _print(f"{len(merged)} would merge, {not_merged} would not")
    else:
        _print(f"{len(merged)} merged, {not_merged} not merged")
    return ExitCode.FAILED if not_merged else ExitCode.OK




def _print(text: str = "", end: str = "\n") -> None:
    """A line of the report, its control characters escaped (titles, paths and output come from tasks)."""
    sys.stdout.write(printable(text) + end)
