"""The one report of a merge run (local, remote and run alike): a line per task, then a summary."""

from __future__ import annotations

import sys

from git_agents.core.errors import ExitCode
from git_agents.core.repo import Repo
from git_agents.merging.inmemory import Attempt
from git_agents.merging.queue import Options, check_failure_text


def report(repo: Repo, attempts: list[Attempt], problems: dict[str, str], opts: Options, *, dry_run: bool) -> int:
    """Print each attempt (or, --dry-run, prediction) and each skipped task as git agent-merge does; the exit code."""
    show_empty = opts.show_empty
    merged = [a for a in attempts if a.status == "merged"]
    for a in attempts:
        if a.status == "merged":
            if opts.verbosity >= 0:
                print(f"Task {a.task_id} would merge cleanly" if dry_run else
                      f"Merged task {a.task_id} ({a.commit[:12]})" + (" after rebasing it" if a.rebased else ""))
            if opts.verbosity > 0 and not dry_run:
                print(f"  {repo.git('log', '-1', '--format=%s', a.commit)}")
        elif a.status == "up-to-date":
            if show_empty and opts.verbosity >= 0:
                print(f"Task {a.task_id} has no commits to merge")
        elif a.status == "check-failed":
            print(check_failure_text(a), end="")
        elif a.status == "blocked":
            print(f"Task {a.task_id} would not merge: {a.check_output}" if dry_run else
                  f"Task {a.task_id} not merged: {a.check_output} "
                  "(move or remove it, then merge again; branch and worktree kept)")
        elif dry_run:
            print(f"Task {a.task_id} would conflict: {', '.join(a.conflicts)}")
            for line in a.messages:
                print(f"    {line}")
        elif a.status == "conflict" and a.check_output:  # --rebase tried and failed
            print(f"Conflict in task {a.task_id}: {', '.join(a.conflicts)} ({a.check_output}; "
                  "not merged; branch and worktree kept)")
        elif a.status == "resolving":
            print(f"Conflict in task {a.task_id}: {', '.join(a.conflicts)}")
            print(a.check_output)  # the instructions
        else:
            print(f"Conflict in task {a.task_id}: {', '.join(a.conflicts)} (not merged; branch and worktree kept)")
    for task_id, why in problems.items():
        sys.stderr.write(f"warning: skipped task {task_id}: {why}\n")
    not_merged = len(problems) + sum(a.status in ("conflict", "check-failed", "resolving", "blocked")
                                     or (a.status == "up-to-date" and show_empty) for a in attempts)
    if not merged and not not_merged:
        print("Nothing to merge.")
    elif dry_run:
        print(f"{len(merged)} would merge, {not_merged} would not")
    else:
        print(f"{len(merged)} merged, {not_merged} not merged")
    return ExitCode.FAILED if not_merged else ExitCode.OK


