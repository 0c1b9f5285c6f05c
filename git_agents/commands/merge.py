"""git agent-merge: merge finished tasks into their target branch, one by one."""

from __future__ import annotations

import argparse
import os
import sys

from ..cli import add_verbosity
from ..errors import AgentError, ExitCode, UsageError
from ..ids import sort_key
from ..lock import RepoLock
from ..merging import Attempt, advance_branch, merge_in_memory
from ..notes import add_note
from ..overview import agent_state
from ..prompt import render
from ..repo import Repo
from ..selection import select_tasks
from ..store import Task, now_iso, write_task
from ..worktrees import list_worktrees, unsaved_work

USAGE = "git agent-merge [<options>] (--all | <id>...)"

DESCRIPTION = """\
Merge task branches into their target branch (the branch each task was spawned from), one
by one in the order given (--all: every task whose agent exited 0, or that has no agent, and
that has commits, in id order). Each merge is a --no-ff merge commit whose message comes
from agent.mergeMessage (default "feat: Task {id} - {title}"), and gets a note in
refs/notes/agents recording the task id, title, agent command, base, start and end times and
exit code, so `git log --notes=agents` shows where each change came from.

Merges are computed in memory (git merge-tree) and the target branch moves once at the end;
the worktree that has it checked out must be clean and not in the middle of a merge. A task
that conflicts is left out and marked "conflict" with its files listed; its branch and
worktree are untouched, and the other tasks still merge. A task whose worktree holds
uncommitted or untracked work is skipped with a warning. Exits 1 if any task did not merge.

With --remote <remote>, merge the tasks that workers finished (git agent-worker) instead: fetch
their results and branches from the remote's queue, merge them onto the remote's target branch
the same way, and push the target, the notes and refs/agents/merged/<id> in one atomic push
with a lease on each old value; if someone moved the target meanwhile, fetch, merge again, retry.
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare merge's options."""
    p.add_argument("ids", nargs="*", metavar="<id>", help="tasks to merge, in this order")
    p.add_argument("--all", action="store_true", help="merge every finished task with commits, in id order")
    add_verbosity(p)
    p.add_argument("--remote", metavar="<remote>", help="merge the finished tasks of the queue on <remote>")


def _message(repo: Repo, task: Task) -> str:
    return render(repo.setting("agent.mergeMessage"), {"id": task.id, "title": task.title, "branch": task.branch})


def _check_target_worktree(repo: Repo, worktree: str) -> None:
    git = repo.git.at(worktree)
    merge_head = git("rev-parse", "--git-path", "MERGE_HEAD")
    if os.path.exists(os.path.join(worktree, merge_head)):
        raise AgentError(f"the worktree at {worktree} is in the middle of a merge",
                         hint="finish it (git commit) or abort it (git merge --abort) first")
    dirty = git.run("status", "--porcelain", "--untracked-files=no").out
    if dirty.strip():
        raise AgentError(f"the worktree at {worktree} has uncommitted changes; merging would mix them in",
                         hint="commit or stash them first (git stash)")


def _eligible(repo: Repo, task: Task, explicit: bool) -> str | None:
    """Why a task is not merged now (None: go ahead)."""
    if task.state == "merged":
        return "already merged"
    state, code, _ = agent_state(repo, task)
    if state == "running":
        return "its agent is still running"
    if not explicit and state not in ("exited", "not started"):
        return f"its agent {state}"
    if not explicit and state == "exited" and code != 0:
        return f"its agent exited {code}"
    return None


def run(args: argparse.Namespace) -> int:
    """Merge the tasks."""
    if not args.ids and not args.all:
        raise UsageError("name the tasks to merge, or pass --all")
    if args.ids and args.all:
        raise UsageError("--all cannot be combined with task ids")
    repo = Repo.discover()
    if args.remote:
        from ..remote_merge import merge_remote

        return merge_remote(repo, args.remote, args.ids, verbosity=args.verbosity)
    tasks = select_tasks(repo, args.ids, all_tasks=args.all)
    if args.all:
        tasks.sort(key=lambda t: sort_key(t.id))
    checked_out = {w.branch: w.path for w in list_worktrees(repo) if w.branch}

    problems: dict[str, str] = {}
    to_merge: list[Task] = []
    for task in tasks:
        why = _eligible(repo, task, explicit=not args.all)
        if why is None and task.worktree and os.path.isdir(task.worktree) and unsaved_work(repo, task.worktree):
            why = "its worktree has uncommitted or untracked work (commit it, or it would be left out)"
        if why is None and not repo.git.ok("show-ref", "--verify", "--quiet", f"refs/heads/{task.branch}"):
            why = f"its branch '{task.branch}' is gone"
        if why:
            if not (args.all and why == "already merged"):
                problems[task.id] = why
            continue
        to_merge.append(task)

    targets: dict[str, list[Task]] = {}
    for task in to_merge:
        targets.setdefault(task.base, []).append(task)
    for target in targets:
        if target in checked_out:
            _check_target_worktree(repo, checked_out[target])

    attempts: list[Attempt] = []
    with RepoLock(repo.common_dir, "merge"):
        for target, group in targets.items():
            attempts += _merge_group(repo, target, group, checked_out.get(target))

    merged = [a for a in attempts if a.status == "merged"]
    for a in attempts:
        if a.status == "merged":
            if args.verbosity >= 0:
                print(f"Merged task {a.task_id} ({a.commit[:12]})")
            if args.verbosity > 0:
                print(f"  {repo.git('log', '-1', '--format=%s', a.commit)}")
        elif a.status == "up-to-date":
            if not args.all and args.verbosity >= 0:
                print(f"Task {a.task_id} has no commits to merge")
        else:
            print(f"Conflict in task {a.task_id}: {', '.join(a.conflicts)} (not merged; branch and worktree kept)")
    for task_id, why in problems.items():
        sys.stderr.write(f"warning: skipped task {task_id}: {why}\n")
    not_merged = len(problems) + sum(a.status == "conflict" or (a.status == "up-to-date" and not args.all)
                                     for a in attempts)
    if not merged and not not_merged:
        print("Nothing to merge.")
    else:
        print(f"{len(merged)} merged, {not_merged} not merged")
    return ExitCode.FAILED if not_merged else ExitCode.OK


def _merge_group(repo: Repo, target: str, tasks: list[Task], worktree: str | None) -> list[Attempt]:
    """Merge tasks into one target branch and move it once."""
    git = repo.git
    orig = git("rev-parse", "--verify", f"refs/heads/{target}^{{commit}}")
    current = orig
    attempts = []
    for task in tasks:
        tip = git("rev-parse", "--verify", f"refs/heads/{task.branch}^{{commit}}")
        attempt = merge_in_memory(git, current, tip, _message(repo, task), task.id)
        attempts.append(attempt)
        if attempt.status == "merged":
            current = attempt.commit
    by_id = {t.id: t for t in tasks}
    merged_at = now_iso()
    for a in attempts:
        if a.status == "merged":
            add_note(repo, a.commit, _note_fields(repo, by_id[a.task_id], merged_at))
    if current != orig:
        advance_branch(git, target, orig, current, worktree, f"agent-merge: {len(attempts)} task(s) into {target}")
    for a in attempts:
        if a.status == "merged":
            write_task(repo, a.task_id, state="merged", merge_commit=a.commit, merged_at=merged_at,
                       conflicts=None, reason=None)
        elif a.status == "conflict":
            write_task(repo, a.task_id, state="conflict", conflicts="\n".join(a.conflicts),
                       reason=f"conflicts with {target}")
    return attempts


def _note_fields(repo: Repo, task: Task, merged_at: str) -> dict[str, str]:
    state, code, finished = agent_state(repo, task)
    return {"task": task.id, "title": task.title, "branch": task.branch, "agent": task.agent or "-",
            "prompt-hash": task.prompt_hash or "-", "base": task.base_commit, "target": task.base,
            "started": task.started or task.created, "finished": finished or "-",
            "exit": "-" if code is None else str(code), "merged": merged_at}
