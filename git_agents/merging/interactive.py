"""`git agent-merge --interactive`: a conflict left for the user in the target's worktree, then committed.

The run's journal (phase "resolving") is written before `git merge --no-ff` starts, so an
interruption at any point leaves something `--continue` or `--abort` understands.
"""

from __future__ import annotations

import os
import re

from git_agents.core.errors import AgentError
from git_agents.core.git import Git, encode
from git_agents.core.refs import branch_ref
from git_agents.core.repo import Repo
from git_agents.merging import journal as journal_file
from git_agents.merging.journal import Entry, Journal


def start_conflict_merge(repo: Repo, plan: Journal) -> None:
    """Record the plan, then run the real `git merge --no-ff` of the task in the target's worktree.

    The conflict markers name the task's branch and the target branch, as `git merge task-2`
    run on the target would (with "HEAD" for the target, which says less to someone who
    did not start that merge)."""
    from git_agents.tasks.store import load_tasks

    journal_file.write(repo.state_dir, plan)
    git = repo.git.at(plan.worktree)
    assert plan.conflict is not None
    task = load_tasks(repo).get(plan.conflict.task_id)
    # git labels the markers with the name it was given: the branch, if it is still at the planned tip
    name = task.branch if task and task.branch and (git.rev_parse(branch_ref(task.branch)) or "") == plan.tip \
        else plan.tip
    git.run("merge", "--no-ff", "--no-edit", "-m", plan.message, name, ok=(0, 1),
            env={"GIT_REFLOG_ACTION": "agent-merge --interactive"})
    _label_ours(git, plan.worktree, plan.target)


def _label_ours(git: Git, worktree: str, target: str) -> None:
    """Rename the "HEAD" side of the conflict markers git wrote to the target branch's name."""
    ours = re.compile(rb"^(<{7,}) HEAD(?=[:\r\n]|$)", re.MULTILINE)
    for path in git.z("diff", "--name-only", "--diff-filter=U", "-z"):
        full = os.path.join(worktree, path)
        if os.path.islink(full) or not os.path.isfile(full):
            continue
        with open(full, "rb") as f:
            data = f.read()
        labelled = ours.sub(rb"\1 " + encode(target), data)
        if labelled != data:
            with open(full, "wb") as f:
                f.write(labelled)


def commit_resolution(repo: Repo, plan: Journal) -> Entry | None:
    """Commit the user's resolution and record the task as merged; None if no merge is in progress."""
    from git_agents.merging.chain import land

    assert plan.conflict is not None
    git = repo.git.at(plan.worktree)
    if git.head_branch() != plan.target:
        raise AgentError(f"the worktree at {plan.worktree} is no longer on '{plan.target}'",
                         hint=f"switch back (git switch {plan.target}) and run git agent-merge --continue again")
    head = git("rev-parse", "HEAD")
    if git.merge_in_progress():
        unmerged = [p for p in git.run("diff", "--name-only", "--diff-filter=U", "-z").out.split("\0") if p]
        if unmerged:
            raise AgentError(f"task {plan.conflict.task_id} still has unresolved conflicts: {', '.join(unmerged)}",
                             hint="edit them, `git add` them, then run git agent-merge --continue again")
        git.run("commit", "--quiet", "--no-verify", "-F", "-", input=plan.message + "\n")
        commit = git("rev-parse", "HEAD")
    elif head == plan.new:
        return None
    elif git("rev-parse", f"{head}^@").split() == [plan.new, plan.tip]:
        commit = head  # the user committed the resolution already
    else:
        raise AgentError(f"'{plan.target}' moved to {head[:12]}, which is not the merge of task "
                         f"{plan.conflict.task_id}",
                         hint="put it back and run git agent-merge --continue, "
                              "or undo the run: git agent-merge --abort")
    entry = plan.conflict
    entry.commit = commit
    entry.state["merge_commit"] = commit
    # Notes and state go through an ordinary journalled landing (the branch is already there).
    land(repo, Journal(target=plan.target, worktree=plan.worktree, old=plan.new, new=commit, entries=[entry],
                       reason="agent-merge --continue"))
    return entry
