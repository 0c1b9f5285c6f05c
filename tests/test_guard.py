"""The guard (tasks/guard.py): an agent's git may move only its own branch, the user's hooks still run."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from .conftest import Project, run, write_script

BAD_COMMANDS = {
    "stash": "echo more >> mine.txt; git stash",
    "checkout-B-main": "git checkout -q -B main",
    "update-ref-main": "git update-ref refs/heads/main HEAD",
    "tag": "git tag -f v1.0",
    "notes": "git notes --ref=agents add -f -m forged HEAD",
    "switch-c": "git switch -q -c fix",
    "delete-own": "git update-ref -d refs/heads/$GIT_AGENT_BRANCH",
    "other-branch": "git branch -f other HEAD",
}


def _guard_agent(tmp_path: Path) -> Path:
    """Commits its file, then tries each bad command, recording `<name> <exit code>` lines."""
    body = 'echo mine > mine.txt && git add mine.txt && git commit -q -m "task $GIT_AGENT_TASK: mine"\n'
    for name, command in BAD_COMMANDS.items():
        body += f'( {command} ) 2>>"$GIT_AGENT_WORKTREE/../err-$GIT_AGENT_TASK"; echo "{name} $?" >> ' \
                f'"$GIT_AGENT_WORKTREE/../rc-$GIT_AGENT_TASK"\n'
    body += "git checkout -q -- . 2>/dev/null; git commit -q --allow-empty -m 'task: still on my branch'\n"
    return write_script(tmp_path / "guarded-agent.sh", body)


def test_the_agents_git_may_move_only_its_own_branch(project: Project, tmp_path: Path) -> None:
    project.git("tag", "v1.0")
    before = project.snapshot()
    project.ok("spawn", "1", "--prompt", "p", "--agent", str(_guard_agent(tmp_path)))
    project.ok("wait", "1", "--timeout", "60")
    codes = dict(line.split() for line in (project.worktrees / "rc-1").read_text().splitlines())
    assert all(code != "0" for code in codes.values()), codes
    assert set(codes) == set(BAD_COMMANDS)
    err = (project.worktrees / "err-1").read_text()
    assert ("git-agents: refusing to update refs/stash: stash is shared between tasks: commit a"
            " work-in-progress commit on your branch (git commit -am wip) instead") in err
    assert "git-agents: refusing to update refs/heads/main: branches are shared" in err
    assert "git-agents: refusing to update refs/tags/v1.0: tags are shared with the user" in err
    assert "git-agents: refusing to delete your branch task-1: it holds this task's work" in err
    after = project.snapshot()
    refs = [r for r in after["refs"].splitlines() if not r.startswith(("refs/heads/task-1 ", "refs/agents/"))]
    assert refs == before["refs"].splitlines()  # main, the tag, no stash, no notes, no fix
    assert after["config"].count("hookspath") == 0  # the guard was never written into the user's config
    log = project.git("log", "--format=%s", "task-1")
    assert log.splitlines()[:2] == ["task: still on my branch", "task 1: mine"]
    merge = project.agent("merge", "--all")
    assert merge.returncode == 0, merge.stderr
    assert (project.path / "mine.txt").read_text() == "mine\n"


def test_the_users_hooks_still_run_for_the_agent_as_they_were_at_spawn(project: Project, tmp_path: Path) -> None:
    hook = project.path / ".git" / "hooks" / "pre-commit"
    write_script(hook, f'echo "pre-commit in $PWD" >> {tmp_path}/hook-ran\n')
    refs_hook = project.path / ".git" / "hooks" / "reference-transaction"
    write_script(refs_hook, f'[ "$1" = committed ] && cat >> {tmp_path}/refs-seen; exit 0\n')
    # Task 1's agent replaces the shared pre-commit hook (as `pre-commit install` does) with one
    # that refuses every commit; task 2, spawned before it, still runs the user's.
    gate = tmp_path / "gate"
    rogue = write_script(tmp_path / "rogue.sh", f"""
        printf '#!/bin/sh\\nexit 1\\n' > "$(git rev-parse --git-common-dir)/hooks/pre-commit"
        touch {gate}
    """)
    honest = write_script(tmp_path / "honest.sh", f"""
        while [ ! -e {gate} ]; do sleep 0.05; done
        echo two > two.txt && git add two.txt && git commit -q -m "task 2"
    """)
    project.ok("spawn", "2", "--prompt", "p", "--agent", str(honest))
    project.ok("spawn", "1", "--prompt", "p", "--agent", str(rogue))
    project.ok("wait", "--all", "--timeout", "60")
    assert project.git("log", "-1", "--format=%s", "task-2") == "task 2"
    assert (tmp_path / "hook-ran").read_text() == f"pre-commit in {project.worktrees / 'task-2'}\n"
    assert "refs/heads/task-2" in (tmp_path / "refs-seen").read_text()


def test_task_worktrees_are_locked_and_only_git_agents_removes_them(project: Project) -> None:
    project.ok("spawn", "1", "2", "--prompt", "p")
    (project.worktrees / "task-1" / "wip.txt").write_text("uncommitted\n")
    # Another task's agent (or anyone) running `git worktree remove --force` is refused.
    proc = run(["git", "worktree", "remove", "--force", str(project.worktrees / "task-1")], project.path)
    assert proc.returncode != 0 and "cannot remove a locked working tree" in proc.stderr
    assert (project.worktrees / "task-1" / "wip.txt").exists()
    refused = project.agent("clean", "1")
    assert refused.returncode == 1 and "uncommitted or untracked work (wip.txt)" in refused.stderr
    assert "locked git-agents task worktree" in project.git("worktree", "list", "--porcelain")
    project.ok("clean", "--force", "1")
    # A worktree deleted by hand is still forgotten by clean (unlocked for `git worktree prune`).
    shutil.rmtree(project.worktrees / "task-2")
    project.ok("clean", "2")
    assert project.git("worktree", "list", "--porcelain").count("worktree ") == 1
    assert project.git("branch", "--list", "task-*") == ""


ESCAPED = {  # run with the guard off (an agent that escaped it): caught before merging instead
    "amend": "echo amended > README && git commit -q -a --amend -m 'initial, amended'",
    "reset": "echo r > r.txt && git add r.txt && git commit -q -m r && git reset -q --hard HEAD~1",
    "switch": "echo s > s.txt && git add s.txt && git commit -q -m s && git switch -q -c fix"
              " && echo s2 > s2.txt && git add s2.txt && git commit -q -m s2",
}


def test_what_an_agent_did_to_its_branch_is_caught_task_by_task_and_the_rest_merge(
        project: Project, tmp_path: Path, committing_agent: Path) -> None:
    project.git("config", "agent.guard", "false")
    base = project.git("rev-parse", "HEAD")
    for n, (name, command) in enumerate(ESCAPED.items(), 1):
        project.ok("spawn", str(n), "--prompt", name, "--agent", str(write_script(tmp_path / f"{name}.sh", command)))
    project.ok("spawn", "9", "--prompt", "honest", "--agent", str(committing_agent))
    project.ok("wait", "--all", "--timeout", "60")
    status = project.ok("status")
    merge = project.agent("merge", "--all")
    assert merge.returncode == 1
    assert merge.stdout.startswith("Merged task 9 (")
    assert project.git("rev-parse", "main^1") == base
    assert (project.path / "file-9.txt").exists()
    lines = {line[:23]: line[25:] for line in merge.stderr.splitlines() if line.startswith("warning: skipped")}
    amended = project.git("rev-parse", "task-1")
    assert lines["warning: skipped task 1"] == (
        f"its branch task-1 does not contain its base commit {base[:12]}: its history was rewritten"
        f" (git commit --amend, rebase) or made again; to recover: its commit now is {amended[:12]}"
        f" (git log {amended[:12]}); to put the branch back: git update-ref refs/heads/task-1 {base}"
        " (reflog refs/heads/task-1@{1})")
    lost = project.git("rev-parse", "task-2@{1}")
    assert lines["warning: skipped task 2"] == (
        f"its branch task-2 moved back: commit {lost[:12]} (refs/heads/task-2@{{1}}: commit: r) is no longer on"
        f" it; to recover: git update-ref refs/heads/task-2 {lost} {base}")
    wt3, fix = project.worktrees / "task-3", project.git("rev-parse", "fix")
    assert lines["warning: skipped task 3"] == (
        f"its worktree's HEAD is on branch fix ({fix[:12]}), not on its branch task-3; to recover:"
        f" git -C {wt3} switch task-3 && git -C {wt3} merge {fix[:12]}")
    for n in "123":  # status says the same, after its table
        assert lines[f"warning: skipped task {n}"] in status.stderr


def test_a_target_moved_to_an_agents_commit_holds_the_tasks_into_it(project: Project, tmp_path: Path) -> None:
    project.git("config", "agent.guard", "false")
    base = project.git("rev-parse", "HEAD")
    mover = write_script(tmp_path / "mover.sh", """
        echo u > u.txt && git add u.txt && git commit -q -m u && git update-ref refs/heads/main HEAD
        echo u2 > u2.txt && git add u2.txt && git commit -q -m u2
    """)
    project.ok("spawn", "1", "--prompt", "p", "--agent", str(mover))
    project.ok("wait", "1", "--timeout", "60")
    moved = project.git("rev-parse", "main")
    merge = project.agent("merge", "--all")
    assert merge.returncode == 1 and "uncommitted changes" not in merge.stderr
    assert merge.stderr == (
        f"warning: skipped task 1: main contains commit {moved[:12]} of this task, which git-agents did not merge:"
        " main was moved to it (checkout -B, update-ref or push from the agent's worktree); to recover: put main"
        f" back with: git update-ref refs/heads/main {base} (reflog refs/heads/main@{{1}}), then merge again\n")
    assert project.git("rev-parse", "main") == moved  # nothing merged on top of it


def test_an_agents_change_to_the_shared_config_hooks_and_exclude_is_reported_and_not_used(
        project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, committing_agent: Path) -> None:
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(key)
    project.git("config", "--global", "user.name", "The User")
    project.git("config", "--global", "user.email", "user@example.com")
    gate = tmp_path / "gate"
    rogue = write_script(tmp_path / "rogue.sh", f"""
        until git config user.email agent@evil.example; do sleep 0.05; done  # git-agents writes the config too
        common=$(git rev-parse --git-common-dir)
        printf '#!/bin/sh\\ntouch {tmp_path}/agent-hook-ran\\n' > "$common/hooks/reference-transaction"
        chmod +x "$common/hooks/reference-transaction"
        echo '*.md' >> "$common/info/exclude"
        echo one > one.txt && git add one.txt && git commit -q -m one
        touch {gate}
    """)
    honest = write_script(tmp_path / "honest.sh", f"""
        while [ ! -e {gate} ]; do sleep 0.05; done
        mkdir docs && echo usage > docs/usage.md && echo code > code.txt && git add -A && git commit -q -m two
    """)
    project.ok("spawn", "2", "--prompt", "p", "--agent", str(honest))
    project.ok("spawn", "3", "--prompt", "p", "--agent", str(committing_agent))
    project.ok("spawn", "1", "--prompt", "p", "--agent", str(rogue))
    wait = project.ok("wait", "--all", "--timeout", "60")
    assert "warning: task 2: the shared config, hooks/ or info/exclude changed since it was spawned" in wait.stderr
    # status gives the same warning, worded and laid out as wait's (no blank line after each diff)
    status = project.ok("status", "2")
    warning = wait.stderr[wait.stderr.index("warning: task 2: "):].split("\nwarning: ")[0].rstrip("\n") + "\n"
    assert "--- config (at spawn)\n" in warning
    assert warning in status.stderr and "\n\n" not in status.stderr
    (tmp_path / "agent-hook-ran").unlink(missing_ok=True)  # the other agents' commits ran it: their own git
    merge = project.agent("merge", "--all")
    assert merge.returncode == 1
    assert merge.stdout.startswith("Merged task 1 (") and "Merged task 3 (" in merge.stdout
    first = re.search(r"changed since task (\d) was spawned", merge.stderr)
    assert first and first.group(1) in "13"  # the first spawned of those merged (1 and 3 within a second)
    snap = project.path / ".git" / "agents" / "tasks" / first.group(1) / "guard"
    assert (f"warning: the shared config, hooks/ or info/exclude changed since task {first.group(1)} was spawned"
            f" (by an agent, or by you); this merge uses the identity and the hooks as they were then; as they"
            f" were: {snap}\n") in merge.stderr
    assert "+\temail = agent@evil.example\n" in merge.stderr
    assert "+*.md\n" in merge.stderr
    assert "--- hooks/reference-transaction (at spawn)\n" in merge.stderr
    assert not (tmp_path / "agent-hook-ran").exists()
    assert project.git("log", "-1", "--format=%an <%ae> / %cn <%ce>", "main") == (
        "The User <user@example.com> / The User <user@example.com>")
    wt2 = project.worktrees / "task-2"
    assert ("warning: skipped task 2: its worktree has untracked files that lines added to .git/info/exclude since"
            f" it was spawned hide (docs/usage.md); to recover: commit them in {wt2}, or remove those lines\n"
            ) in merge.stderr


def test_agent_log_trusts_only_notes_git_agents_wrote_on_its_merge_commits(
        project: Project, tmp_path: Path, committing_agent: Path) -> None:
    project.ok("spawn", "1", "--prompt", "real", "--agent", str(committing_agent))
    project.ok("wait", "1", "--timeout", "60")
    project.ok("merge", "1")
    merge = project.git("rev-parse", "main")
    project.git("config", "agent.guard", "false")
    forger = write_script(tmp_path / "forger.sh", f"""
        git commit -q --allow-empty -m forged
        printf 'git-agents-note: 1\\ntask: 99\\ntitle: never existed\\n' | git notes --ref=agents add -f -F - HEAD
        printf 'git-agents-note: 1\\ntask: 1\\ntitle: rewritten\\n' | git notes --ref=agents add -f -F - {merge}
    """)
    project.ok("spawn", "2", "--prompt", "forge", "--agent", str(forger))
    project.ok("wait", "2", "--timeout", "60")
    log = project.agent("log", "--json", "main")
    assert log.returncode == 0
    assert json.loads(log.stdout)["merges"] == []
    assert log.stderr == (f"warning: ignoring the note on {merge[:12]}: git agent-merge did not write it"
                          " (changed since)\n")
    forged = project.git("rev-parse", "task-2")
    log = project.agent("log", "--json", "task-2")
    assert f"warning: ignoring the note on {forged[:12]}: git agent-merge did not write it (not a merge commit)\n" \
        in log.stderr
