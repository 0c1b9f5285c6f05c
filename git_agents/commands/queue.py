"""git agent-queue: publish tasks to a shared remote for workers on other machines, and show the queue."""

from __future__ import annotations

import argparse
import json
import sys
import time

from git_agents.core.errors import AgentError, ExitCode, UsageError
from git_agents.core.output import printable, table, use_colour
from git_agents.core.repo import Repo
from git_agents.remote.queue import RemoteQueue, RemoteTask, Update, ref
from git_agents.tasks.selection import current_branch

USAGE = "git agent-queue push [--remote <remote>] <file>\n   or: git agent-queue list [--remote <remote>] [--json]"

DESCRIPTION = """\
`push` publishes each task of a TOML task file (the format of git agent-run) to the remote as
refs/agents/queue/<id>: a commit whose tree holds spec.json (id, title, agent, base) and
prompt.md (the file's jobs, merge, check and pool settings are for git agent-run and are not
used here). All tasks are published in one atomic push and only if none of their ids is on the
remote yet; a task is published once and never changes. Workers (git agent-worker) on any
machine with a clone claim and run them; git agent-merge --all --remote merges their results.

`list` fetches the queue and shows every task with its state: queued, claimed (by which worker,
since when, and how old its last heartbeat is; "stale" once older than agent.lease), done,
failed (the agent exited non-zero or died), check-failed, merged, or invalid (its queue entry or
result cannot be read: not JSON, a newer format version; see the warning). Each record that
cannot be read is named in one warning line on standard error; it affects only its own task.

check-failed: `git agent-merge --remote` merged the task's result in memory and the merge
check (--check or agent.mergeCheck) failed on it, so it was left out; the remote keeps that
as refs/agents/rejected/<id> (a commit whose parent is the result, with the check command and
the tail of its output). A later `git agent-merge --remote` checks it again; the record is
removed once the task merges (or conflicts instead, and is "done" again).
"""

EXAMPLES = """\
git agent-queue push tasks.toml
git agent-queue list
"""

JSON = """\
With --json, list prints one object: {"version": 1, "remote": "<remote>", "tasks": [...]}, one
entry per task in id order with the fields id, title, state (queued, claimed, done, failed,
check-failed, merged or invalid), worker (the claimer, or who ran it), claimed (epoch seconds),
heartbeat_age (seconds), stale (true once the heartbeat is older than agent.lease), exit,
started, finished (epoch seconds), branch, merge_commit, check (the check command that failed)
check_output (the tail of its output) and problems (why records of the task cannot be read, a
list of strings, empty when all can); fields that do not apply are null. "version" changes only
when a field is removed or changes meaning.
"""

JSON_VERSION = 1


def configure(p: argparse.ArgumentParser) -> None:
    """Declare queue's options."""
    p.add_argument("action", choices=("push", "list"), metavar="(push|list)", help="what to do")
    p.add_argument("taskfile", nargs="?", metavar="<file>", help="the TOML task file to publish (push)")
    p.add_argument("--remote", metavar="<remote>", help="the shared remote (default: agent.remote, origin)")
    p.add_argument("--json", action="store_true", help="list: print one JSON object (see JSON OUTPUT)")


def run(args: argparse.Namespace) -> int:
    """Push tasks or list the queue."""
    if args.action == "push":
        if not args.taskfile:
            raise UsageError("name the task file to push")
        return push(args)
    if args.taskfile:
        raise UsageError("list takes no task file")
    return list_queue(args)


def push(args: argparse.Namespace) -> int:
    """Publish the task file's tasks, all or none."""
    from git_agents.run.taskfile import load

    taskfile = load(args.taskfile)
    specs = taskfile.tasks
    repo = Repo.discover()
    queue = RemoteQueue(repo, args.remote)
    queue.fetch()
    known = queue.tasks()
    taken = [s.id for s in specs if s.id in known]
    if taken:
        raise AgentError(f"task id(s) already on {queue.remote}: {', '.join(taken)}; nothing was published",
                         hint="a task is published once: give new tasks new ids (git agent-queue list shows them)")
    base = taskfile.base or current_branch(repo, repo.main_worktree)
    if queue.head(base) is None:
        raise AgentError(f"base branch '{base}' does not exist on {queue.remote}; nothing was published",
                         hint=f"push it first: git push {queue.remote} {base}")
    updates = []
    for spec in specs:
        # The agent is as written (a preset name or a command): each worker expands it with its own presets.
        record = {"id": spec.id, "title": spec.title, "agent": spec.agent or taskfile.agent, "base": base,
                  "published": time.time()}
        tree = _spec_tree(queue, record, spec.text)
        commit = queue.record_commit(f"agent-queue: task {spec.id} - {spec.title}", {"id": spec.id}, tree=tree)
        updates.append(Update(ref("queue", spec.id), commit, ""))
    result = queue.push(updates, atomic=True)
    if not result.ok:
        lost = [u.ref.rpartition("/")[2] for u in updates if result.lost(u.ref)]
        if lost:
            raise AgentError(f"task id(s) published meanwhile on {queue.remote}: {', '.join(lost)};"
                             " nothing was published",
                             hint="give these tasks new ids")
        raise AgentError(f"{queue.remote} refused the push: {result.reason()}; nothing was published")
    print(f"Queued {len(specs)} task(s) on {queue.remote}: {', '.join(s.id for s in specs)}")
    return ExitCode.OK


def _spec_tree(queue: RemoteQueue, record: dict[str, object], prompt: str) -> str:
    """A tree with spec.json and prompt.md."""
    git = queue.git
    spec = json.dumps({"version": 1, **record}, indent=1, sort_keys=True) + "\n"
    spec_blob, prompt_blob = git.write_blobs([spec, prompt])
    return git("mktree", input=f"100644 blob {prompt_blob}\tprompt.md\n100644 blob {spec_blob}\tspec.json\n")


def describe(task: RemoteTask, lease: float, now: float) -> dict[str, object]:
    """One task as `list --json` prints it."""
    info = task.claim_info
    age = task.heartbeat_age(now)
    result = task.result_info
    rejected = task.rejected_info if task.rejected and not task.merged else {}
    return {"id": task.id, "title": task.title, "state": task.state(),
            "worker": info.get("worker") if task.claim else result.get("worker"),
            "claimed": info.get("claimed") if task.claim else None,
            "heartbeat_age": None if age is None else round(age, 1),
            "stale": age is not None and age > lease,
            "exit": result.get("exit"), "started": result.get("started"), "finished": result.get("finished"),
            "branch": result.get("branch"), "merge_commit": task.merged or None,
            "check": rejected.get("check") if rejected else None,
            "check_output": rejected.get("output") if rejected else None,
            "problems": list(task.bad.values())}


def _when(epoch: object) -> str:
    if not isinstance(epoch, (int, float)):
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def list_queue(args: argparse.Namespace) -> int:
    """Show the queue."""
    repo = Repo.discover()
    queue = RemoteQueue(repo, args.remote)
    queue.fetch()
    lease = repo.setting_number("agent.lease", positive=True, meaning="seconds")
    now = time.time()
    tasks = queue.tasks()
    for task in tasks.values():
        for problem in task.problems():
            sys.stderr.write(printable(f"warning: {problem}", newlines=False) + "\n")
    rows = [describe(t, lease, now) for t in tasks.values() if t.queue]
    if args.json:
        print(json.dumps({"version": JSON_VERSION, "remote": queue.remote, "tasks": rows}, indent=2))
        return ExitCode.OK
    if not rows:
        print(f"The queue on {queue.remote} is empty.")
        return ExitCode.OK
    lines = []
    for row in rows:
        state = str(row["state"])
        detail = ""
        if state == "claimed" and row["heartbeat_age"] is None:  # its claim cannot be read (warned above)
            detail = "by an unreadable claim"
        elif state == "claimed":
            beat = f"heartbeat {row['heartbeat_age']:.0f}s ago" + (" (stale)" if row["stale"] else "")
            detail = f"by {row['worker']} since {_when(row['claimed'])}, {beat}"
        elif state in ("done", "failed"):
            detail = (f"exit {row['exit']}" if row["exit"] is not None else "died" if row["branch"] else "not run")
            detail += f" by {row['worker']} at {_when(row['finished'])}"
        elif state == "invalid":
            detail = "unreadable record"
        elif state == "check-failed":
            detail = f"check failed: {row['check']}"
        elif state == "merged":
            detail = f"as {str(row['merge_commit'])[:12]}"
        lines.append([str(row["id"]), state, detail, str(row["title"])])
    colour = use_colour(args.color, config=repo.config)
    sys.stdout.write(table(["ID", "STATE", "DETAIL", "TITLE"], lines, colour=colour, state_column=1) + "\n")
    return ExitCode.OK
