"""The merge queue: chain tasks' merges in memory, gate them on a check, then land them crash-safely.

`build_chain` makes the merge commits (merge-tree + commit-tree) one on top of the other, as
the sequential `git merge --no-ff` loop would, without touching a ref or worktree; `--dry-run`
stops there. `land` then moves the target once and writes notes and task states, driven by a
journal (see journal.py) so that a run killed at any point can be finished (`land` again) or
undone (`undo`).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from git_agents.core.errors import AgentError
from git_agents.core.git import Git
from git_agents.core.refs import branch_ref
from git_agents.core.repo import Repo
from git_agents.merging import journal as journal_file
from git_agents.merging.checks import Checker, CheckResult, first_failing
from git_agents.merging.hooks import MergeHooks
from git_agents.merging.inmemory import (
    Attempt,
    CommitMaker,
    Head,
    TargetMoved,
    Writes,
    advance_branch,
    merge_in_memory,
    put_worktree_back,
)
from git_agents.merging.journal import Journal
from git_agents.tasks.integrity import MERGE_ABORT
from git_agents.tasks.notes import NOTES_REF, add_notes
from git_agents.tasks.store import TaskState, write_tasks


@dataclass(frozen=True)
class Candidate:
    """A task ready to merge: its id, branch tip and merge-commit message."""

    task_id: str
    tip: str
    message: str
    branch: str = ""  # the task's branch, named to git merge's hooks (GIT_REFLOG_ACTION)


Blocker = Callable[[str, str], "str | None"]  # (current, merged commit) -> why it cannot land, or None


def _chain(git: Git, start: str, candidates: Sequence[Candidate],
           gate: Callable[[Attempt], CheckResult | None], stop: bool = False,
           blocker: Blocker | None = None, sign: bool = False,
           hooks: MergeHooks | None = None, start_tree: str = "", style: str = "merge",
           make: CommitMaker | None = None) -> tuple[list[Attempt], str]:
    """Merge candidates one on top of the other from `start`; `blocker`, then `gate`, may veto a merged result.

    With `stop`, the chain ends at the first conflict (whose attempt is the last one returned).
    `start_tree`: the tree of `start`, when the caller has it (else one more git call).
    """
    attempts = []
    current, tree = start, start_tree or git("rev-parse", f"{start}^{{tree}}")
    for cand in candidates:
        attempt = merge_in_memory(git, current, cand.tip, cand.message, cand.task_id, current_tree=tree, sign=sign,
                                  hooks=hooks, branch=cand.branch, style=style, make=make)
        why = blocker(current, attempt.commit) if blocker and attempt.status == TaskState.MERGED else None
        if why:  # e.g. an untracked file of the target's worktree in the way: leave this task out
            attempt.status, attempt.check_output, attempt.commit = TaskState.BLOCKED, why, ""
        if attempt.status == TaskState.MERGED:
            verdict = gate(attempt)
            if verdict is not None:
                _record_check(attempt, verdict)
            if attempt.status == TaskState.MERGED:
                current, tree = attempt.commit, attempt.tree
        attempts.append(attempt)
        if stop and attempt.status == TaskState.CONFLICT:
            break
    return attempts, current


def _record_check(attempt: Attempt, verdict: CheckResult) -> None:
    attempt.check = "passed" if verdict.passed else "failed"
    if not verdict.passed:
        attempt.status, attempt.check_output = TaskState.CHECK_FAILED, verdict.tail


def build_chain(git: Git, start: str, candidates: Sequence[Candidate], checker: Checker | None = None,
                *, batch: bool = False, stop_at_conflict: bool = False,
                blocker: Blocker | None = None, sign: bool = False,
                hooks: MergeHooks | None = None, start_tree: str = "",
                style: str = "merge", make: CommitMaker | None = None) -> tuple[list[Attempt], str]:
    """Every candidate's attempt, in order, and the commit the target would end at.

    With a checker, each merged result is checked before the chain goes on (a failing task is
    left out); with `batch`, only the final result is checked and a failure is bisected to the
    first task that breaks it, which is left out before the rest is chained again. With
    `stop_at_conflict` the chain ends at the first conflict. A `blocker` leaves out a merged
    result that could not land (status "blocked", the reason in check_output) before any check.
    With `sign`, merge commits are signed (commit-tree -S, with user.signingKey), as `git merge` would;
    with `hooks`, git merge's commit hooks run before each merge commit (a refusal leaves that task out).
    `start_tree`: the tree of `start`, when the caller has it.
    `style` (inmemory.STYLES) is how each task lands: a merge commit, a squashed commit, its commits replayed.
    `make` makes the merge and squash commits (inmemory.commit_maker; default: a commit-tree each).
    """
    stop = stop_at_conflict
    if checker is None:
        return _chain(git, start, candidates, lambda a: None, stop, blocker, sign, hooks, start_tree, style, make)
    if not batch:
        return _chain(git, start, candidates, lambda a: checker.check(a.commit), stop, blocker, sign, hooks,
                      start_tree, style, make)
    done: list[Attempt] = []
    rest = list(candidates)
    base = start
    while True:
        attempts, end = _chain(git, base, rest, lambda a: None, stop, blocker, sign, hooks,
                               start_tree if base == start else "", style, make)
        merged = [a for a in attempts if a.status == TaskState.MERGED]
        if not merged:
            return done + attempts, end
        results: dict[str, CheckResult] = {end: checker.check(end)}
        if results[end].passed:
            for a in merged:
                a.check = "passed"
            return done + attempts, end

        def fails(commit: str, results: dict[str, CheckResult] = results) -> bool:
            if commit not in results:
                results[commit] = checker.check(commit)
            return not results[commit].passed

        culprit = merged[first_failing([a.commit for a in merged], fails)]
        index = attempts.index(culprit)
        for a in attempts[:index]:
            if a.status == TaskState.MERGED:
                a.check = "passed"
        _record_check(culprit, results[culprit.commit])
        done += attempts[:index + 1]
        # The chain as it was just before the culprit (whatever the style: the last merged commit before it).
        before = [a.commit for a in attempts[:index] if a.status == TaskState.MERGED]
        base = before[-1] if before else base
        culprit.commit = ""
        rest = rest[index + 1:]


_DEFERRED = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT}


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and friends until the block ends (they are then delivered as usual).

    The mask is inherited by the git processes started meanwhile, so a Ctrl-C, which the
    terminal sends to the whole process group, cannot stop `git merge` half-way through a
    checkout either. Only SIGKILL gets through, and the journal covers that.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _DEFERRED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def land(repo: Repo, plan: Journal) -> None:
    """Carry out a journal's plan: move the target if it has not moved, then write notes and states.

    Idempotent, so `--continue` simply runs it again. The journal is removed last.
    """
    with signals_deferred():
        _land(repo, plan)


def _land(repo: Repo, plan: Journal) -> None:
    git = repo.git
    at, head = _target_and_head(git, branch_ref(plan.target), plan.worktree if plan.new != plan.old else "")
    if plan.new == plan.old:
        pass  # only task states to write (tasks left out): wherever the target is now (it may have moved on)
    elif at == plan.old:
        advance_branch(git, plan.target, plan.old, plan.new, plan.worktree or None, plan.reason,
                       journal_file.writes_path(repo.state_dir), head=head)
    elif at != plan.new:
        raise TargetMoved(f"'{plan.target}' is at {at[:12] or 'nothing'}, neither where the interrupted merge "
                          f"started ({plan.old[:12]}) nor where it was going ({plan.new[:12]})",
                          hint="put the branch back, or remove the journal by hand: "
                               + journal_file.path(repo.state_dir),
                          live_message=f"'{plan.target}' moved while merging (now {at[:12] or 'nothing'}, "
                                       f"expected {plan.old[:12]})",
                          live_hint="nothing was merged; run the merge again")
    add_notes(repo, {e.commit: e.note for e in plan.entries if e.status == TaskState.MERGED})
    states: dict[str, dict[str, str | None]] = {}
    for entry in plan.entries:
        states.setdefault(entry.task_id, {}).update(entry.state)
    write_tasks(repo, states)
    journal_file.remove(repo.state_dir)


def _target_and_head(git: Git, ref: str, worktree: str) -> tuple[str, Head | None]:
    """Where `ref` is now ("" when it is gone) and, given the `worktree` that has it checked out, the
    commit and the branch of that worktree's HEAD (None: not read), in one `rev-parse` when all are there."""
    if worktree:
        res = git.at(worktree).run("rev-parse", "HEAD", ref, "--symbolic-full-name", "HEAD", "--", ok=range(0, 256))
        lines = res.out.split("\n")
        if res.code == 0 and len(lines) >= 4:
            return lines[1], Head(lines[0], lines[2])
    return git.rev_parse(ref) or "", None  # a branch or HEAD that names nothing: as before, one by one


def undo(repo: Repo, plan: Journal) -> None:
    """Put the target back where the interrupted run found it and forget what it wrote."""
    with signals_deferred():
        _undo(repo, plan)


def _undo(repo: Repo, plan: Journal) -> None:
    git = repo.git
    ref = branch_ref(plan.target)
    back = plan.run_old or plan.old  # an --interactive run goes back to where it started
    wt = git.at(plan.worktree) if plan.worktree else None
    if plan.phase == "resolving" and wt is not None and wt.merge_in_progress():
        wt.run("merge", "--abort")
    at = git.rev_parse(ref) or ""
    if at == plan.new and plan.new != back:
        if wt is not None and wt.head_branch() == plan.target:
            # --keep refuses rather than overwrite local changes to files the reset would touch.
            wt.run("reset", "--keep", "--quiet", back, env={"GIT_REFLOG_ACTION": MERGE_ABORT})
        else:
            git.update_ref(ref, back, plan.new, reason=MERGE_ABORT)
    elif at == back and plan.new != back and wt is not None and \
            wt.head_branch() == plan.target and \
            wt.ok("diff-index", "--cached", "--quiet", plan.new, "--"):
        # Interrupted between updating the worktree and the ref: take the worktree back too.
        wt.run("read-tree", "-m", "-u", plan.new, back)
    elif at == back and plan.new != plan.old and at == plan.old and wt is not None and \
            wt.head_branch() == plan.target:
        # Interrupted (killed, or the disk full) while updating the worktree: the index is still at
        # `old`, but files of `new` may have been written. Put exactly those back; what it did not
        # write (an untracked file that was in its way) stays as it is.
        put_worktree_back(git, plan.worktree, plan.old, plan.new,
                          Writes.load(journal_file.writes_path(repo.state_dir), plan.old, plan.new).written)
    elif at != back and not (plan.new == back == plan.old):  # a run that moved nothing leaves the target be
        raise AgentError(f"'{plan.target}' is at {at[:12] or 'nothing'}, neither where the interrupted merge "
                         f"started ({back[:12]}) nor where it was going ({plan.new[:12]}); not touching it",
                         hint="finish with `git agent-merge --continue`, or move the branch yourself and remove "
                              "the journal: " + journal_file.path(repo.state_dir))
    entries = [*plan.landed, *plan.entries]
    commits = [e.commit for e in entries if e.status == TaskState.MERGED and e.commit]
    if commits:
        from git_agents.core.lock import RepoLock

        with RepoLock(repo.common_dir):
            git.run("notes", f"--ref={NOTES_REF}", "remove", "--ignore-missing", *commits)
    before: dict[str, dict[str, str | None]] = {}
    for entry in entries:  # in order: a later entry of the same task wins, as when written one by one
        before.setdefault(entry.task_id, {}).update(entry.before)
    write_tasks(repo, before)
    journal_file.remove(repo.state_dir)
