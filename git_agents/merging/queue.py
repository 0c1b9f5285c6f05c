"""The merge queue: which tasks merge now, their chain of in-memory merges per target, and landing it.

One path for every merge: git agent-merge, git agent-run and merge --remote all select,
plan and land through here, and report through merging.report. Prints nothing (but
guard.protect_merge's warning).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import TYPE_CHECKING

from git_agents.core.errors import AgentError
from git_agents.core.lock import RepoLock
from git_agents.core.refs import branch_ref
from git_agents.core.repo import Repo
from git_agents.core.worktrees import Worktree, list_worktrees
from git_agents.merging import journal as journal_file
from git_agents.merging.inmemory import Attempt
from git_agents.merging.journal import Entry, Journal
from git_agents.tasks import rounds, usage
from git_agents.tasks.notes import note_fields
from git_agents.tasks.prompt import render
from git_agents.tasks.status import NO_CHANGE, agent_state, branch_tips, unsaved_by_task
from git_agents.tasks.store import Task, TaskState, join_paths, load_tasks, now_iso

if TYPE_CHECKING:
    from git_agents.merging.chain import Blocker
    from git_agents.merging.checks import Checker
    from git_agents.merging.hooks import MergeHooks
    from git_agents.merging.resolver import Launcher, Resolution


def merge_message(repo: Repo, task: Task) -> str:
    """The message of a task's merge commit (agent.mergeMessage filled in; the default when it is empty)."""
    return render(merge_template(repo), {"id": task.id, "title": task.title, "branch": task.branch})


_warned_empty: set[str] = set()


def merge_template(repo: Repo) -> str:
    """agent.mergeMessage; an empty (or blank) one would make empty merge messages: warn once, use the default."""
    import sys

    from git_agents.core.settings import DEFAULTS

    template = repo.setting("agent.mergeMessage")
    if template.strip():
        return template
    default = DEFAULTS["agent.mergemessage"]
    if repo.common_dir not in _warned_empty:
        _warned_empty.add(repo.common_dir)
        sys.stderr.write(f"warning: agent.mergeMessage is empty; using the default '{default}'\n")
    return default


def refuse_mid_merge(repo: Repo, worktree: str) -> None:
    """Refuse (AgentError) to move the branch of a worktree that is in the middle of a merge."""
    # The target is nearly always checked out where the command runs, whose git dir is known: no git call.
    if os.path.exists(os.path.join(repo.git_dir, "MERGE_HEAD")) if worktree == repo.toplevel \
            else repo.git.at(worktree).merge_in_progress():
        raise AgentError(f"the worktree at {worktree} is in the middle of a merge",
                         hint="finish it (git commit) or abort it (git merge --abort) first")


def merge_style(repo: Repo, given: str | None = None) -> str:
    """The merge style: `given` (--style, a task file's style), else agent.mergeStyle; AgentError when unknown."""
    from git_agents.merging.inmemory import STYLES

    style = given or repo.setting("agent.mergeStyle") or "merge"
    if style not in STYLES:
        where = "--style" if given else "agent.mergeStyle"
        raise AgentError(f"unknown merge style '{style}' ({where})", hint="use merge, squash or rebase")
    return style


def check_target_worktree(repo: Repo, worktree: str) -> None:
    """Refuse (AgentError) to move a branch checked out in `worktree` that is mid-merge or has local changes."""
    refuse_mid_merge(repo, worktree)
    # --no-optional-locks: this runs outside the merge lock, while another merge may be landing
    # in this very worktree; a `status` holding index.lock would make that run's read-tree fail.
    # A submodule checked out at another commit than the index records (after a pull that bumped
    # it, before `git submodule update`) is not a local change to `git merge`, which proceeds:
    # porcelain v2 marks submodules ("S..." in the third field), so only a worktree-side
    # submodule difference (X is ".") is let through; a staged one still refuses.
    out = repo.git.at(worktree).run("--no-optional-locks", "status", "--porcelain=v2", "-z", "--no-renames",
                                    "--untracked-files=no").out
    dirty = [entry for entry in out.split("\0")
             if entry and not (entry.startswith("1 .") and entry.split(" ", 3)[2].startswith("S"))]
    if dirty:
        raise AgentError(f"the worktree at {worktree} has uncommitted changes; merging would mix them in",
                         hint="commit or stash them first (git stash)")


class Skip(Enum):
    """What kind of reason leaves a task out, where the selection acts on the kind (not the text)."""

    MERGED = auto()  # said only for a task named explicitly
    NO_CHANGE = auto()  # its refs are still checked: its branch may have been moved back (tasks.integrity)
    OTHER = auto()


def eligible(repo: Repo, task: Task, explicit: bool,
             tips: Mapping[str, str] | None = None) -> tuple[Skip, str] | None:
    """Why a task is not merged now, and its kind (None: go ahead); `tips`: status.branch_tips, if read already."""
    if task.state == TaskState.MERGED:
        return Skip.MERGED, "already merged"
    state, code, _ = agent_state(repo, task, tips=tips)
    if state == "running":
        return Skip.OTHER, "its agent is still running"
    if state == NO_CHANGE:  # say so, rather than "no commits to merge" (or nothing, with --all)
        return Skip.NO_CHANGE, (f"its agent exited 0 having committed and changed nothing "
                                f"(see git agent-logs {task.id})")
    if not explicit and state not in ("exited", "not started"):
        return Skip.OTHER, f"its agent {state}"
    if not explicit and state == "exited" and code != 0:
        return Skip.OTHER, f"its agent exited {code}"
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
    resolve: str | None = None  # --resolve: None off; "" the task's own agent; else the resolver's command
    resolve_attempts: int = 1
    launcher: Launcher | None = None  # --resolve: how a resolver starts (lifecycle.start.launch_resolver)
    verify: bool = True  # False: --no-verify (no pre-merge-commit or commit-msg hook), as with git merge
    style: str = "merge"  # how each task lands (merging.inmemory.STYLES): merge commit, squash or rebase


@dataclass
class Carry:
    """What an --interactive run has done before the current stretch: its start and its merges."""

    run_old: str = ""
    landed: list[Entry] = field(default_factory=list)


def select_mergeable(repo: Repo, tasks: list[Task], *, explicit: bool, unsealed: list[str] | None = None,
                     worktrees: Sequence[Worktree] | None = None) -> tuple[list[Task], dict[str, str]]:
    """The tasks to merge now, and why each other one is skipped (`worktrees`: list_worktrees, if the
    caller listed them already: one listing serves a whole run)."""
    problems: dict[str, str] = {}
    to_merge: list[Task] = []
    unchanged: list[Task] = []
    tips = branch_tips(repo)
    dirty = dirty_worktrees(repo, [t for t in tasks if t.state != TaskState.MERGED], tips, unsealed)
    for task in tasks:
        skip = eligible(repo, task, explicit=explicit, tips=tips)
        if skip is None and task.id in dirty:
            skip = Skip.OTHER, "its worktree has uncommitted or untracked work (commit it, or it would be left out)"
        if skip is None and task.branch not in tips:
            skip = Skip.OTHER, f"its branch '{task.branch}' is gone"
        if skip is None and task.base not in tips:  # deleted since: merge the rest
            skip = Skip.OTHER, f"its target branch '{task.base}' is gone"
        if skip is None:
            to_merge.append(task)
            continue
        if explicit or skip[0] is not Skip.MERGED:
            problems[task.id] = skip[1]
        if skip[0] is Skip.NO_CHANGE:
            unchanged.append(task)  # perhaps because its branch was moved back: say that instead
    from git_agents.tasks.integrity import problems as tampered

    # What an agent's git did to the shared refs: those tasks wait.
    held = tampered(repo, to_merge + unchanged, tips, worktrees)
    problems.update(held)
    return [t for t in to_merge if t.id not in held], problems


def dirty_worktrees(repo: Repo, tasks: list[Task], tips: Mapping[str, str],
                    unsealed: list[str] | None = None) -> set[str]:
    """Ids of the tasks whose worktree holds uncommitted or untracked work.

    A worktree sealed when its agent exited, and unchanged since, is known without a look
    (tasks/seal.py); the others get one `git status` each, in parallel: on a large tree each
    costs a full index refresh, and twenty in a row would cost more than the merges themselves.
    `tips`: branch name -> commit, as status.branch_tips reads them; `unsealed`: see
    status.unsaved_by_task.
    """
    todo = [t for t in tasks if t.worktree and os.path.isdir(t.worktree)]
    if not todo:
        return set()
    return {tid for tid, entries in unsaved_by_task(repo, todo, tips, unsealed).items() if entries}


def by_target(tasks: list[Task]) -> dict[str, list[Task]]:
    targets: dict[str, list[Task]] = {}
    for task in tasks:
        targets.setdefault(task.base, []).append(task)
    return targets


def merge_tasks(repo: Repo, to_merge: list[Task], opts: Options, *, carry: Carry | None = None,
                worktrees: Sequence[Worktree] | None = None) -> tuple[list[Attempt], list[str]]:
    """Merge tasks into their targets, target by target, each moving once (per conflict with --interactive).

    The tasks must be eligible (see select_mergeable); with opts.check each merged result is checked
    first and a failing task is left out ("check-failed"). Returns every attempt, in order,
    and the ids of the tasks that another merge merged meanwhile (not attempted). Raises
    AgentError when a target's worktree is dirty or mid-merge, or an interrupted merge waits
    (checked before any target moves). Prints only guard.protect_merge's warning (the shared
    config, hooks/ or info/exclude changed since spawn). `worktrees`: list_worktrees, if the caller
    listed them already (for select_mergeable): which worktree has each target checked out.
    """
    from git_agents.merging.checks import Checker
    from git_agents.tasks.guard import protect_merge

    protect_merge(repo, to_merge)  # an agent's change to the shared config or hooks is not used here
    waiting = journal_file.read(repo.state_dir)
    if waiting is not None and waiting.phase == "resolving":  # says more than "in the middle of a merge"
        refuse_if_interrupted(repo)
    targets = by_target(to_merge)
    # Before the lock, as ever (the caller's listing, made for select_mergeable, is a few ms older):
    # advance_branch still checks under the lock that the worktree's HEAD is where the plan started.
    listed = list_worktrees(repo) if worktrees is None else worktrees
    checked_out = {w.branch: w.path for w in listed if w.branch}
    for target in targets:
        if target not in checked_out and opts.interactive:
            raise AgentError(f"--interactive needs '{target}' checked out in a worktree, to resolve conflicts there",
                             hint=f"check it out (git switch {target}), or merge without --interactive")
    attempts: list[Attempt] = []
    with RepoLock(repo.common_dir, "merge"), Checker(repo, opts.check or "") as checker:
        # Only under the lock: a journal seen without it may belong to a run still in progress.
        refuse_if_interrupted(repo)
        # ... and a target's worktree seen without it may be half-way through another run's update.
        run = _Run(repo, opts, carry, checker if opts.check else None,
                   [checked_out[t] for t in targets if t in checked_out])
        # ... or may have merged some of these tasks meanwhile: decide on fresh metadata.
        repo.refresh_config()
        done_meanwhile = {t.id for t in load_tasks(repo).values() if t.state == TaskState.MERGED}
        targets = {target: kept for target, group in targets.items()
                   if (kept := [t for t in group if t.id not in done_meanwhile])}
        groups = list(targets.items())
        for n, (target, group) in enumerate(groups):
            pending = [t.id for _, later in groups[n + 1:] for t in later]
            attempts += run.merge_group(target, group, checked_out.get(target), pending)
            if any(a.status == "resolving" for a in attempts):  # --interactive stopped for the user
                break
        run.wait_for_targets()  # nothing landed (conflicts only): a dirty target is still refused
    return attempts, [t.id for t in to_merge if t.id in done_meanwhile]


class _Run:
    """One merge run under the merge lock: its options, check, fix for conflicts, and its targets' worktrees.

    The targets' worktrees are checked (check_target_worktree) in threads, and waited for before
    anything lands. A plain merge computes its chains in memory meanwhile (a full index refresh
    each, 0.1 s at 100,000 files); the other kinds use the worktree before landing (a check, a
    conflict to resolve): they wait for the checks first.
    """

    def __init__(self, repo: Repo, opts: Options, carry: Carry | None, checker: Checker | None,
                 worktrees: Sequence[str]) -> None:
        import threading

        self.repo, self.opts, self.carry, self.checker = repo, opts, carry, checker
        self.fix: _Rebase | _Resolve | None = _Resolve(repo, opts) if opts.resolve is not None \
            else _Rebase(repo) if opts.rebase else None
        self.errors: list[Exception] = []
        self.threads = [threading.Thread(target=self._check, args=(w,), daemon=True) for w in worktrees]
        for thread in self.threads:
            thread.start()
        if checker is not None or opts.interactive or self.fix is not None:
            self.wait_for_targets()

    def _check(self, worktree: str) -> None:
        try:
            check_target_worktree(self.repo, worktree)
        except Exception as exc:  # AgentError, or a git failure: raised in the main thread
            self.errors.append(exc)

    def wait_for_targets(self) -> None:
        """Wait for every target's worktree check; raise the first refusal (AgentError)."""
        for thread in self.threads:
            thread.join()
        if self.errors:
            raise self.errors[0]

    def merge_group(self, target: str, tasks: list[Task], worktree: str | None, pending: list[str]) -> list[Attempt]:
        """Merge tasks into one target branch, moving it once per stretch, journalled so an interruption
        can be recovered; the attempts, in order.

        Without a fix there is one stretch, which --interactive ends at a conflict as a "resolving"
        attempt (the user resolves it). With one (--rebase, --resolve), each stretch lands the chain
        up to a conflict; the fixed task goes back to the head of the rest (its branch now merges
        cleanly, still subject to the check); a task the fix fails on is reported as a conflict.
        """
        repo, opts, fix = self.repo, self.opts, self.fix
        refuse_if_interrupted(repo)  # a journal left behind must be dealt with first (it would be overwritten)
        hooks = merge_hooks(repo, worktree, opts)
        stops = opts.interactive or fix is not None
        done: list[Attempt] = []
        rest = list(tasks)
        failed: list[Entry] = []  # conflict records of tasks the fix failed on, landed with the next stretch
        fixed: set[str] = set()
        new = ""
        while rest:
            attempts, orig, new, tips = plan_chain(repo, target, rest, self.checker, batch=opts.batch and fix is None,
                                                   worktree=worktree, stop_at_conflict=stops, hooks=hooks,
                                                   style=opts.style)
            stop = attempts[-1] if stops and attempts and attempts[-1].status == TaskState.CONFLICT else None
            merged_at = now_iso()
            by_id = {t.id: t for t in rest}
            for a in attempts:
                if fix is not None and a.task_id in fixed:
                    fix.mark(a)
            entries = failed + [e for a in attempts if a is not stop
                                for e in [_entry(repo, by_id[a.task_id], a, target, merged_at)] if e is not None]
            failed = []
            if entries:
                self._land(target, worktree, orig, new, entries, pending, hooks=hooks,
                           reason=f"agent-merge {fix.option}: into {target}" if fix is not None
                           else f"agent-merge: {len(attempts)} task(s) into {target}")
            done += [a for a in attempts if a is not stop]
            if stop is None:
                break
            task = by_id[stop.task_id]
            rest = rest[rest.index(task) + 1:]
            later = [t.id for t in rest] + pending
            if fix is not None and task.id not in fixed and fix(task, stop, target, later):
                fixed.add(task.id)
                rest.insert(0, task)  # merge its fixed branch next
                continue
            done.append(stop)
            if fix is None:  # --interactive: the user resolves it in the target's worktree
                from git_agents.merging.interactive import start_conflict_merge

                carry = self.carry or Carry(orig)
                conflict = _entry(repo, task, Attempt(task.id, TaskState.MERGED, check=stop.check), target, merged_at)
                assert conflict is not None and worktree
                plan = Journal(target=target, worktree=worktree, old=new, new=new, entries=[], pending=later,
                               phase="resolving", run_old=carry.run_old,
                               landed=[*carry.landed, *(e for e in entries if e.status == TaskState.MERGED)],
                               conflict=conflict, tip=tips[task.id], message=merge_message(repo, task),
                               options={"check": opts.check or "", "batch": "1" if opts.batch else ""})
                start_conflict_merge(repo, plan)
                stop.status, stop.check_output = "resolving", resolve_instructions(plan)
                break
            if task.id in fixed:
                stop.check_output = fix.again
            entry = _entry(repo, task, stop, target, merged_at)
            if entry is not None:
                if fix.says_why:
                    entry.state["reason"] = f"conflicts with {target}; {stop.check_output}"
                    entry.before.setdefault("reason", task.reason or None)
                failed.append(entry)
        if failed:  # the last task's failure still needs its state written
            self._land(target, worktree, new, new, failed, pending, reason="")
        return done

    def _land(self, target: str, worktree: str | None, old: str, new: str, entries: list[Entry],
              pending: list[str], *, reason: str, hooks: MergeHooks | None = None) -> None:
        """Move `target` from `old` to `new` with the entries' notes and task states, journalled first
        so that an interruption leaves a run that --continue finishes and --abort undoes; then, when
        its worktree moved, the post-merge hook runs there, as after git merge."""
        from git_agents.merging.chain import land, signals_deferred
        from git_agents.merging.inmemory import TargetMoved

        self.wait_for_targets()  # no target moves while one of them may be refused
        if worktree and new != old:
            _refuse_changes_since_the_check(self.repo, worktree, old, new)
        plan = Journal(target=target, worktree=worktree or "", old=old, new=new, entries=entries, reason=reason,
                       pending=pending)
        with signals_deferred():  # a Ctrl-C now would only leave a journal to --continue
            journal_file.write(self.repo.state_dir, plan)
            try:
                land(self.repo, plan)
            except TargetMoved as moved:
                # The target (a commit made on it meanwhile) or its worktree (switched) moved: refused
                # before anything was written, so the journal goes too; left, it would make the next
                # merge say "interrupted" and --continue and --abort refuse to touch the moved branch.
                journal_file.remove(self.repo.state_dir)
                raise AgentError(moved.live_message, hint=moved.live_hint) from None
        if hooks is not None and worktree and new != old:
            hooks.post_merge(old)


class _Rebase:
    """--rebase: replay a task that conflicts onto the target, in its worktree."""

    option, again, says_why = "--rebase", "it conflicts even after rebasing", False

    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    def mark(self, attempt: Attempt) -> None:
        """Record on the attempt of a task merged (again) after its fix that it was fixed."""
        attempt.rebased = True

    def __call__(self, task: Task, stop: Attempt, target: str, later: list[str]) -> bool:
        """Fix the task's conflict with `target`; False (and why in stop.check_output) when that failed."""
        from git_agents.merging.rebase import rebase_onto_target

        why = rebase_onto_target(self.repo, task, target)
        stop.check_output = why or ""
        return why is None


class _Resolve:
    """--resolve: have an agent merge the target into the task that conflicts (merging.resolver);
    a failed resolution leaves its branch as it was and is reported with the resolver's log tail."""

    option, again, says_why = "--resolve", "it conflicts even after its resolution", True

    def __init__(self, repo: Repo, opts: Options) -> None:
        self.repo, self.opts = repo, opts
        self.resolved: dict[str, Resolution] = {}

    def mark(self, attempt: Attempt) -> None:
        """Record on the attempt of a task merged (again) after its fix who resolved it."""
        res = self.resolved[attempt.task_id]
        attempt.resolved_by, attempt.resolve_attempts = res.agent, res.attempts

    def __call__(self, task: Task, stop: Attempt, target: str, later: list[str]) -> bool:
        """Fix the task's conflict with `target`; False (and why in stop.check_output) when that failed."""
        from git_agents.merging.resolver import Resolution, resolve_conflict

        command = self.opts.resolve or task.agent
        if not command:
            res = Resolution(False, "", 0, "no agent to resolve it with (name one: --resolve=<agent>)")
        else:
            assert self.opts.launcher is not None, "--resolve needs a launcher"
            res = resolve_conflict(self.repo, task, target, command=command, launch=self.opts.launcher,
                                   attempts=self.opts.resolve_attempts, pending=later)
        if res.ok:
            self.resolved[task.id] = res
            return True
        stop.check_output = f"the resolver failed: {res.why}" if res.attempts else res.why
        stop.resolved_by, stop.resolve_attempts, stop.resolve_log = res.agent, res.attempts, res.log_tail
        return False


def refuse_if_interrupted(repo: Repo) -> None:
    plan = journal_file.read(repo.state_dir)
    if plan is None:
        return
    if plan.phase == "resolver":
        raise AgentError(f"a merge --resolve was interrupted while a resolver worked on the conflict of task "
                         f"{plan.conflict.task_id if plan.conflict else '?'} in {plan.worktree}",
                         hint="check its result (kept only if it is a proper resolution): git agent-merge --continue\n"
                              "or put the task branch back: git agent-merge --abort")
    if plan.phase == "resolving":
        raise AgentError(f"a merge into '{plan.target}' is waiting for the conflict of task "
                         f"{plan.conflict.task_id if plan.conflict else '?'} to be resolved in {plan.worktree}",
                         hint="resolve it and `git add` the files, then: git agent-merge --continue\n"
                              "or undo the whole run with: git agent-merge --abort")
    raise AgentError(f"an earlier merge into '{plan.target}' was interrupted",
                     hint="finish it with: git agent-merge --continue\n"
                          "or undo it with: git agent-merge --abort")


def resolve_instructions(plan: Journal) -> str:
    assert plan.conflict is not None
    return (f"Resolve the conflict of task {plan.conflict.task_id} in {plan.worktree}, `git add` the files, "
            f"then run: git agent-merge --continue\n"
            f"(or put '{plan.target}' back where it was before this run: git agent-merge --abort)")


def check_failure_text(attempt: Attempt, kept: str = "branch and worktree kept") -> str:
    """What is shown for a task whose merged result failed the check: a line and the tail of its output."""
    return (f"Check failed for task {attempt.task_id} (not merged; {kept}):\n"
            + "".join(f"    {line}\n" for line in attempt.check_output.splitlines()))


def plan_chain(repo: Repo, target: str, tasks: list[Task], checker: Checker | None, *, batch: bool,
               worktree: str | None, stop_at_conflict: bool = False,
               hooks: MergeHooks | None = None,
               style: str = "merge") -> tuple[list[Attempt], str, str, dict[str, str]]:
    """The chain of in-memory merges for one target: (attempts, old commit, new commit, tips by task).

    `worktree`: where the target is checked out (None: nowhere); `hooks`: git merge's hooks to run
    before each merge commit (None: none, as for a --dry-run); `style`: how each task lands."""
    from git_agents.merging.chain import Candidate, build_chain
    from git_agents.merging.inmemory import added_paths, commit_maker

    git = repo.git
    # One call for the target and every tip.
    names = [f"{branch_ref(target)}^{{tree}}", f"{branch_ref(target)}^{{commit}}"] + \
        [f"{branch_ref(t.branch)}^{{commit}}" for t in tasks]
    commits = git("rev-parse", *names).split()
    orig_tree, orig, tips = commits[0], commits[1], commits[2:]
    candidates = [Candidate(t.id, tip, merge_message(repo, t), t.branch) for t, tip in zip(tasks, tips)]
    sign = signs_commits(repo)
    if style != "merge":  # git merge --squash and git rebase make no merge commit: no merge-commit hooks
        hooks = None
    by_task = {t.id: tip for t, tip in zip(tasks, tips)}
    # Signed commits and replayed ones (--style=rebase) are made by commit-tree, one by one.
    with commit_maker(git, repo.config, repo.state_dir, 0 if sign or style == "rebase" else len(candidates),
                      repo.idents) as make:
        if checker is None and not (hooks and hooks.any_commit_hook):  # hooks must run once per merge: no retry
            # Nearly always nothing is in the landing's way: build the chain without looking, then
            # look only at the paths the landing adds (one diff-tree, an lstat each). Only when one
            # of them exists in the target's worktree is the chain built again, merge by merge
            # against the worktree's untracked files (whose listing walks the whole worktree).
            attempts, new = build_chain(git, orig, candidates, None, batch=batch, stop_at_conflict=stop_at_conflict,
                                        sign=sign, start_tree=orig_tree, style=style, make=make)
            if worktree is None or new == orig or not anything_at(worktree, added_paths(git, orig, new)):
                return attempts, orig, new, by_task
        attempts, new = build_chain(git, orig, candidates, checker, batch=batch,
                                    stop_at_conflict=stop_at_conflict, blocker=untracked_blocker(repo, worktree),
                                    sign=sign, hooks=hooks, start_tree=orig_tree, style=style, make=make)
    return attempts, orig, new, by_task


def anything_at(worktree: str, paths: list[str]) -> bool:
    """Whether anything exists in `worktree` at one of `paths`, or where one of them needs a directory."""
    dirs: dict[str, bool] = {}  # leading directory -> it is a real directory (or absent)
    for path in paths:
        parts = path.split("/")
        for n in range(1, len(parts)):
            lead = "/".join(parts[:n])
            if lead not in dirs:
                full = os.path.join(worktree, lead)
                dirs[lead] = not os.path.lexists(full) or (os.path.isdir(full) and not os.path.islink(full))
            if not dirs[lead]:
                return True
        if os.path.lexists(os.path.join(worktree, path)):
            return True
    return False


def signs_commits(repo: Repo) -> bool:
    """Whether `git merge` would sign its merge commit here (commit.gpgSign); commit-tree needs -S for it."""
    from git_agents.core.settings import parse_bool

    return parse_bool(repo.setting("commit.gpgSign"))


def untracked_blocker(repo: Repo, worktree: str | None) -> Blocker | None:
    """What leaves out a task whose merge would overwrite an untracked file of `worktree`, where the
    target is checked out.

    `git merge` refuses such a merge ("untracked working tree file would be overwritten"); landing
    it with read-tree would fail the same way after the journal is written, and stop every task.
    Decided by paths (the merge's added files against `ls-files --others`), before anything moves.
    None when the target is checked out nowhere or its worktree has no untracked files.
    """
    from git_agents.merging.inmemory import added_paths, path_in_the_way, untracked_files

    if worktree is None:
        return None
    untracked = untracked_files(repo.git, worktree)
    if not untracked:
        return None

    def blocker(current: str, commit: str) -> str | None:
        path = path_in_the_way(worktree, untracked, added_paths(repo.git, current, commit))
        return None if path is None else f"untracked working tree file would be overwritten by merge: {path}"
    return blocker


def _entry(repo: Repo, task: Task, a: Attempt, target: str, merged_at: str) -> Entry | None:
    """The journal entry of one decided attempt: the task state to write and the note (if merged)."""
    if a.status == TaskState.MERGED:
        state: dict[str, str | None] = {"state": TaskState.MERGED, "merge_commit": a.commit, "merged_at": merged_at,
                                        "conflicts": None, "reason": None}
        note = _note_fields(repo, task, merged_at, a)
        if a.resolved_by:  # --resolve: who resolved its conflict with the target
            note.update({"resolved-by": a.resolved_by, "resolve-attempts": str(a.resolve_attempts)})
    elif a.status == TaskState.CONFLICT:
        state, note = {"state": TaskState.CONFLICT, "conflicts": join_paths(a.conflicts),
                       "reason": f"conflicts with {target}"}, {}
    elif a.status == TaskState.CHECK_FAILED:
        state, note = {"state": TaskState.CHECK_FAILED, "conflicts": None,
                       "reason": a.check_output or "check failed"}, {}
    else:
        return None
    before = {k: (getattr(task, k) or None) for k in state}
    state = {k: v for k, v in state.items() if v is not None or before[k] is not None}  # skip no-op unsets
    return Entry(a.task_id, a.status, a.commit if a.status == TaskState.MERGED else "", note, state,
                 {k: before[k] for k in state})


def merge_hooks(repo: Repo, worktree: str | None, opts: Options) -> MergeHooks:
    """git merge's hooks for a target checked out in `worktree` (None: run them in the main worktree)."""
    from git_agents.merging.hooks import MergeHooks

    where = worktree or repo.toplevel
    # Without core.hooksPath, where the command runs, the hooks are the common dir's: no git call.
    known = where == repo.toplevel and "core.hookspath" not in repo.config
    return MergeHooks(repo.git, where, os.path.join(repo.state_dir, "hooks-scratch"), verify=opts.verify,
                      squash=opts.style == "squash", hooks_dir=os.path.join(repo.common_dir, "hooks") if known else "")


def _refuse_changes_since_the_check(repo: Repo, worktree: str, old: str, new: str) -> None:
    """Refuse (AgentError, nothing touched) to land over what the user changed in the target's worktree
    since it was checked clean (a check or a resolver may have run for minutes meanwhile), as
    `git merge` refuses to overwrite local changes."""
    from git_agents.merging.inmemory import in_the_way

    refuse_mid_merge(repo, worktree)
    changed = in_the_way(repo.git, worktree, old, new)
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise AgentError(f"the worktree at {worktree} has local changes to {shown} that the merge would overwrite",
                         hint="commit or stash them (git stash), then merge again")


def _note_fields(repo: Repo, task: Task, merged_at: str, attempt: Attempt) -> dict[str, str]:
    # Only the exit code and end time go into the note: skip the uncommitted-work probe.
    _, code, finished = agent_state(repo, task, check_work=False)
    return note_fields(task=task.id, title=task.title, branch=task.branch, agent=task.agent,
                       prompt_hash=task.prompt_hash, base=task.base_commit, target=task.base,
                       started=task.started or task.created, finished=finished,
                       exit="" if code is None else str(code), merged=merged_at, check=attempt.check or "",
                       **rounds.note_field(task, repo.task_dir(task.id)),
                       **{k.replace("-", "_"): v for k, v in usage.note_fields(repo.task_dir(task.id)).items()})
