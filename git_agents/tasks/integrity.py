"""What an agent's git may have done to the shared refs, caught before anything merges.

The guard (tasks/guard.py) refuses these where git lets it; an agent that escaped it, or ran
before it, is caught here, task by task, so that the other tasks still merge:

- its worktree's HEAD is not on its task branch (`git switch -c fix`, `git checkout -B main`);
- its branch does not contain its base commit (the user's commit rewritten by `--amend`, or the
  branch deleted and made again from nothing);
- its branch moved back: its reflog holds a commit no longer on it (`git reset --hard`);
- its target does not contain its base commit (the target rewritten or moved back);
- its worktree has untracked files that lines added to the shared info/exclude since it was
  spawned hide (they would be left out of the merge, and deleted by clean);
- its target has a commit of the task on its first-parent line, not merged (the target moved to
  it: `git update-ref refs/heads/main HEAD`, `git checkout -B main`); every task into that
  target is held, since merging onto the moved target would keep the agent's commit there.

Each is one line: what happened, and how to recover (the reflog entry or the commit id). A few
git calls for all the tasks together: one worktree listing, one walk of every reflog, one
`rev-list` of the commits above the tasks' bases (which also says which refs contain each base).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from git_agents.core.refs import branch_ref
from git_agents.core.repo import Repo
from git_agents.tasks.store import Task, TaskState

if TYPE_CHECKING:
    from git_agents.core.worktrees import Worktree


@dataclass
class _Entry:
    selector: str  # e.g. refs/heads/task-1@{2}
    commit: str
    subject: str


@dataclass
class _Graph:
    """The commits above `floor` (the tasks' bases' common ancestor), with their parents (one rev-list)."""

    floor: str
    parents: dict[str, list[str]] = field(default_factory=dict)
    complete: bool = False  # every commit above the floor is in it (rev-list succeeded, there is a floor)
    _reach: dict[str, set[str]] = field(default_factory=dict)

    def reach(self, start: str) -> set[str]:
        """The commits of the graph reachable from `start` (itself included when it is in the graph)."""
        if start in self._reach:
            return self._reach[start]
        seen: set[str] = set()
        stack = [start]
        while stack:
            commit = stack.pop()
            if commit in seen or commit not in self.parents:
                continue
            seen.add(commit)
            stack.extend(self.parents[commit])
        self._reach[start] = seen
        return seen

    def first_parents(self, start: str) -> set[str]:
        """The commits of the graph on the first-parent line from `start`."""
        line: set[str] = set()
        while start in self.parents and start not in line:
            line.add(start)
            start = (self.parents[start] or [""])[0]
        return line

    def contains(self, tip: str, commit: str) -> bool:
        """Whether `tip` contains `commit` (which is in the graph, or is its floor)."""
        if tip == commit:
            return True
        if commit in self.parents:
            return commit in self.reach(tip)
        return commit == self.floor and any(self.floor in self.parents[c] for c in self.reach(tip))


def _short(commit: str) -> str:
    return commit[:12]


def problems(repo: Repo, tasks: Sequence[Task], tips: Mapping[str, str],
             worktrees: Sequence[Worktree] | None = None) -> dict[str, str]:
    """For each task (not merged, its branch and target there) whose shared refs were tampered
    with: one line saying what happened and how to recover. `tips`: branch -> commit (status.branch_tips);
    `worktrees`: core.worktrees.list_worktrees, if the caller listed them already (else listed here)."""
    live = [t for t in tasks if t.state != TaskState.MERGED and t.branch in tips and t.base in tips and t.base_commit]
    if not live:
        return {}
    found: dict[str, list[str]] = {}
    _check_heads(repo, live, found, worktrees)
    targets = sorted({t.base for t in live})
    by_ref: dict[str, str] = {branch_ref(b): tips[b] for b in [*(t.branch for t in live), *targets]}  # ref: tip
    refs = list(by_ref)
    logs = _reflogs(repo, refs)
    bases = sorted({t.base_commit for t in live})
    starts = {tips[t.branch] for t in live} | {tips[b] for b in targets}
    starts |= {e.commit for r in refs for e in logs.get(r, [])}
    graph = _graph(repo, sorted(starts), bases)
    # Which refs contain each base: the graph holds every commit between the refs and the bases'
    # common ancestor, so it answers (no `for-each-ref --contains` per base) unless it is incomplete.
    contained = {base: {ref for ref, tip in by_ref.items() if graph.contains(tip, base)} for base in bases} \
        if graph.complete else _containing(repo, bases, refs)
    held_targets: dict[str, str] = {}
    for task in live:
        _check_task(task, tips, logs, contained, graph, found, held_targets)
        _check_exclude(repo, task, found)
    for task in live:
        culprit = held_targets.get(task.base)
        if culprit and culprit != task.id and task.id not in found:
            found[task.id] = [f"its target {task.base} was moved to a commit of task {culprit} without a merge"
                              f" (see task {culprit}); nothing is merged into it until it is put back"]
    return {tid: "; ".join(lines) for tid, lines in found.items()}


def _check_exclude(repo: Repo, task: Task, found: dict[str, list[str]]) -> None:
    """A task with untracked files that lines added to the shared info/exclude since spawn hide."""
    from git_agents.core.worktrees import describe_unsaved
    from git_agents.tasks.guard import hidden_by_exclude

    hidden = hidden_by_exclude(repo, task)
    if hidden:
        found.setdefault(task.id, []).append(
            f"its worktree has untracked files that lines added to .git/info/exclude since it was spawned hide"
            f" ({describe_unsaved(['?? ' + h for h in hidden])}); to recover: commit them in {task.worktree},"
            " or remove those lines")


def _check_heads(repo: Repo, tasks: Sequence[Task], found: dict[str, list[str]],
                 worktrees: Sequence[Worktree] | None) -> None:
    """A task whose worktree's HEAD is not on its branch."""
    from git_agents.core.worktrees import list_worktrees
    from git_agents.tasks.isolation import clone_head, is_clone

    with_worktree = [t for t in tasks if t.worktree and os.path.isdir(t.worktree)]
    if not with_worktree:
        return
    heads = {}
    if any(not is_clone(t) for t in with_worktree):
        listed = list_worktrees(repo) if worktrees is None else worktrees
        heads = {os.path.realpath(w.path): (w.branch, w.head) for w in listed}
    for task in with_worktree:
        head = clone_head(repo, task) if is_clone(task) else heads.get(os.path.realpath(task.worktree))
        if head is None or head[0] == task.branch:
            continue
        branch, commit = head
        where = f"branch {branch}" if branch else "a detached HEAD"
        found.setdefault(task.id, []).append(
            f"its worktree's HEAD is on {where} ({_short(commit)}), not on its branch {task.branch}; to recover:"
            f" git -C {task.worktree} switch {task.branch} && git -C {task.worktree} merge {_short(commit)}")


def _reflogs(repo: Repo, refs: Sequence[str]) -> dict[str, list[_Entry]]:
    """Each ref's reflog, newest first (one `git log -g` for all of them)."""
    res = repo.git.run("log", "-g", "--format=%gD%x00%H%x00%gs", *refs, "--", ok=range(0, 256))
    logs: dict[str, list[_Entry]] = {}
    for line in res.out.splitlines():
        selector, _, rest = line.partition("\0")
        commit, _, subject = rest.partition("\0")
        logs.setdefault(selector.rpartition("@{")[0], []).append(_Entry(selector, commit, subject))
    return logs


def _containing(repo: Repo, bases: Sequence[str], refs: Sequence[str]) -> dict[str, set[str]]:
    """base commit -> the refs among `refs` that contain it."""
    contained: dict[str, set[str]] = {}
    for base in bases:
        res = repo.git.run("for-each-ref", "--contains", base, "--format=%(refname)", *refs, ok=range(0, 256))
        contained[base] = set(res.out.split()) if res.code == 0 else set(refs)  # unknown: not a finding
    return contained


def _graph(repo: Repo, starts: Sequence[str], bases: Sequence[str]) -> _Graph:
    """The commits reachable from `starts` and not from the bases' common ancestor: every task's
    commits are in it, also those below another task's base (the target moved to them)."""
    floor = bases[0]
    if len(bases) > 1:
        res = repo.git.run("merge-base", "--octopus", *bases, ok=range(0, 256))
        floor = res.out.strip() if res.code == 0 and res.out.strip() else ""
    below = [floor] if floor else list(bases)
    res = repo.git.run("rev-list", "--parents", "--ignore-missing", *starts, "--not", *below, ok=range(0, 256))
    graph = _Graph(floor, complete=res.code == 0 and bool(floor))
    for line in res.out.splitlines():
        commit, *parents = line.split()
        graph.parents[commit] = parents
    return graph


# The reflog actions of git-agents' own put-backs (merging/resolver.restore, merging/chain's --abort),
# written by those and read here: the commits such a move left behind were git-agents' attempt,
# not the agent's work.
RESOLVE_UNDO = "agent-merge --resolve (undo)"  # git writes "<action>: moving to ..."
MERGE_ABORT = "agent-merge --abort"
OWN_PUT_BACKS = (f"{RESOLVE_UNDO}:", MERGE_ABORT)


def _not_undone(log: Sequence[_Entry]) -> list[_Entry]:
    """The reflog (newest first) without the entries that a put-back by git-agents itself undid:
    those between the put-back and the older entry at the commit it put the branch back to."""
    kept: list[_Entry] = []
    back_to = ""
    for entry in log:
        if back_to:
            if entry.commit != back_to:
                continue
            back_to = ""
        if entry.subject.startswith(OWN_PUT_BACKS):
            back_to = entry.commit
        kept.append(entry)
    return kept


def _check_task(task: Task, tips: Mapping[str, str], logs: Mapping[str, list[_Entry]],
                contained: Mapping[str, set[str]], graph: _Graph, found: dict[str, list[str]],
                held_targets: dict[str, str]) -> None:
    own_ref, target_ref = branch_ref(task.branch), branch_ref(task.base)
    tip, target, base = tips[task.branch], tips[task.base], task.base_commit
    own_log = logs.get(own_ref, [])
    target_log = logs.get(target_ref, [])
    lines = found.setdefault(task.id, [])
    if own_ref not in contained[base]:
        back = next((e for e in own_log if graph.contains(e.commit, base)), None)
        how = f"its commit now is {_short(tip)} (git log {_short(tip)})"
        if back is not None:
            how += f"; to put the branch back: git update-ref {own_ref} {back.commit} (reflog {back.selector})"
        lines.append(f"its branch {task.branch} does not contain its base commit {_short(base)}: its history was"
                     f" rewritten (git commit --amend, rebase) or made again; to recover: {how}")
    if target_ref not in contained[base]:
        back = next((e for e in target_log if graph.contains(e.commit, base)), None)
        how = (f"git update-ref {target_ref} {back.commit} (reflog {back.selector}), if it was not you" if back
               else "look at git reflog " + task.base)
        lines.append(f"its target {task.base} no longer contains its base commit {_short(base)}: {task.base} was"
                     f" rewritten or moved back since the task was spawned; to recover: {how}; if it was you:"
                     f" git config agent-task.{task.id}.baseCommit <new base>")
    mine = [e for e in _not_undone(own_log) if e.commit in graph.parents and not graph.contains(base, e.commit)]
    # On the target's first-parent line: the target was moved to it. (Through a merge's second
    # parent it was merged, by us meanwhile or by the user: not a finding.)
    in_target = next((e for e in mine if e.commit in graph.first_parents(target)), None)
    if in_target is not None:
        back = next((e for e in target_log if in_target.commit not in graph.reach(e.commit)), None)
        how = (f"put {task.base} back with: git update-ref {target_ref} {back.commit} (reflog {back.selector})"
               if back else f"look at: git reflog {task.base}")
        lines.append(f"{task.base} contains commit {_short(in_target.commit)} of this task, which git-agents did not"
                     f" merge: {task.base} was moved to it (checkout -B, update-ref or push from the agent's"
                     f" worktree); to recover: {how}, then merge again")
        held_targets.setdefault(task.base, task.id)
    on_tip = graph.reach(tip)
    lost = next((e for e in mine if e.commit not in on_tip), None)
    if lost is not None:
        backwards = tip == base or tip in graph.reach(lost.commit)
        if backwards or not (on_tip - graph.reach(target)):
            how = (f"git update-ref {own_ref} {lost.commit} {tip}" if backwards
                   else f"git -C {task.worktree or '<worktree>'} merge {_short(lost.commit)}")
            lines.append(f"its branch {task.branch} moved back: commit {_short(lost.commit)} ({lost.selector}:"
                         f" {lost.subject or 'no message'}) is no longer on it; to recover: {how}")
    if not lines:
        del found[task.id]


def warnings(repo: Repo, tasks: Sequence[Task]) -> dict[str, list[str]]:
    """What `git agent-status` warns of, by task: the problems above, and what changed in the
    shared config, hooks/ and info/exclude since the task was spawned (guard.changes)."""
    from git_agents.tasks.guard import changes_warning
    from git_agents.tasks.status import branch_tips

    found: dict[str, list[str]] = {tid: [why] for tid, why in problems(repo, tasks, branch_tips(repo)).items()}
    for task in tasks:
        changed = changes_warning(repo, task) if task.state != TaskState.MERGED else ""
        if changed:
            found.setdefault(task.id, []).append(changed)
    return {tid: lines for tid, lines in found.items() if lines}
