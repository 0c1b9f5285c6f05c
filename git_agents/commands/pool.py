"""git agent-pool: a pool of warm worktrees that agents claim and release."""

from __future__ import annotations

import argparse
import math
import os
import sys

from git_agents.commands.options import add_isolation_option, add_sparse_option, add_task_text_options, add_verbosity
from git_agents.core.errors import AgentError, ExitCode, UsageError
from git_agents.core.output import table, use_colour
from git_agents.core.procs import process_start
from git_agents.core.repo import Repo
from git_agents.lifecycle import start as starting
from git_agents.pool import slots as pool
from git_agents.tasks.isolation import mode as isolation_mode
from git_agents.tasks.store import load_tasks

USAGE = """\
git agent-pool create <n> [--base <branch>]
   or: git agent-pool claim [--task <new-id> [--title <text>] [--prompt <text> | --prompt-file <file>]
                             [--sparse <dir>...] [--isolation <mode>]]
                            [--base <branch>] [--wait [<seconds>]] [--pid <pid>]
   or: git agent-pool release [--force] <slot>...
   or: git agent-pool release --stale
   or: git agent-pool list [--json]
   or: git agent-pool shrink <n>
   or: git agent-pool destroy [--force]"""

DESCRIPTION = """\
Creating a worktree checks out every file of the repository, which takes seconds on a large
one. The pool keeps worktrees pool-1 ... pool-<n> under the worktree root, detached at the
pool's base branch and clean, so that starting a task costs a branch switch instead.

create tops the pool up to <n> slots; it never touches a slot in use. --base sets the branch
free slots are kept at (agent-pool.base; default: the main worktree's branch).

claim takes one free slot and prints its path and nothing else, so that
cd "$(git agent-pool claim)" works. With --task <id> the slot is switched to a new branch
task-<id> at the base and the task is recorded and made ready as git agent-spawn does it
(prompt file, copied and linked files, port block, agent.setup); git agent-clean <id> later
gives the slot back; --sparse <dir>... (or agent.sparse) narrows the slot to those
directories (cone mode) for the task, and releasing it makes it a full checkout again.
With --isolation=clone or sandbox (or agent.isolation; see git agent-spawn) the task gets a
clone of its own at <root>/task-<id> instead, made from the slot's checkout: the slot's files
and index are taken over (no file is written again) and the slot leaves the pool, so that
nothing an agent does to its clone's git directory reaches a later task; git agent-clean <id>
removes the clone, and create (or spawn --pool, which grows the pool) makes new slots. A claim
without --task is always a worktree.
With no free slot claim fails with
"pool exhausted" (exit 1), or with --wait waits for a release (up to <seconds>, or forever).
Claims are atomic: a claim is the creation of the ref refs/agents/pool/<slot>, which git does
for exactly one of any number of racing claimers. The claim records the claiming process:
--pid, or by default the process that ran git agent-pool.

release returns slots to the pool, reset to the base tip, detached and clean (ignored files
included). Nothing is lost: without --force it refuses a slot holding uncommitted or untracked
work, or commits that no branch contains. A slot that a recorded task holds is released by
cleaning the task. --stale releases every slot whose claiming process has ended, that no task
holds and that holds nothing to lose.

list shows every slot: free or claimed, by which task and process, since when, and whether
that process still runs (a claim whose process has ended is stale). shrink removes free slots,
highest-numbered first, until the pool has at most <n> (claimed slots stay, so it may keep
more). destroy removes the free slots; --force removes claimed ones too, discarding what they
hold.
"""

EXAMPLES = """\
git agent-pool create 8
cd "$(git agent-pool claim --wait 60)" && ... && git agent-pool release "$PWD"
git agent-pool claim --task 48 --prompt "Free the mixer channel when it is deleted"
git agent-spawn 49 --pool --agent ./my-agent.sh
git agent-pool list
git agent-pool release --stale
"""

JSON_VERSION = 1

JSON = """\
With --json, list prints one object: {"version": 1, "root": ..., "base": ..., "slots": [...]}:
root is the worktree root, base the branch set with create --base (empty: the main worktree's
branch), and one entry per slot with the fields slot (pool-3), path, state (free, claimed,
stale or missing), exists (the worktree is there), head (its commit), claimed, task (empty
when the claim has none), pid (the claiming process, or the task's agent), alive (true, false,
or null when it ran on another host), stale (its process ended and no recorded task holds it),
claimed_at and host. "version" changes only when a field is removed or changes meaning.
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare the sub-commands and their options."""
    subs = p.add_subparsers(dest="action", metavar="<command>", required=True)

    def sub(name: str, summary: str) -> argparse.ArgumentParser:
        return subs.add_parser(name, prog=f"git agent-pool {name}", help=summary, description=summary,
                               formatter_class=p.formatter_class, allow_abbrev=False)

    create = sub("create", "create slots pool-1 ... pool-<n> (tops the pool up)")
    create.add_argument("count", type=int, metavar="<n>", help="number of slots the pool should have")
    create.add_argument("--base", metavar="<branch>", help="keep free slots at this branch (saved)")

    claim = sub("claim", "claim a free slot and print its path")
    claim.add_argument("--task", metavar="<new-id>", help="switch the slot to a new branch for this task and record it")
    add_task_text_options(claim)
    add_sparse_option(claim)
    claim.add_argument("--base", metavar="<branch>", help="with --task: the task's base branch")
    add_isolation_option(claim, "with --task: ")
    claim.add_argument("--wait", nargs="?", type=float, const=math.inf, metavar="<seconds>",
                       help="wait for a free slot (up to <seconds>; no value: forever)")
    claim.add_argument("--pid", type=int, metavar="<pid>",
                       help="the process that holds the claim (default: the one that ran git agent-pool)")

    release = sub("release", "reset slots and return them to the pool")
    release.add_argument("slots", nargs="*", metavar="<slot>", help="slots to release: a name (pool-3) or a path")
    release.add_argument("-f", "--force", action="store_true", help="discard unsaved work and unreachable commits")
    release.add_argument("--stale", action="store_true",
                         help="release every slot whose claiming process has ended and that holds nothing to lose")
    add_verbosity(release, quiet="print only errors", verbose="also print each released slot's path")

    lst = sub("list", "show every slot and who holds it")
    lst.add_argument("--json", action="store_true", help="print a JSON object")

    shrink = sub("shrink", "remove free slots until the pool has at most <n>")
    shrink.add_argument("count", type=int, metavar="<n>", help="number of slots to keep (0 or more)")
    add_verbosity(shrink, quiet="print only errors", verbose="also print each removed slot's path")

    destroy = sub("destroy", "remove the free slots")
    destroy.add_argument("-f", "--force", action="store_true", help="remove claimed slots too")
    add_verbosity(destroy, quiet="print only errors", verbose="also print each removed slot's path")


def run(args: argparse.Namespace) -> int:
    """Dispatch to the sub-command."""
    return int(_ACTIONS[args.action](args, Repo.discover()))


def _create(args: argparse.Namespace, repo: Repo) -> int:
    if args.count < 1:
        raise UsageError("the pool needs at least one slot")
    added = pool.create(repo, args.count, args.base)
    if added:
        print(f"Created {', '.join(added)} in {os.path.relpath(repo.worktree_root)}")
    else:
        print(f"The pool already has slots pool-1 ... pool-{args.count}")
    return ExitCode.OK


def _claim(args: argparse.Namespace, repo: Repo) -> int:
    if not args.task and (args.title or args.prompt is not None or args.prompt_file or args.base or args.sparse
                          or args.isolation):
        raise UsageError("--title, --prompt, --prompt-file, --base, --sparse and --isolation need --task")
    if args.wait is not None and args.wait < 0:
        raise UsageError("--wait takes a number of seconds, 0 or more")
    owner = None
    if args.pid is not None:
        start = process_start(args.pid)
        if start is None:
            raise AgentError(f"no process with pid {args.pid}")
        owner = (args.pid, start)
    request = pool.PoolRequest(wait=args.wait)
    if not args.task:
        print(pool.claim(repo, owner=owner, request=request).path)
        return ExitCode.OK
    outcome = starting.start_task(repo, starting.StartRequest(
        (args.task,), prompt=args.prompt, prompt_file=args.prompt_file, title=args.title or "", base=args.base,
        pool=request, owner=owner or pool.TASK_OWNER,  # not this command's caller: its end says nothing of the task
        sparse=args.sparse, isolation=isolation_mode(repo, args.isolation), until=starting.READY))
    task, why = outcome.task, outcome.why
    if why is not None and why.setup is not None:
        sys.stderr.write(starting.setup_failure_text(task, why.setup) +
                         f"hint: the slot is kept at {task.worktree}; fix the setup and work there,"
                         f" or give the slot back with: git agent-clean {task.id}\n")
        return ExitCode.FAILED
    print(task.worktree)
    return ExitCode.OK


def _release(args: argparse.Namespace, repo: Repo) -> int:
    if args.stale == bool(args.slots):
        raise UsageError("name the slots to release, or pass --stale")
    if args.stale and args.force:
        raise UsageError("--stale never discards work; release a slot by name to use --force")
    if args.stale:
        task_ids = set(load_tasks(repo))
        names = [s.name for s in pool.read_slots(repo, details=True).values()
                 if s.claim and pool.is_stale(s.claim, task_ids)]
    else:
        names = list(dict.fromkeys(pool.resolve_slot(repo, spec) for spec in args.slots))
    kept = 0
    for name in names:
        try:
            pool.release(repo, name, force=args.force)
        except AgentError as error:
            if len(names) == 1 and not args.stale:
                raise
            sys.stderr.write(f"error: {error.message}\n")
            kept += 1
            continue
        if args.verbosity >= 0:
            print(f"Released {name}" + (f" ({pool.slot_path(repo, name)})" if args.verbosity > 0 else ""))
    if args.stale and not names and args.verbosity >= 0:
        print("No stale slots.")
    return ExitCode.FAILED if kept else ExitCode.OK


def slot_rows(repo: Repo) -> list[dict[str, object]]:
    """Every slot as `list --json` shows it."""
    task_ids = set(load_tasks(repo))
    rows: list[dict[str, object]] = []
    for slot in pool.read_slots(repo, details=True).values():
        held = slot.claim
        alive = held.alive() if held else None
        stale = held is not None and pool.is_stale(held, task_ids)
        if not slot.exists:
            state = "missing"
        elif held is None:
            state = "free"
        else:
            state = "stale" if stale else "claimed"
        rows.append({
            "slot": slot.name, "path": slot.path, "state": state, "exists": slot.exists, "head": slot.head,
            "claimed": held is not None, "task": held.task if held else "",
            "pid": int(held.pid) if held and held.pid.isdigit() else None, "alive": alive, "stale": stale,
            "claimed_at": held.claimed_at if held else "", "host": held.host if held else "",
        })
    return rows


def _list(args: argparse.Namespace, repo: Repo) -> int:
    rows = slot_rows(repo)
    if args.json:
        import json

        base = repo.setting(pool.BASE_KEY)
        print(json.dumps({"version": JSON_VERSION, "root": repo.worktree_root, "base": base, "slots": rows},
                         indent=2))
        return ExitCode.OK
    if not rows:
        print("The pool is empty; create slots with: git agent-pool create <n>")
        return ExitCode.OK
    cells = []
    for r in rows:
        pid = "" if r["pid"] is None else f"{r['pid']}" + ("" if r["alive"] is not False else " (ended)")
        cells.append([str(r["slot"]), str(r["state"]), str(r["task"]), pid, str(r["claimed_at"]),
                      os.path.relpath(str(r["path"]))])
    colour = use_colour(getattr(args, "color", None), config=repo.config)
    print(table(["SLOT", "STATE", "TASK", "PID", "SINCE", "PATH"], cells, colour=colour, state_column=1))
    return ExitCode.OK


def _destroy(args: argparse.Namespace, repo: Repo) -> int:
    removed, kept = pool.destroy(repo, force=args.force)
    for name in removed if args.verbosity >= 0 else []:
        print(f"Removed {name}" + (f" ({pool.slot_path(repo, name)})" if args.verbosity > 0 else ""))
    for name in kept:
        sys.stderr.write(f"error: not removing {name}: it is claimed\n")
    if kept:
        sys.stderr.write("hint: release the slots first, or pass --force to remove them anyway\n")
    if not removed and not kept and args.verbosity >= 0:
        print("The pool is empty.")
    return ExitCode.FAILED if kept else ExitCode.OK


def _shrink(args: argparse.Namespace, repo: Repo) -> int:
    if args.count < 0:
        raise UsageError("shrink takes the number of slots to keep, 0 or more")
    removed, left = pool.shrink(repo, args.count)
    for name in removed if args.verbosity >= 0 else []:
        print(f"Removed {name}" + (f" ({pool.slot_path(repo, name)})" if args.verbosity > 0 else ""))
    if args.verbosity >= 0:
        if left > args.count:
            print(f"The pool keeps {left} slot(s): the others are claimed")
        elif not removed:
            print(f"The pool already has {left} slot(s)")
    return ExitCode.OK


_ACTIONS = {"create": _create, "claim": _claim, "release": _release, "list": _list, "shrink": _shrink,
            "destroy": _destroy}
