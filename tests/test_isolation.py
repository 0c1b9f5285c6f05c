"""One agent runs one ordinary git command that damages what tasks share, two honest agents work
beside it: in every mode where the case can be kept out, the honest tasks merge, main, the
user's config, hooks, tags, notes and remote are as the user had them, `git fsck` is clean, and
the agent's own work is on its branch or reported with its commit id (issue 19's table)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import Project, run, write_script

HONEST = ("h1", "h2")
ROGUE = "r"
WORK = 'echo rogue > rogue.txt && git add rogue.txt && git commit -q -m "rogue work"\n'
COMMON = '"$(git rev-parse --git-common-dir)"'

# name -> (what the rogue agent runs after committing its work, the modes that keep it out).
# "worktree" is the guarded worktree: what git lets the guard refuse, or catch before merging.
ALL = ("worktree", "clone", "sandbox")
ISOLATED = ("clone", "sandbox")
CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "stash": ("echo wip >> rogue.txt && git stash && git stash pop", ALL),
    "checkout-B-main": ("git checkout -q -B main && echo more > more.txt && git add more.txt"
                        " && git commit -q -m more", ALL),
    "update-ref-main": ("git update-ref refs/heads/main HEAD", ALL),
    "update-ref-other-task": ("git update-ref refs/heads/task-h1 HEAD", ALL),
    "delete-other-task": ("git update-ref -d refs/heads/task-h2", ALL),
    "worktree-remove": ('git worktree remove --force "$GIT_AGENT_WORKTREE/../task-h1"', ALL),
    "exclude": (f"echo '*.md' >> {COMMON}/info/exclude", ISOLATED),
    "hooks": (f"printf '#!/bin/sh\\nexit 1\\n' > {COMMON}/hooks/pre-commit && chmod +x {COMMON}/hooks/pre-commit",
              ISOLATED),
    "config": ("git config user.email agent@evil.example && git config core.hooksPath /nonexistent"
               " && git remote add evil /nonexistent", ISOLATED),
    "notes": ("printf 'git-agents-note: 1\\ntask: 99\\n' | git notes --ref=agents add -f -F - HEAD", ALL),
    "tag": ("git tag -f v1.0", ALL),
    "push": ("git push -q origin HEAD:main", ALL),
    "amend": ("", ALL),  # no work of its own: amends the user's commit (WORK is replaced, see _rogue)
    "gc": ("git gc -q --prune=now", ISOLATED),
    "switch-and-reset": ("git switch -q -c fix; git reset -q --hard HEAD~1", ALL),
}
PARAMS = [pytest.param(mode, name, id=f"{mode}-{name}")
          for name, (_, modes) in CASES.items() for mode in modes]
PARAMS.append(pytest.param("sandbox", "absolute-path", id="sandbox-absolute-path"))


def _rogue(tmp_path: Path, project: Project, name: str, gate: Path) -> Path:
    if name == "amend":
        body = "echo amended > README && git commit -q -a --amend -m 'initial, amended'\n"
    elif name == "absolute-path":  # writes into the user's repository by its path, not through git
        body = WORK + (f"echo evil > {project.path}/README; echo '*.md' >> {project.path}/.git/info/exclude;"
                       f" git -C {project.path} tag -f v1.0\n")
    else:
        body = WORK + f"( {CASES[name][0]} ) >/dev/null 2>&1\n"
    return write_script(tmp_path / "rogue.sh", body + f"touch {gate}/open\n")


def _honest(tmp_path: Path, gate: Path) -> Path:
    """Has uncommitted work while the rogue acts; commits it (and a new docs file) afterwards."""
    return write_script(tmp_path / "honest.sh", f"""
        echo "work of $GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt" && git add "file-$GIT_AGENT_TASK.txt"
        i=0; while [ ! -e {gate}/open ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done
        mkdir -p docs && echo usage > "docs/usage-$GIT_AGENT_TASK.md"
        git add -A && git commit -q -m "honest $GIT_AGENT_TASK"
    """)


def _shared(project: Project) -> dict[str, str]:
    """What the user has that tasks must not change: refs but task branches, config, hooks, exclude."""
    git_dir = project.path / ".git"
    hooks = {p.name: p.read_text() for p in sorted((git_dir / "hooks").iterdir()) if not p.name.endswith(".sample")}
    config = [line for line in project.git("config", "--local", "--list").splitlines()
              if not line.startswith(("agent-task.", "extensions.worktreeconfig"))]
    exclude = (git_dir / "info" / "exclude").read_text().split("# git-agents:")[0]
    refs = [r for r in project.git("for-each-ref", "--format=%(refname) %(objectname)").splitlines()
            if r.startswith(("refs/tags/", "refs/remotes/", "refs/stash"))]
    return {"hooks": json.dumps(hooks), "config": "\n".join(config), "exclude": exclude, "refs": "\n".join(refs)}


@pytest.mark.parametrize("mode,name", PARAMS)
def test_one_damaging_agent_among_honest_ones(project: Project, tmp_path: Path, mode: str, name: str) -> None:
    remote = tmp_path / "remote.git"
    project.git("clone", "-q", "--bare", str(project.path), str(remote))
    project.git("remote", "add", "origin", str(remote))
    project.git("fetch", "-q", "origin")
    project.git("tag", "v1.0")
    write_script(project.path / ".git" / "hooks" / "post-commit", "exit 0  # the user's own hook\n")
    project.git("config", "agent.isolation", mode)
    gate = tmp_path / "gate"
    gate.mkdir()
    project.git("config", "agent.sandboxWritable", str(gate))
    orig = project.git("rev-parse", "main")
    before = _shared(project)

    honest = _honest(tmp_path, gate)
    for tid in HONEST:
        project.ok("spawn", tid, "--prompt", "honest work", "--agent", str(honest))
    project.ok("spawn", ROGUE, "--prompt", name, "--agent", str(_rogue(tmp_path, project, name, gate)))
    project.agent("wait", "--all", "--timeout", "60")
    status = project.agent("status")
    merge = project.agent("merge", "--all")
    said = status.stderr + merge.stdout + merge.stderr

    for tid in HONEST:  # merged, with the work they had while the rogue acted
        assert project.git("show", f"main:file-{tid}.txt") == f"work of {tid}", said
        assert project.git("show", f"main:docs/usage-{tid}.md") == "usage", said
    first_parents = project.git("rev-list", "--first-parent", "main").splitlines()
    assert orig in first_parents, said  # main moved by merges only, on top of where the user had it
    own = first_parents[:first_parents.index(orig)]
    assert all(len(project.git("rev-list", "--parents", "-n1", c).split()) == 3 for c in own), said
    assert project.git("status", "--porcelain") == ""
    assert _shared(project) == before
    assert run(["git", "rev-parse", "main"], remote).stdout.strip() == orig
    log = project.agent("log", "--json", "main")
    assert log.stderr == "" and {m["task"] for m in json.loads(log.stdout)["merges"]} <= {*HONEST, ROGUE}
    fsck = run(["git", "fsck", "--no-dangling"], project.path)
    assert fsck.returncode == 0 and "missing" not in fsck.stdout + fsck.stderr, fsck.stdout + fsck.stderr

    # The rogue's own work: on its branch, or reported with the id of a commit that holds it.
    rogue_dir = project.worktrees / f"task-{ROGUE}"
    message = "initial, amended" if name == "amend" else "rogue work"
    found = run(["git", "log", "--all", "--reflog", "--format=%H", f"--grep={message}"], rogue_dir).stdout.split()
    assert found, f"the rogue's work is lost\n{said}"
    work = found[0]
    on_branch = run(["git", "merge-base", "--is-ancestor", work, f"task-{ROGUE}"], project.path).returncode == 0
    named = [c for c in set(re.findall(r"\b[0-9a-f]{12,40}\b", said))
             if run(["git", "merge-base", "--is-ancestor", work, c], rogue_dir).returncode == 0]
    assert on_branch or named, said
    if name == "absolute-path":
        assert (project.path / "README").read_text() == "readme\n"


def test_isolation_sandbox_without_bwrap_is_refused_with_a_hint(project: Project, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "sh", "env"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    import os
    import sys

    path = f"{Path(__file__).resolve().parent.parent / 'bin'}:{Path(sys.executable).parent}:{bin_dir}"
    proc = subprocess.run(["git", "agent-spawn", "1", "--prompt", "p", "--isolation=sandbox"], cwd=project.path,
                          capture_output=True, text=True, env={**os.environ, "PATH": path})
    assert proc.returncode == 128
    assert proc.stderr == ("fatal: --isolation=sandbox needs bubblewrap (bwrap), which is not installed\n"
                           "hint: install it (Debian/Ubuntu: apt-get install bubblewrap), or use --isolation=clone\n")
    assert project.git("branch", "--list", "task-*") == ""


def test_clone_tasks_rebase_onto_the_target_and_merge(project: Project, tmp_path: Path) -> None:
    edit = 'printf "line 1\\nline two (task 1)\\nline 3\\n" > shared.txt && git commit -q -am "task 1 edit"\n'
    one = write_script(tmp_path / "one.sh", edit)
    # its own first commit (the same message and second would make it task 1's very commit, and no conflict)
    first = edit.replace("task 1 edit", "task 2 edit")
    two = write_script(tmp_path / "two.sh", first + 'printf "line 1\\nline two (task 1), refined\\nline 3\\n"'
                                                  ' > shared.txt && git commit -q -am refined\n')
    project.ok("spawn", "1", "--isolation=clone", "--prompt", "p", "--agent", str(one))
    project.ok("spawn", "2", "--isolation=clone", "--prompt", "p", "--agent", str(two))
    project.ok("wait", "--all", "--timeout", "60")
    assert not (project.worktrees / "task-1" / ".git").is_file()  # a repository of its own, not a worktree
    proc = project.agent("merge", "--all", "--rebase")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].startswith("Merged task 2 (") and "after rebasing it" in proc.stdout
    assert project.git("show", "main:shared.txt") == "line 1\nline two (task 1), refined\nline 3"
    assert project.git("rev-list", "--count", "main~1..task-2") == "1"  # rebased in its clone, fetched back
    project.ok("clean", "--merged")
    assert not (project.worktrees / "task-1").exists() and project.git("branch", "--list", "task-*") == ""


# An agent that commits its work, then does to its repository what would damage the user's:
# moves main, collects garbage, installs a failing hook, changes the identity.
IN_ITS_CLONE = f"""
    {WORK}
    git update-ref refs/heads/main HEAD
    git gc -q --prune=now
    printf '#!/bin/sh\\nexit 1\\n' > {COMMON}/hooks/pre-commit && chmod +x {COMMON}/hooks/pre-commit
    git config user.email agent@evil.example
"""


def _pool_slots(project: Project) -> list[tuple[str, str]]:
    """(slot, state) of every slot of the pool."""
    return [(s["slot"], s["state"]) for s in json.loads(project.ok("pool", "list", "--json").stdout)["slots"]]


@pytest.mark.parametrize("how", ["claim", "spawn", "spawn-sandbox", "run"])
def test_a_clone_made_from_a_pool_slot_keeps_the_agent_out_of_the_repository(project: Project, tmp_path: Path,
                                                                              how: str) -> None:
    """`pool claim --task --isolation=clone`, spawn --pool --isolation, run with pool = true and an
    isolation: the rogue's clone is made from a warm slot, which leaves the pool; main, the config,
    the hooks and every object stay as they were; its branch is fetched back and merges beside an
    honest task's pooled worktree."""
    write_script(project.path / ".git" / "hooks" / "post-commit", "exit 0  # the user's own hook\n")
    project.ok("pool", "create", "2")
    orig = project.git("rev-parse", "main")
    before = _shared(project)
    rogue = write_script(tmp_path / "rogue.sh", IN_ITS_CLONE)
    honest = write_script(tmp_path / "honest.sh", 'echo honest > honest.txt && git add honest.txt'
                                                  ' && git commit -q -m "honest work"\n')
    clone_dir = project.worktrees / f"task-{ROGUE}"
    if how == "run":
        (tmp_path / "tasks.toml").write_text(
            f'pool = true\nisolation = "clone"\nmerge = false\n\n[[task]]\nid = "{ROGUE}"\nprompt = "p"\n'
            f'agent = "{rogue}"\n')
        project.ok("run", str(tmp_path / "tasks.toml"))
    elif how == "claim":
        claimed = project.ok("pool", "claim", "--task", ROGUE, "--isolation=clone", "--prompt", "p")
        assert claimed.stdout == f"{clone_dir}\n"
        assert run([str(rogue)], clone_dir).returncode == 0  # the user's agent, run where the claim said
    else:
        mode = "sandbox" if how == "spawn-sandbox" else "clone"
        project.ok("spawn", ROGUE, "--pool", f"--isolation={mode}", "--prompt", "p", "--agent", str(rogue))
    project.ok("spawn", "h1", "--pool", "--prompt", "p", "--agent", str(honest))  # a worktree from the pool
    project.ok("wait", "--all", "--timeout", "60")

    assert (clone_dir / ".git").is_dir()  # a repository of its own, not a worktree
    assert _pool_slots(project) == [("pool-2", "claimed")]  # pool-1 became the clone; h1 holds pool-2
    assert str(clone_dir) not in project.git("worktree", "list")
    assert project.git("rev-parse", "main") == orig
    assert _shared(project) == before
    merge = project.agent("merge", "--all")
    assert merge.returncode == 0, merge.stdout + merge.stderr
    assert merge.stdout.splitlines()[-1] == "2 merged, 0 not merged"
    assert project.git("show", "main:rogue.txt") == "rogue" and project.git("show", "main:honest.txt") == "honest"
    assert project.git("rev-list", "--count", "--first-parent", f"{orig}..main") == "2"  # two merges, no more
    assert _shared(project) == before
    fsck = run(["git", "fsck", "--no-dangling"], project.path)
    assert fsck.returncode == 0 and fsck.stdout + fsck.stderr == ""
    project.ok("clean", "--merged")
    assert not clone_dir.exists() and _pool_slots(project) == [("pool-2", "free")]
    project.ok("pool", "create", "2")  # topped up again
    assert _pool_slots(project) == [("pool-1", "free"), ("pool-2", "free")]


def test_a_sparse_clone_from_a_pool_slot(project: Project) -> None:
    project.commit_file("src/a.txt", "a\n")
    project.commit_file("docs/b.txt", "b\n")
    project.ok("pool", "create", "1")
    project.ok("spawn", "1", "--pool", "--isolation=clone", "--sparse", "src", "--prompt", "p")
    clone_dir = project.worktrees / "task-1"
    assert sorted(p.name for p in clone_dir.iterdir()) == [".git", "README", "shared.txt", "src"]
    assert project.git("status", "--porcelain", cwd=clone_dir) == ""
    assert project.git("symbolic-ref", "HEAD", cwd=clone_dir) == "refs/heads/task-1"
    assert _pool_slots(project) == []


def test_isolation_of_a_claim_needs_a_task(project: Project) -> None:
    project.ok("pool", "create", "1")
    proc = project.agent("pool", "claim", "--isolation=clone")
    assert (proc.returncode, proc.stdout) == (129, "")
    assert proc.stderr.startswith("error: --title, --prompt, --prompt-file, --base, --sparse and --isolation"
                                  " need --task\n"), proc.stderr
    project.git("config", "agent.isolation", "clone")  # a claim without a task is a worktree, whatever it says
    claimed = project.ok("pool", "claim").stdout.strip()
    assert claimed == str(project.worktrees / "pool-1") and (Path(claimed) / ".git").is_file()


def test_agent_isolation_applies_to_a_claim_with_a_task(project: Project) -> None:
    project.git("config", "agent.isolation", "clone")
    project.ok("pool", "create", "1")
    claimed = project.ok("pool", "claim", "--task", "7", "--prompt", "p").stdout.strip()
    assert claimed == str(project.worktrees / "task-7") and (Path(claimed) / ".git").is_dir()
    assert project.git("status", "--porcelain", cwd=Path(claimed)) == ""


def test_an_agent_in_the_sandbox_may_write_its_waiting_signal_and_nothing_else_of_its_task(
        project: Project, tmp_path: Path) -> None:
    """Claude's hooks write the task's attention file from inside the sandbox (its directory is
    bound writable); the prompt, the log and the exit record beside it stay read-only."""
    agent = write_script(tmp_path / "agent.sh", """
        d=$(dirname "$GIT_AGENT_PROMPT_FILE")
        printf '{"event": "Notification", "payload": {"message": "Allow?"}}' > "$d/signals/attention.tmp" &&
          mv -f "$d/signals/attention.tmp" "$d/signals/attention" && echo "signal written"
        for f in prompt.md exit agent.log; do (echo forged > "$d/$f") 2>/dev/null || echo "$f refused"; done
    """)
    project.ok("spawn", "1", "--isolation=sandbox", "--prompt", "p", "--agent", str(agent))
    project.ok("wait", "1", "--timeout", "60")
    task_dir = project.path / ".git" / "agents" / "tasks" / "1"
    assert project.ok("logs", "1").stdout == "signal written\nprompt.md refused\nexit refused\nagent.log refused\n"
    assert json.loads((task_dir / "signals" / "attention").read_text())["payload"] == {"message": "Allow?"}
    assert "forged" not in (task_dir / "prompt.md").read_text()


@pytest.mark.parametrize("step", ["symbolic-ref", "sparse-checkout"])
def test_a_clone_from_a_pool_slot_that_fails_leaves_nothing_and_loses_nothing(project: Project, step: str) -> None:
    """Killed before the slot is taken over (symbolic-ref, in the clone made aside) the slot is
    free again as it was; after (sparse-checkout, in the clone at its place) the slot is gone
    with the clone. Either way no task, branch, claim, clone or temporary directory is left."""
    from git_agents.core import git as gateway
    from git_agents.core.errors import AgentError
    from git_agents.core.repo import Repo
    from git_agents.lifecycle import start as starting
    from git_agents.pool import slots as pool

    project.commit_file("src/a.txt", "a\n")
    project.ok("pool", "create", "1")

    at = {"symbolic-ref": ["symbolic-ref", "HEAD", "refs/heads/task-1"], "sparse-checkout": ["sparse-checkout", "set"]}

    def crash(argv: list[str]) -> None:
        if argv[:len(at[step])] == at[step]:
            raise AgentError(f"crashed at {step}")

    repo = Repo.discover(str(project.path))
    gateway.add_call_hook(crash)
    try:
        with pytest.raises(AgentError, match=f"crashed at {step}"):
            starting.start_task(repo, starting.StartRequest(
                ("1",), prompt="p", pool=pool.PoolRequest(), sparse=["src"], isolation="clone",
                until=starting.CREATE))
    finally:
        gateway.CALL_HOOKS.remove(crash)
    assert project.agent("status").stdout.startswith("No tasks.")
    assert project.git("branch", "--list", "task-*") == ""
    assert project.git("for-each-ref", "refs/agents/pool/") == ""
    if step == "symbolic-ref":
        assert _pool_slots(project) == [("pool-1", "free")]
        assert sorted(p.name for p in project.worktrees.iterdir()) == ["pool-1"]
        assert project.git("status", "--porcelain", "--ignored", cwd=project.worktrees / "pool-1") == ""
    else:
        assert _pool_slots(project) == [] and list(project.worktrees.iterdir()) == []
    assert project.git("worktree", "list", "--porcelain").count("worktree ") == len(_pool_slots(project)) + 1


@pytest.mark.parametrize("then", ["run-resume", "clean"])
@pytest.mark.parametrize("point", ["--git-path index", "rename:/task-1", "unlink:/task-1/.git"],
                         ids=["not-yet-moved", "renamed", "pointer-removed"])
def test_a_pooled_clone_killed_between_the_rename_and_the_git_swap_is_finished(project: Project, tmp_path: Path,
                                                                              point: str, then: str) -> None:
    """A clone made from a pool slot, killed (SIGKILL) after the slot's directory was renamed to
    task-1 and before the clone's .git took the place of its worktree pointer: `run --resume`
    finishes the clone and runs the task in it; `clean 1` finishes it and removes it. Killed just
    before the rename, the slot goes back to the pool and what was made aside goes. The user's
    repository keeps its branches and files; no claim, worktree entry or half-made directory is left."""
    project.ok("pool", "create", "1")
    agent = write_script(tmp_path / "agent.sh", 'echo "$GIT_AGENT_TASK" > "$GIT_AGENT_TASK.txt" && git add -A'
                                                ' && git commit -q -m "work"\n')
    (tmp_path / "tasks.toml").write_text(f'agent = "{agent}"\npool = true\nisolation = "clone"\n\n'
                                         '[[task]]\nid = "1"\nprompt = "p"\n')
    project.git("switch", "-q", "-c", "feature")  # a branch of the user's with work of its own
    project.commit_file("feature.txt", "the user's\n", "the user's feature")
    project.git("switch", "-q", "main")
    (project.path / "notes.txt").write_text("the user's untracked notes\n")
    branches = project.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/")
    clone_dir = project.worktrees / "task-1"
    moved = not point.startswith("--")
    kill = {"GIT_AGENTS_TEST_KILL_AFTER_OS": point} if moved else {"GIT_AGENTS_TEST_KILL_AT_GIT": point}
    if then == "run-resume":
        killed = project.agent("run", str(tmp_path / "tasks.toml"), env=kill)
    else:
        killed = project.agent("spawn", "1", "--pool", "--isolation=clone", "--prompt", "p", "--agent", str(agent),
                               env=kill)
    assert killed.returncode in (137, -9), killed.stdout + killed.stderr
    if moved:
        assert clone_dir.is_dir() and not (clone_dir / ".git").is_dir()  # killed at that point
        finished = (f"warning: finished the clone of task 1 in {clone_dir}, which an interrupted command left"
                    " half-made (its pool slot pool-1 had been moved there)\n")
    else:
        assert not clone_dir.exists() and len(list(project.worktrees.glob(".task-1-*"))) == 1
        finished = "warning: gave pool slot pool-1 back to the pool: an interrupted command had claimed it for" \
                   " the clone of task 1\n"

    if then == "run-resume":
        resumed = project.agent("run", "--resume", str(tmp_path / "tasks.toml"))
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert resumed.stderr == finished
        assert resumed.stdout.splitlines()[-1] == "1 merged, 0 not merged"
        assert project.git("show", "main:1.txt") == "1"
        assert project.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/feature") in branches
    else:
        cleaned = project.agent("clean", "1")
        assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
        assert (cleaned.stdout, cleaned.stderr) == ("Removed task 1\n", finished)
        assert project.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/") == \
            "\n".join(line for line in branches.splitlines() if "task-1" not in line)
    assert not clone_dir.exists()
    # no half-made clone left aside; a slot not yet moved is back in the pool, free
    assert sorted(p.name for p in project.worktrees.iterdir()) == ([] if moved else ["pool-1"])
    assert project.git("worktree", "list", "--porcelain").count("worktree ") == (1 if moved else 2)
    assert project.git("for-each-ref", "refs/agents/pool/") == ""  # no claim left
    assert (project.path / "notes.txt").read_text() == "the user's untracked notes\n"
    again = project.agent("spawn", "2", "--pool", "--isolation=clone", "--prompt", "p", "--agent", str(agent))
    assert again.returncode == 0, again.stderr
    project.ok("wait", "2")
    assert project.git("show", "task-2:2.txt") == "2"
