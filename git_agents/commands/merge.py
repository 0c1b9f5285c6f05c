"""git agent-merge: merge finished tasks into their target branch, one by one."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field

from git_agents.commands.options import add_verbosity
from git_agents.core.errors import AgentError, ExitCode, UsageError
from git_agents.core.lock import RepoLock
from git_agents.core.repo import Repo
from git_agents.core.worktrees import list_worktrees, unsaved_work
from git_agents.merging import journal as journal_file
from git_agents.merging.inmemory import Attempt
from git_agents.merging.journal import Entry, Journal
from git_agents.tasks.ids import sort_key
from git_agents.tasks.prompt import render
from git_agents.tasks.selection import select_tasks
from git_agents.tasks.status import agent_state
from git_agents.tasks.store import Task, load_tasks, now_iso

USAGE = """\
git agent-merge [<options>] (--all | <id>...)
git agent-merge --dry-run (--all | <id>...)
git agent-merge (--continue | --abort)
"""

DESCRIPTION = """\
Merge task branches into their target branch (the branch each task was spawned from), one
by one in the order given (--all: every task whose agent exited 0, or that has no agent, and
that has commits, in id order). Each merge is a --no-ff merge commit whose message comes
from agent.mergeMessage (default "feat: Task {id} - {title}"), and gets a note in
refs/notes/agents recording the task id, title, agent command, prompt hash, base, start and
end times, exit code and check result, so `git log --notes=agents` (or `git agent-log`) shows
where each change came from.

Merges are computed in memory (git merge-tree) and the target branch moves once at the end;
the worktree that has it checked out must be clean and not in the middle of a merge. A task
that conflicts is left out and marked "conflict" with its files listed; its branch and
worktree are untouched, and the other tasks still merge. A task whose worktree holds
uncommitted or untracked work is skipped with a warning. Exits 1 if any task did not merge.

With --remote <remote>, merge the tasks that workers finished (git agent-worker) instead: fetch
their results and branches from the remote's queue, merge them onto the remote's target branch
the same way, and push the target, the notes and refs/agents/merged/<id> in one atomic push
with a lease on each old value; if someone moved the target meanwhile, fetch, merge again, retry.
--check, --check-batch and agent.mergeCheck gate these merges as they do local ones (in the
scratch worktree of this clone); a task whose result fails is left out and recorded on the
remote as refs/agents/rejected/<id>, which `git agent-queue list` shows as "check-failed" (a
later run checks it again). --dry-run --remote fetches and predicts; it pushes nothing.
--interactive and --rebase do not combine with --remote.

--dry-run reports, in merge order, what would happen to each task (each prediction includes
the tasks merged before it) without moving any ref or touching any worktree.

With --check CMD (or agent.mergeCheck) each merged result is checked out in a scratch
worktree and CMD runs there with agent.shell; a task whose result fails is left out, marked
"check-failed" with the tail of CMD's output, and the rest go on. --check-batch checks the
whole chain once and bisects to the culprit only when it fails.

Crash safety: before the target moves, the plan (target, old and new commits, notes, task
states) is written to <git-common-dir>/agents/merge-journal; it is removed once everything is
written. If a run is interrupted, `git agent-merge --continue` finishes it and
`git agent-merge --abort` puts the target back where it was; no new merge starts until then.

--interactive stops at the first conflict instead of skipping the task: the target branch is
moved to the merges so far and a real `git merge --no-ff` of the task is left, conflicted, in
the worktree that has the target checked out. Resolve it there and `git add` the files, then
`git agent-merge --continue` commits the resolution (with the task's message and note) and
goes on with the remaining tasks; `git agent-merge --abort` puts the target back where it was
before the run.

--rebase handles a conflicting task differently: the merges so far land, the task's branch is
rebased onto the target in the task's own worktree and, if that applies cleanly, merged; if
the rebase conflicts too it is aborted (branch and worktree as they were) and the task is
reported as a conflict.
"""


EXAMPLES = """\
git agent-merge --dry-run --all                # what would merge, what would conflict, in order
git agent-merge --all --check 'make test'      # merge only results whose tests pass
git agent-merge --all --check-batch            # agent.mergeCheck once on the lot; bisect on failure
git agent-merge 48 50 --interactive            # stop at a conflict; resolve; git agent-merge --continue
git agent-merge --abort                        # after an interruption: put the target back
git agent-merge --all --remote origin --check 'make test'  # merge the workers' results that pass
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare merge's options."""
    p.add_argument("ids", nargs="*", metavar="<id>", help="tasks to merge, in this order")
    p.add_argument("--all", action="store_true", help="merge every finished task with commits, in id order")
    add_verbosity(p)
    p.add_argument("--remote", metavar="<remote>", help="merge the finished tasks of the queue on <remote>")
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="only report, in merge order, which tasks would merge and which would conflict")
    p.add_argument("--check", metavar="<cmd>",
                   help="run <cmd> on each merged result in a scratch worktree; merge only if it passes "
                        "(default: agent.mergeCheck)")
    p.add_argument("--no-check", action="store_true", help="ignore agent.mergeCheck")
    p.add_argument("--check-batch", action="store_true",
                   help="check the whole chain once, and bisect to the culprit only when it fails")
    p.add_argument("-i", "--interactive", action="store_true",
                   help="stop at the first conflict, in the target's worktree, for you to resolve")
    p.add_argument("--rebase", action="store_true",
                   help="rebase a conflicting task onto the target so far (in its worktree) and merge it if that applies")
    recover = p.add_mutually_exclusive_group()
    recover.add_argument("--continue", dest="cont", action="store_true", help="finish an interrupted merge")
    recover.add_argument("--abort", action="store_true", help="undo an interrupted merge: put the target back")


def merge_message(repo: Repo, task: Task) -> str:
    """The message of a task's merge commit (agent.mergeMessage filled in)."""
    return render(repo.setting("agent.mergeMessage"), {"id": task.id, "title": task.title, "branch": task.branch})


def check_target_worktree(repo: Repo, worktree: str) -> None:
    """Refuse (AgentError) to move a branch checked out in `worktree` that is mid-merge or has local changes."""
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


@dataclass
class Options:
    """How a run merges: its check, and whether it stops at a conflict."""

    check: str | None = None
    batch: bool = False
    interactive: bool = False
    rebase: bool = False
    show_empty: bool = True  # report tasks without commits (not with --all)
    verbosity: int = 0  # -1 quiet, 1 verbose


@dataclass
class Carry:
    """What an --interactive run has done before the current stretch: its start and its merges."""

    run_old: str = ""
    landed: list[Entry] = field(default_factory=list)


def run(args: argparse.Namespace) -> int:
    """Merge the tasks (or predict, continue or abort)."""
    if args.cont or args.abort:
        if args.ids or args.all or args.dry_run or args.interactive or args.check or args.check_batch or args.rebase:
            raise UsageError(f"--{'continue' if args.cont else 'abort'} takes no tasks or other options")
        return _recover(Repo.discover(), abort=args.abort)
    if not args.ids and not args.all:
        raise UsageError("name the tasks to merge, or pass --all")
    if args.ids and args.all:
        raise UsageError("--all cannot be combined with task ids")
    repo = Repo.discover()
    check = None if args.no_check else (args.check or repo.setting("agent.mergeCheck") or None)
    if args.check_batch and not check:
        raise UsageError("--check-batch needs a check command (--check <cmd> or agent.mergeCheck)")
    if args.remote:
        if args.interactive or args.rebase:  # both work in the task's worktree, which is on another machine
            raise UsageError("--remote cannot be combined with --interactive or --rebase")
        from git_agents.remote.merge import merge_remote

        return merge_remote(repo, args.remote, args.ids, check=check, batch=args.check_batch,
                            dry_run=args.dry_run, verbosity=args.verbosity)
    if args.rebase and (args.interactive or args.check_batch):
        raise UsageError("--rebase cannot be combined with --interactive or --check-batch")
    opts = Options(check, args.check_batch, args.interactive, args.rebase, show_empty=not args.all,
                   verbosity=args.verbosity)
    tasks = select_tasks(repo, args.ids, all_tasks=args.all)
    if args.all:
        tasks.sort(key=lambda t: sort_key(t.id))
    to_merge, problems = _select(repo, tasks, explicit=not args.all)
    if args.dry_run:
        attempts: list[Attempt] = []
        for target, group in _by_target(to_merge).items():
            attempts += _plan(repo, target, group, None, batch=False)[0]
        return report(repo, attempts, problems, opts, dry_run=True)
    return _execute(repo, to_merge, problems, opts, None)


def _select(repo: Repo, tasks: list[Task], *, explicit: bool) -> tuple[list[Task], dict[str, str]]:
    """The tasks to merge now, and why each other one is skipped."""
    problems: dict[str, str] = {}
    to_merge: list[Task] = []
    branches = set(repo.git("for-each-ref", "--format=%(refname)", "refs/heads/").splitlines())
    dirty = _dirty_worktrees(repo, [t for t in tasks if t.state != "merged"])
    for task in tasks:
        why = _eligible(repo, task, explicit=explicit)
        if why is None and task.id in dirty:
            why = "its worktree has uncommitted or untracked work (commit it, or it would be left out)"
        if why is None and f"refs/heads/{task.branch}" not in branches:
            why = f"its branch '{task.branch}' is gone"
        if why:
            if explicit or why != "already merged":
                problems[task.id] = why
            continue
        to_merge.append(task)
    return to_merge, problems


def _dirty_worktrees(repo: Repo, tasks: list[Task]) -> set[str]:
    """Ids of the tasks whose worktree holds uncommitted or untracked work.

    One `git status` per worktree, run in parallel: on a large tree each costs a full index
    refresh, and twenty in a row would cost more than the merges themselves.
    """
    from concurrent.futures import ThreadPoolExecutor

    todo = [t for t in tasks if t.worktree and os.path.isdir(t.worktree)]
    if not todo:
        return set()
    with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
        found = list(pool.map(lambda t: bool(unsaved_work(repo, t.worktree)), todo))
    return {t.id for t, is_dirty in zip(todo, found) if is_dirty}


def _by_target(tasks: list[Task]) -> dict[str, list[Task]]:
    targets: dict[str, list[Task]] = {}
    for task in tasks:
        targets.setdefault(task.base, []).append(task)
    return targets


def _execute(repo: Repo, to_merge: list[Task], problems: dict[str, str], opts: Options, carry: Carry | None) -> int:
    """Merge the selected tasks and report."""
    attempts, meanwhile = merge_tasks(repo, to_merge, opts, carry=carry)
    if opts.show_empty:  # named explicitly: say so, as for a task merged before this run
        problems.update((task_id, "already merged") for task_id in meanwhile)
    return report(repo, attempts, problems, opts, dry_run=False)


def merge_tasks(repo: Repo, to_merge: list[Task], opts: Options, *,
                carry: Carry | None = None) -> tuple[list[Attempt], list[str]]:
    """Merge tasks into their targets, target by target, each moving once (per conflict with --interactive).

    The tasks must be eligible (see _select); with opts.check each merged result is checked
    first and a failing task is left out ("check-failed"). Returns every attempt, in order,
    and the ids of the tasks that another merge merged meanwhile (not attempted). Raises
    AgentError when a target's worktree is dirty or mid-merge, or an interrupted merge waits
    (checked before any target moves). Prints nothing.
    """
    from git_agents.merging.checks import Checker

    waiting = journal_file.read(repo.state_dir)
    if waiting is not None and waiting.phase == "resolving":  # says more than "in the middle of a merge"
        _refuse_if_interrupted(repo)
    targets = _by_target(to_merge)
    checked_out = {w.branch: w.path for w in list_worktrees(repo) if w.branch}
    for target in targets:
        if target in checked_out:
            check_target_worktree(repo, checked_out[target])
        elif opts.interactive:
            raise AgentError(f"--interactive needs '{target}' checked out in a worktree, to resolve conflicts there",
                             hint=f"check it out (git switch {target}), or merge without --interactive")
    attempts: list[Attempt] = []
    with RepoLock(repo.common_dir, "merge"), Checker(repo, opts.check or "") as checker:
        # Only under the lock: a journal seen without it may belong to a run still in progress.
        _refuse_if_interrupted(repo)
        # ... or may have merged some of these tasks meanwhile: decide on fresh metadata.
        repo.reload_config()
        done_meanwhile = {t.id for t in load_tasks(repo).values() if t.state == "merged"}
        targets = {target: kept for target, group in targets.items()
                   if (kept := [t for t in group if t.id not in done_meanwhile])}
        groups = list(targets.items())
        for n, (target, group) in enumerate(groups):
            pending = [t.id for _, later in groups[n + 1:] for t in later]
            merge_group = _merge_group_rebasing if opts.rebase else _merge_group
            attempts += merge_group(repo, target, group, checked_out.get(target),
                                    checker if opts.check else None, opts, carry, pending)
            if any(a.status == "resolving" for a in attempts):  # --interactive stopped for the user
                break
    return attempts, [t.id for t in to_merge if t.id in done_meanwhile]


def _refuse_if_interrupted(repo: Repo) -> None:
    plan = journal_file.read(repo.state_dir)
    if plan is None:
        return
    if plan.phase == "resolving":
        raise AgentError(f"a merge into '{plan.target}' is waiting for the conflict of task "
                         f"{plan.conflict.task_id if plan.conflict else '?'} to be resolved in {plan.worktree}",
                         hint="resolve it and `git add` the files, then: git agent-merge --continue\n"
                              "or undo the whole run with: git agent-merge --abort")
    raise AgentError(f"an earlier merge into '{plan.target}' was interrupted",
                     hint="finish it with: git agent-merge --continue\n"
                          "or undo it with: git agent-merge --abort")


def _recover(repo: Repo, *, abort: bool) -> int:
    """--continue / --abort: finish or undo the run recorded in the journal."""
    from git_agents.merging.chain import land, undo

    with RepoLock(repo.common_dir, "merge"):
        plan = journal_file.read(repo.state_dir)
        if plan is None:
            raise AgentError("no interrupted merge to " + ("abort" if abort else "continue"),
                             hint="`git agent-status` shows each task's state")
        if abort:
            undo(repo, plan)
            print(f"Merge into '{plan.target}' aborted; it is back at {(plan.run_old or plan.old)[:12]}")
            return ExitCode.OK
        if plan.phase == "resolving":
            return _continue_resolved(repo, plan)
        land(repo, plan)
    merged = [e for e in plan.entries if e.status == "merged"]
    for e in merged:
        print(f"Merged task {e.task_id} ({e.commit[:12]})")
    print(f"Merge into '{plan.target}' completed: {len(merged)} merged, {len(plan.entries) - len(merged)} not merged")
    if plan.pending:
        print(f"Not reached (merge them again): {' '.join(plan.pending)}")
    return ExitCode.OK


def _continue_resolved(repo: Repo, plan: Journal) -> int:
    """--continue of an --interactive run: commit the resolution, then merge the remaining tasks."""
    from git_agents.merging.interactive import commit_resolution, start_conflict_merge

    entry = commit_resolution(repo, plan)
    if entry is None:  # the conflicted merge was not in progress: set it up again
        start_conflict_merge(repo, plan)
        print(_resolve_instructions(plan))
        return ExitCode.FAILED
    print(f"Merged task {entry.task_id} ({entry.commit[:12]})")
    remaining = select_tasks(repo, plan.pending) if plan.pending else []
    to_merge, problems = _select(repo, remaining, explicit=True)
    opts = Options(plan.options.get("check") or None, plan.options.get("batch") == "1", interactive=True)
    return _execute(repo, to_merge, problems, opts, Carry(plan.run_old, [*plan.landed, entry]))


def _resolve_instructions(plan: Journal) -> str:
    assert plan.conflict is not None
    return (f"Resolve the conflict of task {plan.conflict.task_id} in {plan.worktree}, `git add` the files, "
            f"then run: git agent-merge --continue\n"
            f"(or put '{plan.target}' back where it was before this run: git agent-merge --abort)")


def check_failure_text(attempt: Attempt) -> str:
    """What is shown for a task whose merged result failed the check: a line and the tail of its output."""
    return (f"Check failed for task {attempt.task_id} (not merged; branch and worktree kept):\n"
            + "".join(f"    {line}\n" for line in attempt.check_output.splitlines()))


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
    not_merged = len(problems) + sum(a.status in ("conflict", "check-failed", "resolving")
                                     or (a.status == "up-to-date" and show_empty) for a in attempts)
    if not merged and not not_merged:
        print("Nothing to merge.")
    elif dry_run:
        print(f"{len(merged)} would merge, {not_merged} would not")
    else:
        print(f"{len(merged)} merged, {not_merged} not merged")
    return ExitCode.FAILED if not_merged else ExitCode.OK


def _plan(repo: Repo, target: str, tasks: list[Task], checker: object, *, batch: bool,
          stop_at_conflict: bool = False) -> tuple[list[Attempt], str, str, dict[str, str]]:
    """The chain of in-memory merges for one target: (attempts, old commit, new commit, tips by task)."""
    from git_agents.merging.chain import Candidate, build_chain

    git = repo.git
    # One call for the target and every tip.
    names = [f"refs/heads/{target}^{{commit}}"] + [f"refs/heads/{t.branch}^{{commit}}" for t in tasks]
    commits = git("rev-parse", *names).split()
    orig, tips = commits[0], commits[1:]
    candidates = [Candidate(t.id, tip, merge_message(repo, t)) for t, tip in zip(tasks, tips)]
    attempts, new = build_chain(git, orig, candidates, checker, batch=batch,  # type: ignore[arg-type]
                                stop_at_conflict=stop_at_conflict)
    return attempts, orig, new, {t.id: tip for t, tip in zip(tasks, tips)}


def _entry(repo: Repo, task: Task, a: Attempt, target: str, merged_at: str) -> Entry | None:
    """The journal entry of one decided attempt: the task state to write and the note (if merged)."""
    if a.status == "merged":
        state: dict[str, str | None] = {"state": "merged", "merge_commit": a.commit, "merged_at": merged_at,
                                        "conflicts": None, "reason": None}
        note = _note_fields(repo, task, merged_at, a)
    elif a.status == "conflict":
        state, note = {"state": "conflict", "conflicts": "\n".join(a.conflicts),
                       "reason": f"conflicts with {target}"}, {}
    elif a.status == "check-failed":
        state, note = {"state": "check-failed", "conflicts": None, "reason": a.check_output or "check failed"}, {}
    else:
        return None
    before = {k: (getattr(task, k) or None) for k in state}
    state = {k: v for k, v in state.items() if v is not None or before[k] is not None}  # skip no-op unsets
    return Entry(a.task_id, a.status, a.commit if a.status == "merged" else "", note, state,
                 {k: before[k] for k in state})


def _merge_group(repo: Repo, target: str, tasks: list[Task], worktree: str | None, checker: object = None,
                 opts: Options | None = None, carry: Carry | None = None,
                 pending: list[str] | None = None) -> list[Attempt]:
    """Merge tasks into one target branch and move it once, journalled so an interruption can be recovered.

    Call it under the "merge" lock. With --interactive, a conflict ends the list as a "resolving" attempt.
    """
    from git_agents.merging.chain import land, signals_deferred

    _refuse_if_interrupted(repo)  # a journal left behind must be dealt with first (it would be overwritten)
    opts = opts or Options()
    pending = pending or []

    attempts, orig, new, tips = _plan(repo, target, tasks, checker, batch=opts.batch,
                                      stop_at_conflict=opts.interactive)
    by_id = {t.id: t for t in tasks}
    merged_at = now_iso()
    stop = attempts[-1] if opts.interactive and attempts and attempts[-1].status == "conflict" else None
    entries = [e for a in attempts if a is not stop
               for e in [_entry(repo, by_id[a.task_id], a, target, merged_at)] if e is not None]
    if entries:
        plan = Journal(target=target, worktree=worktree or "", old=orig, new=new, entries=entries,
                       reason=f"agent-merge: {len(attempts)} task(s) into {target}", pending=pending)
        with signals_deferred():  # a Ctrl-C now would only leave a journal to --continue
            journal_file.write(repo.state_dir, plan)
            land(repo, plan)
    if stop is None:
        return attempts
    from git_agents.merging.interactive import start_conflict_merge

    task = by_id[stop.task_id]
    later = [t.id for t in tasks[tasks.index(task) + 1:]] + pending
    carry = carry or Carry(orig)
    merged = Attempt(task.id, "merged", check=stop.check)
    conflict = _entry(repo, task, merged, target, merged_at)
    assert conflict is not None and worktree
    plan = Journal(target=target, worktree=worktree, old=new, new=new, entries=[], pending=later,
                   phase="resolving", run_old=carry.run_old,
                   landed=[*carry.landed, *(e for e in entries if e.status == "merged")], conflict=conflict,
                   tip=tips[task.id], message=merge_message(repo, task),
                   options={"check": opts.check or "", "batch": "1" if opts.batch else ""})
    start_conflict_merge(repo, plan)
    stop.status, stop.check_output = "resolving", _resolve_instructions(plan)
    return attempts


def _merge_group_rebasing(repo: Repo, target: str, tasks: list[Task], worktree: str | None, checker: object,
                          opts: Options, carry: Carry | None, pending: list[str]) -> list[Attempt]:
    """--rebase: land the chain up to each conflict, rebase that task onto the target, and go on."""
    from git_agents.merging.chain import land, signals_deferred
    from git_agents.merging.rebase import rebase_onto_target

    _refuse_if_interrupted(repo)

    done: list[Attempt] = []
    rest = list(tasks)
    failed: list[Entry] = []  # conflict records of tasks whose rebase failed, landed with the next stretch
    rebased: set[str] = set()
    while rest:
        attempts, orig, new, _ = _plan(repo, target, rest, checker, batch=False, stop_at_conflict=True)
        stop = attempts[-1] if attempts and attempts[-1].status == "conflict" else None
        merged_at = now_iso()
        by_id = {t.id: t for t in rest}
        entries = failed + [e for a in attempts if a is not stop
                            for e in [_entry(repo, by_id[a.task_id], a, target, merged_at)] if e is not None]
        failed = []
        if entries:
            plan = Journal(target=target, worktree=worktree or "", old=orig, new=new, entries=entries,
                           reason=f"agent-merge --rebase: into {target}", pending=pending)
            with signals_deferred():
                journal_file.write(repo.state_dir, plan)
                land(repo, plan)
        for a in attempts:
            a.rebased = a.task_id in rebased
        done += [a for a in attempts if a is not stop]
        if stop is None:
            break
        task = by_id[stop.task_id]
        rest = rest[rest.index(task) + 1:]
        why = None if task.id in rebased else rebase_onto_target(repo, task, target)
        if why is None and task.id not in rebased:
            rebased.add(task.id)
            rest.insert(0, task)  # merge its rebased branch next
            continue
        stop.check_output = why or "it conflicts even after rebasing"
        done.append(stop)
        entry = _entry(repo, task, stop, target, merged_at)
        if entry is not None:
            failed.append(entry)
    if failed:  # the last task's failure still needs its state written
        plan = Journal(target=target, worktree=worktree or "", old=new, new=new, entries=failed, pending=pending)
        with signals_deferred():
            journal_file.write(repo.state_dir, plan)
            land(repo, plan)
    return done


def _note_fields(repo: Repo, task: Task, merged_at: str, attempt: Attempt) -> dict[str, str]:
    # Only the exit code and end time go into the note: skip the uncommitted-work probe.
    _, code, finished = agent_state(repo, task, check_work=False)
    return {"task": task.id, "title": task.title, "branch": task.branch, "agent": task.agent or "-",
            "prompt-hash": task.prompt_hash or "-", "base": task.base_commit, "target": task.base,
            "started": task.started or task.created, "finished": finished or "-",
            "exit": "-" if code is None else str(code), "merged": merged_at,
            "check": attempt.check or "-"}
