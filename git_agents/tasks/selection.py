"""Turning command-line task ids into recorded tasks."""

from __future__ import annotations

from git_agents.core.errors import AgentError
from git_agents.core.refs import branch_name, branch_ref, is_branch_ref
from git_agents.core.repo import Repo
from git_agents.tasks.ids import check_id
from git_agents.tasks.store import Task, load_tasks


def select_tasks(repo: Repo, ids: list[str], *, all_tasks: bool = False, verb: str = "status") -> list[Task]:
    """The tasks named by `ids` (in the order given), or every task for `all_tasks`."""
    tasks = load_tasks(repo)
    if all_tasks or not ids:
        return list(tasks.values())
    chosen = []
    for task_id in dict.fromkeys(ids):
        check_id(task_id)
        if task_id not in tasks:
            raise AgentError(f"no such task: '{task_id}'", hint="`git agent-status` lists the tasks")
        chosen.append(tasks[task_id])
    return chosen


def current_branch(repo: Repo, worktree: str) -> str:
    """The branch checked out in `worktree`; an error on a detached HEAD."""
    res = repo.git.at(worktree).run("symbolic-ref", "--quiet", "--short", "HEAD", ok=(0, 1))
    if res.code != 0:
        raise AgentError(f"the worktree at {worktree} is on a detached HEAD, so there is no branch to use as base",
                         hint="pass --base <branch>, or check out a branch there")
    return res.out.strip()


def branch_exists_error(branch: str) -> AgentError:
    """Why a task cannot be created on `branch`: it exists."""
    return AgentError(f"a branch named '{branch}' already exists",
                      hint=f"delete or rename it (git branch -m {branch} <new>), or pick another id")


def resolve_base(repo: Repo, base: str | None) -> tuple[str, str]:
    """(branch name, commit) of the base: --base, or the main worktree's branch."""
    if not base:
        # The usual case, the main worktree on a branch that has commits, in one git call: the
        # commit and the branch's full name. Anything else (detached, unborn) as below, for its message.
        res = repo.git.at(repo.main_worktree).run("rev-parse", "HEAD^{commit}", "--symbolic-full-name", "HEAD",
                                                  ok=range(0, 256))
        found = res.out.split("\n")
        if res.code == 0 and len(found) == 3 and is_branch_ref(found[1]) and not found[2]:
            return branch_name(found[1]), found[0]
    name = base or current_branch(repo, repo.main_worktree)
    commit = repo.git.rev_parse(f"{branch_ref(name)}^{{commit}}")
    if commit is None:
        raise AgentError(f"base branch '{name}' does not exist",
                         hint="name a local branch with --base (git branch lists them)")
    return name, commit
