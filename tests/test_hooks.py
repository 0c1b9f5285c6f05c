"""git agent hook: Claude Code's WorktreeCreate/WorktreeRemove handlers, and installing them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from git_agents.lifecycle.hooks import task_id_for

from .conftest import Project, run


def _payload(project: Project, event: str, **fields: str) -> str:
    return json.dumps({"session_id": "abc-123", "transcript_path": "/tmp/t.jsonl", "cwd": str(project.path),
                       "hook_event_name": event, **fields})


def _hook(project: Project, which: str, payload: str, cwd: Path | None = None):  # type: ignore[no-untyped-def]
    return run(["git", "agent", "hook", f"claude-worktree-{which}"], cwd or project.path, input=payload)


def test_create_takes_a_pool_slot_makes_it_ready_and_prints_only_the_path(project: Project) -> None:
    project.ok("pool", "create", "2")
    project.git("config", "agent.setup", "echo ready > .setup-ran")
    (project.path / ".git/info/exclude").write_text(".setup-ran\n")
    proc = _hook(project, "create", _payload(project, "WorktreeCreate", name="fix login"))
    assert (proc.returncode, proc.stderr) == (0, "")
    slot = str(project.worktrees / "pool-1")
    assert proc.stdout == slot + "\n"
    assert (Path(slot) / ".setup-ran").read_text() == "ready\n"
    status = json.loads(project.ok("status", "--json").stdout)["tasks"]
    assert [(t["id"], t["branch"], t["worktree"], t["slot"], t["state"]) for t in status] == [
        ("fix-login", "task-fix-login", slot, "pool-1", "not started")]
    assert project.git("rev-parse", "--abbrev-ref", "HEAD", cwd=Path(slot)) == "task-fix-login"
    # the session's work flows into the merge queue
    project.commit_file("login.txt", "fixed\n", cwd=Path(slot))
    merged = project.ok("merge", "--all")
    assert merged.stdout.startswith("Merged task fix-login (")
    assert (project.path / "login.txt").read_text() == "fixed\n"


def test_create_without_a_pool_makes_a_worktree_as_spawn_does(project: Project, tmp_path: Path) -> None:
    sub = project.path / "src"
    sub.mkdir()
    payload = json.dumps({"session_id": "s", "transcript_path": "t", "cwd": str(sub),
                          "hook_event_name": "WorktreeCreate", "name": "agent-a1b2"})
    proc = _hook(project, "create", payload, cwd=tmp_path)  # claude runs the hook anywhere; cwd decides
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == f"{project.worktrees / 'task-agent-a1b2'}\n"
    assert project.git("config", "agent-task.agent-a1b2.branch") == "task-agent-a1b2"


def test_create_refusals_print_nothing_on_stdout(project: Project) -> None:
    project.ok("spawn", "taken", "--prompt", "x")
    cases = [
        (_payload(project, "WorktreeCreate", name="taken"),
         "fatal: task 'taken' already exists\nhint: pick another id, or remove it first with: git agent-clean taken\n"),
        (_payload(project, "WorktreeCreate", name="///"),
         "fatal: invalid task id '///': a task id starts with a letter or digit and holds only letters, "
         "digits, '.', '_' and '-'\nhint: use something like 48, fix-login or issue-1234\n"),
        ("not json", "fatal: the WorktreeCreate hook's input is not JSON: Expecting value: line 1 column 1 (char 0)\n"
                     "hint: Claude Code passes a JSON object on standard input\n"),
        (_payload(project, "WorktreeRemove", name="x"),
         "fatal: this handler is for WorktreeCreate, not WorktreeRemove\n"
         "hint: point the WorktreeRemove hook at its own handler (git agent hook install claude)\n"),
    ]
    for payload, stderr in cases:
        proc = _hook(project, "create", payload)
        assert (proc.returncode, proc.stdout, proc.stderr) == (128, "", stderr)


def test_task_ids_from_names() -> None:
    assert task_id_for("fix login") == "fix-login"
    assert task_id_for("../../etc/passwd") == "etc-passwd"
    assert task_id_for("a..b.lock") == "a.b"
    assert task_id_for("x" * 150) == "x" * 100


def test_remove_never_loses_work_then_removes_once_merged(project: Project) -> None:
    project.ok("pool", "create", "1")
    path = _hook(project, "create", _payload(project, "WorktreeCreate", name="w1")).stdout.strip()
    project.commit_file("w1.txt", "w1\n", cwd=Path(path))
    (Path(path) / "scratch.txt").write_text("unsaved\n")
    remove = _payload(project, "WorktreeRemove", worktree_path=path)
    refused = _hook(project, "remove", remove)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (
        "fatal: not removing task w1: its worktree has uncommitted or untracked work (scratch.txt); "
        "its branch task-w1 has 1 commit(s) not merged into main\n"
        "hint: merge it first (git agent-merge w1), or discard it with git agent-clean --force w1\n")
    assert (Path(path) / "scratch.txt").exists()
    os.remove(Path(path) / "scratch.txt")
    project.ok("merge", "w1")
    done = _hook(project, "remove", remove)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "Removed task w1\n")
    assert project.ok("status").stdout.startswith("No tasks.")
    assert "free" in project.ok("pool", "list").stdout  # the slot went back to the pool
    unknown = _hook(project, "remove", _payload(project, "WorktreeRemove", worktree_path=str(project.path)))
    assert (unknown.returncode, unknown.stderr) == (
        1, f"fatal: '{project.path}' is not the worktree of a git-agents task\n"
           "hint: `git agent-status` lists the tasks and their worktrees\n")


def test_install_merges_into_the_settings_and_dry_run_shows_the_change(project: Project) -> None:
    settings = project.path / ".claude" / "settings.local.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"permissions": {"allow": ["Bash(ls)"]},
                                    "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "true"}]}]}}))
    before = settings.read_text()
    dry = run(["git", "agent", "hook", "install", "claude", "--dry-run"], project.path)
    assert (dry.returncode, dry.stderr) == (0, "")
    # paths in the repository, as git diff writes them (not a//tmp/...)
    assert dry.stdout.startswith("--- a/.claude/settings.local.json\n+++ b/.claude/settings.local.json\n@@ ")
    added = [line for line in dry.stdout.splitlines() if line.startswith("+") and '"command": ' in line]
    assert [line.split('"command": ')[1] for line in added] == ['"true"', '"git agent hook claude-worktree-create"',
                                                                '"git agent hook claude-worktree-remove"']
    assert settings.read_text() == before
    done = run(["git", "agent", "hook", "install", "claude"], project.path)
    assert (done.returncode, done.stdout) == (
        0, f"Installed the WorktreeCreate and WorktreeRemove hooks in {settings}\n")
    assert json.loads(settings.read_text()) == {
        "permissions": {"allow": ["Bash(ls)"]},
        "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "true"}]}],
                  "WorktreeCreate": [{"hooks": [{"type": "command",
                                                 "command": "git agent hook claude-worktree-create"}]}],
                  "WorktreeRemove": [{"hooks": [{"type": "command",
                                                 "command": "git agent hook claude-worktree-remove"}]}]}}
    assert project.git("status", "--porcelain", "--untracked-files=all") == ""  # the file is excluded, not untracked
    again = run(["git", "agent", "hook", "install", "claude"], project.path)
    assert (again.returncode, again.stdout) == (0, f"{settings}: the hooks are already installed\n")
    bad = run(["git", "agent", "hook", "frob"], project.path)
    assert (bad.returncode, bad.stderr) == (129, "usage: git agent hook (claude-worktree-create | "
                                                 "claude-worktree-remove)\n   or: git agent hook install claude "
                                                 "[--dry-run]\n")
