"""git agent-merge: merge finished tasks into their target branch, one by one."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from git_agents.commands.options import add_verbosity
from git_agents.core.errors import AgentError, ExitCode, UsageError
from git_agents.core.lock import RepoLock
from git_agents.core.repo import Repo
from git_agents.core.worktrees import Worktree, list_worktrees
from git_agents.merging import journal as journal_file
from git_agents.merging.inmemory import Attempt
from git_agents.merging.journal import Journal
from git_agents.merging.queue import (
    Carry,
    Options,
    by_target,
    check_target_worktree,
    merge_style,
    merge_tasks,
    plan_chain,
    refuse_if_interrupted,
    resolve_instructions,
    select_mergeable,
)
from git_agents.merging.report import report
from git_agents.tasks.ids import sort_key
from git_agents.tasks.selection import select_tasks
from git_agents.tasks.store import Task, TaskState

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
worktree are untouched, and the other tasks still merge (a hint then names the ways to merge
it anyway: --rebase, --resolve, --interactive). A task whose worktree holds
uncommitted or untracked work is skipped with a warning (a worktree sealed when its agent
exited, and unchanged since, is known without running git status there: see agent.sealWorktrees
in git-agents(7); when agents' worktrees had to be checked in full for a known reason, such as
seals turned off or no inotify instance left, one "note:" line on stderr says so). Exits 1 if
any task did not merge.

--style (default: agent.mergeStyle, else merge) says how each task lands. merge: a --no-ff
merge commit. squash: one commit of the task's changes, with the target as its only parent
and agent.mergeMessage as its message, as `git merge --squash` followed by `git commit -m`.
rebase: the task's commits (not merges, not those already in the target) replayed onto the
target, each with its author and message, one that becomes empty dropped; no merge commit,
as `git rebase <target> <branch>` followed by `git merge --ff-only`, except that the task
branch itself is not moved. Whatever the style, the target moves once, the note goes on the
task's last commit, and conflicts, --check, --resolve, --rebase, --dry-run, the journal,
--continue and --abort work the same; --interactive needs the merge style, and --resolve
(whose resolution is a merge commit on the task's branch, which a rebase drops) merge or squash. The
merge-commit hooks below run only for the merge style; post-merge runs after any.

Hooks run as `git merge --no-ff` runs them: before each merge commit pre-merge-commit,
prepare-commit-msg <file> merge and commit-msg <file>, through `git hook run` in the worktree
that has the target checked out (the main worktree when none has; core.hooksPath is
honoured), with GIT_INDEX_FILE naming a temporary index that holds that merge's result and
GIT_EDITOR=:. What a hook stages there, or writes into the message file, is in the merge
commit. A hook that exits non-zero leaves that task out ("not merged: the commit-msg hook
refused it"); the other tasks still merge. --no-verify skips pre-merge-commit and commit-msg,
as with git merge. post-merge 0 runs once the target's worktree has moved (once per run,
with ORIG_HEAD at the target's old commit), not after each merge. A submodule checked out at
another commit than the target records (after a pull, before `git submodule update`) is not
a local change, as for git merge. Hooks do not run for --remote, --dry-run or a check's
scratch worktree.

With --remote <remote>, merge the tasks that workers finished (git agent-worker) instead: fetch
their results and branches from the remote's queue, merge them onto the remote's target branch
the same way, and push the target, the notes and refs/agents/merged/<id> in one atomic push
with a lease on each old value; if someone moved the target meanwhile, fetch, merge again, retry.
--check, --check-batch and agent.mergeCheck gate these merges as they do local ones (in the
scratch worktree of this clone); a task whose result fails is left out and recorded on the
remote as refs/agents/rejected/<id>, which `git agent-queue list` shows as "check-failed" (a
later run checks it again). --dry-run --remote fetches and predicts; it pushes nothing.
--interactive and --rebase do not combine with --remote. A task whose records on the remote
cannot be used (not JSON, a newer format version, a result whose commit does not carry the tip
it names) is left out with a warning; the others merge.

With --remote, only results whose result commit has a good signature by a trusted key merge,
as `git verify-commit` decides (SSH keys: those listed in gpg.ssh.allowedSignersFile; OpenPGP:
your keyring); workers sign their results when they have a signing key (user.signingkey,
gpg.format). Other results are left out with a warning and a hint. Trusting unsigned results
is an explicit choice: agent.verifyResults=false, or --trust-unsigned for one run; then
anyone who can push to the remote can publish a result that merges.

--dry-run reports, in merge order, what would happen to each task (each prediction includes
the tasks merged before it) without moving any ref or touching any worktree. It refuses as the
merge would (exit 128, with the same message): a target's worktree with uncommitted changes or
in the middle of a merge, an interrupted merge waiting for --continue or --abort.

With --check CMD (or agent.mergeCheck) each merged result is checked out in a scratch
worktree and CMD runs there with agent.shell; a task whose result fails is left out, marked
"check-failed" with the tail of CMD's output, and the rest go on. --check-batch checks the
whole chain once and bisects to the culprit only when it fails.

Crash safety: before the target moves, the plan (target, old and new commits, notes, task
states) is written to <git-common-dir>/agents/merge-journal; it is removed once everything is
written. If a run is interrupted, `git agent-merge --continue` finishes it and
`git agent-merge --abort` puts the target back where it was; no new merge starts until then.
A landing that fails half-way through updating the target's worktree (a full disk), or is
killed there, records the files it wrote (next to the journal); putting the worktree back
restores only those, or a file that holds exactly the task's version: a file you saved
meanwhile is never touched, whatever it holds (it is named, and --continue waits for you).
The journal also covers --resolve while a resolver works on a task's conflict: if the merge is
killed then (SIGKILL, a reboot; the resolver may be gone too, the task's worktree left in the
middle of its merge), `--continue` checks what the resolver left as if it had exited 0 (the
checks below): a verified resolution is kept and the task, then the tasks the run had not
reached, are merged; otherwise the task branch and worktree are put back exactly as they were
(exit 1; a later merge tries the task, and the tasks not reached, again). It refuses while the
resolver still runs. `--abort` stops a resolver still running and puts the task branch and
worktree back. `git agent-run --resume` first
finishes a journal left behind (by its own killed run or any merge) as `--continue` would,
then goes on.

--interactive stops at the first conflict instead of skipping the task: the target branch is
moved to the merges so far and a real `git merge --no-ff` of the task is left, conflicted, in
the worktree that has the target checked out (its conflict markers name the target branch and
the task's branch: `<<<<<<< main`, `>>>>>>> task-2`). Resolve it there and `git add` the files, then
`git agent-merge --continue` commits the resolution (with the task's message and note) and
goes on with the remaining tasks; `git agent-merge --abort` puts the target back where it was
before the run.

--rebase handles a conflicting task differently: the merges so far land, the task's branch is
rebased onto the target in the task's own worktree and, if that applies cleanly, merged; if
the rebase conflicts too it is aborted (branch and worktree as they were) and the task is
reported as a conflict.

--resolve[=<agent>] hands a conflicting task to an agent instead of skipping it: the merges so
far land, then in the task's worktree `git merge --no-ff --no-commit <target>` runs (with rerere
on, so a resolution recorded earlier is reused; if that settles every file no agent is needed)
and leaves the conflicts there. The resolver (<agent>, else agent.resolveAgent, else the
task's own agent; a preset or a shell command) starts there with a prompt naming the
conflicting files, git's CONFLICT lines, the earlier tasks that changed those files and the
rule: keep both intents, commit the merge, touch no other file. When it exits 0 the result is
checked: no unmerged paths, no conflict markers in the files that conflicted, HEAD is the merge
of the target's tip into the old task tip, no other file changed than the conflicting ones
(against the plain merge), nothing uncommitted. Then the task goes back into the queue of the
same run (and through --check, if given). Otherwise, after agent.resolveAttempts attempts
(default 1), the task branch and worktree are put back exactly as they were and the task is
reported as a conflict with the tail of the resolver's log. The note of a resolved merge records
resolved-by and resolve-attempts. With --dry-run, --resolve says which tasks would need a
resolver. The value is taken only after '=': `--resolve 48` is --resolve and task 48.
"""


EXAMPLES = """\
git agent-merge --dry-run --all                # what would merge, what would conflict, in order
git agent-merge --all --check 'make test'      # merge only results whose tests pass
git agent-merge --all --check-batch            # agent.mergeCheck once on the lot; bisect on failure
git agent-merge 48 50 --interactive            # stop at a conflict; resolve; git agent-merge --continue
git agent-merge --all --resolve=claude         # claude resolves each conflicting task, then it merges
git agent-merge --abort                        # after an interruption: put the target back
git agent-merge --all --remote origin --check 'make test'  # merge the workers' results that pass
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare merge's options."""
    p.add_argument("ids", nargs="*", metavar="<id>", help="tasks to merge, in this order")
    p.add_argument("--all", action="store_true", help="merge every finished task with commits, in id order")
    add_verbosity(p)
    p.add_argument("--remote", metavar="<remote>", help="merge the finished tasks of the queue on <remote>")
    p.add_argument("--verify-signatures", action="store_const", const=True, default=None,
                   help="--remote: merge only results signed by a trusted key (default: agent.verifyResults, true)")
    p.add_argument("--trust-unsigned", dest="verify_signatures", action="store_const", const=False,
                   help="--remote: merge unsigned results too, this once (anyone who can push can forge them)")
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
                   help="rebase a conflicting task onto the target so far (in its worktree) "
                        "and merge it if that applies")
    p.add_argument("--resolve", nargs="?", const="", metavar="<agent>",
                   help="have an agent resolve a conflicting task in its worktree, then merge it "
                        "(default: agent.resolveAgent, else the task's own agent)")
    p.add_argument("--style", choices=("merge", "squash", "rebase"),
                   help="land each task as a --no-ff merge commit (default), one squashed commit, or its commits "
                        "replayed onto the target (default: agent.mergeStyle)")
    p.add_argument("--no-verify", action="store_true",
                   help="do not run the pre-merge-commit and commit-msg hooks (as with git merge)")
    recover = p.add_mutually_exclusive_group()
    recover.add_argument("--continue", dest="cont", action="store_true", help="finish an interrupted merge")
    recover.add_argument("--abort", action="store_true", help="undo an interrupted merge: put the target back")


def run(args: argparse.Namespace) -> int:
    """Merge the tasks (or predict, continue or abort)."""
    if args.cont or args.abort:
        if args.ids or args.all or args.dry_run or args.interactive or args.check or args.check_batch or args.rebase \
                or args.resolve is not None:
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
    style = merge_style(repo, args.style)
    if args.remote:
        if args.interactive or args.rebase or args.resolve is not None:  # they work in the task's worktree,
            # which is on another machine
            raise UsageError("--remote cannot be combined with --interactive, --rebase or --resolve")
        from git_agents.remote.merge import merge_remote

        return merge_remote(repo, args.remote, args.ids, check=check, batch=args.check_batch,
                            dry_run=args.dry_run, verbosity=args.verbosity,
                            verify=args.verify_signatures, style=style)
    if args.verify_signatures is not None:
        raise UsageError("--verify-signatures verifies the results of a shared queue: it needs --remote")
    if style == "rebase" and args.resolve is not None:
        raise UsageError("--resolve commits its resolution as a merge on the task's branch, which --style=rebase "
                         "would drop: use --style=merge or squash")
    if style != "merge" and args.interactive:
        raise UsageError(f"--interactive leaves a real merge to resolve: it needs --style=merge, not {style}")
    if args.rebase and (args.interactive or args.check_batch):
        raise UsageError("--rebase cannot be combined with --interactive or --check-batch")
    if args.resolve is not None and (args.interactive or args.rebase or args.check_batch):
        raise UsageError("--resolve cannot be combined with --interactive, --rebase or --check-batch")
    resolve, tries, launcher = None, 1, None
    if args.resolve is not None:  # only then: lifecycle.start imports half the package (40-130 ms)
        from git_agents.lifecycle.start import launch_resolver, resolve_options

        resolve, tries = resolve_options(repo, args.resolve, os.getcwd())
        launcher = launch_resolver
    opts = Options(check, args.check_batch, args.interactive, args.rebase, show_empty=not args.all,
                   verbosity=args.verbosity, resolve=resolve, resolve_attempts=tries, launcher=launcher,
                   verify=not args.no_verify, style=style)
    tasks = select_tasks(repo, args.ids, all_tasks=args.all)
    if args.all:
        tasks.sort(key=lambda t: sort_key(t.id))
    unsealed: list[str] = []
    worktrees = list_worktrees(repo)  # one listing for the run: the selection and the targets' worktrees
    to_merge, problems = select_mergeable(repo, tasks, explicit=not args.all, unsealed=unsealed,
                                          worktrees=worktrees)
    if unsealed:  # one line, so that a slow run explains itself
        common = max(set(unsealed), key=unsealed.count)
        others = f" (and {len(set(unsealed)) - 1} other reasons)" if len(set(unsealed)) > 1 else ""
        print(f"note: {len(unsealed)} agent worktree(s) checked with git status, not sealed: {common}{others}",
              file=sys.stderr)
    if args.dry_run:
        attempts: list[Attempt] = []
        if to_merge:
            refuse_if_interrupted(repo)
        checked_out = {w.branch: w.path for w in worktrees if w.branch}
        for target, group in by_target(to_merge).items():
            if target in checked_out:  # the refusal the merge would give, before any prediction
                check_target_worktree(repo, checked_out[target])
            attempts += plan_chain(repo, target, group, None, batch=False, worktree=checked_out.get(target),
                                   style=style)[0]
        return report(repo, attempts, problems, opts, dry_run=True)
    return _execute(repo, to_merge, problems, opts, None, worktrees=worktrees)


def _execute(repo: Repo, to_merge: list[Task], problems: dict[str, str], opts: Options, carry: Carry | None,
             resolved: Sequence[Attempt] = (), worktrees: Sequence[Worktree] | None = None) -> int:
    """Merge the selected tasks and report (after `resolved`: merges --continue made before the run went on;
    `worktrees`: the run's listing, if made already)."""
    attempts, meanwhile = merge_tasks(repo, to_merge, opts, carry=carry, worktrees=worktrees)
    if opts.show_empty:  # named explicitly: say so, as for a task merged before this run
        problems.update((task_id, "already merged") for task_id in meanwhile)
    code = report(repo, [*resolved, *attempts], problems, opts, dry_run=False)
    if not opts.rebase and opts.resolve is None:  # those tried already: their report says how it failed
        _next_steps(attempts, {t.id: t.base for t in to_merge})
    return code


def _next_steps(attempts: list[Attempt], targets: dict[str, str]) -> None:
    """After conflicts that were left out: the ways to merge those tasks anyway (as git's hints, on stderr)."""
    left_out = [a.task_id for a in attempts if a.status == TaskState.CONFLICT]
    if not left_out:
        return
    ids = " ".join(left_out)
    onto = " and ".join(f"'{t}'" for t in dict.fromkeys(targets[i] for i in left_out))
    sys.stderr.write(f"hint: to merge task{'s' if len(left_out) > 1 else ''} {ids} anyway: git agent-merge {ids} "
                     f"--rebase (replayed onto {onto}), --resolve (an agent\n"
                     "hint: resolves it) or --interactive (you resolve it); `git agent-conflicts` shows which "
                     "tasks overlap\n")


def _recover(repo: Repo, *, abort: bool) -> int:
    """--continue / --abort: finish or undo the run recorded in the journal."""
    from git_agents.merging.chain import land, undo

    with RepoLock(repo.common_dir, "merge"):
        plan = journal_file.read(repo.state_dir)
        if plan is None:
            raise AgentError("no interrupted merge to " + ("abort" if abort else "continue"),
                             hint="`git agent-status` shows each task's state")
        if plan.phase == "resolver":
            return _recover_resolution(repo, plan, abort=abort)
        if abort:
            undo(repo, plan)
            print(f"Merge into '{plan.target}' aborted; it is back at {(plan.run_old or plan.old)[:12]}")
            return ExitCode.OK
        if plan.phase == "resolving":
            return _continue_resolved(repo, plan)
        land(repo, plan)
    merged = [e for e in plan.entries if e.status == TaskState.MERGED]
    for e in merged:
        print(f"Merged task {e.task_id} ({e.commit[:12]})")
    print(f"Merge into '{plan.target}' completed: {len(merged)} merged, {len(plan.entries) - len(merged)} not merged")
    if plan.pending:
        print(f"Not reached (merge them again): {' '.join(plan.pending)}")
    return ExitCode.OK


def _recover_resolution(repo: Repo, plan: Journal, *, abort: bool) -> int:
    """--continue / --abort of a merge --resolve interrupted while its resolver worked on a task's branch."""
    from git_agents.merging import resolver

    assert plan.conflict is not None
    task_id, branch = plan.conflict.task_id, plan.options.get("branch", "")
    if abort:
        resolver.abandon(repo, plan)
        print(f"Resolution of task {task_id} abandoned; '{branch}' is back at {plan.tip[:12]}")
        return ExitCode.OK
    refused = resolver.finish(repo, plan)
    if refused is not None:
        print(f"The resolution of task {task_id} was refused: {refused}; '{branch}' is back at {plan.tip[:12]}")
        if plan.pending:
            print(f"Not reached (merge them again): {' '.join(plan.pending)}")
        return ExitCode.FAILED
    print(f"The resolution of task {task_id} by {plan.options.get('command', '?')} is verified")
    to_merge, problems = select_mergeable(repo, select_tasks(repo, [task_id, *plan.pending]), explicit=True)
    return _execute(repo, to_merge, problems, Options(), None)


def _continue_resolved(repo: Repo, plan: Journal) -> int:
    """--continue of an --interactive run: commit the resolution, then merge the remaining tasks."""
    from git_agents.merging.interactive import commit_resolution, start_conflict_merge

    entry = commit_resolution(repo, plan)
    if entry is None:  # the conflicted merge was not in progress: set it up again
        start_conflict_merge(repo, plan)
        print(resolve_instructions(plan))
        return ExitCode.FAILED
    remaining = select_tasks(repo, plan.pending) if plan.pending else []
    to_merge, problems = select_mergeable(repo, remaining, explicit=True)
    opts = Options(plan.options.get("check") or None, plan.options.get("batch") == "1", interactive=True)
    return _execute(repo, to_merge, problems, opts, Carry(plan.run_old, [*plan.landed, entry]),
                    [Attempt(entry.task_id, TaskState.MERGED, commit=entry.commit)])


